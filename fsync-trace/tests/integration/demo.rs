//! The demo: every kind of finding.
use std::collections::BTreeSet;

use super::failures::FailFs;

use super::support::*;

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
