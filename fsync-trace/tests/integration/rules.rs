//! Findings per durability rule: unsynced writes, unsynced directory entries, renames.
use std::collections::BTreeMap;

use super::support::*;

// ------------------------------------------------------------------------------------------------
// unsynced_write
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn unsynced_write_is_reported_with_exact_counts() {
    // Counts and findings: the shared table (5 writes, 500 bytes, all unsynced).
    let (_g, d, r) = table_scenario("unsynced");
    let f = format!("{d}/unsynced.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(&f, "file", &[("sync_writes", 0), ("mapped_dirty_pages", 0)]);
    r.assert_file(
        &d,
        "dir",
        &[("fsyncs", 1), ("writes", 0), ("unsynced_bytes", 0)],
    );
    r.assert_syncs(&[("fsync", 1, 0)]);
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
    // Counts and (no) findings: the shared table.
    let (_g, d, r) = table_scenario("good");
    let f = format!("{d}/good.dat");
    r.assert_paths(&[&d, &f]);
    r.assert_file(&d, "dir", &[("fsyncs", 1)]);
    r.assert_syncs(&[("fsync", 2, 0)]);
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
    // Counts and the two findings (hard.dat, soft.lnk): the shared table.
    let (_g, d, r) = table_scenario("link");
    let f = format!("{d}/orig.dat");
    r.assert_paths(&[&d, &f]);
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
    // Counts and findings (rename_before_fsync, unsynced_write): the shared table.
    let (_g, d, r) = table_scenario("rename-unsafe");
    let cfg = format!("{d}/config");
    r.assert_paths(&[&d, &cfg]);
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
