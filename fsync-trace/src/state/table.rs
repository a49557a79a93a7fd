//! The file states (and timeline lanes) by key: a table of pointers alone, each value holding
//! its own key (a map would repeat the 16-byte key in every slot; with 100,000 files the
//! table has 131,072).
use std::hash::BuildHasher;

use fsync_trace_common::FileKey;
use hashbrown::{hash_table::Entry, HashTable};

use super::FileState;

/// A value that knows its own key.
pub trait Keyed {
    fn key(&self) -> FileKey;
}

impl Keyed for FileState {
    fn key(&self) -> FileKey {
        self.key
    }
}

/// Boxed values by their own key.
#[derive(Clone, Debug)]
pub struct KeyedTable<T> {
    table: HashTable<Box<T>>,
    hasher: std::hash::RandomState,
}

pub type FileTable = KeyedTable<FileState>;

impl<T> Default for KeyedTable<T> {
    fn default() -> Self {
        KeyedTable {
            table: HashTable::new(),
            hasher: std::hash::RandomState::new(),
        }
    }
}

impl<T: Keyed> KeyedTable<T> {
    fn hash(&self, key: &FileKey) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn get(&self, key: &FileKey) -> Option<&T> {
        self.table
            .find(self.hash(key), |f| f.key() == *key)
            .map(|f| &**f)
    }

    pub fn get_mut(&mut self, key: &FileKey) -> Option<&mut T> {
        let hash = self.hash(key);
        self.table
            .find_mut(hash, |f| f.key() == *key)
            .map(|f| &mut **f)
    }

    /// The state of `key`, made by `new` if there is none.
    pub fn get_or_insert_with(&mut self, key: FileKey, new: impl FnOnce() -> Box<T>) -> &mut T {
        let hash = self.hash(&key);
        let hasher = &self.hasher;
        match self
            .table
            .entry(hash, |f| f.key() == key, |f| hasher.hash_one(f.key()))
        {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(new()).into_mut(),
        }
    }

    pub fn remove(&mut self, key: &FileKey) -> Option<Box<T>> {
        let hash = self.hash(key);
        match self.table.find_entry(hash, |f| f.key() == *key) {
            Ok(e) => Some(e.remove().0),
            Err(_) => None,
        }
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.table.iter().map(|f| &**f)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.table.iter_mut().map(|f| &mut **f)
    }

    pub fn keys(&self) -> impl Iterator<Item = FileKey> + '_ {
        self.table.iter().map(|f| f.key())
    }

    /// Takes every state out (the table keeps its buffer until dropped).
    pub fn drain(&mut self) -> impl Iterator<Item = Box<T>> + '_ {
        self.table.drain()
    }
}

/// The state of `key`, which must be there (as a map's index).
impl<T: Keyed> std::ops::Index<&FileKey> for KeyedTable<T> {
    type Output = T;
    fn index(&self, key: &FileKey) -> &T {
        self.get(key).expect("the value was just made")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_found_by_their_own_key() {
        let key = |ino| FileKey {
            dev: 8,
            gen: 0,
            ino,
        };
        let mut t = FileTable::default();
        for ino in 0..1000 {
            t.get_or_insert_with(key(ino), || Box::new(FileState::new(key(ino))))
                .fsyncs = ino;
        }
        assert_eq!(t.len(), 1000);
        // Present: not made again.
        t.get_or_insert_with(key(7), || unreachable!()).fdatasyncs = 1;
        assert_eq!(
            t.get(&key(7)).map(|f| (f.fsyncs, f.fdatasyncs)),
            Some((7, 1))
        );
        assert!(t.get(&key(1000)).is_none());
        t.get_mut(&key(9)).expect("present").fsyncs = 90;
        assert_eq!(t.remove(&key(9)).map(|f| f.fsyncs), Some(90));
        assert!(t.remove(&key(9)).is_none());
        assert_eq!(t.keys().count(), 999);
        assert_eq!(t.values().filter(|f| f.fdatasyncs == 1).count(), 1);
        t.values_mut().for_each(|f| f.fdatasyncs = 2);
        let drained: Vec<_> = t.drain().collect();
        assert_eq!(drained.len(), 999);
        assert!(drained.iter().all(|f| f.fdatasyncs == 2));
        assert_eq!(t.len(), 0);
    }
}
