//! The crash what-if on a real, scheduled workload (`exposure-schedule`, 4 phases of 500 ms):
//! `--crash-at` in the middle of each phase answers exactly the files, bytes and entries that
//! phase leaves at risk, the exposure peak is b.dat's 410600 bytes until its fdatasync returns,
//! and the timeline has every interval and entry change with its durable point. The `--html`
//! page of the same run, in headless Chromium, shows the same at the same instants.
use serde_json::Value;

use super::support::*;

/// (path, unsynced_bytes, writes) of each file at risk.
type Files = Vec<(String, u64, u64)>;
/// (dir, entry, op) of each entry at risk.
type Entries = Vec<(String, String, String)>;

/// The files and entries of a crash point.
fn crash_sets(p: &Value) -> (Files, Entries) {
    let files = p["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().expect("path").to_string(),
                Report::u64_at(f, "unsynced_bytes"),
                Report::u64_at(f, "writes"),
            )
        })
        .collect();
    let entries = p["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().expect(k).to_string();
            (s("dir"), s("entry"), s("op"))
        })
        .collect();
    (files, entries)
}

/// (path, dirty_extent) of each file of a crash point.
fn extents(p: &Value) -> Vec<(String, Value)> {
    p["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().expect("path").to_string(),
                f["dirty_extent"].clone(),
            )
        })
        .collect()
}

fn lane<'a>(r: &'a Report, kind: &str, path: &str) -> &'a Value {
    r.0["timeline"][kind]
        .as_array()
        .expect("timeline lanes")
        .iter()
        .find(|l| l["path"] == path)
        .unwrap_or_else(|| panic!("no {kind} lane {path}:\n{}", r.pretty()))
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn crash_at_and_the_exposure_peak_are_exact_on_a_scheduled_workload() {
    let (_g, d) = tempdir();
    let (out, r) = trace(&os(&[
        "--crash-at",
        "0.25,0.75,1.25",
        "--crash-at",
        "1.75",
        "--",
        workload(),
        "exposure-schedule",
        &d,
    ]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = r.expect("report");
    r.assert_complete();
    let p = |name: &str| format!("{d}/{name}");
    let crash = r.0["crash_at"].as_array().expect("crash_at");
    let offsets: Vec<f64> = crash
        .iter()
        .map(|c| c["offset_s"].as_f64().unwrap())
        .collect();
    assert_eq!(offsets, vec![0.25, 0.75, 1.25, 1.75], "{}", r.pretty());
    for c in crash {
        let taken = c["taken_s"].as_f64().expect("taken_s");
        let asked = c["offset_s"].as_f64().unwrap();
        assert!(
            (asked..asked + 0.1).contains(&taken),
            "snapshot for {asked} taken at {taken}"
        );
        assert_eq!(c["exact_bytes"], true);
    }
    let entry = |e: &str, op: &str| (d.clone(), e.to_string(), op.to_string());
    assert_eq!(
        crash_sets(&crash[0]),
        (
            vec![(p("a.dat"), 12288, 3), (p("b.dat"), 1000, 1)],
            vec![entry("a.dat", "create"), entry("b.dat", "create")]
        ),
        "{}",
        r.pretty()
    );
    assert_eq!(crash[0]["lost_bytes"], 13288);
    assert_eq!(
        extents(&crash[0]),
        vec![
            (p("a.dat"), serde_json::json!({"lo": 0, "hi": 12288})),
            (p("b.dat"), serde_json::json!({"lo": 0, "hi": 1000})),
        ]
    );
    assert_eq!(
        crash_sets(&crash[1]),
        (vec![(p("b.dat"), 1000, 1)], vec![]),
        "{}",
        r.pretty()
    );
    // 100 overwrites of one page: 409600 bytes written on top, but one page at risk.
    assert_eq!(
        crash_sets(&crash[2]),
        (vec![(p("b.dat"), 410600, 101)], vec![entry("c", "rename")]),
        "{}",
        r.pretty()
    );
    let one_page = vec![(p("b.dat"), serde_json::json!({"lo": 0, "hi": 4096}))];
    assert_eq!(extents(&crash[2]), one_page);
    assert_eq!(crash_sets(&crash[3]), (vec![], vec![]), "{}", r.pretty());
    assert_eq!(crash[3]["lost_bytes"], 0);

    // The worst moment: b.dat's data from its fdatasync's entry until it returns (phase 3).
    // It is first known at the --crash-at reading of 1.25 s (b.dat then had all its bytes).
    let peak = &r.0["exposure_peak"];
    let at = peak["offset_s"].as_f64().expect("peak offset");
    let taken = crash[2]["taken_s"].as_f64().unwrap();
    assert_eq!(at, taken, "{}", r.pretty());
    assert_eq!(peak["lost_bytes"], 410600);
    assert_eq!(peak["exact_bytes"], true);
    assert_eq!(
        crash_sets(peak),
        (vec![(p("b.dat"), 410600, 101)], vec![entry("c", "rename")])
    );
    assert_eq!(extents(peak), one_page);

    // The timeline: a.dat durable once, then 10 unsynced bytes; b.dat one interval, made
    // durable by the fdatasync the peak is at.
    let started = r.0["started"].as_str().expect("started");
    assert!(started.ends_with('Z') && started.len() == 27, "{started}");
    assert_eq!(r.0["timeline"]["cut_items"], 0);
    let a = lane(&r, "files", &p("a.dat"));
    let dirty = a["dirty"].as_array().unwrap();
    assert_eq!(dirty.len(), 2, "{a}");
    assert_eq!(
        (dirty[0]["writes"].as_u64(), dirty[0]["bytes"].as_u64()),
        (Some(3), Some(12288))
    );
    let durable = dirty[0]["durable_s"].as_f64().expect("a.dat made durable");
    assert!((0.5..0.75).contains(&durable), "{a}");
    assert_eq!(
        (dirty[1]["writes"].as_u64(), dirty[1]["bytes"].as_u64()),
        (Some(1), Some(10))
    );
    assert!(dirty[1]["durable_s"].is_null());
    // The append after a.dat's fsync: only it is at risk.
    assert_eq!(
        dirty[0]["dirty_extent"],
        serde_json::json!({"lo": 0, "hi": 12288})
    );
    assert_eq!(
        dirty[1]["dirty_extent"],
        serde_json::json!({"lo": 12288, "hi": 12298})
    );
    let b = lane(&r, "files", &p("b.dat"));
    let bd = b["dirty"].as_array().unwrap();
    assert_eq!(bd.len(), 1, "{b}");
    assert_eq!(bd[0]["bytes"], 410600);
    assert_eq!(
        bd[0]["dirty_extent"],
        serde_json::json!({"lo": 0, "hi": 4096})
    );
    let covered = bd[0]["covered_from_s"].as_f64().expect("covered");
    assert!((1.5..1.75).contains(&covered), "{b}");
    let syncs: Vec<&str> = b["syncs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["op"].as_str().unwrap())
        .collect();
    assert_eq!(syncs, vec!["fdatasync"]);
    let dir = lane(&r, "dirs", &d);
    let changes: Vec<(String, String, bool, bool)> = dir["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["entry"].as_str().unwrap().to_string(),
                e["op"].as_str().unwrap().to_string(),
                e["durable_s"].is_number(),
                e.get("cancelled_s").is_some(),
            )
        })
        .collect();
    let c =
        |e: &str, op: &str, durable, cancelled| (e.to_string(), op.to_string(), durable, cancelled);
    assert_eq!(
        changes,
        vec![
            c("a.dat", "create", true, false),
            c("b.dat", "create", true, false),
            c("c.tmp", "create", false, true),
            c("c.tmp", "rename (old name)", false, true),
            c("c", "rename", true, false),
        ],
        "{dir}"
    );
    assert_eq!(dir["syncs"].as_array().unwrap().len(), 2);
}

/// The crash points of `r` as the page test expects them: (instant, bytes, files, entries).
fn page_expectations(r: &Report) -> Value {
    let point = |c: &Value, t: &Value| {
        let (files, entries) = crash_sets(c);
        // The page shows each file's dirty extent as "lo..hi" ("" if unknown).
        let extent = |path: &str| {
            let e = &extents(c)
                .into_iter()
                .find(|x| x.0 == path)
                .expect("file")
                .1;
            e["lo"]
                .as_u64()
                .zip(e["hi"].as_u64())
                .map_or_else(String::new, |(lo, hi)| format!("{lo}..{hi}"))
        };
        serde_json::json!({
            "t": t,
            "bytes": c["lost_bytes"],
            "files": files.iter().map(|f| serde_json::json!([f.0, f.1, extent(&f.0)])).collect::<Vec<_>>(),
            "entries": entries.iter().map(|e| serde_json::json!([e.0, e.1, e.2])).collect::<Vec<_>>(),
        })
    };
    let crash: Vec<Value> = r.0["crash_at"]
        .as_array()
        .expect("crash_at")
        .iter()
        .map(|c| point(c, &c["taken_s"]))
        .collect();
    let peak = &r.0["exposure_peak"];
    serde_json::json!({
        "crash": crash,
        "peak": point(peak, &peak["offset_s"]),
        "filter": {"query": "b.dat", "lanes": 1},
        "max_load_ms": 5000,
    })
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn the_html_page_shows_the_crash_points_in_chromium() {
    let (_g, d) = tempdir();
    let (_o, out_dir) = tempdir();
    let page = format!("{out_dir}/page.html");
    let (out, r) = trace(&os(&[
        "--html",
        &page,
        "--crash-at",
        "0.25,0.75,1.25,1.75",
        "--",
        workload(),
        "exposure-schedule",
        &d,
    ]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = r.expect("report");
    r.assert_complete();
    let expect = format!("{out_dir}/expect.json");
    std::fs::write(&expect, page_expectations(&r).to_string()).unwrap();
    let web = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web");
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/html");
    std::fs::create_dir_all(shots).unwrap();
    let out = run(
        std::process::Command::new("node").current_dir(web).args([
            "page.test.mjs",
            &page,
            &expect,
            shots,
        ]),
        "node page.test.mjs (scripts/setup.sh installs chromium and playwright-core)",
    );
    assert_eq!(
        out.code, 0,
        "the page in Chromium: {}\n{}",
        out.stdout, out.stderr
    );
    let results: Value = serde_json::from_str(out.stdout.trim()).expect("results line");
    assert_eq!(results["failures"], serde_json::json!([]));
}
