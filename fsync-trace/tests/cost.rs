//! Root integration tests of what durability costs (issue 14): the real tracer on workloads made
//! for it (one fdatasync per record, group commit, syncs with nothing to make durable) and on
//! SQLite (autocommit inserts against the same inserts in one transaction). Figures are exact:
//! writes and bytes each sync covered, redundant syncs, the advice reported; times are checked
//! for consistency (they vary with the disk).
//!
//! Run as root: `cargo test --release -p fsync-trace --test cost -- --include-ignored
//! --test-threads=1`. Needs python3 with sqlite3.
#![allow(clippy::zombie_processes)]

mod support;

use std::process::Command;

use serde_json::Value;
use support::*;

/// (syncs, p50, max) of a `writes_per_sync` / `bytes_per_sync` object.
fn per_sync(v: &Value, key: &str) -> (u64, u64, u64) {
    let o = &v[key];
    (
        Report::u64_at(o, "syncs"),
        Report::u64_at(o, "p50"),
        Report::u64_at(o, "max"),
    )
}

/// (kind, path, count, syncs) of every advice item, sorted.
fn advice(r: &Report) -> Vec<(String, String, u64, u64)> {
    let mut v: Vec<_> = r.0["advice"]
        .as_array()
        .expect("advice array")
        .iter()
        .map(|a| {
            assert!(a["message"].as_str().is_some_and(|m| !m.is_empty()), "{a}");
            assert!(a["fix"].as_str().is_some_and(|m| !m.is_empty()), "{a}");
            assert!(a["pid"].as_u64().is_some_and(|p| p > 0), "{a}");
            (
                a["kind"].as_str().unwrap().to_string(),
                a["path"].as_str().unwrap().to_string(),
                Report::u64_at(a, "count"),
                Report::u64_at(a, "syncs"),
            )
        })
        .collect();
    v.sort();
    v
}

fn adv(kind: &str, path: &str, count: u64) -> (String, String, u64, u64) {
    (kind.to_string(), path.to_string(), count, count)
}

/// The cost figures every synced file must satisfy whatever the disk: its sync time is at
/// least its fsync latencies' maximum and at most the process's; the serial ceiling is
/// 1 / median latency (to the µs the latencies are reported in).
fn assert_cost_consistent(r: &Report, path: &str) {
    let f = r.file(path);
    let time = Report::u64_at(f, "sync_time_us");
    let lat = &f["fsync_latency_us"];
    assert!(time >= Report::u64_at(lat, "max"), "{path}: {f}");
    let proc_time: u64 = r.0["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Report::u64_at(p, "sync_time_us"))
        .sum();
    assert!(time <= proc_time, "{path}: {time} > {proc_time}");
    let p50 = Report::u64_at(lat, "p50") as f64;
    if Report::u64_at(f, "max_syncs_in_flight") <= 1 && p50 > 0.0 {
        let c = f["serial_commit_ceiling_per_sec"]
            .as_f64()
            .expect("ceiling");
        assert!(
            c <= 1e6 / p50 + 0.1 && c >= 1e6 / (p50 + 1.0) - 0.1,
            "{path}: ceiling {c} for p50 {p50} µs"
        );
    }
    assert!(f["syncs_per_sec"].as_f64().is_some_and(|s| s > 0.0), "{f}");
}

#[test]
#[ignore = "needs root"]
fn one_fdatasync_per_record_is_sync_per_write_advice() {
    let n = 30;
    let (_g, d, r) = scenario("per-record-sync", &["--records", &n.to_string()]);
    let log = format!("{d}/log.dat");
    r.assert_paths(&[&d, &log]);
    r.assert_file(
        &log,
        "file",
        &[
            ("writes", n),
            ("bytes_written", n * 100),
            ("fdatasyncs", n),
            ("fsyncs", 0),
            ("redundant_syncs", 0),
            ("max_syncs_in_flight", 1),
            ("unsynced_bytes", 0),
        ],
    );
    let f = r.file(&log);
    assert_eq!(per_sync(f, "writes_per_sync"), (n, 1, 1));
    assert_eq!(per_sync(f, "bytes_per_sync"), (n, 100, 100));
    assert_cost_consistent(&r, &log);
    // The directory fsync covered no write (it is a directory) and had work: the new entry.
    r.assert_file(&d, "dir", &[("fsyncs", 1), ("redundant_syncs", 0)]);
    assert_eq!(per_sync(r.file(&d), "writes_per_sync"), (1, 0, 0));
    r.assert_findings(&[]);
    assert_eq!(advice(&r), [adv("sync_per_write", &log, n)]);
    let a = &r.0["advice"][0];
    assert_eq!(a["sync_time_us"], f["sync_time_us"], "{a}");
    let msg = a["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "{n} syncs, a median of 1 write(s) and 100 bytes each"
        )),
        "{msg}"
    );
    assert!(
        a["fix"].as_str().unwrap().starts_with("group commit"),
        "{a}"
    );
    // The process: 31 syncs (30 fdatasync + 1 dir fsync), each covered 1 write but the last.
    let procs = r.0["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1);
    let p = &procs[0];
    assert_eq!(Report::u64_at(p, "syncs"), n + 1);
    assert_eq!(per_sync(p, "writes_per_sync"), (n + 1, 1, 1));
    assert_eq!(per_sync(p, "bytes_per_sync"), (n + 1, 100, 100));
    assert_eq!(Report::u64_at(p, "redundant_syncs"), 0);
    assert_eq!(Report::u64_at(p, "max_syncs_in_flight"), 1);
    let share = p["sync_time_share"].as_f64().unwrap();
    let wall = Report::u64_at(p, "wall_time_us") as f64;
    let expect = Report::u64_at(p, "sync_time_us") as f64 / wall;
    assert!(
        share > 0.0 && share <= 1.0 && (share - expect).abs() < 0.001,
        "{p}"
    );
    assert_eq!(p["threads"][0]["sync_time_share"], p["sync_time_share"]);
}

#[test]
#[ignore = "needs root"]
fn advice_fails_only_when_named_and_has_its_own_text_section() {
    let (_g, d) = tempdir();
    let args = |fail_on: &str| {
        Command::new(TRACER)
            .args([
                "--fail-on",
                fail_on,
                "--",
                workload(),
                "per-record-sync",
                &d,
            ])
            .output()
            .expect("fsync-trace runs")
    };
    let any = args("any");
    assert_eq!(
        any.status.code(),
        Some(0),
        "advice never fails --fail-on any"
    );
    let text = String::from_utf8_lossy(&any.stdout);
    assert!(text.contains("No durability findings."), "{text}");
    assert!(
        text.contains("Cost of durability (2 file(s) synced"),
        "{text}"
    );
    assert!(
        text.contains("1 advice item(s) on what durability costs (not durability bugs):"),
        "{text}"
    );
    assert!(text.contains("[sync_per_write]"), "{text}");
    let named = args("sync_per_write");
    assert_eq!(named.status.code(), Some(3), "named advice fails");
    assert_eq!(args("redundant_sync").status.code(), Some(0));
}

#[test]
#[ignore = "needs root"]
fn group_commit_is_not_advice() {
    let (_g, d, r) = scenario("batched-sync", &["--records", "320", "--batch", "16"]);
    let log = format!("{d}/log.dat");
    r.assert_paths(&[&d, &log]);
    r.assert_file(
        &log,
        "file",
        &[
            ("writes", 320),
            ("bytes_written", 32_000),
            ("fdatasyncs", 20),
            ("redundant_syncs", 0),
            ("max_syncs_in_flight", 1),
        ],
    );
    let f = r.file(&log);
    assert_eq!(per_sync(f, "writes_per_sync"), (20, 16, 16));
    assert_eq!(per_sync(f, "bytes_per_sync"), (20, 1600, 1600));
    assert_cost_consistent(&r, &log);
    r.assert_findings(&[]);
    assert_eq!(advice(&r), []);
}

#[test]
#[ignore = "needs root"]
fn syncs_with_nothing_to_make_durable_are_redundant() {
    let (_g, d, r) = scenario("double-fsync", &[]);
    let f = format!("{d}/d.dat");
    r.assert_paths(&[&d, &f]);
    // 3 writes | fsync | fsync (redundant) | fsync (redundant) | write | fsync | reopened
    // O_TRUNC | fsync (needed: the truncation).
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 4),
            ("bytes_written", 400),
            ("fsyncs", 5),
            ("redundant_syncs", 2),
        ],
    );
    assert_eq!(per_sync(r.file(&f), "writes_per_sync"), (5, 0, 3));
    assert_eq!(per_sync(r.file(&f), "bytes_per_sync"), (5, 0, 300));
    assert_cost_consistent(&r, &f);
    // The directory: synced twice with nothing changed in between.
    r.assert_file(&d, "dir", &[("fsyncs", 2), ("redundant_syncs", 1)]);
    r.assert_findings(&[]);
    assert_eq!(
        advice(&r),
        [adv("redundant_sync", &d, 1), adv("redundant_sync", &f, 2)]
    );
    let p = &r.0["processes"][0];
    assert_eq!(Report::u64_at(p, "redundant_syncs"), 3);
    assert_eq!(Report::u64_at(p, "syncs"), 7);
    // The advice's time is the redundant syncs' own, within the file's.
    for a in r.0["advice"].as_array().unwrap() {
        let t = Report::u64_at(a, "sync_time_us");
        let path = a["path"].as_str().unwrap();
        assert!(t <= Report::u64_at(r.file(path), "sync_time_us"), "{a}");
    }
}

// ------------------------------------------------------------------------------------------------
// SQLite: autocommit inserts against the same inserts in one transaction
// ------------------------------------------------------------------------------------------------

/// `setup` creates the database in WAL mode with one table (untraced); `autocommit` inserts N
/// rows one transaction each, `one` inserts them in one transaction; both with
/// `synchronous=FULL`, then close (which checkpoints and deletes -wal and -shm).
const SQLITE_APP: &str = r#"
import sqlite3, sys
path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = sqlite3.connect(path, isolation_level=None)
if mode == "setup":
    assert con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    con.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
else:
    con.execute("PRAGMA synchronous=FULL")
    if mode == "one":
        con.execute("BEGIN")
    for i in range(n):
        con.execute("INSERT INTO kv VALUES(?, ?)", (i, "v%04d" % i))
    if mode == "one":
        con.execute("COMMIT")
    assert con.execute("SELECT count(*) FROM kv").fetchone()[0] == n
con.close()
"#;

const SQLITE_ROWS: u64 = 30;

fn sqlite_run(mode: &str) -> (TempDir, String, Report) {
    traced_sqlite_app(SQLITE_APP, mode, SQLITE_ROWS as usize)
}

// SQLite 3.40 (Debian 12) in WAL mode with synchronous=FULL (see integration.rs for the
// syscalls): the WAL gets a 32-byte header, fdatasynced; per commit a 24-byte frame header and
// one 4096-byte page (30 short rows fit in the table's root page), fdatasynced; at close the
// checkpoint fdatasyncs the WAL again (nothing written since the last commit's sync:
// redundant), copies the page into app.db and fdatasyncs it.

#[test]
#[ignore = "needs root"]
fn sqlite_autocommit_inserts_are_sync_per_write() {
    let (_g, d, r) = sqlite_run("autocommit");
    let n = SQLITE_ROWS;
    let (db, wal) = (format!("{d}/app.db"), format!("{d}/app.db-wal"));
    // Header sync, one per commit, the checkpoint's.
    r.assert_file(
        &wal,
        "file",
        &[
            ("writes", 1 + 2 * n),
            ("bytes_written", 32 + n * 4120),
            ("fdatasyncs", n + 2),
            ("redundant_syncs", 1),
            ("max_syncs_in_flight", 1),
        ],
    );
    let w = r.file(&wal);
    // Covered: 1 write (header), N x 2 writes (frame header + page), 0 (checkpoint).
    assert_eq!(per_sync(w, "writes_per_sync"), (n + 2, 2, 2));
    assert_eq!(per_sync(w, "bytes_per_sync"), (n + 2, 4120, 4120));
    assert_cost_consistent(&r, &wal);
    r.assert_file(&db, "file", &[("fdatasyncs", 1), ("redundant_syncs", 0)]);
    assert_eq!(per_sync(r.file(&db), "writes_per_sync"), (1, 1, 1));
    assert_eq!(
        advice(&r),
        [
            adv("redundant_sync", &wal, 1),
            ("sync_per_write".to_string(), wal.clone(), n + 2, n + 2),
        ]
    );
    // The durability findings are the ones integration.rs explains (the unlinks at close).
    r.assert_findings(&[
        fid("unsynced_parent_dir", &d, Some("app.db-shm")),
        fid("unsynced_parent_dir", &d, Some("app.db-wal")),
    ]);
}

#[test]
#[ignore = "needs root"]
fn sqlite_one_transaction_is_not_sync_per_write() {
    let (_g, d, r) = sqlite_run("one");
    let (db, wal) = (format!("{d}/app.db"), format!("{d}/app.db-wal"));
    // Header sync, the one commit's, the checkpoint's.
    r.assert_file(
        &wal,
        "file",
        &[
            ("writes", 3),
            ("bytes_written", 32 + 4120),
            ("fdatasyncs", 3),
            ("redundant_syncs", 1),
        ],
    );
    let w = r.file(&wal);
    assert_eq!(per_sync(w, "writes_per_sync"), (3, 1, 2));
    assert_eq!(per_sync(w, "bytes_per_sync"), (3, 32, 4120));
    assert_cost_consistent(&r, &wal);
    r.assert_file(&db, "file", &[("fdatasyncs", 1)]);
    assert_eq!(advice(&r), [adv("redundant_sync", &wal, 1)]);
    r.assert_findings(&[
        fid("unsynced_parent_dir", &d, Some("app.db-shm")),
        fid("unsynced_parent_dir", &d, Some("app.db-wal")),
    ]);
}
