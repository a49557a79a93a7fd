//! Names: link then unlink, one name of two removed.
use super::support::*;

// ------------------------------------------------------------------------------------------------
// Names: link, unlink, one name of two
// ------------------------------------------------------------------------------------------------

/// Git's loose objects: tmp written (no fsync), link(tmp, final), unlink(tmp), directory fsynced.
/// One file, named `final` and nothing else; its data is still at risk.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn link_then_unlink_keeps_the_file_under_its_new_name() {
    let (_g, d, r) = scenario("link-unlink", &[]);
    let (tmp, fin) = (format!("{d}/tmp"), format!("{d}/final"));
    r.assert_paths(&[&d, &fin]);
    r.assert_file(
        &fin,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 100),
            ("fsyncs", 0),
            ("unsynced_bytes", 100),
        ],
    );
    r.assert_removed(&fin, false);
    r.assert_file(&d, "dir", &[("fsyncs", 1)]);
    r.assert_syncs(&[("fsync", 1, 0)]);
    r.assert_findings(&[fid("unsynced_write", &fin, None)]);
    r.assert_unsynced_write(&fin, 1, 100);
    r.assert_names(&fin, &[&fin]);
    for f in r.files() {
        assert!(
            f["path"] != tmp.as_str() && !Report::names_of(f).contains(&tmp),
            "{tmp} is gone, but reported: {f}"
        );
    }
    r.assert_identity();
}

/// a written (no fsync), link a -> b, directory fsynced, unlink a, directory fsynced: the file
/// lives on as b (not removed: it still has a name) and its data is at risk.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn removing_one_of_two_names_keeps_the_file() {
    let (_g, d, r) = scenario("unlink-one-name", &[]);
    let (a, b) = (format!("{d}/a"), format!("{d}/b"));
    r.assert_paths(&[&d, &b]);
    r.assert_file(
        &b,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 100),
            ("fsyncs", 0),
            ("unsynced_bytes", 100),
        ],
    );
    r.assert_removed(&b, false);
    r.assert_file(&d, "dir", &[("fsyncs", 2)]);
    r.assert_syncs(&[("fsync", 2, 0)]);
    r.assert_findings(&[fid("unsynced_write", &b, None)]);
    r.assert_unsynced_write(&b, 1, 100);
    r.assert_names(&b, &[&b]);
    assert!(
        r.files().iter().all(|f| f["path"] != a.as_str()),
        "{a} is gone, but reported:\n{}",
        r.pretty()
    );
    r.assert_identity();
}
