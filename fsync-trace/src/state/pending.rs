//! One entry name's unsynced changes in a directory's pending map.
use super::PendingEntry;

/// One entry name's unsynced changes, in order: one kept inline (nearly always), more boxed.
/// 24 bytes, where a `SmallVec` of one took 32: a directory can hold 100,000 pending names
/// (a megabyte less).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Changes {
    #[default]
    None,
    One(PendingEntry),
    #[allow(clippy::box_collection)]
    Many(Box<Vec<PendingEntry>>),
}

impl Changes {
    /// Appends a change.
    pub fn push(&mut self, e: PendingEntry) {
        match std::mem::take(self) {
            Changes::None => *self = Changes::One(e),
            Changes::One(first) => *self = Changes::Many(Box::new(vec![first, e])),
            Changes::Many(mut v) => {
                v.push(e);
                *self = Changes::Many(v);
            }
        }
    }

    /// Keeps the changes `keep` says, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&PendingEntry) -> bool) {
        match self {
            Changes::None => {}
            Changes::One(e) => {
                if !keep(e) {
                    *self = Changes::None;
                }
            }
            Changes::Many(v) => {
                v.retain(|e| keep(e));
                if v.is_empty() {
                    *self = Changes::None;
                }
            }
        }
    }
}

impl std::ops::Deref for Changes {
    type Target = [PendingEntry];
    fn deref(&self) -> &[PendingEntry] {
        match self {
            Changes::None => &[],
            Changes::One(e) => std::slice::from_ref(e),
            Changes::Many(v) => v,
        }
    }
}

impl<'a> IntoIterator for &'a Changes {
    type Item = &'a PendingEntry;
    type IntoIter = std::slice::Iter<'a, PendingEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::EntryOp;
    use std::sync::Arc;

    fn e(seq: u32, op: EntryOp) -> PendingEntry {
        PendingEntry {
            op,
            ts: u64::from(seq) * 10,
            actor: Arc::new(crate::event_fixtures::actor(7, "mk")),
            seq,
        }
    }

    #[test]
    fn changes_keep_their_order_in_24_bytes() {
        assert_eq!(std::mem::size_of::<Changes>(), 24);
        let mut c = Changes::default();
        assert!(c.is_empty());
        c.push(e(1, EntryOp::Create));
        assert!(matches!(c, Changes::One(_)));
        c.push(e(2, EntryOp::Unlink));
        c.push(e(3, EntryOp::Create));
        let seqs = |c: &Changes| c.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&c), [1, 2, 3]);
        assert_eq!(c.last().map(|e| e.seq), Some(3));
        assert_eq!((&c).into_iter().count(), 3);
        c.retain(|e| !e.op.adds());
        assert_eq!(seqs(&c), [2]);
        c.retain(|_| false);
        assert!(matches!(c, Changes::None));
        c.push(e(4, EntryOp::Rename));
        c.retain(|e| e.seq == 4);
        assert_eq!(seqs(&c), [4]);
        c.retain(|_| false);
        assert!(c.is_empty());
    }
}
