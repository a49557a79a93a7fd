//! Grouping: many findings of one kind in one directory (a create/remove storm, a cache
//! directory) become one finding with every member's name, so a report stays readable.
//! Linear in the number of findings.
use std::collections::HashMap;

use crate::state::{Finding, FindingKind};

/// Names shown in a grouped finding's message (the JSON `entries` keeps them all).
const SAMPLE: usize = 5;

/// The directory a finding is grouped by, and the member's name in it.
fn dir_and_name(f: &Finding) -> (&str, &str) {
    if let Some(entry) = &f.entry {
        if f.kind == FindingKind::UnsyncedParentDir {
            return (&f.path, entry);
        }
    }
    match f.path.rfind('/') {
        Some(0) => ("/", &f.path[1..]),
        Some(i) => (&f.path[..i], &f.path[i + 1..]),
        None => ("", &f.path),
    }
}

/// Merges the findings of each (kind, directory) that has more than `over` of them into one;
/// `over` 0 never groups. Keeps [`Finding::report_order`].
pub fn group(findings: Vec<Finding>, over: usize) -> Vec<Finding> {
    if over == 0 {
        return findings;
    }
    let mut sizes: HashMap<(FindingKind, &str), usize> = HashMap::new();
    for f in &findings {
        *sizes.entry((f.kind, dir_and_name(f).0)).or_default() += 1;
    }
    let big: Vec<(FindingKind, String)> = sizes
        .into_iter()
        .filter(|&(_, n)| n > over)
        .map(|((k, d), _)| (k, d.to_string()))
        .collect();
    if big.is_empty() {
        return findings;
    }
    let mut groups: HashMap<(FindingKind, String), Vec<Finding>> =
        big.into_iter().map(|k| (k, Vec::new())).collect();
    let mut out = Vec::new();
    for f in findings {
        let (dir, _) = dir_and_name(&f);
        match groups.get_mut(&(f.kind, dir.to_string())) {
            Some(members) => members.push(f),
            None => out.push(f),
        }
    }
    out.extend(groups.into_iter().map(|((_, dir), m)| merge(dir, m)));
    out.sort_by(Finding::report_order);
    out
}

/// One finding standing for `members` (all of one kind, in directory `dir`).
fn merge(dir: String, mut members: Vec<Finding>) -> Finding {
    members.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.path.cmp(&b.path)));
    let n = members.len();
    let names: Vec<String> = members
        .iter()
        .map(|m| dir_and_name(m).1.to_string())
        .collect();
    let sum = |get: fn(&Finding) -> Option<u64>| -> Option<u64> {
        members
            .iter()
            .filter_map(get)
            .reduce(|a, b| a.saturating_add(b))
    };
    let unsynced_bytes = sum(|m| m.unsynced_bytes);
    let unsynced_writes = sum(|m| m.unsynced_writes);
    let syncs = sum(|m| m.syncs);
    let sync_time_us = sum(|m| m.sync_time_us);
    let count = members.iter().map(|m| m.count).sum();
    let mut sample = names
        .iter()
        .take(SAMPLE)
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if n > SAMPLE {
        sample.push_str(&format!(" and {} more", n - SAMPLE));
    }
    let first = members.swap_remove(0);
    let headline = match first.kind {
        FindingKind::UnsyncedWrite => format!(
            "{n} files in {dir} hold data never made durable ({} write(s), {} bytes in all)",
            unsynced_writes.unwrap_or(0),
            unsynced_bytes.unwrap_or(0)
        ),
        FindingKind::UnsyncedParentDir => format!(
            "{n} entries of {dir} changed ({count} changes) and the directory was never fsynced afterwards: they can vanish after a crash"
        ),
        FindingKind::RenameBeforeFsync => {
            format!("{n} files were renamed into {dir} before their data was durable")
        }
        FindingKind::FsyncError => format!("sync calls failed on {n} files in {dir}"),
        FindingKind::FsyncRetryAfterError => {
            format!("{n} files in {dir} were synced again after a failed sync")
        }
        FindingKind::SyncWithoutFlush => {
            format!("{n} files in {dir} were synced without a device cache flush")
        }
        FindingKind::SyncPerWrite => {
            format!("{n} files in {dir} were synced after nearly every write ({count} syncs)")
        }
        FindingKind::RedundantSync => format!(
            "{n} files in {dir} were synced with nothing to make durable ({count} redundant syncs)"
        ),
        FindingKind::UringFsyncUnordered => format!(
            "{n} files in {dir} were fsynced through io_uring without ordering after their writes ({count} fsyncs)"
        ),
        FindingKind::AckBeforeDurable => format!(
            "{count} replies were sent before the write-ahead logs in {dir} ({n} files) were durable"
        ),
    };
    Finding {
        path: dir,
        message: format!("{headline}: {sample}. The first: {}", first.message),
        entry: names.first().cloned(),
        source: None,
        unsynced_bytes,
        unsynced_writes,
        count,
        entries: Some(names),
        syncs,
        sync_time_us,
        ..first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &str, name: &str, ts: u64) -> Finding {
        Finding {
            kind: FindingKind::UnsyncedParentDir,
            path: dir.into(),
            ts,
            message: format!("entry {name}"),
            entry: Some(name.into()),
            op: Some("create".into()),
            ..Finding::blank()
        }
    }

    fn write(path: &str, bytes: u64, ts: u64) -> Finding {
        Finding {
            kind: FindingKind::UnsyncedWrite,
            path: path.into(),
            ts,
            message: format!("write {path}"),
            unsynced_bytes: Some(bytes),
            unsynced_writes: Some(1),
            ..Finding::blank()
        }
    }

    #[test]
    fn at_most_the_threshold_stays_apart() {
        let f: Vec<_> = (0..8).map(|i| entry("/d", &format!("e{i}"), i)).collect();
        assert_eq!(group(f.clone(), 8), f);
    }

    #[test]
    fn more_than_the_threshold_is_one_finding_with_every_name() {
        let mut f: Vec<_> = (0..100)
            .rev()
            .map(|i| entry("/d", &format!("e{i:03}"), i))
            .collect();
        f.push(entry("/other", "x", 500));
        f.push(write("/d/file", 10, 7));
        let g = group(f, 8);
        assert_eq!(g.len(), 3, "{g:#?}");
        // The unsynced write is not an entry finding: kind order puts it first.
        assert_eq!(g[0].kind, FindingKind::UnsyncedWrite);
        let grouped = &g[1];
        assert_eq!(grouped.path, "/d");
        assert_eq!(grouped.count, 100);
        assert_eq!(grouped.entry.as_deref(), Some("e000"));
        let names = grouped.entries.as_ref().unwrap();
        assert_eq!(names.len(), 100);
        assert_eq!(names[99], "e099");
        assert!(
            grouped
                .message
                .starts_with("100 entries of /d changed (100 changes)"),
            "{}",
            grouped.message
        );
        assert!(grouped
            .message
            .contains("\"e004\" and 95 more. The first: entry e000"));
        assert_eq!(g[2].path, "/other");
        assert_eq!(g[2].entries, None);
    }

    #[test]
    fn unsynced_writes_group_by_parent_and_sum_their_data() {
        let f: Vec<_> = (0..10)
            .map(|i| write(&format!("/var/x/f{i}"), 100 + i, i))
            .collect();
        let g = group(f, 8);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].path, "/var/x");
        assert_eq!(g[0].unsynced_bytes, Some(1045));
        assert_eq!(g[0].unsynced_writes, Some(10));
        assert_eq!(g[0].entry.as_deref(), Some("f0"));
        assert_eq!(group(vec![write("/top", 1, 0)], 8)[0].path, "/top");
    }

    #[test]
    fn zero_never_groups() {
        let f: Vec<_> = (0..50).map(|i| entry("/d", &format!("e{i}"), i)).collect();
        assert_eq!(group(f.clone(), 0).len(), 50);
    }
}
