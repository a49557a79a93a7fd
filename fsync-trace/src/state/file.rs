//! The state kept per file and per process, and the name a file is shown under.
use smallvec::SmallVec;
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use fsync_trace_common::{open_flags, FileCounters, FileKey, PAGE_SIZE};

use super::{cost::SyncCost, file_cost::FileCost, EntryOp, Latency};
use crate::event::Actor;
use crate::extent::{union_all, Extent};

/// Data made dirty since the last durable point, as announced by one `Dirty` event. The
/// `*_before` counters are absolute for this file's life (see [`FileState::absolute`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtySpan {
    pub since: u64,
    pub writes_before: u64,
    pub bytes_before: u64,
    pub pages_before: u64,
    pub actor: Actor,
    /// Changes that wrote no data announced with this span (`Change::bit`s: truncate,
    /// fallocate); 0 for a write or a mapped store.
    pub changes: u8,
    /// The dirty extent of this span's writes, once the kernel closed it (the next `Dirty`
    /// record carries it); None while it is the file's open segment, whose extent is in the
    /// kernel's counters.
    pub extent: Option<Extent>,
}

/// A directory entry changed and not yet covered by a sync of its directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEntry {
    pub op: EntryOp,
    pub ts: u64,
    /// Shared with the entries the same actor changed just before (a directory can hold
    /// 100,000 pending entries, mostly from one process: 8 bytes each instead of 32).
    pub actor: Arc<Actor>,
    /// Its number in the directory's timeline lane (`timeline::NO_SEQ`: not recorded).
    pub seq: u32,
}

/// What a file carries over from kernel slots that were reclaimed while it lived (rare: long
/// runs only), boxed so that ordinary files do not pay for it.
#[derive(Clone, Debug, Default)]
pub struct Carried {
    /// Sum of the counters of this file's reclaimed slots.
    pub counters: FileCounters,
    /// The last reclaimed slot and what was carried before it: a `Dirty` record from that slot
    /// still in the ring buffer when it was reclaimed is placed with this base.
    pub last_slot: Option<(u32, FileCounters)>,
}

/// Unsynced entry changes by entry name.
/// Names are inline up to 24 bytes (no allocation per pending entry).
pub type PendingMap = HashMap<compact_str::CompactString, super::pending::Changes>;

/// A directory's [`PendingMap`], allocated at its first entry change (in the rare fields:
/// files, nearly every state, pay nothing for it). Reads see an empty map until
/// then; a mutable borrow allocates it.
#[derive(Clone, Debug, Default)]
pub struct Pending(Option<Box<PendingMap>>);

static NO_PENDING: std::sync::LazyLock<PendingMap> = std::sync::LazyLock::new(HashMap::new);

impl std::ops::Deref for Pending {
    type Target = PendingMap;
    fn deref(&self) -> &PendingMap {
        self.0.as_deref().unwrap_or(&NO_PENDING)
    }
}

impl std::ops::DerefMut for Pending {
    fn deref_mut(&mut self) -> &mut PendingMap {
        self.0.get_or_insert_with(Box::default)
    }
}

#[derive(Clone, Debug, Default)]
pub struct FileState {
    pub key: FileKey,
    /// Every live name this trace knows (absolute paths), then the name shown if it is not
    /// the first of them (see [`FileState::path`]): one list, 16 bytes less in every state.
    /// Shared with the name index (one allocation per name, however long).
    name_list: SmallVec<[Arc<str>; 1]>,
    /// Where the name shown is in `name_list` (a byte of the state's padding).
    path_at: PathAt,
    pub is_dir: bool,
    /// No name left (link count zero): its data no longer matters.
    pub removed: bool,
    /// Dirty announcements since the last durable point, oldest first (at most a few: one per
    /// durability epoch).
    pub dirty: Spans,
    pub max_dirty_window_ns: u64,
    pub fsyncs: u64,
    pub fdatasyncs: u64,
    /// fsync + fdatasync latencies of this file.
    pub sync_latency: Latency,
    /// Every durability-relevant open flag seen on this file (O_SYNC, O_DSYNC, O_DIRECT,
    /// O_APPEND, O_TMPFILE), OR-ed.
    pub open_flags: u32,
    /// Last event that touched the file (ns), for releasing idle files in long runs.
    pub last_active: u64,
    /// The kernel gave the file a slot (it was written, synced or mapped) and it was not
    /// detached since: only such files can give one back.
    pub has_slot: bool,
    /// What its syncs cost and covered; from its first sync on (most files are never synced
    /// or only once: one sync's figures are kept compact, see [`FileCost`]).
    pub cost: FileCost,
    /// What most files never have (see [`RareFields`]).
    pub rare: Rare,
}

/// Where a file state keeps the name it is shown under.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum PathAt {
    /// It has none.
    #[default]
    None,
    /// Its first live name (nearly always).
    First,
    /// Apart, after the live names (a deleted file's last name).
    Apart,
}

/// The parts of a file state most files never set, boxed when first set: a file state of
/// 120 bytes fits a 128-byte block (100,000 files: 7.2 MB less than at 200 bytes).
#[derive(Clone, Debug, Default)]
pub struct RareFields {
    /// Names the kernel counts (`i_nlink`) that this trace never saw (made before it started).
    pub other_links: u32,
    /// errno of a failed sync not yet followed by a successful one.
    pub failed_sync: Option<std::num::NonZeroI32>,
    /// truncate(2) calls by path that named this file (ftruncate is counted in the kernel) and
    /// the length the last one set (see [`FileState::path_truncate_len`]).
    pub path_truncates: u32,
    /// Metadata changes by path (chmod, chown, utimes, xattrs) that named this file (through
    /// a descriptor: counted in the kernel).
    pub path_metadata_changes: u32,
    pub last_path_truncate_len: u64,
    /// Syncs other than fsync and fdatasync naming the file (msync, sync_file_range...).
    pub other_syncs: u64,
    /// Counters of reclaimed kernel slots (long runs).
    pub carried: Option<Box<Carried>>,
    /// Directories: entry changes not yet synced, by entry name (each name's own changes in
    /// order): an entry change costs the same however large the directory. Here, as only
    /// directories have them.
    pub pending: Pending,
}

static NO_RARE: RareFields = RareFields {
    other_links: 0,
    failed_sync: None,
    path_truncates: 0,
    path_metadata_changes: 0,
    last_path_truncate_len: 0,
    other_syncs: 0,
    carried: None,
    pending: Pending(None),
};

/// A file's [`RareFields`]: reads see zeros until a mutable borrow allocates them, so
/// write only what changes a value (see [`FileState::set_other_links`]).
#[derive(Clone, Debug, Default)]
pub struct Rare(Option<Box<RareFields>>);

impl std::ops::Deref for Rare {
    type Target = RareFields;
    fn deref(&self) -> &RareFields {
        self.0.as_deref().unwrap_or(&NO_RARE)
    }
}

impl std::ops::DerefMut for Rare {
    fn deref_mut(&mut self) -> &mut RareFields {
        self.0.get_or_insert_with(Box::default)
    }
}

/// A file's dirty spans: one pointer while it has none (most files, most of the time).
/// (A boxed Vec: one pointer in every file state instead of a Vec's three words.)
#[derive(Clone, Debug, Default)]
#[allow(clippy::box_collection)]
pub struct Spans(Option<Box<Vec<DirtySpan>>>);

impl Spans {
    /// Appends a span (exact capacity: a file has one or two at a time).
    pub fn push(&mut self, span: DirtySpan) {
        let v = self.0.get_or_insert_with(Box::default);
        v.reserve_exact(1);
        v.push(span);
    }

    /// Keeps the spans `keep` says; gives the memory back when none is left.
    pub fn retain(&mut self, keep: impl FnMut(&DirtySpan) -> bool) {
        if let Some(v) = &mut self.0 {
            v.retain(keep);
            if v.is_empty() {
                self.0 = None;
            }
        }
    }
}

impl std::ops::Deref for Spans {
    type Target = [DirtySpan];
    fn deref(&self) -> &[DirtySpan] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl std::ops::DerefMut for Spans {
    fn deref_mut(&mut self) -> &mut [DirtySpan] {
        self.0.as_deref_mut().map_or(&mut [], Vec::as_mut_slice)
    }
}

impl FileState {
    /// A file known by its key alone.
    pub fn new(key: FileKey) -> Self {
        FileState {
            key,
            ..Default::default()
        }
    }

    /// The name shown: the first live name, or the last one it had once it has none.
    pub fn path(&self) -> Option<&Arc<str>> {
        match self.path_at {
            PathAt::None => None,
            PathAt::First => self.name_list.first(),
            PathAt::Apart => self.name_list.last(),
        }
    }

    /// The name shown, as a string.
    pub fn path_str(&self) -> Option<&str> {
        self.path().map(|p| &**p)
    }

    /// Every live name this trace knows (absolute paths).
    pub fn names(&self) -> &[Arc<str>] {
        let apart = usize::from(self.path_at == PathAt::Apart);
        &self.name_list[..self.name_list.len() - apart]
    }

    /// Sets the name shown.
    pub fn set_path(&mut self, path: Option<Arc<str>>) {
        if self.path_at == PathAt::Apart {
            self.name_list.pop();
        }
        self.path_at = match path {
            None => PathAt::None,
            Some(p) if self.name_list.first() == Some(&p) => PathAt::First,
            Some(p) => {
                self.name_list.push(p);
                PathAt::Apart
            }
        };
    }

    /// Changes the live names with `change`; the name shown stays what it was.
    pub fn change_names<T>(&mut self, change: impl FnOnce(&mut SmallVec<[Arc<str>; 1]>) -> T) -> T {
        let path = self.path().cloned();
        if self.path_at == PathAt::Apart {
            self.name_list.pop();
        }
        self.path_at = PathAt::None;
        let out = change(&mut self.name_list);
        self.set_path(path);
        out
    }

    /// Takes every live name away (the name shown stays).
    pub fn take_names(&mut self) -> SmallVec<[Arc<str>; 1]> {
        self.change_names(std::mem::take)
    }

    /// The length the last truncate(2) by path set, if there was one.
    pub fn path_truncate_len(&self) -> Option<u64> {
        (self.rare.path_truncates > 0).then_some(self.rare.last_path_truncate_len)
    }

    /// Sets the names the kernel counts that this trace never saw (no allocation for 0).
    pub fn set_other_links(&mut self, n: u32) {
        if self.rare.other_links != n {
            self.rare.other_links = n;
        }
    }

    /// Takes the errno of a failed sync not yet followed by a successful one.
    pub fn take_failed_sync(&mut self) -> Option<i32> {
        // Checked first: a mutable borrow of the rare fields allocates them.
        self.rare.failed_sync?;
        self.rare.failed_sync.take().map(i32::from)
    }

    /// Something the write counters do not show changed (a truncation, a directory entry):
    /// the next sync is not redundant.
    pub fn changed_since_durable(&mut self) {
        self.cost.mark_changed();
    }

    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// True if some unsynced span holds data, a size or an allocation change: not only
    /// metadata (mode, owner, times, xattrs). The kernel announces a write after a metadata
    /// change of the same epoch as a span of its own, so a metadata span never hides data.
    pub fn holds_unsynced_data(&self) -> bool {
        self.dirty
            .iter()
            .any(|d| d.changes != crate::event::Change::Metadata.bit())
    }

    /// Gives back the memory of a pending map emptied by a directory sync (it keeps its
    /// buffer: every entry ever pending), without allocating the rare fields.
    pub fn release_pending_if_empty(&mut self) {
        if let Some(r) = self.rare.0.as_mut() {
            if r.pending.is_empty() {
                r.pending = Pending::default();
            }
        }
    }

    /// Unsynced directory entry changes (all names).
    pub fn pending_count(&self) -> usize {
        self.rare.pending.values().map(|v| v.len()).sum()
    }

    /// What to add to counters read from kernel slot `slot` to place them on this life's
    /// absolute scale: nothing while no slot was reclaimed; the base before the last reclaimed
    /// slot for a record from that slot (made before it was detached); else all carried.
    pub fn base_for_slot(&self, slot: u32) -> FileCounters {
        match &self.rare.carried {
            None => FileCounters::default(),
            Some(c) => match c.last_slot {
                Some((s, base)) if s == slot => base,
                _ => c.counters,
            },
        }
    }

    /// This life's counters: the kernel's current slot `c` plus what reclaimed slots held.
    pub fn absolute(&self, c: &FileCounters) -> FileCounters {
        match &self.rare.carried {
            None => *c,
            Some(carried) => add_counters(&carried.counters, c),
        }
    }

    /// The changes that wrote no data (`Change::bit`s) not yet durable.
    pub fn unsynced_changes(&self) -> u8 {
        self.dirty.iter().fold(0, |a, d| a | d.changes)
    }

    /// (writes, bytes, mapped pages) not yet durable, given the kernel's current counters.
    pub fn unsynced(&self, c: &FileCounters) -> (u64, u64, u64) {
        let Some(first) = self.dirty.first() else {
            return (0, 0, 0);
        };
        let a = self.absolute(c);
        let pages = a.mapped_dirty_pages.saturating_sub(first.pages_before);
        (
            a.writes.saturating_sub(first.writes_before),
            a.bytes.saturating_sub(first.bytes_before) + pages * PAGE_SIZE,
            pages,
        )
    }
}

impl FileState {
    /// A `Dirty` record closed the open segment with extent `prev`: it belongs to the newest
    /// span if one is still at risk (else the segment was made durable: nothing to keep).
    pub fn close_segment(&mut self, prev: Extent) {
        // The kernel's open segment is the latest span without an extent: spans made without a
        // kernel record (truncate(2) by path) carry their own (empty) one.
        if let Some(open) = self.dirty.iter_mut().rev().find(|d| d.extent.is_none()) {
            open.extent = Some(prev);
        }
    }

    /// The extent of the closed spans still at risk.
    pub fn closed_extent(&self) -> Extent {
        union_all(self.dirty.iter().filter_map(|d| d.extent))
    }

    /// The dirty extent not yet durable, given the kernel's current counters (of its current
    /// slot); None if nothing is at risk.
    pub fn unsynced_extent(&self, c: &FileCounters) -> Option<Extent> {
        let open = self
            .dirty
            .iter()
            .any(|d| d.extent.is_none())
            .then(|| Extent::of(c));
        (!self.dirty.is_empty()).then(|| self.closed_extent().union(open.unwrap_or_default()))
    }
}

/// `a + b`, counter by counter (flags and epochs are the kernel's, not summed).
pub fn add_counters(a: &FileCounters, b: &FileCounters) -> FileCounters {
    FileCounters {
        writes: a.writes + b.writes,
        bytes: a.bytes + b.bytes,
        sync_writes: a.sync_writes + b.sync_writes,
        sync_write_bytes: a.sync_write_bytes + b.sync_write_bytes,
        mapped_dirty_pages: a.mapped_dirty_pages + b.mapped_dirty_pages,
        kernel_writebacks: a.kernel_writebacks + b.kernel_writebacks,
        dirty_gen: b.dirty_gen,
        flags: b.flags,
        truncates: a.truncates + b.truncates,
        fallocates: a.fallocates + b.fallocates,
        truncate_len: if b.truncates > 0 {
            b.truncate_len
        } else {
            a.truncate_len
        },
        change_gen: b.change_gen,
        // The current segment's, like the epoch: a reclaimed slot's file was durable.
        extent_lo: b.extent_lo,
        extent_hi: b.extent_hi,
        metadata_changes: a.metadata_changes + b.metadata_changes,
        metadata_gen: b.metadata_gen,
    }
}

#[derive(Clone, Debug, Default)]
pub struct ProcessInfo {
    pub pid: u32,
    /// The process's name (its main thread's), not the name of whichever thread acted.
    pub comm: String,
    /// What the process says it is, from its command line, where that differs from the name
    /// (PostgreSQL's `postgres: checkpointer`).
    pub role: Option<String>,
    pub parent: Option<u32>,
    pub exited: bool,
    /// Sync calls made and time spent in them (ns), by the whole process.
    pub syncs: u64,
    pub sync_ns: u64,
    /// Threads that made sync calls (tid -> name, calls, ns).
    pub threads: BTreeMap<u32, ThreadInfo>,
    /// A process seen first at its fork still has its parent's command line: its role is read
    /// again once, when it first acts ([`DurabilityState::wants_description`]).
    pub role_rechecked: bool,
    /// When it was first seen (its fork, or its first event); None: traced from the start.
    pub since_ns: Option<u64>,
    /// When it exited.
    pub exit_ns: Option<u64>,
    /// What its syncs cost and covered (writes and bytes of the files it synced), from its
    /// first sync on.
    pub cost: Option<Box<SyncCost>>,
    /// Its cgroup, container and pod (read from /proc with its name).
    pub workload: Option<crate::cgroup::Workload>,
    /// The cgroup v2 id its latest record carried (0: none yet); `workload` follows it.
    pub cgroup_id: u64,
}

/// Sync calls of one thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadInfo {
    pub comm: String,
    pub syncs: u64,
    pub sync_ns: u64,
}

/// Calls of one sync operation, across files.
#[derive(Clone, Debug)]
pub struct OpStats {
    pub calls: u64,
    pub errors: u64,
    pub latency: Latency,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            calls: 0,
            errors: 0,
            latency: Latency::per_op(),
        }
    }
}

/// The name shown for a file: its path, or why it has none.
pub fn display_path(f: &FileState) -> String {
    f.path_str().map(str::to_string).unwrap_or_else(|| {
        let why = if f.open_flags & (open_flags::O_TMPFILE & !open_flags::O_DIRECTORY) != 0 {
            "anonymous (O_TMPFILE, never linked)"
        } else if f.removed {
            "deleted"
        } else {
            "name never seen"
        };
        format!(
            "<unknown path: {why}; dev {}:{} inode {}>",
            f.key.dev >> 20,
            f.key.dev & 0xfffff,
            f.key.ino
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(f: &FileState) -> Vec<&str> {
        f.names().iter().map(|n| &**n).collect()
    }

    #[test]
    fn the_name_shown_is_kept_with_the_live_names() {
        assert_eq!(std::mem::size_of::<FileState>(), 120, "a 128-byte block");
        let mut f = FileState::new(FileKey::default());
        assert_eq!((f.path(), names(&f)), (None, vec![]));
        f.change_names(|n| n.push("/a".into()));
        // Names change, the name shown does not (until it is set).
        assert_eq!((f.path_str(), names(&f)), (None, vec!["/a"]));
        f.set_path(f.names().first().cloned());
        assert_eq!((f.path_str(), names(&f)), (Some("/a"), vec!["/a"]));
        f.change_names(|n| n.push("/b".into()));
        assert_eq!((f.path_str(), names(&f)), (Some("/a"), vec!["/a", "/b"]));
        // The first name dropped: still shown until told otherwise.
        f.change_names(|n| n.retain(|n| &**n != "/a"));
        assert_eq!((f.path_str(), names(&f)), (Some("/a"), vec!["/b"]));
        f.set_path(Some("/b".into()));
        assert_eq!((f.path_str(), names(&f)), (Some("/b"), vec!["/b"]));
        // Deleted: no live name, the last one shown.
        assert_eq!(f.take_names().len(), 1);
        assert_eq!((f.path_str(), names(&f)), (Some("/b"), vec![]));
        f.set_path(Some("/c".into()));
        assert_eq!((f.path_str(), names(&f)), (Some("/c"), vec![]));
        f.set_path(None);
        assert_eq!((f.path(), names(&f)), (None, vec![]));
        assert!(f.name_list.is_empty());
    }
}
