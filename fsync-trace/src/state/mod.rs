//! The durability state machine: decoded events in, per-file / per-directory state and findings
//! out. Pure apart from the [`Resolver`] seam; it never knows which tier fed it.
//!
//! A file is an inode with a lifetime and a set of names: its key is (device, inode number,
//! generation), so a new file that reuses a freed number starts a fresh history; `link` adds a
//! name, `unlink` or a rename over it removes one, and the file is removed only when no name is
//! left (names this trace never saw are counted from the kernel's `i_nlink`, read at every open
//! and first sight). The modules: `names` (the name index and namespace operations), `sync`
//! (durable points), `finish` (the final analysis), `retention` (bounded memory in long runs),
//! `latency` (bounded latency histograms), `cost` (what syncs cost and covered), `device`
//! (device cache flushes during syncs), `counters` (the kernel's final per-file counters),
//! `live` (what live metrics need), `process` (what is known of each process).
mod advice;
mod change;
pub mod cost;
mod counters;
pub mod device;
mod file;
pub mod file_cost;
mod finding;
mod finish;
pub mod latency;
mod live;
mod names;
mod paths;
mod pending;
mod process;
mod resolve;
mod retention;
mod sync;
mod table;
#[cfg(test)]
mod tests;
pub mod timeline;
mod uring;
pub mod wal;
pub mod whatif;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

pub use counters::{FinalCount, FinalCounters};
pub use file::{
    add_counters, display_path, Carried, DirtySpan, FileState, OpStats, PendingEntry, ProcessInfo,
};
pub use finding::{errno_name, Finding, FindingKind};
pub use finish::Analysis;
use fsync_trace_common::{open_flags, FileCounters, FileKey, SyncOp};
pub use latency::Latency;
pub use names::EntryOp;
pub use paths::{join, normalize, split_parent};
#[cfg(test)]
pub use resolve::NoResolver;
pub use resolve::{ProcResolver, Resolver};
pub use retention::{Released, SlotWork};
pub use timeline::Timeline;
pub use whatif::AtRisk;

use crate::event::{Actor, Event, EventKind};

#[derive(Clone, Copy, Debug)]
struct Mapping {
    addr: u64,
    len: u64,
    file: FileKey,
}

pub struct DurabilityState<R: Resolver> {
    resolver: R,
    /// Boxed: the table stays small while it grows (no 2x copies of whole states on resize),
    /// and `finish` moves pointers, not states, into the report order.
    files: table::FileTable,
    /// Earlier lives of keys whose inode number was reused on a filesystem without
    /// generations, with their final counters.
    past_lives: Vec<(Box<FileState>, FileCounters)>,
    /// Live name -> file. Ordered, so the names under a renamed directory are one range.
    paths: BTreeMap<Arc<str>, FileKey>,
    /// Size of `paths` when it was last rebuilt (see `compact_paths`).
    paths_compacted: usize,
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
    live: Option<live::Live>,
    /// When the trace started (CLOCK_MONOTONIC ns): [`Self::start_at`], else the first event.
    start_ns: Option<u64>,
    /// The timeline of dirty intervals, syncs and entry changes (see [`Self::record_timeline`]).
    timeline: Option<Box<Timeline>>,
    /// The actor of the last pending entry change, shared by the next ones it makes (see
    /// [`shared_actor`]).
    entry_actor: Option<Arc<Actor>>,
    /// The actor of the last first sync of a file, shared likewise: apart from
    /// `entry_actor`, as a program that creates and syncs file after file alternates the two
    /// (the stack differs).
    sync_actor: Option<Arc<Actor>>,
    /// Device cache flushes and the syncs they fell in (see [`Self::count_device_flushes`]).
    devices: device::Devices,
}

impl<R: Resolver> DurabilityState<R> {
    pub fn new(resolver: R) -> Self {
        Self {
            resolver,
            files: table::FileTable::default(),
            past_lives: Vec::new(),
            paths: BTreeMap::new(),
            paths_compacted: 0,
            processes: BTreeMap::new(),
            exited: VecDeque::new(),
            mappings: HashMap::new(),
            findings: Vec::new(),
            ops: BTreeMap::new(),
            slot_work: SlotWork::default(),
            released: Released::default(),
            live: None,
            start_ns: None,
            timeline: None,
            entry_actor: None,
            sync_actor: None,
            devices: device::Devices::default(),
        }
    }

    /// Device flush events will come (the block hook is attached): count them against syncs.
    pub fn count_device_flushes(&mut self) {
        self.devices.counting = true;
    }

    /// Filesystem device `dev` (a partition) is on whole disk `disk`, where flushes are seen.
    pub fn map_disk(&mut self, dev: u32, disk: u32) {
        self.devices.disk_of.insert(dev, disk);
    }

    /// True if device flushes are counted and filesystem device `dev` was not mapped yet.
    pub fn wants_disk(&self, dev: u32) -> bool {
        self.devices.counting && !self.devices.disk_of.contains_key(&dev)
    }

    /// Block devices that traced files were synced on (to read their write cache mode).
    pub fn synced_devices(&self) -> Vec<u32> {
        self.devices.with_syncs().map(|(d, _)| d).collect()
    }

    /// What the system says of block device `dev`: its name and write cache mode.
    pub fn describe_device(
        &mut self,
        dev: u32,
        name: Option<String>,
        cache: Option<device::WriteCache>,
    ) {
        if let Some(d) = self.devices.by_dev.get_mut(&dev) {
            d.name = name;
            d.write_cache = cache;
        }
    }

    /// Records the timeline (at most `max_items` items, see [`Timeline`]); 0: none.
    pub fn record_timeline(&mut self, max_items: usize) {
        self.timeline = (max_items > 0).then(|| Box::new(Timeline::new(max_items)));
    }

    /// The timeline recorded so far.
    #[cfg(test)]
    pub fn timeline(&self) -> Option<&Timeline> {
        self.timeline.as_deref()
    }

    /// Records in the timeline what every dirty file has written by `now`, from the kernel's
    /// current per-file counters (a `--crash-at` snapshot): exact points between records.
    pub fn timeline_readings(&mut self, now: u64, counters: &FinalCounters) {
        let Some(t) = &mut self.timeline else {
            return;
        };
        for f in self.files.values() {
            if f.is_dir || f.removed || f.dirty.is_empty() {
                continue;
            }
            let c = counters.get(&f.key).copied().unwrap_or_default();
            let a = f.absolute(&c);
            let abs = timeline::Count {
                writes: a.writes,
                bytes: a.bytes + a.mapped_dirty_pages * fsync_trace_common::PAGE_SIZE,
            };
            let extent = f.unsynced_extent(&c).unwrap_or_default();
            t.reading(f.key, now, abs, extent);
        }
    }

    /// What a power cut now would lose, given the kernel's current per-file counters (by
    /// file: the slot's, as [`FinalCounters`]): files with unsynced data (exact bytes) and
    /// directory entries not yet durable.
    pub fn at_risk_now(&self, now: u64, counters: &FinalCounters) -> AtRisk {
        let mut files = Vec::new();
        let mut entries = Vec::new();
        for f in self.files.values() {
            if f.removed {
                continue;
            }
            if let (false, Some(first)) = (f.is_dir, f.dirty.first()) {
                let c = counters.get(&f.key).copied().unwrap_or_default();
                let (writes, bytes, _) = f.unsynced(&c);
                files.push(whatif::FileAtRisk {
                    key: f.key,
                    path: f.path().cloned(),
                    written: timeline::Count { writes, bytes },
                    since: first.since,
                    exact: true,
                    changes: f.unsynced_changes(),
                    extent: f.unsynced_extent(&c).unwrap_or_default(),
                });
            }
            if f.is_dir {
                for (entry, last, _) in names::pending_by_name(&f.rare.pending) {
                    entries.push(whatif::EntryAtRisk {
                        dir: f.key,
                        dir_path: f.path().cloned(),
                        entry: entry.into(),
                        op: last.op,
                    });
                }
            }
        }
        AtRisk::sorted(now, files, entries)
    }

    /// The trace started at `ns` (CLOCK_MONOTONIC): the wall time shares are measured from it.
    pub fn start_at(&mut self, ns: u64) {
        self.start_ns = Some(ns);
    }

    /// Device of the first shared file mapping of `pid` overlapping `addr..addr+len`.
    pub fn mapped_dev(&self, pid: u32, addr: u64, len: u64) -> Option<u32> {
        self.mappings
            .get(&pid)?
            .iter()
            .find(|m| m.addr < addr.saturating_add(len) && addr < m.addr.saturating_add(m.len))
            .map(|m| m.file.dev)
    }

    pub fn files(&self) -> impl Iterator<Item = &FileState> {
        self.files.values()
    }

    pub fn findings_so_far(&self) -> &[Finding] {
        &self.findings
    }

    fn file(&mut self, key: FileKey) -> &mut FileState {
        self.files
            .get_or_insert_with(key, || Box::new(FileState::new(key)))
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
        f.set_other_links(nlink.saturating_sub(f.names().len() as u32));
        if nlink == 0 && !f.removed {
            // Deleted before we learned of it (or never linked): no name can hold its data.
            let names = f.take_names();
            f.removed = true;
            if let Some(t) = &mut self.timeline {
                t.removed(key);
            }
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
        // From any task on the system (jbd2, a kworker): no process of the trace.
        if let EventKind::DeviceFlush { dev, fua } = kind {
            self.devices.flush(dev, ts, fua);
            return;
        }
        self.start_ns.get_or_insert(ts);
        if let Some(t) = &mut self.timeline {
            t.now = ts;
        }
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
                cause,
                slot,
                prev_extent,
                ..
            } => {
                let before = (writes_before, bytes_before, pages_before);
                let changes = cause.change_bits();
                self.on_dirty(ts, actor, file, before, slot, changes, prev_extent);
            }
            EventKind::TruncatePath { path, length } => {
                self.on_truncate_path(ts, actor, &path, length);
            }
            EventKind::MetadataPath { path } => self.on_metadata_path(ts, actor, &path),
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
                } else if f.path().is_none() {
                    // Deleted: the walked name is the one it had; show it as such.
                    f.set_path(Some(path.into()));
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
                    if self.files.get(&parent).is_none_or(|d| d.path().is_none()) {
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
            // Judged by the WAL contract (`wal.rs`), not by per-file durability.
            EventKind::Ack { .. } => {}
            EventKind::DeviceFlush { .. } => {} // handled above
            EventKind::UringFsyncUnordered {
                file,
                datasync,
                writes,
            } => self.on_uring_fsync_unordered(ts, &actor, file, datasync, writes),
            // Kept by the event loop (`symbolize::Stacks`), never applied here.
            EventKind::Stack { .. } => {}
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
        for n in old.take_names() {
            if self.paths.get(&n) == Some(&key) {
                self.paths.remove(&n);
            }
        }
        old.removed = true;
        if old.rare.carried.is_some() {
            old.rare.carried = None;
        }
        if let Some(t) = &mut self.timeline {
            t.removed(key);
        }
        self.past_lives.push((old, final_counters));
    }
}

/// `actor`, shared with the records kept before it by the same actor (`cache`): one process
/// makes most changes, so 100,000 pending entries or first syncs hold a pointer each, not a copy.
fn shared_actor(cache: &mut Option<Arc<Actor>>, actor: &Actor) -> Arc<Actor> {
    match cache {
        Some(a) if **a == *actor => a.clone(),
        _ => cache.insert(Arc::new(actor.clone())).clone(),
    }
}

/// The open flags that matter for durability.
fn durability_flags(flags: u32) -> u32 {
    flags
        & (open_flags::O_SYNC | open_flags::O_DIRECT | open_flags::O_APPEND | open_flags::O_TMPFILE)
}
