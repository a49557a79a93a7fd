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
