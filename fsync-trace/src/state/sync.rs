//! Durable points: which sync call makes which files durable, sync errors and the retry trap.
use fsync_trace_common::{mman, FileKey, SyncOp};

use super::{display_path, errno_name, DurabilityState, Finding, FindingKind, Resolver};
use crate::event::Actor;

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
        f.dirty.retain(|d| d.since >= enter);
        if f.is_dir && !f.pending.is_empty() {
            f.pending.retain(|_, changes| {
                changes.retain(|e| e.ts >= enter);
                !changes.is_empty()
            });
        }
        // Memory: most files end up synced; an emptied Vec or map still holds its buffer (4
        // spans for a file, every entry ever pending for a directory), so give it back.
        if f.dirty.is_empty() {
            f.dirty = Vec::new();
        }
        if f.pending.is_empty() {
            f.pending = Default::default();
        }
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
                _ => f.other_syncs += 1,
            }
            if matches!(op, SyncOp::Fsync | SyncOp::Fdatasync) {
                f.sync_latency.record(latency);
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
}
