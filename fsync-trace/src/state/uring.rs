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

#[cfg(test)]
mod tests {
    use super::super::tests::{dirty, ev, kinds, open, run, sync, F};
    use super::*;
    use crate::event::EventKind;
    use fsync_trace_common::SyncOp;

    fn unordered(ts: u64, writes: u32) -> crate::event::Event {
        ev(
            ts,
            EventKind::UringFsyncUnordered {
                file: F,
                datasync: false,
                writes,
            },
        )
    }

    /// Writes completed after the fsync could start (the same batch, not linked): the fsync
    /// does not cover them, and the ordering is a finding of its own, once per file.
    #[test]
    fn unordered_ring_fsync_is_one_finding_per_file_and_does_not_cover_the_writes() {
        let a = run(
            vec![
                open(1, F, "/d/f", false),
                dirty(12, F, 0, 0),
                sync(10, 30, SyncOp::Fsync, Some(F), 0),
                unordered(30, 2),
                unordered(50, 1),
            ],
            100,
            &[(F, 2, 200)],
        );
        assert_eq!(
            kinds(&a),
            vec![
                (FindingKind::UnsyncedWrite, "/d/f".into(), None),
                (FindingKind::UringFsyncUnordered, "/d/f".into(), None),
            ]
        );
        let u = &a.findings[1];
        assert_eq!((u.count, u.unsynced_writes), (2, Some(3)));
        assert_eq!(u.op.as_deref(), Some("fsync"));
        assert!(u.fix.contains("IOSQE_IO_LINK") && u.fix.contains("IOSQE_IO_DRAIN"));
        assert_eq!(a.findings[0].unsynced_bytes, Some(200));
    }

    #[test]
    fn unordered_fdatasync_names_its_op() {
        let a = run(
            vec![
                open(1, F, "/d/f", false),
                ev(
                    5,
                    EventKind::UringFsyncUnordered {
                        file: F,
                        datasync: true,
                        writes: 4,
                    },
                ),
            ],
            100,
            &[(F, 0, 0)],
        );
        assert_eq!(a.findings.len(), 1, "{:?}", a.findings);
        assert_eq!(a.findings[0].op.as_deref(), Some("fdatasync"));
        assert!(a.findings[0].message.contains("4 write(s)"));
    }
}
