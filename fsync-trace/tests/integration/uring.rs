//! io_uring requests judged like their system-call twins (on this host: the tracepoint tier,
//! the only one lockdown allows; `cargo xtask vm` runs the same scenarios on every tier).
//! The counts and findings come from the shared scenario table (`table_scenario`); each test
//! adds what the table cannot say: the paths listed, the syscalls seen, a finding's details.
use super::support::*;

/// write(2) x2, then an IORING_OP_FSYNC: durable (before io_uring support, a false
/// `unsynced_write`).
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn plain_writes_made_durable_by_a_ring_fsync() {
    let (_g, d, r) = table_scenario("io-uring-fsync");
    r.assert_paths(&[&d, &format!("{d}/uring.dat")]);
    r.assert_syncs(&[("fsync", 2, 0)]);
}

/// Ring WRITE + WRITEV + WRITE_FIXED, waited for, then a ring FSYNC and a ring CLOSE.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn ring_writes_then_ring_fsync_are_durable() {
    let (_g, d, r) = table_scenario("uring-write-fsync");
    r.assert_paths(&[&d, &format!("{d}/uring-writes.dat")]);
    r.assert_syncs(&[("fsync", 2, 0)]);
}

/// 4 ring writes never synced (a ring SYNC_FILE_RANGE is not durable): flagged.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn ring_writes_never_synced_are_flagged() {
    let (_g, d, r) = table_scenario("uring-unsynced");
    let f = format!("{d}/uring-unsynced.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_syncs(&[("fsync", 1, 0), ("sync_file_range", 1, 0)]);
    r.assert_unsynced_write(&f, 4, 400);
}

/// One batch of 2 writes and a fsync not linked to them: the fsync may run first.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn ring_fsync_batched_with_unlinked_writes_is_unordered() {
    let (_g, d, r) = table_scenario("uring-unordered");
    let f = format!("{d}/uring-batch.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_syncs(&[("fsync", 2, 0)]);
    let u = r.finding("uring_fsync_unordered", &f);
    assert_eq!(Report::u64_at(u, "unsynced_writes"), 2, "{}", r.pretty());
    assert_eq!(u["op"], "fsync", "{}", r.pretty());
    assert!(
        u["fix"].as_str().unwrap_or("").contains("IOSQE_IO_LINK"),
        "{}",
        r.pretty()
    );
}

/// The same batch with IOSQE_IO_LINK on the writes and DATASYNC: ordered, durable.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn ring_fdatasync_linked_after_writes_is_durable() {
    let (_g, d, r) = table_scenario("uring-linked");
    r.assert_paths(&[&d, &format!("{d}/uring-linked.dat")]);
    r.assert_syncs(&[("fsync", 1, 0), ("fdatasync", 1, 0)]);
}

/// An SQPOLL ring: the kernel's iou-sqp thread submits; the work is the process's.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn sqpoll_ring_is_attributed_to_the_process() {
    let (_g, d, r) = table_scenario("uring-sqpoll");
    r.assert_paths(&[&d, &format!("{d}/uring-sqpoll.dat")]);
    let procs = r.processes();
    assert_eq!(
        procs.len(),
        1,
        "one process, SQPOLL thread included: {procs:?}"
    );
    assert_eq!(
        procs[0].1, "fsync-trace-wor",
        "named as the process: {procs:?}"
    );
}

/// Ring OPENAT (create), WRITE, FSYNC, CLOSE, RENAMEAT, MKDIRAT, LINKAT, UNLINKAT against
/// the same sequence through system calls (`--syscalls`): the same report (the directory was
/// never fsynced).
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn ring_entry_changes_are_judged_like_their_syscall_twins() {
    let (_g, d, r) = table_scenario("uring-namespace");
    let f = format!("{d}/new.dat");
    let (_g2, d2, twin) = scenario("uring-namespace", &["--syscalls"]);
    let f2 = format!("{d2}/new.dat");
    for (d, f, r) in [(&d, &f, &r), (&d2, &f2, &twin)] {
        // The directory itself was never synced nor written: only the file is listed.
        r.assert_paths(&[f]);
        r.assert_file(
            f,
            "file",
            &[
                ("writes", 1),
                ("bytes_written", 100),
                ("fsyncs", 1),
                ("unsynced_bytes", 0),
            ],
        );
        r.assert_names(f, &[f]);
        r.assert_syncs(&[("fsync", 1, 0)]);
        r.assert_findings(&[
            fid("unsynced_parent_dir", d, Some("new.dat")),
            fid("unsynced_parent_dir", d, Some("sub")),
        ]);
    }
}
