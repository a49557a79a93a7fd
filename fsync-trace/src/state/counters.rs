//! The kernel's per-file counters at the end of a trace (or at a `--crash-at` instant).
use std::collections::HashMap;

use fsync_trace_common::{FileCounters, FileKey};

/// The kernel's per-file counters at the end of a trace, sorted by file: a flat array (with
/// 100,000 files, a hash table and its growth would be the peak of the tracer's memory).
#[derive(Clone, Debug, Default)]
pub struct FinalCounters(pub(super) Vec<(FileKey, FileCounters)>);

impl FinalCounters {
    pub fn new(mut counters: Vec<(FileKey, FileCounters)>) -> Self {
        counters.sort_unstable_by_key(|(k, _)| *k);
        counters.dedup_by_key(|(k, _)| *k);
        FinalCounters(counters)
    }

    pub fn get(&self, key: &FileKey) -> Option<&FileCounters> {
        self.0
            .binary_search_by_key(key, |(k, _)| *k)
            .ok()
            .map(|i| &self.0[i].1)
    }
}

impl From<HashMap<FileKey, FileCounters>> for FinalCounters {
    fn from(m: HashMap<FileKey, FileCounters>) -> Self {
        FinalCounters::new(m.into_iter().collect())
    }
}

/// A file's final counters (this life's, absolute) as the analysis and the report keep them:
/// 16 bytes when they are small (most files: a few writes, nothing else counted), else the
/// full counters boxed. With 100,000 files the full counters beside every file state were the
/// memory peak of the end of a trace (14 MB); [`FinalCount::get`] gives back exactly the
/// counters it was made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinalCount {
    Small(SmallCount),
    Full(Box<FileCounters>),
}

/// Counters whose other fields are all zero, each value fitting its field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmallCount {
    writes: u32,
    bytes: u32,
    dirty_gen: u32,
    kernel_writebacks: u8,
    flags: u8,
    /// The open segment's extent is [0, bytes) (else it is empty: both ends 0).
    extent_is_bytes: bool,
}

impl SmallCount {
    fn get(self) -> FileCounters {
        let bytes = u64::from(self.bytes);
        FileCounters {
            writes: self.writes.into(),
            bytes,
            kernel_writebacks: self.kernel_writebacks.into(),
            dirty_gen: self.dirty_gen.into(),
            flags: self.flags.into(),
            extent_hi: if self.extent_is_bytes { bytes } else { 0 },
            ..FileCounters::default()
        }
    }
}

impl FinalCount {
    pub fn new(c: FileCounters) -> Self {
        let small = || {
            Some(SmallCount {
                writes: c.writes.try_into().ok()?,
                bytes: c.bytes.try_into().ok()?,
                dirty_gen: c.dirty_gen.try_into().ok()?,
                kernel_writebacks: c.kernel_writebacks.try_into().ok()?,
                flags: c.flags.try_into().ok()?,
                extent_is_bytes: c.extent_hi != 0,
            })
        };
        // Kept small only if nothing is lost (every other field zero, the extent [0, bytes)).
        match small().filter(|s| s.get() == c) {
            Some(s) => FinalCount::Small(s),
            None => FinalCount::Full(Box::new(c)),
        }
    }

    /// The counters, exactly as given to [`FinalCount::new`].
    pub fn get(&self) -> FileCounters {
        match self {
            FinalCount::Small(s) => s.get(),
            FinalCount::Full(c) => **c,
        }
    }
}

impl Default for FinalCount {
    fn default() -> Self {
        FinalCount::new(FileCounters::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(c: FileCounters) -> FinalCount {
        let f = FinalCount::new(c);
        assert_eq!(f.get(), c);
        f
    }

    #[test]
    fn small_counters_stay_small_and_exact() {
        assert_eq!(std::mem::size_of::<FinalCount>(), 16);
        let c = FileCounters {
            writes: 1,
            bytes: 4096,
            dirty_gen: 100_001,
            kernel_writebacks: 1,
            extent_hi: 4096,
            ..FileCounters::default()
        };
        assert!(matches!(round_trip(c), FinalCount::Small(_)));
        assert!(matches!(
            round_trip(FileCounters::default()),
            FinalCount::Small(_)
        ));
        assert!(matches!(
            FinalCount::default(),
            FinalCount::Small(s) if s.get() == FileCounters::default()
        ));
    }

    #[test]
    fn anything_else_is_kept_whole() {
        let base = FileCounters {
            writes: 2,
            bytes: 10,
            extent_hi: 10,
            ..FileCounters::default()
        };
        let cases = [
            FileCounters {
                bytes: 1 << 32,
                ..base
            },
            FileCounters {
                writes: 1 << 32,
                ..base
            },
            FileCounters {
                kernel_writebacks: 256,
                ..base
            },
            FileCounters {
                flags: 1 << 9,
                ..base
            },
            FileCounters {
                extent_lo: 2,
                ..base
            },
            FileCounters {
                extent_hi: 8,
                ..base
            },
            FileCounters {
                extent_hi: fsync_trace_common::EXTENT_UNKNOWN,
                ..base
            },
            FileCounters {
                sync_writes: 1,
                ..base
            },
            FileCounters {
                sync_write_bytes: 1,
                ..base
            },
            FileCounters {
                mapped_dirty_pages: 1,
                ..base
            },
            FileCounters {
                truncates: 1,
                ..base
            },
            FileCounters {
                fallocates: 1,
                ..base
            },
            FileCounters {
                truncate_len: 1,
                ..base
            },
            FileCounters {
                change_gen: 1,
                ..base
            },
            FileCounters {
                metadata_changes: 1,
                ..base
            },
            FileCounters {
                metadata_gen: 1,
                ..base
            },
        ];
        for c in cases {
            assert!(matches!(round_trip(c), FinalCount::Full(_)), "{c:?}");
        }
    }
}
