//! Root integration tests: the real `fsync-trace` binary loads its eBPF programs into this kernel
//! and traces real workloads (`fsync-trace-workload` scenarios, SQLite, a python process adopted
//! with `-p`, a FUSE filesystem whose fsync fails). Every run must be complete (nothing lost) and
//! every report is checked for exact counts and the exact list of findings: a finding that is
//! missing or extra fails the test.
//!
//! Run as root: `cargo xtask integration` (one test at a time: each one attaches to the kernel).
//! Needs gcc, pkg-config, libfuse3-dev and fusermount3 (failfs), python3 with sqlite3, setpriv.
#![allow(clippy::zombie_processes)]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use support::*;

// ------------------------------------------------------------------------------------------------
// unsynced_write
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn unsynced_write_is_reported_with_exact_counts() {
    let (_g, d, r) = scenario("unsynced", &[]);
    let f = format!("{d}/unsynced.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 5),
            ("bytes_written", 500),
            ("fsyncs", 0),
            ("fdatasyncs", 0),
            ("unsynced_bytes", 500),
            ("sync_writes", 0),
            ("mapped_dirty_pages", 0),
        ],
    );
    r.assert_file(
        &d,
        "dir",
        &[("fsyncs", 1), ("writes", 0), ("unsynced_bytes", 0)],
    );
    r.assert_syncs(&[("fsync", 1, 0)]);
    r.assert_findings(&[fid("unsynced_write", &f, None)]);
    r.assert_unsynced_write(&f, 5, 500);
    let finding = r.finding("unsynced_write", &f);
    assert_eq!(finding["comm"], WORKLOAD_COMM);
    assert_eq!(r.processes().len(), 1);
    assert_eq!(finding["pid"].as_u64(), Some(r.processes()[0].0));
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn unsynced_write_counts_follow_the_workload() {
    // A different count, so a constant in the tool cannot pass by chance.
    let (_g, d, r) = scenario("unsynced", &["--writes", "17"]);
    let f = format!("{d}/unsynced.dat");
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 17),
            ("bytes_written", 1700),
            ("unsynced_bytes", 1700),
        ],
    );
    r.assert_findings(&[fid("unsynced_write", &f, None)]);
    r.assert_unsynced_write(&f, 17, 1700);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn good_program_has_no_findings() {
    let (_g, d, r) = scenario("good", &[]);
    let f = format!("{d}/good.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 3),
            ("bytes_written", 300),
            ("fsyncs", 1),
            ("fdatasyncs", 0),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_file(&d, "dir", &[("fsyncs", 1)]);
    r.assert_syncs(&[("fsync", 2, 0)]);
    r.assert_findings(&[]);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn fsync_through_another_fd_counts() {
    let (_g, d, r) = scenario("sync-other-fd", &[]);
    let f = format!("{d}/other.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 4),
            ("bytes_written", 40),
            ("fsyncs", 1),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_syncs(&[("fsync", 2, 0)]);
    r.assert_findings(&[]);
}

// ------------------------------------------------------------------------------------------------
// unsynced_parent_dir
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn created_file_without_dir_fsync() {
    let (_g, d, r) = scenario("no-dirsync", &[]);
    let f = format!("{d}/nodir.dat");
    r.assert_paths(&[&f]);
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 10),
            ("fsyncs", 1),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_syncs(&[("fsync", 1, 0)]);
    r.assert_findings(&[fid("unsynced_parent_dir", &d, Some("nodir.dat"))]);
    let finding = r.finding("unsynced_parent_dir", &d);
    assert_eq!(finding["op"], "create");
    assert_eq!(finding["count"], 1);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn mkdir_without_parent_fsync() {
    let (_g, d, r) = scenario("mkdir", &[]);
    let sub = format!("{d}/sub");
    let f = format!("{sub}/f.dat");
    r.assert_paths(&[&sub, &f]);
    r.assert_file(&sub, "dir", &[("fsyncs", 1)]);
    r.assert_file(
        &f,
        "file",
        &[("writes", 1), ("fsyncs", 1), ("unsynced_bytes", 0)],
    );
    // Only "sub" in the parent: f.dat's entry is covered by the fsync of sub.
    r.assert_findings(&[fid("unsynced_parent_dir", &d, Some("sub"))]);
    assert_eq!(r.finding("unsynced_parent_dir", &d)["op"], "mkdir");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn unlink_without_dir_fsync() {
    let (_g, d, r) = scenario("unlink", &[]);
    let f = format!("{d}/gone.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(
        &f,
        "file",
        &[("writes", 1), ("fsyncs", 1), ("unsynced_bytes", 0)],
    );
    r.assert_removed(&f, true);
    r.assert_findings(&[fid("unsynced_parent_dir", &d, Some("gone.dat"))]);
    assert_eq!(r.finding("unsynced_parent_dir", &d)["op"], "unlink");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn hard_and_symbolic_links_without_dir_fsync() {
    let (_g, d, r) = scenario("link", &[]);
    let f = format!("{d}/orig.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(
        &f,
        "file",
        &[("writes", 1), ("fsyncs", 1), ("unsynced_bytes", 0)],
    );
    r.assert_findings(&[
        fid("unsynced_parent_dir", &d, Some("hard.dat")),
        fid("unsynced_parent_dir", &d, Some("soft.lnk")),
    ]);
    let ops: BTreeMap<String, String> = r
        .findings_json()
        .iter()
        .map(|f| {
            (
                f["entry"].as_str().unwrap().to_string(),
                f["op"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ops["hard.dat"], "link");
    assert_eq!(ops["soft.lnk"], "symlink");
}

// ------------------------------------------------------------------------------------------------
// rename_before_fsync
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn rename_before_fsync_is_reported() {
    let (_g, d, r) = scenario("rename-unsafe", &[]);
    let cfg = format!("{d}/config");
    r.assert_paths(&[&d, &cfg]);
    r.assert_file(
        &cfg,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 64),
            ("fsyncs", 0),
            ("unsynced_bytes", 64),
        ],
    );
    r.assert_findings(&[
        fid("rename_before_fsync", &cfg, None),
        fid("unsynced_write", &cfg, None),
    ]);
    assert_eq!(
        r.finding("rename_before_fsync", &cfg)["source"],
        format!("{d}/config.tmp")
    );
    r.assert_unsynced_write(&cfg, 1, 64);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn rename_after_fsync_is_safe() {
    let (_g, d, r) = scenario("rename-safe", &[]);
    let safe = format!("{d}/safe");
    r.assert_paths(&[&d, &safe]);
    r.assert_file(
        &safe,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 64),
            ("fsyncs", 1),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_syncs(&[("fsync", 2, 0)]);
    r.assert_findings(&[]);
}

// ------------------------------------------------------------------------------------------------
// Other durable (and not durable) points: O_DSYNC, sync_file_range, mmap
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn o_dsync_writes_are_durable() {
    let (_g, d, r) = scenario("osync", &[]);
    let f = format!("{d}/osync.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 3),
            ("bytes_written", 150),
            ("sync_writes", 3),
            ("fsyncs", 0),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_syncs(&[("fsync", 1, 0)]);
    r.assert_findings(&[]);
}

/// Open files and inodes freed and reallocated (often at the same kernel addresses) between
/// writes: each write is counted on its own file (the write path's per-CPU cache of the last
/// resolved file must not outlive a close).
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn writes_after_close_and_reopen_count_on_the_right_file() {
    let (_g, d, r) = scenario("reopen", &[]);
    let a = format!("{d}/a.dat");
    let b = format!("{d}/b.dat");
    r.assert_paths(&[&d, &a, &b]);
    for (f, writes) in [(&a, 100), (&b, 200)] {
        r.assert_file(
            f,
            "file",
            &[
                ("writes", writes),
                ("bytes_written", writes * 10),
                ("fsyncs", 1),
                ("unsynced_bytes", 0),
            ],
        );
    }
    r.assert_findings(&[]);
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
    let untraced = Command::new(WORKLOAD)
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
        WORKLOAD,
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
    let (_g, d, r) = scenario("mmap", &[]);
    let f = format!("{d}/mapped.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 0),
            ("mapped_dirty_pages", 2),
            ("unsynced_bytes", 0),
            ("fsyncs", 0),
        ],
    );
    r.assert_syncs(&[("fsync", 1, 0), ("msync", 1, 0)]);
    r.assert_findings(&[]);
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
}

// ------------------------------------------------------------------------------------------------
// Processes and threads
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn forked_child_is_followed_and_blamed() {
    let (_g, d, r) = scenario("fork", &[]);
    let (parent, child) = (format!("{d}/parent.dat"), format!("{d}/child.dat"));
    r.assert_paths(&[&d, &parent, &child]);
    r.assert_file(
        &parent,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 10),
            ("fsyncs", 1),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_file(
        &child,
        "file",
        &[
            ("writes", 2),
            ("bytes_written", 20),
            ("fsyncs", 0),
            ("unsynced_bytes", 20),
        ],
    );
    r.assert_syncs(&[("fsync", 2, 0)]);
    r.assert_findings(&[fid("unsynced_write", &child, None)]);
    r.assert_unsynced_write(&child, 2, 20);
    let procs = r.processes();
    assert_eq!(procs.len(), 2, "processes: {procs:?}");
    // The command's parent is the tracer (it forked it); the child's is the command.
    let traced: Vec<u64> = procs.iter().map(|p| p.0).collect();
    let (ppid, pcomm, pparent) = procs
        .iter()
        .find(|p| !p.2.is_some_and(|parent| traced.contains(&parent)))
        .cloned()
        .expect("the command");
    let (cpid, ccomm, cparent) = procs
        .iter()
        .find(|p| p.0 != ppid)
        .cloned()
        .expect("the forked child");
    assert_eq!(pcomm.as_str(), WORKLOAD_COMM);
    assert!(pparent.is_some(), "the command has its parent (the tracer)");
    assert_eq!((ccomm.as_str(), cparent), (WORKLOAD_COMM, Some(ppid)));
    assert_ne!(cpid, ppid);
    let finding = r.finding("unsynced_write", &child);
    assert_eq!(finding["pid"].as_u64(), Some(cpid), "blamed on the child");
    assert_eq!(finding["comm"], WORKLOAD_COMM);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn threads_are_counted_exactly() {
    let (_g, d, r) = scenario("threads", &["--records", "1000"]);
    let (t0, t1) = (format!("{d}/thread0.dat"), format!("{d}/thread1.dat"));
    r.assert_paths(&[&d, &t0, &t1]);
    for t in [&t0, &t1] {
        r.assert_file(
            t,
            "file",
            &[
                ("writes", 1000),
                ("bytes_written", 64_000),
                ("fsyncs", 10),
                ("unsynced_bytes", 0),
            ],
        );
    }
    r.assert_syncs(&[("fsync", 21, 0)]);
    r.assert_findings(&[]);
    assert_eq!(r.processes().len(), 1, "threads are not processes");
}

// ------------------------------------------------------------------------------------------------
// fsync errors (failfs)
// ------------------------------------------------------------------------------------------------

/// failfs (tests/fixtures/failfs.c) built and mounted in a temp dir; unmounted on drop.
struct FailFs {
    mnt: String,
    child: Child,
    _dir: TempDir,
}

fn mounted(mnt: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(mnt))
}

impl FailFs {
    fn mount() -> FailFs {
        let (dir, d) = tempdir();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/failfs.c");
        let bin = format!("{d}/failfs");
        let flags = run(
            Command::new("pkg-config").args(["--cflags", "--libs", "fuse3"]),
            "pkg-config",
        );
        assert_eq!(
            flags.code, 0,
            "pkg-config fuse3 (libfuse3-dev installed?): {}",
            flags.stderr
        );
        let cc = run(
            Command::new("gcc")
                .args(["-O2", "-Wall", "-o", &bin])
                .arg(&src)
                .args(flags.stdout.split_whitespace()),
            "gcc failfs",
        );
        assert_eq!(cc.code, 0, "building failfs: {}", cc.stderr);
        let mnt = format!("{d}/mnt");
        std::fs::create_dir(&mnt).unwrap();
        let child = Command::new(&bin)
            .args(["-f", "-s", &mnt])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting failfs");
        let fs = FailFs {
            mnt,
            child,
            _dir: dir,
        };
        let start = Instant::now();
        while !mounted(&fs.mnt) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "failfs did not mount {}",
                fs.mnt
            );
            thread::sleep(Duration::from_millis(20));
        }
        fs
    }
}

impl Drop for FailFs {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Still up (busy mount?): detach lazily and stop the daemon.
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn fsync_error_is_reported() {
    let fs = FailFs::mount();
    let m = fs.mnt.clone();
    let r = scenario_in(&m, "fsync-error", &[]);
    let f = format!("{m}/fail-always.dat");
    r.assert_paths(&[&f]);
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 10),
            ("fsyncs", 1),
            ("unsynced_bytes", 10),
        ],
    );
    r.assert_syncs(&[("fsync", 1, 1)]);
    // The failed fsync made nothing durable: the write stays unsynced. failfs is a FUSE
    // filesystem, which can be durable, and the workload never fsyncs the mount's root after
    // creating the file: that entry is reported too.
    r.assert_findings(&[
        fid("fsync_error", &f, None),
        fid("unsynced_write", &f, None),
        fid("unsynced_parent_dir", &m, Some("fail-always.dat")),
    ]);
    let e = r.finding("fsync_error", &f);
    assert_eq!(e["errno"], 5, "EIO");
    assert_eq!(e["op"], "fsync");
    r.assert_unsynced_write(&f, 1, 10);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn fsync_retry_after_error_is_reported() {
    let fs = FailFs::mount();
    let m = fs.mnt.clone();
    let r = scenario_in(&m, "fsync-retry", &[]);
    let f = format!("{m}/fail-once.dat");
    r.assert_paths(&[&f]);
    r.assert_file(
        &f,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 10),
            ("fsyncs", 2),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_syncs(&[("fsync", 2, 1)]);
    // The retry "succeeded", so the file is not reported as never synced; the retry itself is
    // the finding (the data from before the failure may be gone).
    r.assert_findings(&[
        fid("fsync_retry_after_error", &f, None),
        fid("fsync_error", &f, None),
        fid("unsynced_parent_dir", &m, Some("fail-once.dat")),
    ]);
    for kind in ["fsync_error", "fsync_retry_after_error"] {
        let e = r.finding(kind, &f);
        assert_eq!(e["errno"], 5, "{kind}: EIO");
        assert_eq!(e["op"], "fsync", "{kind}");
    }
}

// ------------------------------------------------------------------------------------------------
// A real embedded database: SQLite (python3's sqlite3 module on the system libsqlite3)
// ------------------------------------------------------------------------------------------------

/// The application: `setup` creates the database in WAL mode with one table (untraced);
/// otherwise it opens it, sets `PRAGMA synchronous=<mode>`, commits N one-row transactions and
/// closes (which checkpoints and deletes -wal and -shm).
const SQLITE_APP: &str = r#"
import sqlite3, sys
path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = sqlite3.connect(path, isolation_level=None)
if mode == "setup":
    assert con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    con.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
else:
    con.execute("PRAGMA synchronous=" + mode)
    for i in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO kv VALUES(?, ?)", (i, "v%04d" % i))
        con.execute("COMMIT")
    assert con.execute("SELECT count(*) FROM kv").fetchone()[0] == n
con.close()
"#;

/// Runs the SQLite app traced with `synchronous=<mode>` and `n` transactions.
fn sqlite_run(mode: &str, n: usize) -> (TempDir, String, Report) {
    let (_sdir, sdir) = tempdir();
    let script = format!("{sdir}/app.py");
    std::fs::write(&script, SQLITE_APP).unwrap();
    let (g, d) = tempdir();
    let db = format!("{d}/app.db");
    let setup = run(
        Command::new(python()).args(["-I", "-B", &script, &db, "setup", "0"]),
        "sqlite setup",
    );
    assert_eq!(setup.code, 0, "sqlite setup: {}", setup.stderr);
    let n = n.to_string();
    let (out, r) = trace(&os(&["--", python(), "-I", "-B", &script, &db, mode, &n]));
    assert_eq!(out.code, 0, "traced sqlite app: {}", out.stderr);
    let r = r.expect("report");
    r.assert_complete();
    (g, d, r)
}

// What SQLite 3.40 (Debian 12) does for N one-row transactions on an existing WAL database
// (https://sqlite.org/wal.html, https://sqlite.org/pragma.html#pragma_synchronous, wal.c,
// os_unix.c), confirmed with `strace -f` of the same script:
//  - the WAL is created and written: a 32-byte header, then per commit a 24-byte frame header
//    and one 4096-byte page (each row fits the table's root page): 1 + 2N writes,
//    32 + N * 4120 bytes;
//  - -shm is created and sized with one 1-byte write at the end of each of its 8 pages
//    (32 KiB), then used through a shared mapping; it is never synced (by design);
//  - on close the last connection checkpoints (one page copied to app.db: 1 write of 4096)
//    and deletes -shm and -wal (no directory fsync after the deletes);
//  - synchronous=FULL: fdatasync (Debian builds with fdatasync) of the WAL after writing its
//    header, after each commit and before the checkpoint: N + 2; the first sync of the newly
//    created WAL also fsyncs its directory (UNIXFILE_DIRSYNC, with fdatasync): 1; app.db
//    after the checkpoint: 1. Total N + 4.
//  - synchronous=OFF: no sync at all.
const SQLITE_TXNS: u64 = 10;

fn sqlite_common(r: &Report, d: &str) -> (String, String, String) {
    let (db, wal, shm) = (
        format!("{d}/app.db"),
        format!("{d}/app.db-wal"),
        format!("{d}/app.db-shm"),
    );
    let n = SQLITE_TXNS;
    assert_eq!(
        r.processes()
            .iter()
            .map(|p| p.1.as_str())
            .collect::<Vec<_>>(),
        ["python3"]
    );
    r.assert_file(
        &wal,
        "file",
        &[
            ("writes", 1 + 2 * n),
            ("bytes_written", 32 + n * 4120),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_removed(&wal, true);
    r.assert_file(
        &shm,
        "file",
        &[
            ("writes", 8),
            ("bytes_written", 8),
            ("fsyncs", 0),
            ("fdatasyncs", 0),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_removed(&shm, true);
    r.assert_removed(&db, false);
    (db, wal, shm)
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn sqlite_wal_synchronous_full_is_durable() {
    let (_g, d, r) = sqlite_run("FULL", SQLITE_TXNS as usize);
    let (db, wal, shm) = sqlite_common(&r, &d);
    let n = SQLITE_TXNS;
    r.assert_paths(&[&d, &db, &wal, &shm]);
    r.assert_file(&wal, "file", &[("fsyncs", 0), ("fdatasyncs", n + 2)]);
    r.assert_file(
        &db,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 4096),
            ("fsyncs", 0),
            ("fdatasyncs", 1),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_file(&d, "dir", &[("fsyncs", 0), ("fdatasyncs", 1)]);
    r.assert_syncs(&[("fdatasync", n + 4, 0)]);
    // All data is durable. What is not: the deletion of -wal and -shm at close (their creation
    // was made durable by the directory sync at the first commit). SQLite accepts that: a -wal
    // that comes back after a crash only holds frames already checkpointed.
    r.assert_findings(&[
        fid("unsynced_parent_dir", &d, Some("app.db-shm")),
        fid("unsynced_parent_dir", &d, Some("app.db-wal")),
    ]);
    for f in r.findings_json() {
        assert_eq!(f["op"], "unlink", "{f}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn sqlite_wal_synchronous_off_is_not_durable() {
    let (_g, d, r) = sqlite_run("OFF", SQLITE_TXNS as usize);
    let (db, wal, shm) = sqlite_common(&r, &d);
    r.assert_paths(&[&db, &wal, &shm]);
    r.assert_file(&wal, "file", &[("fsyncs", 0), ("fdatasyncs", 0)]);
    r.assert_file(
        &db,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 4096),
            ("fsyncs", 0),
            ("fdatasyncs", 0),
            ("unsynced_bytes", 4096),
        ],
    );
    r.assert_syncs(&[]);
    // The committed rows reached app.db through the checkpoint and were never synced; the WAL
    // that held them is gone. -wal and -shm were created and deleted with no directory sync in
    // between: the directory's durable state never changed.
    r.assert_findings(&[fid("unsynced_write", &db, None)]);
    r.assert_unsynced_write(&db, 1, 4096);
}

// ------------------------------------------------------------------------------------------------
// -p PID: adopting a running process
// ------------------------------------------------------------------------------------------------

/// The writer's file after `-p`: 3 writes before the trace (not counted), then "wwwsww":
/// 5 writes, one fsync, the last 2 writes unsynced.
fn assert_writer_report(r: &Report, file: &str, pid: u32) {
    r.assert_paths(&[file]);
    r.assert_file(
        file,
        "file",
        &[
            ("writes", 5),
            ("bytes_written", 500),
            ("fsyncs", 1),
            ("unsynced_bytes", 200),
        ],
    );
    r.assert_syncs(&[("fsync", 1, 0)]);
    r.assert_findings(&[fid("unsynced_write", file, None)]);
    r.assert_unsynced_write(file, 2, 200);
    r.assert_adopted_process(pid, "python3");
    assert_eq!(
        r.finding("unsynced_write", file)["pid"].as_u64(),
        Some(pid as u64)
    );
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn pid_mode_sigint_reports_and_detaches() {
    let (_g, d) = tempdir();
    let file = format!("{d}/log.dat");
    let mut w = Writer::start(&file);
    w.send("www"); // before the trace: not counted
    let report = format!("{d}.report.json");
    let _rm = RemoveOnDrop(report.clone());
    let pid = w.pid().to_string();
    let mut tracer = spawn_tracer(&["-p", &pid], &report);
    let objs = wait_until_tracing(&mut tracer, w.pid());
    w.send("wwwsww");
    // SAFETY: plain syscall to our child.
    assert_eq!(unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) }, 0);
    let out = wait_output(
        tracer,
        Duration::from_secs(20),
        "fsync-trace -p after SIGINT",
    );
    assert_eq!(
        out.code, 0,
        "exit status after SIGINT; stderr: {}",
        out.stderr
    );
    assert_bpf_released(&objs);
    let r = read_report(&report);
    assert_writer_report(&r, &file, w.pid());
    // The target never noticed: it keeps running, untraced.
    assert!(w.alive(), "the traced process must survive the tracer");
    w.send("w");
    w.quit();
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn pid_mode_duration_stops_and_reports() {
    let (_g, d) = tempdir();
    let file = format!("{d}/log.dat");
    let mut w = Writer::start(&file);
    w.send("www");
    let report = format!("{d}.report.json");
    let _rm = RemoveOnDrop(report.clone());
    let pid = w.pid().to_string();
    let started = Instant::now();
    let mut tracer = spawn_tracer(&["-p", &pid, "--duration", "2"], &report);
    let objs = wait_until_tracing(&mut tracer, w.pid());
    w.send("wwwsww");
    let out = wait_output(
        tracer,
        Duration::from_secs(30),
        "fsync-trace -p --duration 2",
    );
    let took = started.elapsed();
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(12),
        "--duration 2 took {took:?}"
    );
    assert_bpf_released(&objs);
    assert_writer_report(&read_report(&report), &file, w.pid());
    assert!(w.alive(), "the traced process must survive the tracer");
    w.quit();
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn pid_mode_target_exit_ends_the_trace() {
    let (_g, d) = tempdir();
    let file = format!("{d}/log.dat");
    let mut w = Writer::start(&file);
    w.send("www");
    let report = format!("{d}.report.json");
    let _rm = RemoveOnDrop(report.clone());
    let pid = w.pid().to_string();
    // A long duration: only the target's exit can end this trace in time.
    let mut tracer = spawn_tracer(&["-p", &pid, "--duration", "300"], &report);
    let objs = wait_until_tracing(&mut tracer, w.pid());
    w.send("wwwsww");
    let exited = Instant::now();
    w.quit();
    let out = wait_output(
        tracer,
        Duration::from_secs(20),
        "fsync-trace -p after the target exited",
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(
        exited.elapsed() < Duration::from_secs(10),
        "took {:?} to notice the exit",
        exited.elapsed()
    );
    assert_bpf_released(&objs);
    assert_writer_report(&read_report(&report), &file, w.pid());
}

// ------------------------------------------------------------------------------------------------
// Bad input and exit status
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn not_root_is_one_clear_sentence() {
    // The binary where user nobody can run it, and a directory nobody could write a marker to
    // (so the marker's absence means the command did not run, not that it failed).
    let (_g, d) = tempdir();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = format!("{d}/fsync-trace");
    std::fs::copy(TRACER, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = format!("{d}/marker");
    let out = run(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                &bin,
                "--",
                "sh",
                "-c",
            ])
            .arg(format!("touch {marker}")),
        "fsync-trace as nobody",
    );
    assert_eq!(out.code, 1, "stderr: {}", out.stderr);
    assert_eq!(
        out.stderr,
        "fsync-trace: fsync-trace must run as root (it loads eBPF programs into the kernel): try `sudo fsync-trace ...`\n"
    );
    assert!(out.stdout.is_empty());
    assert!(!Path::new(&marker).exists(), "the command must not run");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn nonexistent_pid_is_an_error() {
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = (1..pid_max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let (out, report) = trace(&os(&["-p", &pid.to_string()]));
    assert_eq!(out.code, 1, "stderr: {}", out.stderr);
    assert_eq!(out.stderr, format!("fsync-trace: no such process: {pid}\n"));
    assert!(report.is_none(), "no report for a failed start");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn command_not_found_exits_127() {
    let (out, report) = trace(&os(&["--", "fsync-trace-no-such-command"]));
    assert_eq!(out.code, 127, "stderr: {}", out.stderr);
    assert_eq!(
        out.stderr,
        "fsync-trace: fsync-trace-no-such-command: command not found\n"
    );
    assert!(report.is_none(), "no report for a command that never ran");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn unwritable_output_fails_before_tracing() {
    let (_g, d) = tempdir();
    let marker = format!("{d}/marker");
    for output in ["/proc/nope/x".to_string(), d.clone()] {
        let out = run(
            Command::new(TRACER)
                .args(["--json", "-o", &output, "--", "sh", "-c"])
                .arg(format!("touch {marker}")),
            "fsync-trace -o unwritable",
        );
        assert_eq!(out.code, 1, "-o {output}: stderr: {}", out.stderr);
        let prefix = format!("fsync-trace: cannot write the report to {output}: ");
        assert!(
            out.stderr.starts_with(&prefix) && out.stderr.lines().count() == 1,
            "-o {output}: {}",
            out.stderr
        );
        assert!(
            !Path::new(&marker).exists(),
            "-o {output}: the command must not have run"
        );
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn exit_status_and_fail_on() {
    // Found: 3, and the report is still written.
    let (_g, d) = tempdir();
    let (out, r) = trace(&os(&[
        "--fail-on",
        "unsynced_write",
        "--",
        WORKLOAD,
        "unsynced",
        &d,
    ]));
    assert_eq!(out.code, 3, "stderr: {}", out.stderr);
    let r = r.expect("report");
    r.assert_complete();
    r.assert_findings(&[fid("unsynced_write", &format!("{d}/unsynced.dat"), None)]);
    // Findings of other kinds only: the command's status.
    let (_g, d) = tempdir();
    let (out, r) = trace(&os(&[
        "--fail-on",
        "fsync_error,rename_before_fsync",
        "--",
        WORKLOAD,
        "unsynced",
        &d,
    ]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(
        r.expect("report").kinds(),
        BTreeSet::from(["unsynced_write".to_string()])
    );
    // No findings: the command's status.
    let (_g, d) = tempdir();
    let (out, _) = trace(&os(&["--fail-on", "any", "--", WORKLOAD, "good", &d]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    // The command's own non-zero status is passed through, with and without --fail-on.
    for extra in [&["--fail-on", "unsynced_write"][..], &[][..]] {
        let mut args = os(extra);
        args.extend(os(&["--", "sh", "-c", "exit 7"]));
        let (out, r) = trace(&args);
        assert_eq!(out.code, 7, "{extra:?}: stderr: {}", out.stderr);
        r.expect("report").assert_findings(&[]);
    }
}

// ------------------------------------------------------------------------------------------------
// The demo
// ------------------------------------------------------------------------------------------------

fn demo_findings(d: &str) -> Vec<FindingId> {
    let cfg = format!("{d}/config.json");
    vec![
        fid("rename_before_fsync", &cfg, None),
        fid("unsynced_write", &format!("{d}/data.db"), None),
        fid("unsynced_write", &cfg, None),
        fid("unsynced_parent_dir", d, Some("data.db")),
        fid("unsynced_parent_dir", d, Some("config.json")),
        fid("unsynced_parent_dir", d, Some("segment-0001.log")),
    ]
}

fn assert_demo_files(r: &Report, d: &str) {
    let cfg = format!("{d}/config.json");
    r.assert_file(
        &format!("{d}/wal.log"),
        "file",
        &[
            ("writes", 3),
            ("bytes_written", 384),
            ("fdatasyncs", 1),
            ("fsyncs", 0),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_file(
        &format!("{d}/data.db"),
        "file",
        &[
            ("writes", 4),
            ("bytes_written", 1024),
            ("fsyncs", 0),
            ("unsynced_bytes", 1024),
        ],
    );
    r.assert_file(
        &cfg,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 64),
            ("fsyncs", 0),
            ("unsynced_bytes", 64),
        ],
    );
    r.assert_file(
        &format!("{d}/segment-0001.log"),
        "file",
        &[
            ("writes", 2),
            ("bytes_written", 1024),
            ("fsyncs", 1),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_file(d, "dir", &[("fsyncs", 1)]);
    assert_eq!(
        r.finding("rename_before_fsync", &cfg)["source"],
        format!("{d}/config.json.tmp")
    );
    r.assert_unsynced_write(&format!("{d}/data.db"), 4, 1024);
    r.assert_unsynced_write(&cfg, 1, 64);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn demo_shows_every_kind_but_fsync_errors() {
    let (_g, d, r) = scenario("demo", &[]);
    assert_demo_files(&r, &d);
    r.assert_syncs(&[("fsync", 2, 0), ("fdatasync", 1, 0)]);
    r.assert_findings(&demo_findings(&d));
    let kinds: BTreeSet<String> = [
        "rename_before_fsync",
        "unsynced_write",
        "unsynced_parent_dir",
    ]
    .map(String::from)
    .into();
    assert_eq!(r.kinds(), kinds);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn demo_with_failfs_shows_all_five_kinds() {
    let fs = FailFs::mount();
    let m = fs.mnt.clone();
    let (_g, d) = tempdir();
    let r = scenario_in(&d, "demo", &["--fuse", &m]);
    assert_demo_files(&r, &d);
    let f = format!("{m}/fail-once.dat");
    r.assert_file(
        &f,
        "file",
        &[("writes", 1), ("fsyncs", 2), ("unsynced_bytes", 0)],
    );
    r.assert_syncs(&[("fsync", 4, 1), ("fdatasync", 1, 0)]);
    let mut want = demo_findings(&d);
    want.extend([
        fid("fsync_error", &f, None),
        fid("fsync_retry_after_error", &f, None),
        fid("unsynced_parent_dir", &m, Some("fail-once.dat")),
    ]);
    r.assert_findings(&want);
    let all: BTreeSet<String> = [
        "fsync_retry_after_error",
        "fsync_error",
        "rename_before_fsync",
        "unsynced_write",
        "unsynced_parent_dir",
    ]
    .map(String::from)
    .into();
    assert_eq!(r.kinds(), all);
}
