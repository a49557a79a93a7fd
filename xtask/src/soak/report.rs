//! What the tracer's JSON report says: lost events, release counters, files and findings.
use std::{collections::BTreeMap, fs, path::Path};

use serde_json::Value;

/// What the tracer's JSON report says.
#[derive(Debug, Default)]
pub(super) struct ReportSummary {
    pub(super) tier: String,
    pub(super) lost_events: Option<u64>,
    pub(super) complete: Option<bool>,
    pub(super) lost: String,
    pub(super) released_files: Option<u64>,
    pub(super) reclaimed_slots: Option<u64>,
    pub(super) files: usize,
    pub(super) files_in_load_dir: usize,
    pub(super) removed_files: usize,
    pub(super) findings: BTreeMap<String, u64>,
    pub(super) bytes: u64,
}

/// The summary of the report at `path`, whose load ran in `load_dir`.
pub(super) fn read_report(path: &Path, load_dir: &Path) -> Result<ReportSummary, String> {
    let bytes = fs::metadata(path).map_or(0, |m| m.len());
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let r: Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    drop(text);
    let prefix = format!("{}/", load_dir.display());
    let files = r.get("files").and_then(Value::as_array);
    let mut findings = BTreeMap::new();
    for f in r
        .get("findings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = f.get("kind").and_then(Value::as_str).unwrap_or("?");
        *findings.entry(kind.to_string()).or_insert(0) += 1;
    }
    Ok(ReportSummary {
        tier: r
            .get("tier")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
        lost_events: r.get("lost_events").and_then(Value::as_u64),
        complete: r.get("complete").and_then(Value::as_bool),
        lost: r
            .get("lost")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| v.as_u64() != Some(0))
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        released_files: find_key(&r, "released_files").and_then(Value::as_u64),
        reclaimed_slots: find_key(&r, "reclaimed_slots").and_then(Value::as_u64),
        files: files.map_or(0, Vec::len),
        files_in_load_dir: files.map_or(0, |f| {
            f.iter()
                .filter(|f| {
                    f.get("path")
                        .and_then(Value::as_str)
                        .is_some_and(|p| p.starts_with(&prefix))
                })
                .count()
        }),
        removed_files: files.map_or(0, |f| {
            f.iter()
                .filter(|f| f.get("removed") == Some(&Value::Bool(true)))
                .count()
        }),
        findings,
        bytes,
    })
}

/// `key` in the report's top-level object or any object nested in it (not in arrays: those are
/// the per-file and per-finding lists).
fn find_key<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let o = v.as_object()?;
    o.get(key).or_else(|| {
        o.values()
            .filter(|v| v.is_object())
            .find_map(|v| find_key(v, key))
    })
}
