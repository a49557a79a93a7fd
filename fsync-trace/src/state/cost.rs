//! What durability costs, per file and per process: time in sync calls, what each sync covered
//! (writes and bytes since the previous one, from the kernel counters a sync record carries),
//! how many syncs ran at once, and syncs that had nothing to make durable. Kept only for files
//! and processes that sync (boxed, allocated at their first sync), so files that are only
//! written pay nothing.
use fsync_trace_common::PAGE_SIZE;
use smallvec::SmallVec;

use super::Latency;
use crate::event::Actor;

/// Intervals kept to find overlapping syncs (see [`InFlight`]).
const MAX_RECENT_SYNCS: usize = 64;

/// A distribution of counts (writes or bytes covered per sync) in bounded memory: exact while
/// few, then within 1% (a [`Latency`] histogram, which cannot hold 0: values are kept + 1).
/// A single value is held inline (most synced files are synced once): the [`Latency`] is
/// allocated at the second.
#[derive(Clone, Debug, Default)]
pub struct Counts(CountsInner);

#[derive(Clone, Debug, Default)]
enum CountsInner {
    #[default]
    Empty,
    /// One value, + 1 (as the histogram would hold it).
    One(u64),
    Many(Box<Latency>),
}

impl Counts {
    pub fn record(&mut self, v: u64) {
        let v = v.saturating_add(1);
        match &mut self.0 {
            CountsInner::Empty => self.0 = CountsInner::One(v),
            CountsInner::One(first) => {
                let mut l = Latency::default();
                l.record(*first);
                l.record(v);
                self.0 = CountsInner::Many(Box::new(l));
            }
            CountsInner::Many(l) => l.record(v),
        }
    }
    pub fn count(&self) -> u64 {
        match &self.0 {
            CountsInner::Empty => 0,
            CountsInner::One(_) => 1,
            CountsInner::Many(l) => l.count(),
        }
    }
    /// Nearest-rank median (0 when empty).
    pub fn median(&self) -> u64 {
        match &self.0 {
            CountsInner::Empty => 0,
            CountsInner::One(v) => v.saturating_sub(1),
            CountsInner::Many(l) => l.percentile(50.0).saturating_sub(1),
        }
    }
    /// Largest value, exact (0 when empty).
    pub fn max(&self) -> u64 {
        match &self.0 {
            CountsInner::Empty => 0,
            CountsInner::One(v) => v.saturating_sub(1),
            CountsInner::Many(l) => l.max().saturating_sub(1),
        }
    }
}

/// The most syncs that were running at the same time. Sync records arrive when the call
/// returns, with its start time: each new interval is compared with the recent ones, counting
/// the syncs running at its start and adding itself to those that started while it ran. Only
/// intervals that a later sync could still overlap are kept: a later one returns after this
/// one and, unless it lasts longer than every sync before it, starts after `exit - longest`.
#[derive(Clone, Debug, Default)]
pub struct InFlight {
    /// (enter, exit, syncs running at its enter) of recent syncs; one inline (a file synced
    /// once allocates nothing here).
    recent: SmallVec<[(u64, u64, u32); 1]>,
    longest: u64,
    max: u32,
}

impl InFlight {
    pub fn record(&mut self, enter: u64, exit: u64) {
        self.longest = self.longest.max(exit.saturating_sub(enter));
        let horizon = exit.saturating_sub(self.longest);
        self.recent.retain(|r| r.1 > horizon);
        let mut at_enter = 1;
        for r in &mut self.recent {
            if r.0 <= enter && enter < r.1 {
                at_enter += 1;
            } else if enter < r.0 && r.0 < exit {
                r.2 += 1;
                self.max = self.max.max(r.2);
            }
        }
        self.max = self.max.max(at_enter);
        if self.recent.len() >= MAX_RECENT_SYNCS {
            self.recent.remove(0);
        }
        self.recent.push((enter, exit, at_enter));
    }

    pub fn max(&self) -> u32 {
        self.max
    }
}

/// Absolute counters of a file when a sync returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    pub writes: u64,
    pub bytes: u64,
    pub mapped_pages: u64,
}

/// What one sync covered since the previous reading: (writes, bytes incl. mapped pages,
/// mapped pages). Saturating: a reading from a reclaimed slot may lag behind.
pub fn covered(prev: &Reading, now: &Reading) -> (u64, u64, u64) {
    let pages = now.mapped_pages.saturating_sub(prev.mapped_pages);
    (
        now.writes.saturating_sub(prev.writes),
        now.bytes
            .saturating_sub(prev.bytes)
            .saturating_add(pages.saturating_mul(PAGE_SIZE)),
        pages,
    )
}

/// Sync costs of one file or one process.
#[derive(Clone, Debug, Default)]
pub struct SyncCost {
    /// Sync calls (every op but O_SYNC writes, failed ones too) and the time spent in them.
    pub calls: u64,
    pub sync_ns: u64,
    /// Per successful fsync/fdatasync (whose record carries the file's counters): the writes
    /// and bytes it covered.
    pub writes_per_sync: Counts,
    pub bytes_per_sync: Counts,
    pub in_flight: InFlight,
    /// Syncs with nothing to make durable, and their time.
    pub redundant: u64,
    pub redundant_ns: u64,
    /// The first sync with a reading of the file's counters: when it returned and who made it.
    pub first_sync: Option<(u64, Actor)>,
    /// The first redundant sync: when it returned and who made it (boxed: rare).
    pub first_redundant: Option<Box<(u64, Actor)>>,
    /// Files only: the counters at the last durable point a sync record read, and whether
    /// that point is known (a failure, or a durable point without a reading, forgets it).
    pub last: Reading,
    pub durable_known: bool,
    /// Files only: something the counters do not show changed since that durable point
    /// (truncated by an open, or a directory entry changed).
    pub changed: bool,
    /// Device cache flushes and FUA writes issued on the file's device while its successful
    /// durable-point syncs ran (one flush counts for every sync it fell in), and those syncs
    /// that saw none.
    pub device_flushes: u64,
    pub syncs_without_flush: u64,
}

impl SyncCost {
    /// A sync call that ran from `enter` to `exit`.
    pub fn call(&mut self, enter: u64, exit: u64) {
        self.calls += 1;
        self.sync_ns += exit.saturating_sub(enter);
        self.in_flight.record(enter, exit);
    }
}

/// `part / whole`, 0 for an empty whole.
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// One commit after another, each waiting for its sync: at most `1 / median latency` per
/// second (None without a latency).
pub fn serial_ceiling(median_sync_ns: u64) -> Option<f64> {
    (median_sync_ns > 0).then(|| 1e9 / median_sync_ns as f64)
}

/// `sync_per_write`: at least this many syncs of a file with readings...
pub const SYNC_PER_WRITE_MIN_SYNCS: u64 = 20;
/// ...whose median sync covered at most this many writes (and at least one)...
pub const SYNC_PER_WRITE_MAX_WRITES: u64 = 2;
/// ...and fewer bytes than this.
pub const SYNC_PER_WRITE_MAX_BYTES: u64 = 64 * 1024;

/// True if a file's syncs are the `sync_per_write` pattern: many syncs, each covering one or
/// two small writes. Syncs that covered nothing are `redundant_sync`, not this: a file synced
/// only redundantly has a median of 0 writes and is not flagged here.
pub fn is_sync_per_write(c: &SyncCost) -> bool {
    let (w, b) = (&c.writes_per_sync, &c.bytes_per_sync);
    w.count() >= SYNC_PER_WRITE_MIN_SYNCS
        && (1..=SYNC_PER_WRITE_MAX_WRITES).contains(&w.median())
        && b.median() < SYNC_PER_WRITE_MAX_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hold_zero_exactly_and_beyond_the_exact_samples() {
        let mut c = Counts::default();
        assert_eq!((c.count(), c.median(), c.max()), (0, 0, 0));
        for v in [0, 0, 1, 5] {
            c.record(v);
        }
        assert_eq!((c.count(), c.median(), c.max()), (4, 0, 5));
        let mut many = Counts::default();
        for i in 0..1000 {
            many.record(i % 3); // 0, 1, 2 in turn
        }
        assert_eq!((many.count(), many.median(), many.max()), (1000, 1, 2));
    }

    #[test]
    fn a_file_synced_once_stays_small() {
        // Every synced file carries a SyncCost: one value per distribution and one interval
        // are held inline (the bench's 100k files synced once each).
        assert!(std::mem::size_of::<Counts>() <= 16);
        assert!(std::mem::size_of::<crate::state::Latency>() <= 24);
        assert!(
            std::mem::size_of::<InFlight>() <= 48,
            "smallvec's union layout"
        );
        let mut c = SyncCost::default();
        c.call(10, 20);
        c.writes_per_sync.record(1);
        assert!(!c.in_flight.recent.spilled());
        assert_eq!(
            (c.writes_per_sync.count(), c.writes_per_sync.median()),
            (1, 1)
        );
    }

    #[test]
    fn serial_syncs_never_overlap() {
        let mut f = InFlight::default();
        for i in 0..100u64 {
            f.record(i * 10, i * 10 + 5);
        }
        assert_eq!(f.max(), 1);
        // Back to back: one ends when the next starts.
        let mut b = InFlight::default();
        b.record(0, 10);
        b.record(10, 20);
        assert_eq!(b.max(), 1);
    }

    #[test]
    fn overlapping_syncs_are_counted_whatever_order_they_return_in() {
        // Three syncs running at t=5: [0,10), [2,6), [4,20); a fourth alone later.
        let mut f = InFlight::default();
        f.record(2, 6);
        f.record(0, 10);
        f.record(4, 20);
        f.record(30, 31);
        assert_eq!(f.max(), 3);
        // Nested: a long sync returning after two short ones it contains.
        let mut n = InFlight::default();
        n.record(1, 2);
        n.record(3, 4);
        n.record(0, 10);
        assert_eq!(n.max(), 2);
    }

    #[test]
    fn covered_is_the_difference_with_pages_as_bytes() {
        let prev = Reading {
            writes: 3,
            bytes: 300,
            mapped_pages: 1,
        };
        let now = Reading {
            writes: 5,
            bytes: 500,
            mapped_pages: 2,
        };
        assert_eq!(covered(&prev, &now), (2, 200 + PAGE_SIZE, 1));
        assert_eq!(covered(&now, &prev), (0, 0, 0));
    }

    #[test]
    fn sync_per_write_needs_many_small_syncs_that_covered_something() {
        let with = |n: u64, writes: u64, bytes: u64| {
            let mut c = SyncCost::default();
            for _ in 0..n {
                c.writes_per_sync.record(writes);
                c.bytes_per_sync.record(bytes);
            }
            is_sync_per_write(&c)
        };
        assert!(with(20, 1, 4096));
        assert!(with(20, 2, 65535));
        assert!(!with(19, 1, 4096), "too few syncs");
        assert!(!with(20, 3, 300), "batched");
        assert!(!with(20, 1, 65536), "large records");
        assert!(!with(20, 0, 0), "redundant, not per write");
    }

    #[test]
    fn ceiling_and_share() {
        assert_eq!(serial_ceiling(2_000_000), Some(500.0));
        assert_eq!(serial_ceiling(0), None);
        assert_eq!(share(1, 4), 0.25);
        assert_eq!(share(1, 0), 0.0);
    }
}
