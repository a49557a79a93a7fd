//! Changes that write no data (ftruncate, truncate(2) by path, fallocate in every mode): a sync
//! after one is needed (never `redundant_sync`), and one left unsynced is an `unsynced_write`
//! with 0 bytes that names the change. The table's scenarios (`truncate.rs` in the workload)
//! with the exact calls counted per file.
use serde_json::Value;

use super::support::*;

/// (kind, path, count) of every advice finding, sorted.
fn advice(r: &Report) -> Vec<(String, String, u64)> {
    let mut v: Vec<_> = r.0["advice"]
        .as_array()
        .expect("advice array")
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap_or("?").to_string(),
                a["path"].as_str().unwrap_or("?").to_string(),
                Report::u64_at(a, "count"),
            )
        })
        .collect();
    v.sort();
    v
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The unsynced change of `path` as the finding, the file row and the timeline show it.
fn assert_unsynced_change(r: &Report, path: &str, message: &str, change: &str) {
    r.assert_unsynced_write(path, 0, 0);
    let f = r.finding("unsynced_write", path);
    let m = f["message"].as_str().unwrap_or("");
    assert!(m.contains(message), "{m}");
    assert_eq!(f["op"], change, "{f}");
    assert!(
        f["stack"].as_array().is_some_and(|s| !s.is_empty()),
        "the change's call site: {f}"
    );
    assert_eq!(strs(&r.file(path)["unsynced_changes"]), [change]);
    let lane = r.0["timeline"]["files"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["path"] == path))
        .unwrap_or_else(|| panic!("no timeline lane for {path}:\n{}", r.pretty()));
    let last = lane["dirty"]
        .as_array()
        .and_then(|d| d.last())
        .expect("a dirty interval");
    assert_eq!(last["durable_s"], Value::Null, "{last}");
    assert_eq!(strs(&last["changes"]), [change], "{last}");
    assert_eq!(last["bytes"], 0, "{last}");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn a_sync_after_ftruncate_is_needed_and_the_next_one_is_redundant() {
    let (_g, d, r) = table_scenario("truncate-sync");
    let f = format!("{d}/t.dat");
    r.assert_file(
        &f,
        "file",
        &[("truncates", 1), ("fallocates", 0), ("redundant_syncs", 1)],
    );
    r.assert_findings(&[]);
    assert_eq!(advice(&r), [("redundant_sync".into(), f.clone(), 1)]);
    assert!(r.file(&f).get("unsynced_changes").is_none(), "synced");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn an_unsynced_ftruncate_is_at_risk_with_zero_bytes() {
    let (_g, d, r) = table_scenario("truncate-unsynced");
    let f = format!("{d}/u.dat");
    r.assert_file(&f, "file", &[("truncates", 1), ("unsynced_bytes", 0)]);
    assert_unsynced_change(
        &r,
        &f,
        "was truncated to 50 bytes and never synced",
        "truncate",
    );
    assert_eq!(advice(&r), []);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn every_fallocate_mode_counts_and_makes_the_next_sync_needed() {
    let (_g, d, r) = table_scenario("fallocate");
    let f = format!("{d}/f.dat");
    r.assert_file(
        &f,
        "file",
        &[
            ("fallocates", 6),
            ("truncates", 0),
            ("fdatasyncs", 8),
            ("redundant_syncs", 1),
        ],
    );
    // Only the extra fdatasync at the end had nothing to make durable.
    assert_eq!(advice(&r), [("redundant_sync".into(), f, 1)]);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn truncate_by_path_is_found_by_name() {
    let (_g, d, r) = table_scenario("truncate-path");
    let (p, q) = (format!("{d}/p.dat"), format!("{d}/q.dat"));
    r.assert_file(&p, "file", &[("truncates", 1)]);
    r.assert_file(&q, "file", &[("truncates", 1), ("redundant_syncs", 0)]);
    assert_unsynced_change(
        &r,
        &p,
        "was truncated to 10 bytes and never synced",
        "truncate",
    );
    assert_eq!(advice(&r), []);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn an_unsynced_truncate_is_in_the_text_report() {
    let (_g, d) = tempdir();
    let out = run(
        std::process::Command::new(TRACER).args(["--", workload(), "truncate-unsynced", &d]),
        "fsync-trace",
    );
    let text = &out.stdout;
    assert!(
        text.contains("truncated to 50 bytes and never synced"),
        "{text}"
    );
    // The file's row names the change where its unsynced bytes are 0.
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{d}/u.dat")))
        .unwrap_or_else(|| panic!("no row for u.dat: {text}"));
    assert!(row.trim_end().ends_with("truncate"), "{row}");
}
