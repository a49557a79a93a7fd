//! A filesystem whose fsync fails (failfs): fsync_error and fsync_retry_after_error.
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::support::*;

// ------------------------------------------------------------------------------------------------
// fsync errors (failfs)
// ------------------------------------------------------------------------------------------------

/// failfs (tests/fixtures/failfs.c) built and mounted in a temp dir; unmounted on drop.
pub(super) struct FailFs {
    pub(super) mnt: String,
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
    pub(super) fn mount() -> FailFs {
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
