//! Root integration tests of "did the sync reach the device?" (issue 14): ext4 on a loop
//! device whose queue is set to `write back` (a volatile cache), mounted with barriers (every
//! fdatasync's journal commit flushes the cache: exact counts) and with `nobarrier` (no flush
//! at all: `sync_without_flush`). The loop device, its mount and its backing file in /var/tmp
//! are removed even when a test fails.
//!
//! Run as root: `cargo test --release -p fsync-trace --test device -- --include-ignored
//! --test-threads=1`. Needs losetup and mkfs.ext4 (`scripts/setup.sh`).
mod support;

use std::{path::Path, process::Command};

use support::*;

/// A loop device with ext4 mounted on a temp dir; torn down on drop.
struct LoopFs {
    dev: String,
    mnt: String,
    _guard: TempDir,
    mounted: bool,
}

fn sh(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl LoopFs {
    /// 64 MiB of ext4 (inode tables and journal initialised at mkfs, so no lazy-init thread
    /// writes during the test) with `opts`, on a loop device reporting a write-back cache.
    fn new(opts: &str) -> Self {
        let (guard, dir) = tempdir();
        let img = format!("{dir}/disk.img");
        sh(
            Command::new("truncate").args(["-s", "64M", &img]),
            "truncate",
        );
        let dev = sh(
            Command::new("losetup").args(["--find", "--show", &img]),
            "losetup",
        );
        let mut fs = LoopFs {
            dev,
            mnt: format!("{dir}/mnt"),
            _guard: guard,
            mounted: false,
        };
        let queue = format!("/sys/block/{}/queue", fs.name());
        std::fs::write(format!("{queue}/write_cache"), "write back").expect("write_cache");
        sh(
            Command::new("mkfs.ext4").args([
                "-q",
                "-F",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
                &fs.dev,
            ]),
            "mkfs.ext4",
        );
        std::fs::create_dir(&fs.mnt).expect("mount point");
        sh(
            Command::new("mount").args(["-o", opts, &fs.dev, &fs.mnt]),
            "mount",
        );
        fs.mounted = true;
        fs
    }

    /// `loop3`.
    fn name(&self) -> &str {
        Path::new(&self.dev).file_name().unwrap().to_str().unwrap()
    }

    /// True if the device takes FUA writes (then a commit needs one flush, not two).
    fn fua(&self) -> bool {
        std::fs::read_to_string(format!("/sys/block/{}/queue/fua", self.name()))
            .is_ok_and(|s| s.trim() == "1")
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.mnt).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// The `devices` row of the loop device.
fn device<'a>(r: &'a Report, fs: &LoopFs) -> &'a Value {
    r.0["devices"]
        .as_array()
        .expect("devices array")
        .iter()
        .find(|d| d["name"] == fs.name())
        .unwrap_or_else(|| panic!("no row for {}: {}", fs.name(), r.pretty()))
}

#[test]
#[ignore = "needs root"]
fn with_barriers_every_fdatasync_flushes_the_device_cache() {
    let fs = LoopFs::new("rw");
    let n = 20;
    let dir = format!("{}/d", fs.mnt);
    std::fs::create_dir(&dir).unwrap();
    let r = scenario_in(&dir, "per-record-sync", &["--records", &n.to_string()]);
    let log = format!("{dir}/log.dat");
    // Each 100-byte append grows the file: its fdatasync commits the journal, whose commit
    // block is written PREFLUSH|FUA: a flush before it and, on a device without FUA (loop), a
    // flush after it (2 per sync; 1 plus a FUA write otherwise).
    let per_commit = if fs.fua() { (1, 1) } else { (2, 0) };
    let f = r.file(&log);
    assert_eq!(
        (
            Report::u64_at(f, "fdatasyncs"),
            Report::u64_at(f, "device_flushes"),
            Report::u64_at(f, "syncs_without_flush")
        ),
        (n, n * (per_commit.0 + per_commit.1), 0),
        "{f}"
    );
    let d = device(&r, &fs);
    assert_eq!(d["write_cache"], "write back", "{d}");
    // 20 fdatasyncs and the directory's fsync: the entry was committed with the first
    // fdatasync, so the directory's sync may have nothing left to flush (not judged).
    assert_eq!(Report::u64_at(d, "syncs"), n + 1, "{d}");
    assert_eq!(Report::u64_at(d, "syncs_without_flush"), 0, "{d}");
    assert_eq!(
        Report::u64_at(d, "flushes_in_syncs"),
        n * (per_commit.0 + per_commit.1),
        "{d}"
    );
    assert!(
        Report::u64_at(d, "device_flushes") >= n * per_commit.0,
        "{d}"
    );
    assert!(Report::u64_at(d, "fua_writes") >= n * per_commit.1, "{d}");
    assert!(!r.kinds().contains("sync_without_flush"), "{}", r.pretty());
}

#[test]
#[ignore = "needs root"]
fn nobarrier_syncs_never_reach_the_device_and_are_reported() {
    let fs = LoopFs::new("nobarrier");
    let n = 20;
    let dir = format!("{}/d", fs.mnt);
    std::fs::create_dir(&dir).unwrap();
    let r = scenario_in(&dir, "per-record-sync", &["--records", &n.to_string()]);
    let log = format!("{dir}/log.dat");
    let f = r.file(&log);
    assert_eq!(
        (
            Report::u64_at(f, "device_flushes"),
            Report::u64_at(f, "syncs_without_flush")
        ),
        (0, n),
        "{f}"
    );
    let d = device(&r, &fs);
    assert_eq!(
        (
            Report::u64_at(d, "syncs"),
            Report::u64_at(d, "device_flushes"),
            Report::u64_at(d, "fua_writes"),
            Report::u64_at(d, "syncs_without_flush")
        ),
        (n + 1, 0, 0, n),
        "{d}"
    );
    let w = r.finding("sync_without_flush", &log);
    assert_eq!(Report::u64_at(w, "count"), n, "{w}");
    let msg = w["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "{n} of {} sync(s) on device {} (7:",
            n + 1,
            fs.name()
        )),
        "{msg}"
    );
    assert!(w["fix"].as_str().unwrap().contains("nobarrier"), "{w}");
}
