//! The durability state machine: decoded events in, per-file / per-directory state and findings
//! out. Pure apart from the [`Resolver`] seam; it never knows which tier fed it.
//!
//! A file is an inode with a lifetime and a set of names: its key is (device, inode number,
//! generation), so a new file that reuses a freed number starts a fresh history; `link` adds a
//! name, `unlink` or a rename over it removes one, and the file is removed only when no name is
//! left (names this trace never saw are counted from the kernel's `i_nlink`, read at every open
//! and first sight). The modules: `names` (the name index and namespace operations), `sync`
//! (durable points), `finish` (the final analysis), `retention` (bounded memory in long runs),
//! `latency` (bounded latency histograms), `cost` (what syncs cost and covered).
mod advice;
pub mod cost;
mod finding;
mod finish;
pub mod latency;
mod names;
mod paths;
mod resolve;
mod retention;
mod sync;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cost;
#[cfg(test)]
mod tests_identity;

use smallvec::SmallVec;
use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::Arc,
};

use cost::SyncCost;
pub use finding::{errno_name, Finding, FindingKind};
pub use finish::Analysis;
use fsync_trace_common::{open_flags, FileCounters, FileKey, SyncOp, PAGE_SIZE};
pub use latency::Latency;
pub use names::EntryOp;
pub use paths::{join, normalize, split_parent};
#[cfg(test)]
pub use resolve::NoResolver;
pub use resolve::{ProcResolver, Resolver};
pub use retention::{Released, SlotWork};

use crate::event::{Actor, Event, EventKind};

/// Data made dirty since the last durable point, as announced by one `Dirty` event. The
/// `*_before` counters are absolute for this file's life (see [`FileState::absolute`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtySpan {
    pub since: u64,
    pub writes_before: u64,
    pub bytes_before: u64,
    pub pages_before: u64,
    pub actor: Actor,
}

/// A directory entry changed and not yet covered by a sync of its directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEntry {
    pub op: EntryOp,
    pub ts: u64,
    pub actor: Actor,
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

#[derive(Clone, Debug, Default)]
pub struct FileState {
    pub key: FileKey,
    /// The name shown: the first live name, or the last one it had once it has none. Shared
    /// with the name index (one allocation per name, however long).
    pub path: Option<Arc<str>>,
    /// Every live name this trace knows (absolute paths); `path` is the first.
    pub names: SmallVec<[Arc<str>; 1]>,
    /// Names the kernel counts (`i_nlink`) that this trace never saw (made before it started).
    pub other_links: u32,
    pub is_dir: bool,
    /// No name left (link count zero): its data no longer matters.
    pub removed: bool,
    /// Dirty announcements since the last durable point, oldest first (at most a few: one per
    /// durability epoch).
    pub dirty: Vec<DirtySpan>,
    pub max_dirty_window_ns: u64,
    pub fsyncs: u64,
    pub fdatasyncs: u64,
    pub other_syncs: u64,
    /// fsync + fdatasync latencies of this file.
    pub sync_latency: Latency,
    /// errno of a failed sync not yet followed by a successful one.
    pub failed_sync: Option<i32>,
    /// Every durability-relevant open flag seen on this file (O_SYNC, O_DSYNC, O_DIRECT,
    /// O_APPEND, O_TMPFILE), OR-ed.
    pub open_flags: u32,
    /// Directories: entry changes not yet synced, by entry name (each name's own changes in
    /// order): an entry change costs the same however large the directory.
    pub pending: HashMap<Box<str>, SmallVec<[PendingEntry; 1]>>,
    /// Counters of reclaimed kernel slots (long runs).
    pub carried: Option<Box<Carried>>,
    /// Last event that touched the file (ns), for releasing idle files in long runs.
    pub last_active: u64,
    /// The kernel gave the file a slot (it was written, synced or mapped) and it was not
    /// detached since: only such files can give one back.
    pub has_slot: bool,
    /// What its syncs cost and covered; from its first sync on (most files are never synced
    /// or only once: a box keeps the others small).
    pub cost: Option<Box<SyncCost>>,
}

impl FileState {
    /// Something the write counters do not show changed (a truncation, a directory entry):
    /// the next sync is not redundant.
    pub fn changed_since_durable(&mut self) {
        if let Some(c) = &mut self.cost {
            c.changed = true;
        }
    }

    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Unsynced directory entry changes (all names).
    pub fn pending_count(&self) -> usize {
        self.pending.values().map(|v| v.len()).sum()
    }

    /// What to add to counters read from kernel slot `slot` to place them on this life's
    /// absolute scale: nothing while no slot was reclaimed; the base before the last reclaimed
    /// slot for a record from that slot (made before it was detached); else all carried.
    pub fn base_for_slot(&self, slot: u32) -> FileCounters {
        match &self.carried {
            None => FileCounters::default(),
            Some(c) => match c.last_slot {
                Some((s, base)) if s == slot => base,
                _ => c.counters,
            },
        }
    }

    /// This life's counters: the kernel's current slot `c` plus what reclaimed slots held.
    pub fn absolute(&self, c: &FileCounters) -> FileCounters {
        match &self.carried {
            None => *c,
            Some(carried) => add_counters(&carried.counters, c),
        }
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
    /// again once, when it first acts ([`DurabilityState::wants_role`]).
    pub role_rechecked: bool,
    /// When it was first seen (its fork, or its first event); None: traced from the start.
    pub since_ns: Option<u64>,
    /// When it exited.
    pub exit_ns: Option<u64>,
    /// What its syncs cost and covered (writes and bytes of the files it synced), from its
    /// first sync on.
    pub cost: Option<Box<SyncCost>>,
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

#[derive(Clone, Copy, Debug)]
struct Mapping {
    addr: u64,
    len: u64,
    file: FileKey,
}

/// The kernel's per-file counters at the end of a trace, sorted by file: a flat array (with
/// 100,000 files, a hash table and its growth would be the peak of the tracer's memory).
#[derive(Debug, Default)]
pub struct FinalCounters(Vec<(FileKey, FileCounters)>);

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

pub struct DurabilityState<R: Resolver> {
    resolver: R,
    /// Boxed: the table stays small while it grows (no 2x copies of whole states on resize),
    /// and `finish` moves pointers, not states, into the report order.
    files: HashMap<FileKey, Box<FileState>>,
    /// Earlier lives of keys whose inode number was reused on a filesystem without
    /// generations, with their final counters.
    past_lives: Vec<(Box<FileState>, FileCounters)>,
    /// Live name -> file. Ordered, so the names under a renamed directory are one range.
    paths: BTreeMap<Arc<str>, FileKey>,
    processes: BTreeMap<u32, ProcessInfo>,
    /// Exited processes, oldest first (released beyond a bound in long runs).
    exited: VecDeque<u32>,
    mappings: HashMap<u32, Vec<Mapping>>,
    findings: Vec<Finding>,
    ops: BTreeMap<SyncOp, OpStats>,
    /// Kernel slots to detach or free (see [`SlotWork`]).
    slot_work: SlotWork,
    released: Released,
    /// Bookkeeping for live metrics; None unless [`DurabilityState::track_live`] was called.
    live: Option<Live>,
    /// When the trace started (CLOCK_MONOTONIC ns): [`Self::start_at`], else the first event.
    start_ns: Option<u64>,
}

/// What live metrics need beyond the final analysis (see `metrics`).
#[derive(Debug, Default)]
struct Live {
    /// Files and directories each live process left unsynced (dirtied, or changed an entry of),
    /// checked when it exits.
    touched: HashMap<u32, HashSet<FileKey>>,
    /// Dirty windows (first dirtying to durable point, ns) closed since the last drain.
    windows_ns: Vec<u64>,
    /// Writes covered by each fsync/fdatasync with a reading, and whether it was redundant,
    /// since the last drain.
    covered: Vec<(u64, bool)>,
    /// Files with unsynced data / directory entry names left unsynced by exited processes.
    exit_unsynced_files: u64,
    exit_unsynced_entries: u64,
}

/// The name shown for a file: its path, or why it has none.
pub fn display_path(f: &FileState) -> String {
    f.path.as_deref().map(str::to_string).unwrap_or_else(|| {
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

impl<R: Resolver> DurabilityState<R> {
    pub fn new(resolver: R) -> Self {
        Self {
            resolver,
            files: HashMap::new(),
            past_lives: Vec::new(),
            paths: BTreeMap::new(),
            processes: BTreeMap::new(),
            exited: VecDeque::new(),
            mappings: HashMap::new(),
            findings: Vec::new(),
            ops: BTreeMap::new(),
            slot_work: SlotWork::default(),
            released: Released::default(),
            live: None,
            start_ns: None,
        }
    }

    /// The trace started at `ns` (CLOCK_MONOTONIC): the wall time shares are measured from it.
    pub fn start_at(&mut self, ns: u64) {
        self.start_ns = Some(ns);
    }

    /// Keeps what live metrics need: which files each process left unsynced (checked at its
    /// exit) and every closed dirty window. Costs a set insert per dirtying and entry change.
    pub fn track_live(&mut self) {
        self.live.get_or_insert_with(Live::default);
    }

    /// (files with unsynced data, unsynced directory entry names) left behind by traced
    /// processes when they exited, since the start (with [`Self::track_live`]). A file counts
    /// for the process whose write first made it dirty, an entry for the process that changed
    /// it last, so nothing is counted twice.
    pub fn unsynced_at_exit(&self) -> (u64, u64) {
        self.live
            .as_ref()
            .map_or((0, 0), |l| (l.exit_unsynced_files, l.exit_unsynced_entries))
    }

    /// Hands over the dirty windows (ns) closed since the last call (with [`Self::track_live`]).
    pub fn drain_dirty_windows(&mut self, mut sink: impl FnMut(u64)) {
        if let Some(l) = &mut self.live {
            for w in l.windows_ns.drain(..) {
                sink(w);
            }
        }
    }

    /// Hands over, per fsync/fdatasync since the last call, the writes it covered and whether
    /// it was redundant (with [`Self::track_live`]).
    pub fn drain_covered(&mut self, mut sink: impl FnMut(u64, bool)) {
        if let Some(l) = &mut self.live {
            for (w, r) in l.covered.drain(..) {
                sink(w, r);
            }
        }
    }

    /// Device of the first shared file mapping of `pid` overlapping `addr..addr+len`.
    pub fn mapped_dev(&self, pid: u32, addr: u64, len: u64) -> Option<u32> {
        self.mappings
            .get(&pid)?
            .iter()
            .find(|m| m.addr < addr.saturating_add(len) && addr < m.addr.saturating_add(m.len))
            .map(|m| m.file.dev)
    }

    fn touched(&mut self, pid: u32, key: FileKey) {
        if let Some(l) = &mut self.live {
            l.touched.entry(pid).or_default().insert(key);
        }
    }

    /// Live accounting of what an exiting process leaves unsynced.
    fn on_exit_live(&mut self, pid: u32) {
        let Some(keys) = self.live.as_mut().and_then(|l| l.touched.remove(&pid)) else {
            return;
        };
        let (mut files, mut entries) = (0, 0);
        for key in keys {
            let Some(f) = self.files.get(&key) else {
                continue;
            };
            if f.removed {
                continue;
            }
            if !f.is_dir && f.dirty.first().is_some_and(|d| d.actor.pid == pid) {
                files += 1;
            }
            if f.is_dir {
                // Entry names whose last unsynced change is this process's.
                entries += f
                    .pending
                    .values()
                    .filter(|v| v.last().is_some_and(|e| e.actor.pid == pid))
                    .count() as u64;
            }
        }
        if let Some(l) = &mut self.live {
            l.exit_unsynced_files += files;
            l.exit_unsynced_entries += entries;
        }
    }

    /// Registers a process traced from the start (`-p PID` or the command).
    pub fn add_process(&mut self, pid: u32, comm: &str) {
        self.processes.entry(pid).or_insert_with(|| ProcessInfo {
            pid,
            comm: comm.to_string(),
            ..Default::default()
        });
    }

    /// What /proc says of process `pid` while it lives: its name, role and parent (each only
    /// if known).
    pub fn describe_process(
        &mut self,
        pid: u32,
        comm: Option<String>,
        role: Option<String>,
        parent: Option<u32>,
    ) {
        let p = self.processes.entry(pid).or_insert_with(|| ProcessInfo {
            pid,
            ..Default::default()
        });
        if let Some(c) = comm.filter(|c| !c.is_empty()) {
            p.comm = c;
        }
        if role.is_some() {
            p.role = role;
        }
        if p.parent.is_none() {
            p.parent = parent;
        }
    }

    /// True once for a known process with no role yet: the caller reads it again from /proc
    /// (a forked server process renames itself just after the fork).
    pub fn wants_role(&mut self, pid: u32) -> bool {
        match self.processes.get_mut(&pid) {
            Some(p) if p.role.is_none() && !p.role_rechecked => {
                p.role_rechecked = true;
                true
            }
            _ => false,
        }
    }

    /// True if process `pid` is known.
    pub fn knows_process(&self, pid: u32) -> bool {
        self.processes.contains_key(&pid)
    }

    pub fn files(&self) -> impl Iterator<Item = &FileState> {
        self.files.values().map(|f| &**f)
    }

    pub fn findings_so_far(&self) -> &[Finding] {
        &self.findings
    }

    fn file(&mut self, key: FileKey) -> &mut FileState {
        self.files.entry(key).or_insert_with(|| {
            Box::new(FileState {
                key,
                ..Default::default()
            })
        })
    }

    /// The file `key`, marked active at `ts`.
    fn file_at(&mut self, key: FileKey, ts: u64) -> &mut FileState {
        let f = self.file(key);
        f.last_active = f.last_active.max(ts);
        f
    }

    /// A kernel reading of the file's link count, while it has the names it has now.
    fn set_nlink(&mut self, key: FileKey, nlink: u32) {
        let f = self.file(key);
        f.other_links = nlink.saturating_sub(f.names.len() as u32);
        if nlink == 0 && !f.removed {
            // Deleted before we learned of it (or never linked): no name can hold its data.
            let names = std::mem::take(&mut f.names);
            f.removed = true;
            for n in names {
                if self.paths.get(&n) == Some(&key) {
                    self.paths.remove(&n);
                }
            }
            self.slot_work.detach(key);
        } else if nlink > 0 {
            f.removed = false;
        }
    }

    pub fn apply(&mut self, ev: Event) {
        let Event { ts, actor, kind } = ev;
        self.start_ns.get_or_insert(ts);
        let p = self
            .processes
            .entry(actor.pid)
            .or_insert_with(|| ProcessInfo {
                pid: actor.pid,
                since_ns: Some(ts),
                ..Default::default()
            });
        // The process's name is its main thread's (another thread's name, Redis'
        // `bio_aof_fsync`, is not the process's); only on a change (exec): no allocation per
        // event.
        let main_thread = actor.tid == actor.pid || actor.tid == 0;
        if !actor.comm.as_str().is_empty()
            && (main_thread || p.comm.is_empty())
            && p.comm != actor.comm.as_str()
        {
            p.comm = actor.comm.to_string();
        }
        if let EventKind::Sync { op, enter_ns, .. } = &kind {
            if *op != SyncOp::SyncWrite {
                let ns = ts.saturating_sub(*enter_ns);
                p.syncs += 1;
                p.sync_ns += ns;
                let t = p.threads.entry(actor.tid).or_default();
                if t.comm != actor.comm.as_str() {
                    t.comm = actor.comm.to_string();
                }
                t.syncs += 1;
                t.sync_ns += ns;
                p.cost.get_or_insert_default().call(*enter_ns, ts);
            }
        }
        match kind {
            EventKind::Dirty {
                file,
                writes_before,
                bytes_before,
                pages_before,
                slot,
                ..
            } => {
                self.touched(actor.pid, file);
                let f = self.file_at(file, ts);
                f.has_slot = true;
                // The counters are the slot's: place them on this life's absolute scale.
                let base = f.base_for_slot(slot);
                let span = DirtySpan {
                    since: ts,
                    writes_before: base.writes + writes_before,
                    bytes_before: base.bytes + bytes_before,
                    pages_before: base.mapped_dirty_pages + pages_before,
                    actor,
                };
                // Exact capacity: most files have one open span, and a Vec's first push
                // would reserve four (100k files: 24 MiB).
                f.dirty.reserve_exact(1);
                f.dirty.push(span);
            }
            EventKind::Sync {
                op,
                enter_ns,
                ret,
                file,
                is_dir,
                addr,
                len,
                flags,
                counters,
                ..
            } => self.on_sync(
                ts, &actor, op, enter_ns, ret, file, is_dir, addr, len, flags, counters,
            ),
            EventKind::Name {
                file,
                path,
                nlink,
                open_flags: oflags,
            } => {
                let f = self.file_at(file, ts);
                f.has_slot = true;
                f.open_flags |= durability_flags(oflags);
                if nlink > 0 {
                    self.add_name(file, path.into(), false);
                } else if f.path.is_none() {
                    // Deleted: the walked name is the one it had; show it as such.
                    f.path = Some(path.into());
                }
                self.set_nlink(file, nlink);
            }
            EventKind::Open {
                file,
                parent,
                is_dir,
                path,
                open_flags: oflags,
                created,
                nlink,
                prior,
                ..
            } => {
                if let Some((slot, counters)) = prior {
                    self.new_life(file, slot, counters);
                }
                let f = self.file_at(file, ts);
                f.open_flags |= durability_flags(oflags);
                if oflags & open_flags::O_TRUNC != 0 && !is_dir {
                    // Truncated: a change the write counters do not show.
                    f.changed_since_durable();
                }
                self.add_name(file, path.as_str().into(), is_dir);
                self.set_nlink(file, nlink);
                if created {
                    let (dir_path, name) = split_parent(&path);
                    if self.files.get(&parent).is_none_or(|d| d.path.is_none()) {
                        self.add_name(parent, dir_path.into(), true);
                    }
                    let op = if is_dir {
                        EntryOp::Mkdir
                    } else {
                        EntryOp::Create
                    };
                    self.pending(parent, name, op, ts, &actor);
                }
            }
            EventKind::Namespace {
                op,
                old,
                new,
                flags,
            } => self.on_namespace(ts, &actor, op, old, new, flags),
            EventKind::Mmap { file, addr, len } => {
                self.file_at(file, ts).has_slot = true;
                let maps = self.mappings.entry(actor.pid).or_default();
                // A new mapping replaces whatever the range held (munmap is not traced): the
                // list stays as long as the process's live mappings, not its history.
                maps.retain(|m| {
                    m.addr.saturating_add(m.len) <= addr || addr.saturating_add(len) <= m.addr
                });
                maps.push(Mapping { addr, len, file });
            }
            EventKind::Fork { child } => {
                let comm = actor.comm.to_string();
                let c = self.processes.entry(child).or_insert_with(|| ProcessInfo {
                    pid: child,
                    comm,
                    since_ns: Some(ts),
                    ..Default::default()
                });
                // The fork is the truth (/proc may have been read after the child was gone).
                c.parent = Some(actor.pid);
            }
            EventKind::Exit => {
                if let Some(p) = self.processes.get_mut(&actor.pid) {
                    if !p.exited {
                        p.exited = true;
                        p.exit_ns = Some(ts);
                        self.exited.push_back(actor.pid);
                    }
                }
                self.mappings.remove(&actor.pid);
                self.on_exit_live(actor.pid);
                self.release_exited_processes();
            }
        }
    }

    /// The open that created `key` found counters under it: the inode number was reused (with
    /// no new generation), so the state there is an earlier file's. It keeps its history (and
    /// the final counters the kernel handed over) and is dead: its number belongs to a new file.
    fn new_life(&mut self, key: FileKey, slot: u32, counters: FileCounters) {
        self.slot_work.free(slot);
        let Some(mut old) = self.files.remove(&key) else {
            return;
        };
        let final_counters = old.absolute(&counters);
        for n in std::mem::take(&mut old.names) {
            if self.paths.get(&n) == Some(&key) {
                self.paths.remove(&n);
            }
        }
        old.removed = true;
        old.carried = None;
        self.past_lives.push((old, final_counters));
    }
}

/// The open flags that matter for durability.
fn durability_flags(flags: u32) -> u32 {
    flags
        & (open_flags::O_SYNC | open_flags::O_DIRECT | open_flags::O_APPEND | open_flags::O_TMPFILE)
}
