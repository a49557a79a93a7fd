//! io_uring ordering: a fsync submitted in the same batch as unlinked writes to the same file
//! (or while earlier writes are still in flight) may run before them (io_uring_enter(2):
//! requests not linked run in any order), so it does not make them durable.
use fsync_trace_common::FileKey;

use super::{display_path, DurabilityState, Finding, FindingKind, Resolver};
use crate::event::Actor;

impl<R: Resolver> DurabilityState<R> {
    /// An io_uring fsync of `key` was submitted while `writes` writes to it were in flight and
    /// not ordered before it. One finding per file; repeats add to its count.
    pub(super) fn on_uring_fsync_unordered(
        &mut self,
        ts: u64,
        actor: &Actor,
        key: FileKey,
        datasync: bool,
        writes: u32,
    ) {
        self.file_at(key, ts);
        let path = display_path(&self.files[&key]);
        if let Some(f) = self
            .findings
            .iter_mut()
            .find(|f| f.kind == FindingKind::UringFsyncUnordered && f.path == path)
        {
            f.count += 1;
            f.unsynced_writes = Some(f.unsynced_writes.unwrap_or(0) + u64::from(writes));
            return;
        }
        let op = if datasync { "fdatasync" } else { "fsync" };
        self.findings.push(Finding {
            kind: FindingKind::UringFsyncUnordered,
            path: path.clone(),
            pid: actor.pid,
            comm: actor.comm.to_string(),
            ts,
            message: format!(
                "an io_uring {op} of {path} was submitted while {writes} write(s) to it were still in flight and not linked before it: io_uring may run the {op} first, so it does not cover them"
            ),
            fix: "link the writes to the fsync (IOSQE_IO_LINK on every write before it in the batch), set IOSQE_IO_DRAIN on the fsync, or wait for the writes' completions before submitting it".into(),
            op: Some(op.into()),
            unsynced_writes: Some(u64::from(writes)),
            ..Finding::blank()
        });
    }
}
