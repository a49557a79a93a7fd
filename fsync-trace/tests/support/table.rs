//! The shared scenario table (`fsync_trace_workload::scenarios`, also run by the VM suite on
//! every tier): a scenario run here must report exactly what the table says for this host's
//! tier. Tests add their own assertions on top of the returned report.
use fsync_trace_workload::{
    facts::{check_changes, check_expected, facts},
    scenarios::{Scenario, SCENARIOS},
};

use super::{os, tempdir, trace, workload, Report, TempDir};

/// The table's entry for `name`.
pub fn table_entry(name: &str) -> &'static Scenario {
    SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("scenario {name} is not in the shared table"))
}

/// Every way `report` (a run of `sc` in `dir`) differs from the table, one message each.
pub fn table_mismatches(sc: &Scenario, dir: &str, report: &Report) -> Vec<String> {
    let tier = report.0["tier"].as_str().unwrap_or("?");
    let Some(expected) = sc.expected_on(tier) else {
        return Vec::new();
    };
    let f = facts(&report.0, dir);
    check_expected(expected, &f)
        .into_iter()
        .chain(check_changes(sc.name, &f))
        .map(|m| format!("{}/{tier}: {m}", sc.name))
        .collect()
}

/// Runs `sc` as the VM suite does (its arguments, `--wal` if it has one) in a fresh directory:
/// (guard, dir, report).
pub fn run_table_scenario(sc: &Scenario) -> (TempDir, String, Report) {
    let (g, d) = tempdir();
    // The table checks extents: on, as the VM suite runs it.
    let mut args = os(&["--dirty-extent"]);
    if let Some(glob) = sc.wal_glob() {
        args.extend(os(&["--wal", glob]));
    }
    args.extend(os(&["--", workload(), sc.name, &d]));
    args.extend(os(sc.args));
    let (out, report) = trace(&args);
    assert_eq!(out.code, 0, "fsync-trace on {}: {}", sc.name, out.stderr);
    let r = report.unwrap_or_else(|| panic!("no report for {}: {}", sc.name, out.stderr));
    r.assert_complete();
    (g, d, r)
}

/// Runs the table's scenario `name` and checks the table's counts and findings:
/// (guard, dir, report).
pub fn table_scenario(name: &str) -> (TempDir, String, Report) {
    let sc = table_entry(name);
    let (g, d, r) = run_table_scenario(sc);
    let wrong = table_mismatches(sc, &d, &r);
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", r.pretty());
    (g, d, r)
}
