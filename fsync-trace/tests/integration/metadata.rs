//! Metadata changes (chmod, chown, utimes, xattrs; the workload's `metadata.rs`): what the
//! scenario table cannot say. An unsynced metadata change alone is at risk (the file row's
//! `unsynced_changes`, the timeline) but is not a finding, in JSON and in the text report.
use serde_json::Value;

use super::support::*;

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn an_unsynced_chmod_is_listed_and_in_the_timeline_but_not_a_finding() {
    let (_g, d, r) = table_scenario("chmod-unsynced");
    let f = format!("{d}/n.dat");
    r.assert_file(
        &f,
        "file",
        &[
            ("metadata_changes", 2),
            ("unsynced_bytes", 0),
            ("truncates", 0),
        ],
    );
    r.assert_findings(&[]);
    assert_eq!(strs(&r.file(&f)["unsynced_changes"]), ["metadata"]);
    let lane = r.0["timeline"]["files"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["path"] == f))
        .unwrap_or_else(|| panic!("no timeline lane for {f}:\n{}", r.pretty()));
    let last = lane["dirty"]
        .as_array()
        .and_then(|d| d.last())
        .expect("a dirty interval");
    assert_eq!(last["durable_s"], Value::Null, "{last}");
    assert_eq!(strs(&last["changes"]), ["metadata"], "{last}");
    assert_eq!(last["bytes"], 0, "{last}");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn an_unsynced_chmod_is_no_finding_in_the_text_report() {
    let (_g, d) = tempdir();
    let out = run(
        std::process::Command::new(TRACER).args(["--", workload(), "chmod-unsynced", &d]),
        "fsync-trace",
    );
    let text = &out.stdout;
    assert!(text.contains("No durability findings."), "{text}");
    // The file's row names the change where its unsynced bytes are 0.
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{d}/n.dat")))
        .unwrap_or_else(|| panic!("no row for n.dat: {text}"));
    assert!(row.trim_end().ends_with("metadata"), "{row}");
}

/// A file the program only chmods (coreutils `chmod`, by path) and never writes or syncs has a
/// row: its metadata change is at risk like any other unsynced change, and the power-cut
/// section already counts it.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn a_file_only_chmoded_has_its_row() {
    let (_g, d) = tempdir();
    let f = format!("{d}/only-chmod.dat");
    std::fs::write(&f, b"already durable\n").unwrap();
    std::fs::File::open(&f).unwrap().sync_all().unwrap();
    std::fs::File::open(&d).unwrap().sync_all().unwrap();
    let (out, r) = trace(&os(&["--", "chmod", "600", &f]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = r.expect("a report");
    r.assert_paths(&[&f]);
    r.assert_file(
        &f,
        "file",
        &[
            ("metadata_changes", 1),
            ("writes", 0),
            ("fsyncs", 0),
            ("unsynced_bytes", 0),
        ],
    );
    assert_eq!(strs(&r.file(&f)["unsynced_changes"]), ["metadata"]);
    r.assert_findings(&[]);
}
