//! Durable points: which sync call makes which files durable, sync errors and the retry trap.
use std::num::NonZeroI32;

use fsync_trace_common::{mman, FileKey, SyncOp, PAGE_SIZE};

use super::cost::{covered, Reading};
use super::timeline::{Count, SyncMark};
use super::{display_path, errno_name, DurabilityState, FileState, Finding, FindingKind, Resolver};
use crate::event::{Actor, SyncCounters};

impl<R: Resolver> DurabilityState<R> {
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
        // What the kernel closed of the covered segments (all of them if later data remains:
        // its first record closed the last covered one).
        let covered = crate::extent::union_all(
            f.dirty
                .iter()
                .filter(|d| d.since < enter)
                .filter_map(|d| d.extent),
        );
        f.dirty.retain(|d| d.since >= enter);
        if let Some(t) = &mut self.timeline {
            let changes = f.unsynced_changes();
            let remaining = f.dirty.first().map(|d| {
                let abs = Count {
                    writes: d.writes_before,
                    bytes: d.bytes_before + d.pages_before * PAGE_SIZE,
                };
                (d.since, d.actor.pid, abs, changes)
            });
            t.durable(key, enter, exit, remaining, covered);
        }
        if f.is_dir && !f.rare.pending.is_empty() {
            let mut timeline = self.timeline.as_deref_mut();
            f.rare.pending.retain(|_, changes| {
                changes.retain(|e| {
                    let keep = e.ts >= enter;
                    if let (false, Some(t)) = (keep, timeline.as_deref_mut()) {
                        t.entry_durable(key, e.seq, exit);
                    }
                    keep
                });
                !changes.is_empty()
            });
        }
        // Memory: an emptied map still holds its buffer (every entry ever pending for a
        // directory), so give it back (a file's spans give theirs back themselves).
        f.release_pending_if_empty();
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_sync(
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
        counters: Option<SyncCounters>,
    ) {
        let latency = ts.saturating_sub(enter);
        if op != SyncOp::SyncWrite {
            let s = self.ops.entry(op).or_default();
            s.calls += 1;
            s.latency.record(latency);
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
            let f = self.file_at(key, ts);
            f.has_slot |= op != SyncOp::Msync;
            f.is_dir |= is_dir && op != SyncOp::Msync;
            match op {
                SyncOp::Fsync => f.fsyncs += 1,
                SyncOp::Fdatasync => f.fdatasyncs += 1,
                SyncOp::SyncWrite => {}
                _ => f.rare.other_syncs += 1,
            }
            if matches!(op, SyncOp::Fsync | SyncOp::Fdatasync) {
                f.sync_latency.record(latency);
            }
            if op != SyncOp::SyncWrite {
                f.cost.call(enter, ts);
            }
        }
        if let (Some(t), true) = (&mut self.timeline, op != SyncOp::SyncWrite) {
            for &key in &targets {
                let f = self.files.get(&key);
                let mark = SyncMark {
                    enter,
                    exit: ts,
                    op,
                    errno: (ret < 0).then(|| NonZeroI32::new((-ret) as i32)).flatten(),
                };
                t.sync(
                    key,
                    || f.and_then(|f| f.path().cloned()),
                    f.is_some_and(|f| f.is_dir),
                    mark,
                );
            }
        }
        if ret < 0 {
            let errno = (-ret) as i32;
            for &key in &targets {
                let f = self.file(key);
                // (A nonzero errno: the Option is 4 bytes, the file state one block smaller.)
                f.rare.failed_sync = std::num::NonZeroI32::new(errno);
                // After a failure nothing is known to be durable: the next sync is never
                // judged redundant.
                f.cost.forget_durable();
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
                    stack_id: actor.stack,
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
                if let Some(errno) = self.file(key).take_failed_sync() {
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
                        stack_id: actor.stack,
                        ..Finding::blank()
                    });
                }
            }
        }
        if !durable_point {
            return;
        }
        if let Some(key) = file {
            self.device_synced(key, actor, enter, ts);
        }
        match (op, file, counters) {
            (SyncOp::Fsync | SyncOp::Fdatasync, Some(key), Some(c)) => {
                self.sync_covered(key, actor, enter, ts, c);
            }
            // A durable point without a reading of the file's counters: the next sync of
            // these files has no known base to be judged redundant against.
            _ => self.forget_durable_base(op, &targets, file),
        }
        match op {
            SyncOp::Sync => {
                let keys: Vec<FileKey> = self.files.keys().collect();
                for k in keys {
                    self.durable(k, enter, ts);
                }
            }
            SyncOp::Syncfs => {
                if let Some(dev) = file.map(|f| f.dev) {
                    let keys: Vec<FileKey> = self.files.keys().filter(|k| k.dev == dev).collect();
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
}

impl<R: Resolver> DurabilityState<R> {
    /// A successful fsync/fdatasync of `key` whose record read the file's counters (`c`) when
    /// it returned (called before the sync's durable point is applied): what it covered since
    /// the previous reading, for the file and the calling process, and whether it had nothing
    /// to make durable.
    fn sync_covered(
        &mut self,
        key: FileKey,
        actor: &Actor,
        enter: u64,
        exit: u64,
        c: SyncCounters,
    ) {
        // Only a reading kept compact keeps the actor shared (no allocation otherwise).
        let shared = self
            .files
            .get(&key)
            .is_some_and(|f| f.cost.awaits_first_reading())
            .then(|| super::shared_actor(&mut self.sync_actor, actor));
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        let base = f.base_for_slot(c.slot);
        let now = Reading {
            writes: base.writes + c.writes,
            bytes: base.bytes + c.bytes,
            mapped_pages: base.mapped_dirty_pages + c.mapped_pages,
        };
        // Data announced dirty before this sync began, or a directory entry changed before
        // it: this sync had work to do, whatever the counters say.
        let dirty_before = f.dirty.iter().any(|d| d.since < enter)
            || f.rare.pending.values().flatten().any(|e| e.ts < enter);
        // A file's first reading right after its only sync call is kept compact (most
        // files); else the full account records it.
        let (writes, bytes, redundant) = if let Some((writes, bytes)) = shared
            .as_ref()
            .and_then(|a| f.cost.first_reading(exit, a, now))
        {
            (writes, bytes, false)
        } else {
            let cost = f.cost.full_mut();
            let (writes, bytes, _) = covered(&cost.last, &now);
            let redundant =
                cost.durable_known && !cost.changed && !dirty_before && writes == 0 && bytes == 0;
            cost.writes_per_sync.record(writes);
            cost.bytes_per_sync.record(bytes);
            if cost.first_sync.is_none() {
                cost.first_sync = Some((exit, actor.clone()));
            }
            if redundant {
                cost.redundant += 1;
                cost.redundant_ns += exit.saturating_sub(enter);
                if cost.first_redundant.is_none() {
                    cost.first_redundant = Some(Box::new((exit, actor.clone())));
                }
            }
            cost.last = now;
            cost.durable_known = true;
            cost.changed = false;
            (writes, bytes, redundant)
        };
        if let Some(l) = &mut self.live {
            l.covered.push((writes, redundant));
        }
        if let Some(p) = self.processes.get_mut(&actor.pid) {
            let pc = p.cost.get_or_insert_default();
            pc.writes_per_sync.record(writes);
            pc.bytes_per_sync.record(bytes);
            if redundant {
                pc.redundant += 1;
                pc.redundant_ns += exit.saturating_sub(enter);
            }
        }
    }

    /// A successful durable-point sync of `key` returned: the device flushes issued while it
    /// ran, for the file and the calling process.
    fn device_synced(&mut self, key: FileKey, actor: &Actor, enter: u64, exit: u64) {
        let is_dir = self.files.get(&key).is_some_and(|f| f.is_dir);
        let Some(n) = self.devices.sync(key, is_dir, actor, enter, exit) else {
            return;
        };
        let without = u64::from(n == 0 && !is_dir);
        if let Some(f) = self.files.get_mut(&key) {
            f.cost.flushes(n, without);
        }
        if let Some(c) = self
            .processes
            .get_mut(&actor.pid)
            .and_then(|p| p.cost.as_deref_mut())
        {
            c.device_flushes += n;
            c.syncs_without_flush += without;
        }
    }

    /// A durable point whose record carries no reading of the file's counters (msync, sync,
    /// syncfs, an O_SYNC write): the files it made durable lose their known base.
    fn forget_durable_base(&mut self, op: SyncOp, targets: &[FileKey], file: Option<FileKey>) {
        let forget = |f: &mut FileState| f.cost.forget_durable();
        match op {
            SyncOp::Sync => self.files.values_mut().for_each(&forget),
            SyncOp::Syncfs => {
                let dev = file.map(|f| f.dev);
                self.files
                    .values_mut()
                    .filter(|f| Some(f.key.dev) == dev)
                    .for_each(&forget);
            }
            _ => {
                for k in targets {
                    if let Some(f) = self.files.get_mut(k) {
                        forget(f);
                    }
                }
            }
        }
    }
}
