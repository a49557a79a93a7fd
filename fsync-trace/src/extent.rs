//! The dirty extent: the lowest and highest file offset written since a file's last durable
//! point. Bytes written do not tell how much of a file is at risk (1,000 overwrites of one 4 KiB
//! page are 4 MB written but one page at risk); the extent does, as a hull: the range between
//! the lowest and the highest offset written (holes inside it are not tracked).
//!
//! The kernel keeps the extent of the current durability segment in each file's counters
//! (`FileCounters::extent_lo/hi`); the `Dirty` record that starts a new segment carries the
//! closed one's (`DirtyRecord::prev_extent_*`). Userspace unites the segments still at risk.
use fsync_trace_common::{FileCounters, EXTENT_UNKNOWN};

/// A range of file offsets written, `[lo, hi)`, or none, or unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Extent {
    /// Nothing written.
    #[default]
    Empty,
    /// Bytes `lo..hi` (hi exclusive) hold every byte written.
    Range { lo: u64, hi: u64 },
    /// Some data has no known offset: a store through a shared mapping (page granularity, not
    /// followed), or a write whose position could not be read.
    Unknown,
}

impl Extent {
    /// The extent the kernel encodes as (`lo`, `hi`): `hi` 0 is empty, [`EXTENT_UNKNOWN`]
    /// unknown.
    pub fn from_kernel(lo: u64, hi: u64) -> Self {
        match hi {
            0 => Extent::Empty,
            EXTENT_UNKNOWN => Extent::Unknown,
            hi => Extent::Range { lo: lo.min(hi), hi },
        }
    }

    /// The current segment's extent in a file's kernel counters.
    pub fn of(c: &FileCounters) -> Self {
        Self::from_kernel(c.extent_lo, c.extent_hi)
    }

    /// The smallest extent holding both (unknown if either is).
    #[must_use]
    pub fn union(self, other: Extent) -> Extent {
        match (self, other) {
            (Extent::Unknown, _) | (_, Extent::Unknown) => Extent::Unknown,
            (Extent::Empty, e) | (e, Extent::Empty) => e,
            (Extent::Range { lo: a, hi: b }, Extent::Range { lo: c, hi: d }) => Extent::Range {
                lo: a.min(c),
                hi: b.max(d),
            },
        }
    }

    /// `(lo, hi)` if it is a known, non-empty range.
    pub fn range(self) -> Option<(u64, u64)> {
        match self {
            Extent::Range { lo, hi } => Some((lo, hi)),
            _ => None,
        }
    }
}

/// Unites extents (empty if there are none).
pub fn union_all(extents: impl IntoIterator<Item = Extent>) -> Extent {
    extents.into_iter().fold(Extent::Empty, Extent::union)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_encoding() {
        assert_eq!(Extent::from_kernel(5, 0), Extent::Empty);
        assert_eq!(Extent::from_kernel(0, EXTENT_UNKNOWN), Extent::Unknown);
        assert_eq!(
            Extent::from_kernel(4096, 8192),
            Extent::Range { lo: 4096, hi: 8192 }
        );
    }

    #[test]
    fn union_is_the_hull_and_unknown_wins() {
        let a = Extent::Range { lo: 0, hi: 4096 };
        let b = Extent::Range {
            lo: 1 << 30,
            hi: (1 << 30) + 10,
        };
        assert_eq!(
            a.union(b),
            Extent::Range {
                lo: 0,
                hi: (1 << 30) + 10
            }
        );
        assert_eq!(a.union(Extent::Empty), a);
        assert_eq!(Extent::Empty.union(a), a);
        assert_eq!(a.union(Extent::Unknown), Extent::Unknown);
        assert_eq!(union_all([]), Extent::Empty);
        assert_eq!(union_all([a, a, a]), a);
    }
}
