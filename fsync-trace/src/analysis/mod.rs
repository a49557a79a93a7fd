//! Judgements over the state machine's findings, before any report: suppressions (by-design
//! findings set apart with their reason) and grouping (many of one kind in one directory).
pub mod group;
pub mod suppress;

use std::collections::HashMap;

use serde::Serialize;

pub use suppress::{Rules, SuppressError, SuppressedBy};

use crate::state::{Finding, ProcessInfo};

/// Default of `--group-over`: more than this many findings of one kind in one directory are
/// reported as one.
pub const DEFAULT_GROUP_OVER: usize = 8;

/// A finding a rule marked as by design.
#[derive(Clone, Debug, Serialize)]
pub struct Suppressed {
    #[serde(flatten)]
    pub finding: Finding,
    pub suppressed_by: SuppressedBy,
}

/// The findings to report, and those set apart.
#[derive(Debug, Default)]
pub struct Judged {
    pub findings: Vec<Finding>,
    /// Grouped like the findings, per rule.
    pub suppressed: Vec<Suppressed>,
    /// Findings suppressed, counted before grouping.
    pub suppressed_count: u64,
}

/// Splits `findings` (in report order) into reported and suppressed, then groups each side
/// (`group_over`, see [`group::group`]). `processes` give the acting process's role.
pub fn judge(
    findings: Vec<Finding>,
    processes: &[ProcessInfo],
    rules: &Rules,
    group_over: usize,
) -> Judged {
    let roles: HashMap<u32, &str> = processes
        .iter()
        .map(|p| (p.pid, p.role.as_deref().unwrap_or(p.comm.as_str())))
        .collect();
    let mut kept = Vec::with_capacity(findings.len());
    // Per rule: its reason and the findings it suppressed.
    let mut by_rule: Vec<(SuppressedBy, Vec<Finding>)> = Vec::new();
    let mut suppressed_count = 0;
    for f in findings {
        if rules.is_empty() {
            kept.push(f);
            continue;
        }
        match rules.matching(&f, roles.get(&f.pid).copied()) {
            Some(why) => {
                suppressed_count += 1;
                match by_rule.iter_mut().find(|(w, _)| w.rule == why.rule) {
                    Some((_, v)) => v.push(f),
                    None => by_rule.push((why.clone(), vec![f])),
                }
            }
            None => kept.push(f),
        }
    }
    let suppressed = by_rule
        .into_iter()
        .flat_map(|(why, fs)| {
            group::group(fs, group_over)
                .into_iter()
                .map(move |finding| Suppressed {
                    finding,
                    suppressed_by: why.clone(),
                })
        })
        .collect();
    Judged {
        findings: group::group(kept, group_over),
        suppressed,
        suppressed_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::FindingKind;

    fn process(pid: u32, role: Option<&str>) -> ProcessInfo {
        ProcessInfo {
            pid,
            comm: "postgres".into(),
            role: role.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn suppressed_findings_are_counted_grouped_and_kept_apart() {
        let mut rules = Rules::default();
        rules
            .add(
                "[[rule]]\nkind = \"unsynced_parent_dir\"\npath = \"/pg/pg_subtrans/*\"\nrole = \"postgres: checkpointer\"\nreason = \"reset at start\"\n",
                "t",
            )
            .unwrap();
        let mut findings: Vec<Finding> = (0..20)
            .map(|i| Finding {
                kind: FindingKind::UnsyncedParentDir,
                path: "/pg/pg_subtrans".into(),
                entry: Some(format!("{i:04}")),
                pid: if i < 12 { 10 } else { 11 },
                ts: i,
                ..Finding::blank()
            })
            .collect();
        findings.push(Finding {
            kind: FindingKind::UnsyncedWrite,
            path: "/pg/base/1/2".into(),
            pid: 10,
            ..Finding::blank()
        });
        findings.sort_by(Finding::report_order);
        let procs = [
            process(10, Some("postgres: checkpointer")),
            process(11, Some("postgres: walwriter")),
        ];
        let j = judge(findings, &procs, &rules, 8);
        assert_eq!(j.suppressed_count, 12);
        assert_eq!(j.suppressed.len(), 1);
        assert_eq!(j.suppressed[0].finding.entries.as_ref().unwrap().len(), 12);
        assert_eq!(j.suppressed[0].suppressed_by.rule, "t#1");
        // The walwriter's 8 entries are not covered by the role: at the threshold, not grouped.
        assert_eq!(j.findings.len(), 9);
        assert_eq!(j.findings[0].kind, FindingKind::UnsyncedWrite);

        let none = judge(j.findings.clone(), &procs, &Rules::default(), 0);
        assert_eq!(none.findings, j.findings);
        assert_eq!(none.suppressed_count, 0);
    }
}
