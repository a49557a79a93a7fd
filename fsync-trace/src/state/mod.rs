//! The durability state machine: decoded events in, per-file / per-directory state and findings
//! out. Pure apart from the [`Resolver`] seam; it never knows which tier fed it.
mod finding;
mod paths;
mod resolve;
#[cfg(test)]
mod tests;

use smallvec::SmallVec;
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

pub use finding::{errno_name, Finding, FindingKind};
use fsync_trace_common::{mman, open_flags, FileCounters, FileKey, NamespaceOp, SyncOp, PAGE_SIZE};
pub use paths::{join, normalize, split_parent};
#[cfg(test)]
pub use resolve::NoResolver;
pub use resolve::{ProcResolver, Resolver};

use crate::event::{Actor, Event, EventKind, NameRef};

/// renameat2 flag: atomically swap the two names.
const RENAME_EXCHANGE: u32 = 2;
/// Pending-entry operations that add a name / remove a name.
const ADDITIONS: [&str; 5] = ["create", "mkdir", "link", "symlink", "rename"];
const REMOVALS: [&str; 3] = ["unlink", "rmdir", "rename (old name)"];

/// Data made dirty since the last durable point, as announced by one `Dirty` event.
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
    pub name: String,
    pub op: &'static str,
    pub ts: u64,
    pub actor: Actor,
}

#[derive(Clone, Debug, Default)]
pub struct FileState {
    pub key: FileKey,
    /// Shared with the `paths` index (one allocation per name, however long).
    pub path: Option<Arc<str>>,
    pub is_dir: bool,
    /// Unlinked / replaced / removed: its data no longer matters.
    pub removed: bool,
    /// Dirty announcements since the last durable point, oldest first (at most a few: one per
    /// durability epoch).
    pub dirty: Vec<DirtySpan>,
    pub max_dirty_window_ns: u64,
    pub fsyncs: u64,
    pub fdatasyncs: u64,
    pub other_syncs: u64,
    /// fsync + fdatasync latencies of this file.
    /// Inline up to one sample (most files are synced once, if at all): no heap block per file.
    pub sync_latency_ns: SmallVec<[u64; 1]>,
    /// errno of a failed sync not yet followed by a successful one.
    pub failed_sync: Option<i32>,
    /// Every durability-relevant open flag seen on this file (O_SYNC, O_DSYNC, O_DIRECT,
    /// O_APPEND, O_TMPFILE), OR-ed.
    pub open_flags: u32,
    /// Directories: entry changes not yet synced.
    pub pending: Vec<PendingEntry>,
}

impl FileState {
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub comm: String,
    pub parent: Option<u32>,
    pub exited: bool,
}

/// Calls of one sync operation, across files.
#[derive(Clone, Debug, Default)]
pub struct OpStats {
    pub calls: u64,
    pub errors: u64,
    pub latency_ns: Vec<u64>,
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
    /// Current path -> file, for resolving names in namespace operations.
    paths: HashMap<Arc<str>, FileKey>,
    processes: BTreeMap<u32, ProcessInfo>,
    mappings: HashMap<u32, Vec<Mapping>>,
    findings: Vec<Finding>,
    ops: BTreeMap<SyncOp, OpStats>,
    /// Bookkeeping for live metrics; None unless [`DurabilityState::track_live`] was called.
    live: Option<Live>,
}

/// What live metrics need beyond the final analysis (see `metrics`).
#[derive(Debug, Default)]
struct Live {
    /// Files and directories each live process left unsynced (dirtied, or changed an entry of),
    /// checked when it exits.
    touched: HashMap<u32, HashSet<FileKey>>,
    /// Dirty windows (first dirtying to durable point, ns) closed since the last drain.
    windows_ns: Vec<u64>,
    /// Files with unsynced data / directory entry names left unsynced by exited processes.
    exit_unsynced_files: u64,
    exit_unsynced_entries: u64,
}

/// The final state: every file with its counters, and all findings, worst first.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub files: Vec<(Box<FileState>, FileCounters)>,
    pub findings: Vec<Finding>,
    pub processes: Vec<ProcessInfo>,
    pub ops: BTreeMap<SyncOp, OpStats>,
}

fn display_path(f: &FileState) -> String {
    f.path.as_deref().map(str::to_string).unwrap_or_else(|| {
        format!(
            "<unknown path: dev {}:{} inode {}>",
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
            paths: HashMap::new(),
            processes: BTreeMap::new(),
            mappings: HashMap::new(),
            findings: Vec::new(),
            ops: BTreeMap::new(),
            live: None,
        }
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
            if f.is_dir && !f.pending.is_empty() {
                // Entry names whose last unsynced change is this process's.
                let mut last: HashMap<&str, u32> = HashMap::new();
                for e in &f.pending {
                    last.insert(e.name.as_str(), e.actor.pid);
                }
                entries += last.values().filter(|&&p| p == pid).count() as u64;
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

    fn set_path(&mut self, key: FileKey, path: String, is_dir: bool) {
        let path: Arc<str> = path.into();
        let f = self.file(key);
        f.is_dir |= is_dir;
        let old = f.path.replace(path.clone());
        if let Some(old) = old {
            if old != path && self.paths.get(&*old) == Some(&key) {
                self.paths.remove(&*old);
            }
        }
        self.paths.insert(path, key);
    }

    pub fn apply(&mut self, ev: Event) {
        let Event { ts, actor, kind } = ev;
        let p = self
            .processes
            .entry(actor.pid)
            .or_insert_with(|| ProcessInfo {
                pid: actor.pid,
                ..Default::default()
            });
        // Only on a change (exec): no allocation per event.
        if !actor.comm.as_str().is_empty() && p.comm != actor.comm.as_str() {
            p.comm = actor.comm.to_string();
        }
        match kind {
            EventKind::Dirty {
                file,
                writes_before,
                bytes_before,
                pages_before,
                fd,
                ..
            } => {
                let span = DirtySpan {
                    since: ts,
                    writes_before,
                    bytes_before,
                    pages_before,
                    actor: actor.clone(),
                };
                self.touched(actor.pid, file);
                let f = self.file(file);
                // Exact capacity: most files have one open span, and a Vec's first push
                // would reserve four (100k files: 24 MiB).
                f.dirty.reserve_exact(1);
                f.dirty.push(span);
                if f.path.is_none() && fd >= 0 {
                    if let Some(path) = self.resolver.fd_path(actor.pid, fd) {
                        self.set_path(file, path, false);
                    }
                }
            }
            EventKind::Sync {
                op,
                enter_ns,
                ret,
                file,
                is_dir,
                fd,
                addr,
                len,
                flags,
            } => {
                // A file opened before tracing started (or read-only) has no path yet.
                if let Some(key) = file {
                    if fd >= 0 && self.files.get(&key).is_none_or(|f| f.path.is_none()) {
                        if let Some(path) = self.resolver.fd_path(actor.pid, fd) {
                            self.set_path(key, path, is_dir);
                        }
                    }
                }
                self.on_sync(
                    ts, &actor, op, enter_ns, ret, file, is_dir, addr, len, flags,
                )
            }
            EventKind::Open {
                file,
                parent,
                is_dir,
                path,
                open_flags: oflags,
                created,
                ..
            } => {
                self.set_path(file, path.clone(), is_dir);
                let f = self.file(file);
                f.open_flags |= oflags
                    & (open_flags::O_SYNC
                        | open_flags::O_DIRECT
                        | open_flags::O_APPEND
                        | open_flags::O_TMPFILE);
                if created {
                    let (dir_path, name) = split_parent(&path);
                    if self.files.get(&parent).is_none_or(|d| d.path.is_none()) {
                        self.set_path(parent, dir_path.to_string(), true);
                    }
                    let op = if is_dir { "mkdir" } else { "create" };
                    self.pending(parent, name.to_string(), op, ts, &actor);
                }
            }
            EventKind::Namespace {
                op,
                old,
                new,
                flags,
            } => self.on_namespace(ts, &actor, op, old, new, flags),
            EventKind::Mmap { file, addr, len } => {
                self.mappings
                    .entry(actor.pid)
                    .or_default()
                    .push(Mapping { addr, len, file });
            }
            EventKind::Fork { child } => {
                let comm = actor.comm.to_string();
                self.processes.entry(child).or_insert_with(|| ProcessInfo {
                    pid: child,
                    comm,
                    parent: Some(actor.pid),
                    exited: false,
                });
            }
            EventKind::Exit => {
                if let Some(p) = self.processes.get_mut(&actor.pid) {
                    p.exited = true;
                }
                self.mappings.remove(&actor.pid);
                self.on_exit_live(actor.pid);
            }
        }
    }

    fn pending(&mut self, dir: FileKey, name: String, op: &'static str, ts: u64, actor: &Actor) {
        self.touched(actor.pid, dir);
        let d = self.file(dir);
        d.is_dir = true;
        // Removing a name that was itself added since the last directory sync leaves the durable
        // state of the directory as it was: the two changes cancel out.
        if REMOVALS.contains(&op) {
            let before = d.pending.len();
            d.pending
                .retain(|e| !(e.name == name && ADDITIONS.contains(&e.op)));
            if d.pending.len() != before {
                return;
            }
        }
        d.pending.push(PendingEntry {
            name,
            op,
            ts,
            actor: actor.clone(),
        });
    }

    /// A durable point for `key` that started at `enter` and finished at `exit`: data announced
    /// dirty before `enter` is now durable; later announcements stay dirty.
    fn durable(&mut self, key: FileKey, enter: u64, exit: u64) {
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        if let Some(first) = f.dirty.first() {
            if first.since < enter {
                let window = exit.saturating_sub(first.since);
                f.max_dirty_window_ns = f.max_dirty_window_ns.max(window);
                if let Some(l) = &mut self.live {
                    l.windows_ns.push(window);
                }
            }
        }
        f.dirty.retain(|d| d.since >= enter);
        if f.is_dir {
            f.pending.retain(|e| e.ts >= enter);
        }
        // Memory: most files end up synced; an emptied Vec still holds its buffer (4 spans for
        // a file, every entry ever pending for a directory), so give it back.
        if f.dirty.is_empty() {
            f.dirty = Vec::new();
        }
        if f.pending.is_empty() {
            f.pending = Vec::new();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_sync(
        &mut self,
        ts: u64,
        actor: &Actor,
        op: SyncOp,
        enter: u64,
        ret: i64,
        file: Option<FileKey>,
        is_dir: bool,
        addr: u64,
        len: u64,
        flags: u64,
    ) {
        let latency = ts.saturating_sub(enter);
        if op != SyncOp::SyncWrite {
            let s = self.ops.entry(op).or_default();
            s.calls += 1;
            s.latency_ns.push(latency);
            if ret < 0 {
                s.errors += 1;
            }
        }
        // The files this call is about.
        let targets: Vec<FileKey> = match op {
            SyncOp::Msync => self
                .mappings
                .get(&actor.pid)
                .map(|maps| {
                    maps.iter()
                        .filter(|m| {
                            m.addr < addr.saturating_add(len) && addr < m.addr.saturating_add(m.len)
                        })
                        .map(|m| m.file)
                        .collect()
                })
                .unwrap_or_default(),
            SyncOp::Sync => Vec::new(),
            _ => file.into_iter().collect(),
        };
        for &key in &targets {
            let f = self.file(key);
            f.is_dir |= is_dir && op != SyncOp::Msync;
            match op {
                SyncOp::Fsync => f.fsyncs += 1,
                SyncOp::Fdatasync => f.fdatasyncs += 1,
                SyncOp::SyncWrite => {}
                _ => f.other_syncs += 1,
            }
            if matches!(op, SyncOp::Fsync | SyncOp::Fdatasync) {
                f.sync_latency_ns.push(latency);
            }
        }
        if ret < 0 {
            let errno = (-ret) as i32;
            for &key in &targets {
                self.file(key).failed_sync = Some(errno);
                let path = display_path(&self.files[&key]);
                self.findings.push(Finding {
                    kind: FindingKind::FsyncError,
                    path: path.clone(),
                    pid: actor.pid,
                    comm: actor.comm.to_string(),
                    ts,
                    message: format!(
                        "{}() of {path} failed with {} (errno {errno}); the kernel may already have dropped the unwritten pages",
                        op.name(), errno_name(errno)
                    ),
                    fix: "treat a failed fsync as fatal for this file: rewrite the data from your own copy (or crash and recover from the log) instead of continuing".into(),
                    errno: Some(errno),
                    op: Some(op.name().into()),
                    ..Finding::blank()
                });
            }
            return;
        }
        let durable_point = match op {
            SyncOp::Fsync
            | SyncOp::Fdatasync
            | SyncOp::SyncWrite
            | SyncOp::Sync
            | SyncOp::Syncfs => true,
            SyncOp::Msync => flags & mman::MS_SYNC != 0,
            SyncOp::SyncFileRange => false,
        };
        // A success after a failure on the same file: the classic "fsync retry" trap.
        if durable_point || op == SyncOp::SyncFileRange {
            for &key in &targets {
                if let Some(errno) = self.file(key).failed_sync.take() {
                    let path = display_path(&self.files[&key]);
                    self.findings.push(Finding {
                        kind: FindingKind::FsyncRetryAfterError,
                        path: path.clone(),
                        pid: actor.pid,
                        comm: actor.comm.to_string(),
                        ts,
                        message: format!(
                            "{}() of {path} reported success after an earlier sync failed with {} (errno {errno}): the data from before the failure may be lost although this call succeeded",
                            op.name(), errno_name(errno)
                        ),
                        fix: "do not retry fsync after a failure and trust the result; reopen and rewrite the data, or recover from the log".into(),
                        errno: Some(errno),
                        op: Some(op.name().into()),
                        ..Finding::blank()
                    });
                }
            }
        }
        if !durable_point {
            return;
        }
        match op {
            SyncOp::Sync => {
                let keys: Vec<FileKey> = self.files.keys().copied().collect();
                for k in keys {
                    self.durable(k, enter, ts);
                }
            }
            SyncOp::Syncfs => {
                if let Some(dev) = file.map(|f| f.dev) {
                    let keys: Vec<FileKey> = self
                        .files
                        .keys()
                        .filter(|k| k.dev == dev)
                        .copied()
                        .collect();
                    for k in keys {
                        self.durable(k, enter, ts);
                    }
                }
            }
            _ => {
                for key in targets {
                    self.durable(key, enter, ts);
                }
            }
        }
    }

    /// (directory, directory path, entry name) of a name used by a namespace operation.
    fn entry_of(&mut self, pid: u32, n: &NameRef) -> Option<(FileKey, String, String)> {
        let name = n.name.trim_end_matches('/');
        if name.is_empty() {
            return None;
        }
        let abs = if name.starts_with('/') {
            normalize(name)
        } else {
            join(&n.base_path, name)
        };
        let (dir_path, entry) = split_parent(&abs);
        let (dir_path, entry) = (dir_path.to_string(), entry.to_string());
        if !name.contains('/') {
            if !n.base_durable {
                return None;
            }
            return Some((n.base_dir, dir_path, entry));
        }
        if let Some(&k) = self.paths.get(dir_path.as_str()) {
            if self.files.get(&k).is_some_and(|f| f.is_dir) {
                return Some((k, dir_path, entry));
            }
        }
        let (k, durable) = self.resolver.dir_of_path(pid, &dir_path)?;
        durable.then_some((k, dir_path, entry))
    }

    fn on_namespace(
        &mut self,
        ts: u64,
        actor: &Actor,
        op: NamespaceOp,
        old: NameRef,
        new: Option<NameRef>,
        flags: u32,
    ) {
        let Some((odir, odir_path, oentry)) = self.entry_of(actor.pid, &old) else {
            // Not on a durable filesystem (or unresolvable): nothing to track.
            return;
        };
        let old_abs = join(&odir_path, &oentry);
        if self.files.get(&odir).is_none_or(|d| d.path.is_none()) {
            self.set_path(odir, odir_path.clone(), true);
        }
        match op {
            NamespaceOp::Unlink | NamespaceOp::Rmdir => {
                self.pending(odir, oentry, op.name(), ts, actor);
                if let Some(k) = self.paths.remove(old_abs.as_str()) {
                    self.file(k).removed = true;
                }
            }
            NamespaceOp::Mkdir | NamespaceOp::Symlink => {
                self.pending(odir, oentry, op.name(), ts, actor)
            }
            NamespaceOp::Link | NamespaceOp::Rename => {
                let Some(new) = new else { return };
                let Some((ndir, ndir_path, nentry)) = self.entry_of(actor.pid, &new) else {
                    return;
                };
                if self.files.get(&ndir).is_none_or(|d| d.path.is_none()) {
                    self.set_path(ndir, ndir_path.clone(), true);
                }
                let new_abs = join(&ndir_path, &nentry);
                if op == NamespaceOp::Link {
                    self.pending(ndir, nentry, "link", ts, actor);
                    return;
                }
                self.pending(odir, oentry.clone(), "rename (old name)", ts, actor);
                self.pending(ndir, nentry.clone(), "rename", ts, actor);
                self.on_rename(ts, actor, &old_abs, &new_abs, flags & RENAME_EXCHANGE != 0);
            }
        }
    }

    fn on_rename(&mut self, ts: u64, actor: &Actor, old_abs: &str, new_abs: &str, exchange: bool) {
        let moved = self.paths.get(old_abs).copied().or_else(|| {
            if exchange {
                None
            } else {
                self.resolver.file_of_path(actor.pid, new_abs)
            }
        });
        let replaced = self.paths.get(new_abs).copied();
        if let Some(k) = moved {
            let f = self.file(k);
            if !f.is_dir && f.is_dirty() {
                self.findings.push(Finding {
                    kind: FindingKind::RenameBeforeFsync,
                    path: new_abs.to_string(),
                    pid: actor.pid,
                    comm: actor.comm.to_string(),
                    ts,
                    message: format!(
                        "{old_abs} was renamed to {new_abs} while its data was not yet durable: after a crash {new_abs} can be empty or hold partial data"
                    ),
                    fix: format!("fsync (or fdatasync) the file before renaming it over {new_abs}, then fsync the directory"),
                    source: Some(old_abs.to_string()),
                    ..Finding::blank()
                });
            }
        }
        if exchange {
            if let Some(k) = moved {
                self.set_path(k, new_abs.to_string(), false);
            }
            if let Some(k) = replaced {
                self.set_path(k, old_abs.to_string(), false);
            }
            return;
        }
        if let (Some(r), m) = (replaced, moved) {
            if Some(r) != m {
                self.file(r).removed = true;
                self.paths.remove(new_abs);
            }
        }
        if let Some(k) = moved {
            let is_dir = self.files.get(&k).is_some_and(|f| f.is_dir);
            self.set_path(k, new_abs.to_string(), is_dir);
        }
        // Everything under a renamed directory moves with it.
        let prefix = format!("{old_abs}/");
        let under: Vec<(Arc<str>, FileKey)> = self
            .paths
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .map(|(p, k)| (p.clone(), *k))
            .collect();
        for (p, k) in under {
            let moved_path = format!("{new_abs}/{}", &p[prefix.len()..]);
            let is_dir = self.files.get(&k).is_some_and(|f| f.is_dir);
            self.set_path(k, moved_path, is_dir);
        }
    }

    /// Ends the trace at `end_ns` with the kernel's final per-file counters.
    pub fn finish(mut self, end_ns: u64, counters: &FinalCounters) -> Analysis {
        // Not needed any more, and this is the trace's memory peak: the name index (the names
        // themselves stay, shared with the file states).
        drop(std::mem::take(&mut self.paths));
        drop(std::mem::take(&mut self.mappings));
        for &(key, _) in counters.0.iter() {
            let missing_path = self.files.get(&key).is_none_or(|f| f.path.is_none());
            self.file(key);
            if missing_path {
                log::debug!("no path known for dev {} inode {}", key.dev, key.ino);
            }
        }
        let mut findings = std::mem::take(&mut self.findings);
        let mut files = Vec::new();
        for (key, mut f) in self.files.drain() {
            let c = counters.get(&key).copied().unwrap_or_default();
            if let Some(first) = f.dirty.first().cloned() {
                f.max_dirty_window_ns = f
                    .max_dirty_window_ns
                    .max(end_ns.saturating_sub(first.since));
                if !f.removed && !f.is_dir {
                    let bytes = c.bytes.saturating_sub(first.bytes_before)
                        + c.mapped_dirty_pages.saturating_sub(first.pages_before) * PAGE_SIZE;
                    let writes = c.writes.saturating_sub(first.writes_before);
                    let pages = c.mapped_dirty_pages.saturating_sub(first.pages_before);
                    let path = display_path(&f);
                    let what = match (writes, pages) {
                        (w, 0) => format!("{w} write(s), {bytes} bytes"),
                        (0, p) => format!("{p} page(s) stored through a shared mapping"),
                        (w, p) => format!("{w} write(s) and {p} mapped page(s), {bytes} bytes"),
                    };
                    findings.push(Finding {
                        kind: FindingKind::UnsyncedWrite,
                        path: path.clone(),
                        pid: first.actor.pid,
                        comm: first.actor.comm.to_string(),
                        ts: first.since,
                        message: format!("{what} to {path} were never made durable (no fsync/fdatasync/msync(MS_SYNC) after them)"),
                        fix: "fsync or fdatasync the file (or msync(MS_SYNC) the mapping) before relying on the data; closing it is not enough".into(),
                        unsynced_bytes: Some(bytes),
                        unsynced_writes: Some(writes),
                        ..Finding::blank()
                    });
                }
            }
            if f.is_dir && !f.removed && !f.pending.is_empty() {
                // One finding per entry name: the last change and how many changes.
                let mut by_name: BTreeMap<String, (PendingEntry, u64)> = BTreeMap::new();
                for e in &f.pending {
                    let slot = by_name
                        .entry(e.name.clone())
                        .or_insert_with(|| (e.clone(), 0));
                    slot.0 = e.clone();
                    slot.1 += 1;
                }
                let dir = display_path(&f);
                for (name, (e, count)) in by_name {
                    findings.push(Finding {
                        kind: FindingKind::UnsyncedParentDir,
                        path: dir.clone(),
                        pid: e.actor.pid,
                        comm: e.actor.comm.to_string(),
                        ts: e.ts,
                        message: format!(
                            "directory entry {name:?} in {dir} changed ({}{}) and the directory was never fsynced afterwards: the change can vanish after a crash",
                            e.op,
                            if count > 1 { format!(", {count} changes") } else { String::new() }
                        ),
                        fix: format!("open {dir} with O_RDONLY|O_DIRECTORY and fsync it after creating, renaming or removing entries"),
                        entry: Some(name),
                        op: Some(e.op.to_string()),
                        count,
                        ..Finding::blank()
                    });
                }
            }
            files.push((f, c));
        }
        findings.sort_by(|a, b| {
            a.kind
                .cmp(&b.kind)
                .then(b.unsynced_bytes.cmp(&a.unsynced_bytes))
                .then(a.ts.cmp(&b.ts))
                .then(a.path.cmp(&b.path))
                .then(a.entry.cmp(&b.entry))
        });
        files.sort_by(|a, b| a.0.path.cmp(&b.0.path).then(a.0.key.cmp(&b.0.key)));
        Analysis {
            files,
            findings,
            processes: self.processes.into_values().collect(),
            ops: self.ops,
        }
    }
}
