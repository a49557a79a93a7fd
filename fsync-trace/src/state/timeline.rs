//! The timeline of a trace as data: per file its dirty intervals (from the first dirtying to
//! the durable point that covered it) and its sync calls, per directory its entry changes and
//! when each became durable. Fed by the state machine at the moments it changes state (it
//! never decides anything itself), read by the report, the crash what-if and the HTML page.
//!
//! Bytes: a `Dirty` record carries the file's counters before the write that announced it, and
//! the first write after a sync call *entered* always announces the file again (the durability
//! epoch moved), so the counters of the first `Dirty` after a durable point (or the final
//! counters) are exactly what the covered interval wrote: `total`. Every covered write happened
//! before the sync entered, so `total` is what was at risk from that entry until the exit.
//! Between two readings the bytes at risk are known as a lower bound (the last reading).
//!
//! Dirty extents (`crate::extent`) follow the same readings: the state machine hands the
//! extent of what each reading counts (the segments the kernel closed so far, united with its
//! current one for readings of the kernel counters), and the extent of what a durable point
//! covered once it is known, so an extent is exact wherever the bytes are.
//!
//! Bounded: at most `max_items` intervals, readings, sync marks, entry changes and lanes; what
//! comes later is not recorded but counted (`Cut`), never silently dropped. Items already
//! recorded are still completed (durable points), so what is kept stays right.
use std::sync::Arc;

use compact_str::CompactString;
use smallvec::SmallVec;

use fsync_trace_common::{FileKey, SyncOp};

use super::table::{Keyed, KeyedTable};
use super::EntryOp;
use crate::extent::Extent;

/// No timeline slot (the change was cut).
pub const NO_SEQ: u32 = u32::MAX;

/// Default bound of recorded items (intervals, readings, syncs, entry changes, lanes).
pub const DEFAULT_MAX_ITEMS: usize = 100_000;

/// Writes and bytes (mapped pages as 4 KiB each): a reading of the kernel's counters, or a
/// difference of two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub writes: u64,
    pub bytes: u64,
}

impl Count {
    fn since(self, start: Count) -> Count {
        Count {
            writes: self.writes.saturating_sub(start.writes),
            bytes: self.bytes.saturating_sub(start.bytes),
        }
    }
}

/// Data of one file at risk from `from` until `durable` (or `removed`, or the end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval {
    pub from: u64,
    /// Exit of the sync call that made it durable.
    pub durable: OptNs,
    /// Entry of that sync call: from then on, `total` is what is at risk.
    pub covered_from: OptNs,
    /// The file lost its last name while dirty: its data no longer matters.
    pub removed: OptNs,
    /// The process whose write made it dirty.
    pub by: u32,
    /// The file's counters before the first write.
    pub start: Count,
    /// What the interval wrote in all (None until known: the next dirtying or the end).
    pub total: Option<Count>,
    /// (time, written since `from`, its dirty extent) read on the way (later dirtyings in
    /// new epochs, `--crash-at` snapshots, the end).
    pub readings: Readings,
    /// The dirty extent of `total` (None until known, as `total`).
    pub extent: Option<Extent>,
    /// Changes that wrote no data in the interval (`Change::bit`s: truncate, fallocate).
    pub changes: u8,
}

impl Interval {
    fn new(from: u64, by: u32, start: Count, changes: u8) -> Self {
        Interval {
            from,
            durable: OptNs::NONE,
            covered_from: OptNs::NONE,
            removed: OptNs::NONE,
            by,
            start,
            total: None,
            readings: Readings::default(),
            extent: None,
            changes,
        }
    }

    /// When it stops being at risk (u64::MAX: never).
    pub fn until(&self) -> u64 {
        self.durable
            .get()
            .or(self.removed.get())
            .unwrap_or(u64::MAX)
    }

    /// Is it at risk at `t`?
    pub fn at_risk(&self, t: u64) -> bool {
        self.from <= t && t < self.until()
    }

    /// Written and at risk at `t`, and whether that is exact: it is from the covering sync's
    /// entry on (and at a reading's instant), else a lower bound (the last reading before).
    /// The extent is that of the same reading (a lower bound too between readings).
    pub fn written_at(&self, t: u64) -> (Count, Extent, bool) {
        if let (Some(c), Some(total)) = (self.covered_from.get(), self.total) {
            if c <= t {
                return (total, self.extent.unwrap_or(Extent::Unknown), true);
            }
        }
        self.readings
            .iter()
            .rev()
            .find(|(ts, _, _)| *ts <= t)
            .map_or((Count::default(), Extent::Empty, false), |r| {
                (r.1, r.2, r.0 == t)
            })
    }
}

/// An instant (ns) that may not have come yet, in 8 bytes (an `Option<u64>` takes 16; a
/// timeline holds up to 100,000 of each kind): `u64::MAX` is none, an instant no trace reaches.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OptNs(u64);

impl OptNs {
    pub const NONE: OptNs = OptNs(u64::MAX);

    pub fn get(self) -> Option<u64> {
        (self.0 != u64::MAX).then_some(self.0)
    }

    fn set(&mut self, ns: u64) {
        self.0 = ns;
    }

    /// Sets it unless it is set already.
    fn get_or_insert(&mut self, ns: u64) {
        if self.0 == u64::MAX {
            self.0 = ns;
        }
    }
}

impl Default for OptNs {
    fn default() -> Self {
        OptNs::NONE
    }
}

impl std::fmt::Debug for OptNs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// An interval's readings: most intervals have none, so they cost one pointer until the
/// first (a timeline holds up to 100,000 intervals).
/// (A boxed Vec: one pointer instead of a Vec's three words.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(clippy::box_collection)]
pub struct Readings(Option<Box<Vec<(u64, Count, Extent)>>>);

impl Readings {
    fn push(&mut self, r: (u64, Count, Extent)) {
        self.0.get_or_insert_with(Box::default).push(r);
    }

    fn retain(&mut self, keep: impl FnMut(&(u64, Count, Extent)) -> bool) {
        if let Some(v) = &mut self.0 {
            v.retain(keep);
        }
    }
}

impl std::ops::Deref for Readings {
    type Target = [(u64, Count, Extent)];
    fn deref(&self) -> &Self::Target {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

/// A sync call naming the file or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncMark {
    pub enter: u64,
    pub exit: u64,
    pub op: SyncOp,
    /// The call's errno if it failed (never 0: 4 bytes, so a lane with one sync fits a
    /// 240-byte block).
    pub errno: Option<std::num::NonZeroI32>,
}

/// A change of one directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryChange {
    pub at: u64,
    /// Inline up to 24 bytes: no allocation per change of a short name.
    pub entry: CompactString,
    pub op: EntryOp,
    /// Exit of the directory sync that made it durable.
    pub durable: OptNs,
    /// A later change undid it before any directory sync (a name created and removed again):
    /// from then on the directory's durable state is what it was.
    pub cancelled: OptNs,
}

impl EntryChange {
    pub fn at_risk(&self, t: u64) -> bool {
        let until = self
            .durable
            .get()
            .or(self.cancelled.get())
            .unwrap_or(u64::MAX);
        self.at <= t && t < until
    }
}

/// One file's or directory's history. Most files have one interval and one sync: those are
/// kept inline (one allocation per lane, not three).
#[derive(Clone, Debug, Default)]
pub struct Lane {
    pub key: FileKey,
    pub path: Option<Arc<str>>,
    pub is_dir: bool,
    pub dirty: SmallVec<[Interval; 1]>,
    pub syncs: SmallVec<[SyncMark; 1]>,
    /// A directory's entry changes (one pointer in the lanes of files).
    pub entries: Entries,
    /// Index of the interval at risk now.
    open: Option<u32>,
    /// A closed interval whose total waits for the next reading ([`NO_SEQ`]: none), with the
    /// extent of its segments already closed (one per lane at most: kept here, not in every
    /// interval; apart, not as an `Option` of both: 8 bytes less).
    awaiting: Awaiting,
    awaiting_extent: Extent,
}

/// The index of a lane's interval awaiting its total ([`NO_SEQ`]: none, the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Awaiting(u32);

impl Default for Awaiting {
    fn default() -> Self {
        Awaiting(NO_SEQ)
    }
}

impl Keyed for Lane {
    fn key(&self) -> FileKey {
        self.key
    }
}

impl Lane {
    fn set_awaiting(&mut self, i: u32, closed: Extent) {
        (self.awaiting, self.awaiting_extent) = (Awaiting(i), closed);
    }

    fn take_awaiting(&mut self) -> Option<(u32, Extent)> {
        let Awaiting(i) = std::mem::take(&mut self.awaiting);
        let closed = std::mem::take(&mut self.awaiting_extent);
        (i != NO_SEQ).then_some((i, closed))
    }

    /// The index the next pushed interval gets.
    fn next_interval(&self) -> u32 {
        u32::try_from(self.dirty.len()).unwrap_or(u32::MAX)
    }
}

/// A directory lane's entry changes, in order: one pointer until the first.
/// (A boxed Vec: one pointer in every lane instead of a Vec's three words.)
#[derive(Clone, Debug, Default)]
#[allow(clippy::box_collection)]
pub struct Entries(Option<Box<Vec<EntryChange>>>);

impl Entries {
    fn push(&mut self, c: EntryChange) {
        self.0.get_or_insert_with(Box::default).push(c);
    }
}

impl std::ops::Deref for Entries {
    type Target = [EntryChange];
    fn deref(&self) -> &[EntryChange] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl std::ops::DerefMut for Entries {
    fn deref_mut(&mut self) -> &mut [EntryChange] {
        self.0.as_deref_mut().map_or(&mut [], Vec::as_mut_slice)
    }
}

impl<'a> IntoIterator for &'a Entries {
    type Item = &'a EntryChange;
    type IntoIter = std::slice::Iter<'a, EntryChange>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// What the bound left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// Items not recorded.
    pub items: u64,
    /// When the first was left out (ns).
    pub first_ns: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Timeline {
    max_items: usize,
    items: usize,
    pub cut: Cut,
    /// Time of the event being applied (removals learn it from here).
    pub(super) now: u64,
    /// Boxed: a lane is 264 bytes and the table keeps an eighth of its slots and more empty
    /// (and twice its size while it grows); pointers alone (a lane holds its key).
    lanes: KeyedTable<Lane>,
}

impl Timeline {
    pub fn new(max_items: usize) -> Self {
        Timeline {
            max_items,
            items: 0,
            cut: Cut::default(),
            now: 0,
            lanes: KeyedTable::default(),
        }
    }

    pub fn max_items(&self) -> usize {
        self.max_items
    }

    /// Items recorded.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Room for one more item? Counts it either way.
    fn take(&mut self) -> bool {
        if self.items < self.max_items {
            self.items += 1;
            true
        } else {
            self.cut.items += 1;
            self.cut.first_ns.get_or_insert(self.now);
            false
        }
    }

    /// The lane of `key` (made, named by `path`, if there is room), with room for `extra` more
    /// items in it; None (counted as cut) if there is no room.
    fn lane(
        &mut self,
        key: FileKey,
        path: impl FnOnce() -> Option<Arc<str>>,
        extra: usize,
    ) -> Option<&mut Lane> {
        let new = self.lanes.get(&key).is_none();
        let need = extra + usize::from(new);
        if self.items + need > self.max_items {
            self.cut.items += need as u64;
            self.cut.first_ns.get_or_insert(self.now);
            return None;
        }
        self.items += need;
        Some(self.lanes.get_or_insert_with(key, || {
            Box::new(Lane {
                key,
                path: path(),
                ..Default::default()
            })
        }))
    }

    /// Lanes, in no particular order.
    pub fn lanes(&self) -> impl Iterator<Item = &Lane> {
        self.lanes.values()
    }

    /// The file got dirty at `ts` (a `Dirty` record; `abs`: its counters before that write;
    /// `prev`: the extent of the segment the record closed; `known`: the extent of everything
    /// at risk before that write).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dirty(
        &mut self,
        key: FileKey,
        path: impl FnOnce() -> Option<Arc<str>>,
        ts: u64,
        by: u32,
        abs: Count,
        changes: u8,
        prev: Extent,
        known: Extent,
    ) {
        // What waits for this reading is completed even when there is no room for more.
        if let Some(lane) = self.lanes.get_mut(&key) {
            if let Some((i, partial)) = lane.take_awaiting() {
                let d = &mut lane.dirty[i as usize];
                d.total = Some(abs.since(d.start));
                d.extent = Some(partial.union(prev));
            }
        }
        let Some(lane) = self.lane(key, path, 1) else {
            return;
        };
        if let Some(i) = lane.open {
            let d = &mut lane.dirty[i as usize];
            let reading = abs.since(d.start);
            d.readings.push((ts, reading, known));
            d.changes |= changes;
        } else {
            lane.open = Some(lane.next_interval());
            // Exact capacity: most files have one or two intervals and syncs, and a Vec's first
            // push would reserve four (10,000 files: megabytes).
            lane.dirty.reserve_exact(1);
            lane.dirty.push(Interval::new(ts, by, abs, changes));
        }
    }

    /// A durable point for the file: data announced before `enter` is durable at `exit`;
    /// `remaining` is the oldest announcement made since `enter` (still at risk); `covered`
    /// the extent of the covered segments the kernel closed (all of them if `remaining`).
    pub(super) fn durable(
        &mut self,
        key: FileKey,
        enter: u64,
        exit: u64,
        remaining: Option<(u64, u32, Count, u8)>,
        covered: Extent,
    ) {
        let Some(lane) = self.lanes.get_mut(&key) else {
            return;
        };
        let Some(i) = lane.open.filter(|&i| lane.dirty[i as usize].from < enter) else {
            return;
        };
        lane.open = None;
        let d = &mut lane.dirty[i as usize];
        d.durable.set(exit);
        d.covered_from.set(enter);
        // Readings taken after the sync entered belong to the data it did not cover.
        d.readings.retain(|r| r.0 < enter);
        if let Some((_, _, abs, _)) = remaining {
            d.total = Some(abs.since(d.start));
            d.extent = Some(covered);
        } else {
            lane.set_awaiting(i, covered);
        }
        if let Some((since, by, abs, changes)) = remaining {
            if self.take() {
                let lane = self.lanes.get_mut(&key).expect("lane exists");
                lane.open = Some(lane.next_interval());
                lane.dirty.reserve_exact(1);
                lane.dirty.push(Interval::new(since, by, abs, changes));
            }
        }
    }

    /// A reading of the file's counters at `ts` outside any record (a `--crash-at` snapshot):
    /// what its open interval has written by then, and its extent.
    pub(super) fn reading(&mut self, key: FileKey, ts: u64, abs: Count, extent: Extent) {
        let Some(i) = self.lanes.get(&key).and_then(|l| l.open) else {
            return;
        };
        if !self.take() {
            return;
        }
        if let Some(lane) = self.lanes.get_mut(&key) {
            let d = &mut lane.dirty[i as usize];
            let r = abs.since(d.start);
            d.readings.push((ts, r, extent));
        }
    }

    /// The file lost its last name: what it had at risk no longer matters.
    pub(super) fn removed(&mut self, key: FileKey) {
        let now = self.now;
        let Some(lane) = self.lanes.get_mut(&key) else {
            return;
        };
        if let Some(i) = lane.open.take() {
            lane.dirty[i as usize].removed.set(now);
            // An open interval's closed segments are not kept apart: none yet.
            lane.set_awaiting(i, Extent::Empty);
        }
    }

    /// A sync call naming the file.
    pub(super) fn sync(
        &mut self,
        key: FileKey,
        path: impl FnOnce() -> Option<Arc<str>>,
        is_dir: bool,
        mark: SyncMark,
    ) {
        let Some(lane) = self.lane(key, path, 1) else {
            return;
        };
        lane.is_dir |= is_dir;
        lane.syncs.reserve_exact(1);
        lane.syncs.push(mark);
    }

    /// An entry change of directory `dir`; returns its sequence number ([`NO_SEQ`] if cut).
    pub(super) fn entry(
        &mut self,
        dir: FileKey,
        path: impl FnOnce() -> Option<Arc<str>>,
        at: u64,
        entry: &str,
        op: EntryOp,
    ) -> u32 {
        let Some(lane) = self.lane(dir, path, 1) else {
            return NO_SEQ;
        };
        lane.is_dir = true;
        let seq = u32::try_from(lane.entries.len()).unwrap_or(NO_SEQ);
        if seq != NO_SEQ {
            lane.entries.push(EntryChange {
                at,
                entry: entry.into(),
                op,
                durable: OptNs::NONE,
                cancelled: OptNs::NONE,
            });
        }
        seq
    }

    fn change(&mut self, dir: FileKey, seq: u32) -> Option<&mut EntryChange> {
        if seq == NO_SEQ {
            return None;
        }
        self.lanes.get_mut(&dir)?.entries.get_mut(seq as usize)
    }

    /// Entry change `seq` of `dir` became durable at `exit`.
    pub(super) fn entry_durable(&mut self, dir: FileKey, seq: u32, exit: u64) {
        if let Some(c) = self.change(dir, seq) {
            c.durable.get_or_insert(exit);
        }
    }

    /// Entry change `seq` of `dir` was undone at `at` (and so is the change undoing it).
    pub(super) fn entry_cancelled(&mut self, dir: FileKey, seq: u32, at: u64) {
        if let Some(c) = self.change(dir, seq) {
            c.cancelled.get_or_insert(at);
        }
    }

    /// End of the trace at `end`: the file's final counters complete what waits for them (and
    /// are the last reading of what is still at risk). `current`: the extent of the kernel's
    /// open segment; `at_risk`: the extent of all the file has at risk (None: nothing).
    pub(super) fn finish_file(
        &mut self,
        key: FileKey,
        end: u64,
        abs: Count,
        current: Extent,
        at_risk: Option<Extent>,
    ) {
        let Some(lane) = self.lanes.get_mut(&key) else {
            return;
        };
        if let Some((i, partial)) = lane.take_awaiting() {
            let d = &mut lane.dirty[i as usize];
            d.total.get_or_insert(abs.since(d.start));
            d.extent.get_or_insert(partial.union(current));
        }
        if let Some(i) = lane.open {
            let d = &mut lane.dirty[i as usize];
            let total = abs.since(d.start);
            let extent = at_risk.unwrap_or(current);
            d.total = Some(total);
            d.extent = Some(extent);
            d.readings.push((end, total, extent));
        }
    }

    /// Sets the path of a lane whose file was released before the end.
    pub(super) fn name_lane(&mut self, key: FileKey, path: Option<&Arc<str>>) {
        if let (Some(lane), Some(p)) = (self.lanes.get_mut(&key), path) {
            lane.path = Some(p.clone());
        }
    }
}
