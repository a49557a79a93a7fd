//! The dirty extent on a real workload (`overwrite`, extent.rs of the workload): 1,000
//! overwrites of one 4 KiB page are 4,096,000 bytes written but one page at risk; O_APPEND
//! writes (one a pwrite, which Linux appends) cover 0..1050; a pwrite 1 GiB out after an fsync
//! and a writev at the file position leave 10..1 GiB + 20 at risk, not the synced 0..10. Checked
//! in a `--crash-at` point (the kernel's counters read while the workload sleeps), the exposure
//! peak, the final per-file rows, the timeline intervals and the text report.
use serde_json::{json, Value};

use super::support::*;

const GIB: u64 = 1 << 30;

/// (path, unsynced_bytes, dirty_extent) of each file of a crash point.
fn extents_of(p: &Value) -> Vec<(String, u64, Value)> {
    p["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().expect("path").to_string(),
                Report::u64_at(f, "unsynced_bytes"),
                f["dirty_extent"].clone(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn the_dirty_extent_tells_overwrites_from_new_data() {
    let (_g, d) = tempdir();
    let (out, r) = trace(&os(&[
        "--crash-at",
        "0.5",
        "--",
        workload(),
        "overwrite",
        &d,
        "--hold-ms",
        "1000",
    ]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = r.expect("report");
    r.assert_complete();
    let p = |name: &str| format!("{d}/{name}");
    let expected = vec![
        (p("overwrite.dat"), 4_096_000, json!({"lo": 0, "hi": 4096})),
        (p("append.log"), 1050, json!({"lo": 0, "hi": 1050})),
        (p("far.dat"), 30, json!({"lo": 10, "hi": GIB + 20})),
    ];
    let crash = &r.0["crash_at"][0];
    assert_eq!(crash["exact_bytes"], true);
    assert_eq!(extents_of(crash), expected, "{}", r.pretty());
    assert_eq!(crash["lost_bytes"], 4_096_000 + 1050 + 30);
    // Nothing changes after the writes: the peak is first reached at the snapshot.
    let peak = &r.0["exposure_peak"];
    assert_eq!(peak["offset_s"], crash["taken_s"], "{}", r.pretty());
    assert_eq!(extents_of(peak), expected, "{}", r.pretty());

    // The final per-file rows.
    for (path, bytes, extent) in &expected {
        let f = r.file(path);
        assert_eq!(Report::u64_at(f, "unsynced_bytes"), *bytes, "{f}");
        assert_eq!(&f["dirty_extent"], extent, "{f}");
    }
    r.assert_file(
        &p("overwrite.dat"),
        "file",
        &[("writes", 1000), ("bytes_written", 4_096_000)],
    );
    // The directory has nothing at risk: no extent.
    assert!(r.file(&d)["dirty_extent"].is_null());

    // The timeline: far.dat's synced interval is 0..10, its second one the far range.
    let lanes = r.0["timeline"]["files"].as_array().expect("file lanes");
    let far = lanes
        .iter()
        .find(|l| l["path"] == p("far.dat"))
        .expect("far.dat lane");
    let extents: Vec<&Value> = far["dirty"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["dirty_extent"])
        .collect();
    assert_eq!(
        extents,
        vec![
            &json!({"lo": 0, "hi": 10}),
            &json!({"lo": 10, "hi": GIB + 20})
        ],
        "{far}"
    );

    // The text report says both numbers.
    let again = format!("{d}/again");
    std::fs::create_dir(&again).expect("mkdir");
    let text = run(
        std::process::Command::new(TRACER).args([
            "--dirty-extent",
            "--",
            workload(),
            "overwrite",
            &again,
        ]),
        "fsync-trace (text report)",
    );
    assert_eq!(text.code, 0, "stderr: {}", text.stderr);
    for line in [
        format!("{again}/overwrite.dat: 3.9 MiB written, extent 4.0 KiB at 0..4096"),
        format!("{again}/append.log: 1.0 KiB written, extent 1.0 KiB at 0..1050"),
        format!(
            "{again}/far.dat: 30 B written, extent 1.0 GiB at 10..{}",
            GIB + 20
        ),
    ] {
        assert!(
            text.stdout.contains(&line),
            "no {line:?} in:\n{}",
            text.stdout
        );
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn no_dirty_extent_keeps_the_bytes_and_reports_no_extent() {
    let (_g, d) = tempdir();
    let (out, r) = trace(&os(&[
        "--no-dirty-extent",
        "--crash-at",
        "0.3",
        "--",
        workload(),
        "overwrite",
        &d,
        "--hold-ms",
        "600",
    ]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = r.expect("report");
    r.assert_complete();
    for (name, bytes) in [
        ("overwrite.dat", 4_096_000),
        ("append.log", 1050),
        ("far.dat", 30),
    ] {
        let f = r.file(&format!("{d}/{name}"));
        assert_eq!(Report::u64_at(f, "unsynced_bytes"), bytes, "{f}");
        assert!(f["dirty_extent"].is_null(), "{f}");
    }
    let crash = &r.0["crash_at"][0];
    assert_eq!(crash["lost_bytes"], 4_096_000 + 1050 + 30);
    assert!(
        extents_of(crash).iter().all(|(_, _, e)| e.is_null()),
        "{}",
        r.pretty()
    );
}

/// Without an output about what a power cut loses (or `--dirty-extent`), positions are not
/// kept: the same bytes, no extent (and the write path pays nothing for it).
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn a_plain_run_keeps_no_extent() {
    let (_g, d) = tempdir();
    let (out, r) = trace(&os(&["--", workload(), "overwrite", &d]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = r.expect("report");
    r.assert_complete();
    let f = r.file(&format!("{d}/overwrite.dat"));
    assert_eq!(Report::u64_at(f, "unsynced_bytes"), 4_096_000, "{f}");
    assert!(f["dirty_extent"].is_null(), "{f}");
    assert_eq!(r.0["dirty_extents"], false, "not traced");
    // The text says nothing of extents it did not trace (no "extent unknown" on every row).
    let (_g2, again) = tempdir();
    let text = run(
        std::process::Command::new(TRACER).args(["--", workload(), "overwrite", &again]),
        "fsync-trace (text report)",
    );
    assert_eq!(text.code, 0, "stderr: {}", text.stderr);
    assert!(
        text.stdout.contains("3.9 MiB  ")
            && !text.stdout.contains("extent unknown")
            && !text.stdout.contains("dirty extent")
            && !text.stdout.contains(", extent "),
        "{}",
        text.stdout
    );
}
