//! A JSON report reduced to the facts the scenario table speaks of (per-file counts, the set
//! of findings), with the scenario's directory written "W", and checked against an
//! [`Expected`]. The VM suite compares these across tiers; the integration tests check them on
//! this host.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::scenarios::{Counts, Expected, CHANGES, METADATA, REDUNDANT};

/// A finding as the table names it: (kind, path, entry).
pub type FindingFact = (String, String, Option<String>);

/// The facts compared across tiers, with the scenario's directory replaced by "W".
#[derive(Debug, PartialEq, Eq)]
pub struct Facts {
    /// Counts by normalized path.
    pub files: BTreeMap<String, Counts>,
    /// Every finding.
    pub findings: BTreeSet<FindingFact>,
    /// (truncates, fallocates) by normalized path, of files with any.
    pub changes: BTreeMap<String, (u64, u64)>,
    /// Redundant syncs (`redundant_sync` advice) by normalized path.
    pub redundant: BTreeMap<String, u64>,
    /// `dirty_extent` (lo, hi) by normalized path; None: null.
    pub extents: BTreeMap<String, Option<(u64, u64)>>,
    /// (`metadata_changes`, "metadata" in `unsynced_changes`) by normalized path, of files
    /// with either.
    pub metadata: BTreeMap<String, (u64, bool)>,
}

/// The facts of `report`, for a scenario run in directory `dir`.
#[must_use]
pub fn facts(report: &Value, dir: &str) -> Facts {
    let norm = |p: &str| normalize(p, dir);
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    let files = report["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let counts = Counts {
                writes: n(f, "writes"),
                bytes_written: n(f, "bytes_written"),
                fsyncs: n(f, "fsyncs"),
                fdatasyncs: n(f, "fdatasyncs"),
                unsynced_bytes: n(f, "unsynced_bytes"),
            };
            (norm(f["path"].as_str().unwrap_or("?")), counts)
        })
        .collect();
    let extents = report["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let e = &f["dirty_extent"];
            let range = e["lo"].as_u64().zip(e["hi"].as_u64());
            (norm(f["path"].as_str().unwrap_or("?")), range)
        })
        .collect();
    let findings = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or("?").to_string(),
                norm(f["path"].as_str().unwrap_or("?")),
                f["entry"].as_str().map(str::to_string).or_else(|| {
                    // ack_before_durable (--wal): its ack count, which every tier must match.
                    (f["kind"] == "ack_before_durable").then(|| format!("{} acks", f["count"]))
                }),
            )
        })
        .collect();
    let changes = report["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let path = norm(f["path"].as_str().unwrap_or("?"));
            let (t, a) = (f["truncates"].as_u64(), f["fallocates"].as_u64());
            (path, (t.unwrap_or(0), a.unwrap_or(0)))
        })
        .filter(|(_, c)| *c != (0, 0))
        .collect();
    let metadata = report["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let path = norm(f["path"].as_str().unwrap_or("?"));
            let unsynced = f["unsynced_changes"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c == "metadata"));
            (
                path,
                (f["metadata_changes"].as_u64().unwrap_or(0), unsynced),
            )
        })
        .filter(|(_, m)| *m != (0, false))
        .collect();
    let redundant = report["advice"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["kind"] == "redundant_sync")
        .map(|f| {
            let path = norm(f["path"].as_str().unwrap_or("?"));
            (path, f["count"].as_u64().unwrap_or(u64::MAX))
        })
        .collect();
    Facts {
        files,
        findings,
        changes,
        redundant,
        extents,
        metadata,
    }
}

/// Every way `f` (a run of scenario `name`) differs from [`CHANGES`], [`REDUNDANT`] and
/// [`METADATA`], one message each; nothing for a scenario named in none.
#[must_use]
pub fn check_changes(name: &str, f: &Facts) -> Vec<String> {
    let listed = |n: &str| n == name;
    if !CHANGES.iter().any(|c| listed(c.0))
        && !REDUNDANT.iter().any(|r| listed(r.0))
        && !METADATA.iter().any(|m| listed(m.0))
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    let changes: BTreeMap<String, (u64, u64)> = CHANGES
        .iter()
        .filter(|c| listed(c.0))
        .map(|c| (rel(c.1), (c.2, c.3)))
        .collect();
    if changes != f.changes {
        out.push(format!(
            "(truncates, fallocates): expected {changes:?}, got {:?}",
            f.changes
        ));
    }
    let redundant: BTreeMap<String, u64> = REDUNDANT
        .iter()
        .filter(|r| listed(r.0))
        .map(|r| (rel(r.1), r.2))
        .collect();
    if redundant != f.redundant {
        out.push(format!(
            "redundant syncs: expected {redundant:?}, got {:?}",
            f.redundant
        ));
    }
    let metadata: BTreeMap<String, (u64, bool)> = METADATA
        .iter()
        .filter(|m| listed(m.0))
        .map(|m| (rel(m.1), (m.2, m.3)))
        .collect();
    if metadata != f.metadata {
        out.push(format!(
            "(metadata_changes, unsynced metadata): expected {metadata:?}, got {:?}",
            f.metadata
        ));
    }
    out
}

/// A report path with the scenario's directory `dir` written "W" (paths elsewhere unchanged).
fn normalize(p: &str, dir: &str) -> String {
    if p == dir {
        "W".to_string()
    } else {
        p.strip_prefix(&format!("{dir}/"))
            .map_or_else(|| p.to_string(), |r| format!("W/{r}"))
    }
}

/// A table path ("" is the scenario's directory) as the facts write it.
#[must_use]
pub fn rel(p: &str) -> String {
    if p.is_empty() {
        "W".into()
    } else {
        format!("W/{p}")
    }
}

/// Every way `f` differs from `e`, one message each (empty: as expected).
#[must_use]
pub fn check_expected(e: &Expected, f: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    for (path, want) in e.files {
        match f.files.get(&rel(path)) {
            Some(got) if got == want => {}
            got => out.push(format!(
                "{}: expected (writes, bytes, fsyncs, fdatasyncs, unsynced) {want:?}, got {got:?}",
                rel(path)
            )),
        }
    }
    for (path, want) in e.extents {
        let got = f.extents.get(&rel(path));
        if got != Some(want) {
            out.push(format!(
                "{}: expected dirty_extent {want:?}, got {got:?}",
                rel(path)
            ));
        }
    }
    let want: BTreeSet<FindingFact> = e
        .findings
        .iter()
        .map(|(k, p, en)| ((*k).to_string(), rel(p), en.map(str::to_string)))
        .collect();
    if want != f.findings {
        out.push(format!("findings: expected {want:?}, got {:?}", f.findings));
    }
    out
}

/// How two runs' facts differ, for a failure message.
#[must_use]
pub fn diff(a: &Facts, b: &Facts) -> String {
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = a.files.keys().chain(b.files.keys()).collect();
    for k in keys {
        let (x, y) = (a.files.get(k), b.files.get(k));
        if x != y {
            out.push(format!("{k}: {x:?} vs {y:?}"));
        }
    }
    let keys: BTreeSet<&String> = a.extents.keys().chain(b.extents.keys()).collect();
    for k in keys {
        let (x, y) = (a.extents.get(k), b.extents.get(k));
        if x != y {
            out.push(format!("{k}: dirty_extent {x:?} vs {y:?}"));
        }
    }
    for f in a.findings.symmetric_difference(&b.findings) {
        out.push(format!("finding {f:?} only in one"));
    }
    if a.changes != b.changes {
        out.push(format!(
            "(truncates, fallocates) {:?} vs {:?}",
            a.changes, b.changes
        ));
    }
    if a.redundant != b.redundant {
        out.push(format!(
            "redundant syncs {:?} vs {:?}",
            a.redundant, b.redundant
        ));
    }
    if a.metadata != b.metadata {
        out.push(format!(
            "(metadata_changes, unsynced metadata) {:?} vs {:?}",
            a.metadata, b.metadata
        ));
    }
    out.join("; ")
}

/// Finding kinds whose act has no user stack to take: a reply judged later (`--wal`), an
/// io_uring submission, a device's cache mode.
pub const KINDS_WITHOUT_STACK: &[&str] = &[
    "ack_before_durable",
    "uring_fsync_unordered",
    "sync_without_flush",
];

/// Findings of `report` (a run in `dir`) without a call stack, as (kind, path): every act that
/// makes a finding takes the user stack, on every tier, except the kinds in
/// [`KINDS_WITHOUT_STACK`] and acts done by io_uring (kernel workers run them).
#[must_use]
pub fn unstacked(report: &Value, dir: &str) -> BTreeSet<(String, String)> {
    report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["stack"].as_array().is_none_or(Vec::is_empty))
        .filter(|f| !KINDS_WITHOUT_STACK.contains(&f["kind"].as_str().unwrap_or("?")))
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or("?").to_string(),
                normalize(f["path"].as_str().unwrap_or("?"), dir),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(truncates: u64, redundant: Option<u64>) -> Value {
        let advice: Vec<Value> = redundant
            .map(|n| {
                serde_json::json!({"kind": "redundant_sync", "path": "/m/truncate-sync/t.dat", "count": n})
            })
            .into_iter()
            .collect();
        serde_json::json!({
            "files": [
                {"path": "/m/truncate-sync", "truncates": 0, "fallocates": 0},
                {"path": "/m/truncate-sync/t.dat", "truncates": truncates, "fallocates": 0}
            ],
            "findings": [],
            "advice": advice,
        })
    }

    #[test]
    fn changes_and_redundant_syncs_are_checked_exactly() {
        let ok = facts(&report(1, Some(1)), "/m/truncate-sync");
        assert!(check_changes("truncate-sync", &ok).is_empty());
        let missed = facts(&report(0, Some(2)), "/m/truncate-sync");
        let wrong = check_changes("truncate-sync", &missed);
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(wrong[0].contains("W/t.dat"), "{wrong:?}");
        // A scenario the tables do not name is not checked; tiers still compare the facts.
        assert!(check_changes("good", &missed).is_empty());
        assert_ne!(ok, missed);
        assert!(diff(&ok, &missed).contains("redundant syncs"));
    }

    #[test]
    fn metadata_changes_are_checked_exactly() {
        let report = |changes: u64, unsynced: &[&str]| {
            serde_json::json!({
                "files": [{
                    "path": "/m/c/n.dat",
                    "metadata_changes": changes,
                    "unsynced_changes": unsynced,
                }],
                "findings": [],
                "advice": [],
            })
        };
        let ok = facts(&report(2, &["metadata"]), "/m/c");
        assert!(check_changes("chmod-unsynced", &ok).is_empty());
        let synced = facts(&report(2, &[]), "/m/c");
        let wrong = check_changes("chmod-unsynced", &synced);
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(wrong[0].contains("metadata_changes"), "{wrong:?}");
        assert!(diff(&ok, &synced).contains("unsynced metadata"));
    }
}
