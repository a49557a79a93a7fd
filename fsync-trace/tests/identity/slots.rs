//! `--all` with a kernel file table far smaller than the number of files written.
use std::{collections::BTreeSet, process::Command, time::Duration};

use super::support::*;

// ------------------------------------------------------------------------------------------------
// --all with a small kernel file table
// ------------------------------------------------------------------------------------------------

/// `--all --file-slots 1024` while an untraced workload writes and fsyncs 3000 files, unlinks
/// them, fsyncs the directory, then writes 500 new files once and never syncs them (and syncs
/// the directory again). Slots of the files that are gone must be reclaimed: nothing is lost,
/// and every new file is there with its unsynced write.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn all_mode_reclaims_slots_of_a_small_file_table() {
    const NEW: usize = 500;
    let (_g, d) = tempdir();
    let (_rg, rdir) = tempdir();
    let report = format!("{rdir}/report.json");
    let mut tracer = spawn_tracer(
        &[
            "--all",
            "--file-slots",
            "1024",
            "--duration",
            "120",
            "--group-over",
            "0",
        ],
        &report,
    );
    wait_until_attached(&mut tracer);
    let w = run(
        Command::new(workload()).args(["table-churn", &d, "--files", "3000", "--new", "500"]),
        "table-churn",
    );
    assert_eq!(w.code, 0, "table-churn: {}", w.stderr);
    // SAFETY: plain syscall to our child.
    assert_eq!(unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) }, 0);
    let out = wait_output(
        tracer,
        Duration::from_mins(1),
        "fsync-trace --all after SIGINT",
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = read_report(&report); // complete, nothing lost
    let count = |key: &str| {
        r.0[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no integer {key:?} at the top of the report"))
    };
    assert!(count("reclaimed_slots") > 0, "no slot was reclaimed");
    let _ = count("released_files");
    // Only what happened in the workload's directory: --all sees the whole machine.
    let prefix = format!("{d}/");
    let in_dir = |p: &str| p == d || p.starts_with(&prefix);
    let new: BTreeSet<String> = (0..NEW).map(|j| format!("{d}/n{j}.dat")).collect();
    let mut seen = BTreeSet::new();
    for f in r.files() {
        let p = f["path"].as_str().unwrap();
        if !new.contains(p) {
            continue;
        }
        assert!(seen.insert(p.to_string()), "{p} listed twice");
        let got = (
            f["writes"].as_u64(),
            f["bytes_written"].as_u64(),
            f["fsyncs"].as_u64(),
            f["unsynced_bytes"].as_u64(),
            f["removed"].as_bool(),
        );
        assert_eq!(
            got,
            (Some(1), Some(100), Some(0), Some(100), Some(false)),
            "(writes, bytes_written, fsyncs, unsynced_bytes, removed) of {p}: {f}"
        );
        assert_eq!(Report::names_of(f), vec![p.to_string()], "names of {p}");
    }
    let missing: Vec<&String> = new.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "{} of the {NEW} new files are not in the report, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let mut got: Vec<(String, String, Option<String>)> = Vec::new();
    for f in r.findings_json() {
        let p = f["path"].as_str().unwrap();
        if !in_dir(p) {
            continue;
        }
        got.push(fid(
            f["kind"].as_str().unwrap(),
            p,
            f.get("entry").and_then(Value::as_str),
        ));
        if f["kind"] == "unsynced_write" {
            assert_eq!(
                (f["unsynced_writes"].as_u64(), f["unsynced_bytes"].as_u64()),
                (Some(1), Some(100)),
                "{f}"
            );
        }
    }
    got.sort();
    let want: Vec<FindingId> = new.iter().map(|p| fid("unsynced_write", p, None)).collect();
    if got != want {
        let extra: Vec<_> = got.iter().filter(|f| !want.contains(f)).take(10).collect();
        let absent: Vec<_> = want.iter().filter(|f| !got.contains(f)).take(10).collect();
        panic!(
            "findings in {d}: {} (want {}); extra (first 10): {extra:?}; missing (first 10): \
             {absent:?}",
            got.len(),
            want.len()
        );
    }
}
