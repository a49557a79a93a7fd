//! Other durable (and not durable) points: O_DSYNC, reopen, lockstep fsync, sync_file_range, msync.
use std::process::{Command, Stdio};

use super::support::*;

// ------------------------------------------------------------------------------------------------
// Other durable (and not durable) points: O_DSYNC, sync_file_range, mmap
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn o_dsync_writes_are_durable() {
    // Counts and (no) findings: the shared table.
    let (_g, d, r) = table_scenario("osync");
    let f = format!("{d}/osync.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(&f, "file", &[("sync_writes", 3)]);
    r.assert_syncs(&[("fsync", 1, 0)]);
}

/// Open files and inodes freed and reallocated (often at the same kernel addresses) between
/// writes: each write is counted on its own file (the write path's per-CPU cache of the last
/// resolved file must not outlive a close).
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn writes_after_close_and_reopen_count_on_the_right_file() {
    // Counts (100 and 200 writes, each file synced) and no findings: the shared table.
    let (_g, d, r) = table_scenario("reopen");
    let a = format!("{d}/a.dat");
    let b = format!("{d}/b.dat");
    r.assert_paths(&[&d, &a, &b]);
}

/// `cargo xtask bench` judges fsync-bound on lockstep pairs: an untraced and a traced
/// `fsync-bound --lockstep` process taking turns through two FIFOs. The traced report must count
/// the records exactly and nothing of the turn-passing FIFO traffic on the log file.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn fsync_bound_lockstep_pair_is_traced_exactly() {
    let (_g, d) = tempdir();
    let (ud, td) = (format!("{d}/untraced"), format!("{d}/traced"));
    let (u2t, t2u) = (format!("{d}/u2t.fifo"), format!("{d}/t2u.fifo"));
    for dir in [&ud, &td] {
        std::fs::create_dir(dir).unwrap();
    }
    for f in [&u2t, &t2u] {
        let c = std::ffi::CString::new(f.as_str()).unwrap();
        // SAFETY: a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {f}");
    }
    let records = "40";
    let untraced = Command::new(workload())
        .args([
            "fsync-bound",
            &ud,
            "--records",
            records,
            "--lockstep",
            &t2u,
            &u2t,
        ])
        .args(["--lockstep-first", "--report-elapsed"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let args = os(&[
        "--",
        workload(),
        "fsync-bound",
        &td,
        "--records",
        records,
        "--lockstep",
        &u2t,
        &t2u,
        "--report-elapsed",
    ]);
    let (out, report) = trace(&args);
    let partner = wait_output(untraced, RUN_TIMEOUT, "untraced lockstep partner");
    assert_eq!(out.code, 0, "traced partner: {}", out.stderr);
    assert_eq!(partner.code, 0, "untraced partner: {}", partner.stderr);
    for (who, err) in [("traced", &out.stderr), ("untraced", &partner.stderr)] {
        let busy: u64 = err
            .lines()
            .find_map(|l| l.strip_prefix("elapsed_ns="))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{who}: no elapsed_ns line in {err:?}"));
        assert!(busy > 0, "{who}: no time in its own records");
    }
    let r = report.expect("a report");
    r.assert_complete();
    let wal = format!("{td}/wal.log");
    r.assert_file(
        &wal,
        "file",
        &[
            ("writes", 40),
            ("bytes_written", 40 * 4096),
            ("fdatasyncs", 40),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_syncs(&[("fdatasync", 40, 0)]);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn sync_file_range_is_not_durable() {
    let (_g, d, r) = scenario("sfr", &[]);
    let f = format!("{d}/sfr.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 4096),
            ("fsyncs", 0),
            ("unsynced_bytes", 4096),
        ],
    );
    r.assert_syncs(&[("fsync", 1, 0), ("sync_file_range", 1, 0)]);
    r.assert_findings(&[fid("unsynced_write", &f, None)]);
    r.assert_unsynced_write(&f, 1, 4096);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn mmap_stores_made_durable_by_msync() {
    // Counts and (no) findings: the shared table.
    let (_g, d, r) = table_scenario("mmap");
    let f = format!("{d}/mapped.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(&f, "file", &[("mapped_dirty_pages", 2)]);
    r.assert_syncs(&[("fsync", 1, 0), ("msync", 1, 0)]);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn mmap_stores_without_msync_are_unsynced() {
    let (_g, d, r) = scenario("mmap", &["--no-msync"]);
    let f = format!("{d}/mapped.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 0),
            ("mapped_dirty_pages", 2),
            ("unsynced_bytes", 8192),
        ],
    );
    r.assert_syncs(&[("fsync", 1, 0)]);
    r.assert_findings(&[fid("unsynced_write", &f, None)]);
    r.assert_unsynced_write(&f, 0, 8192);
    // Stores have no offset the kernel follows: the dirty extent is unknown (null), never a
    // made-up range.
    assert!(r.file(&f)["dirty_extent"].is_null(), "{}", r.pretty());
}
