//! The guest's console read back: one report per (scenario, tier), the facts compared across
//! tiers and against the scenarios' expectations, and the table printed at the end.
use std::collections::BTreeMap;

use anyhow::{bail, Result};

use fsync_trace_workload::{
    facts::{check_expected, diff, facts, Facts},
    scenarios::Scenario,
};

use super::{MARK, TIERS};

/// One tracer run in the guest.
struct Run {
    rc: i32,
    secs: f64,
    /// `fsync-trace:` and `workload:` lines from stderr.
    messages: Vec<String>,
    report: Option<serde_json::Value>,
}

pub(super) struct Runs {
    pub(super) kernel: String,
    by: BTreeMap<(String, String), Run>,
    /// Per tier: which hook delivers what (from --verbose).
    pub(super) hooks: BTreeMap<String, Vec<String>>,
}

pub(super) fn parse_console(console: &str) -> Result<Runs> {
    let mut runs = Runs {
        kernel: "?".into(),
        by: BTreeMap::new(),
        hooks: BTreeMap::new(),
    };
    let mut lines = console.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix(MARK).map(str::trim) else {
            continue;
        };
        if let Some(k) = rest.strip_prefix("kernel ") {
            runs.kernel = k.to_string();
        } else if let Some(e) = rest.strip_prefix("error ") {
            bail!("guest setup failed: {e}");
        } else if let Some(b) = rest.strip_prefix("begin ") {
            let f: Vec<&str> = b.split_whitespace().collect();
            let field = |k: &str| f.iter().find_map(|x| x.strip_prefix(k)).unwrap_or("");
            let (tier, scenario) = (
                f.first().copied().unwrap_or(""),
                f.get(1).copied().unwrap_or(""),
            );
            let secs = field("end=").parse::<f64>().unwrap_or(0.0)
                - field("start=").parse::<f64>().unwrap_or(0.0);
            let mut messages = Vec::new();
            for l in lines.by_ref() {
                if l.starts_with(MARK) {
                    break; // "json"
                }
                messages.push(l.to_string());
            }
            let mut json = String::new();
            for l in lines.by_ref() {
                if l.starts_with(MARK) {
                    break; // "end"
                }
                json.push_str(l);
                json.push('\n');
            }
            let report = serde_json::from_str(json.trim()).ok();
            let hooks: Vec<String> = messages
                .iter()
                .filter_map(|m| m.strip_prefix("fsync-trace:   "))
                .map(str::to_string)
                .collect();
            if !hooks.is_empty() {
                runs.hooks.entry(tier.to_string()).or_insert(hooks);
            }
            let run = Run {
                rc: field("rc=").parse().unwrap_or(-1),
                secs,
                messages,
                report,
            };
            runs.by
                .insert((scenario.to_string(), tier.to_string()), run);
        }
    }
    Ok(runs)
}

/// Failures by scenario.
pub(super) fn check(scenarios: &[&Scenario], runs: &Runs) -> BTreeMap<&'static str, Vec<String>> {
    let mut failures: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for sc in scenarios {
        let fail = failures.entry(sc.name).or_default();
        let mut facts_by: BTreeMap<&str, Facts> = BTreeMap::new();
        for tier in TIERS {
            let Some(run) = runs.by.get(&(sc.name.to_string(), tier.to_string())) else {
                fail.push(format!("{}/{tier}: no run on the console", sc.name));
                continue;
            };
            if run.rc != 0 {
                fail.push(format!(
                    "{}/{tier}: exit status {}: {}",
                    sc.name,
                    run.rc,
                    run.messages.join(" | ")
                ));
                continue;
            }
            let Some(report) = &run.report else {
                fail.push(format!("{}/{tier}: no JSON report", sc.name));
                continue;
            };
            if report["tier"].as_str() != Some(tier) {
                fail.push(format!(
                    "{}/{tier}: report says tier {:?}",
                    sc.name, report["tier"]
                ));
            }
            if report["complete"].as_bool() != Some(true) {
                fail.push(format!(
                    "{}/{tier}: report not complete (lost events)",
                    sc.name
                ));
            }
            let f = facts(report, &format!("/mnt/{tier}/{}", sc.name));
            if fsync_trace_workload::scenarios::expects_stacks(sc.name) {
                let missing = fsync_trace_workload::facts::unstacked(
                    report,
                    &format!("/mnt/{tier}/{}", sc.name),
                );
                if !missing.is_empty() {
                    fail.push(format!(
                        "{}/{tier}: findings without a call stack: {missing:?}",
                        sc.name
                    ));
                }
            }
            if let Some(e) = sc.expected_on(tier) {
                for m in check_expected(e, &f) {
                    fail.push(format!("{}/{tier}: {m}", sc.name));
                }
            }
            for m in fsync_trace_workload::facts::check_changes(sc.name, &f) {
                fail.push(format!("{}/{tier}: {m}", sc.name));
            }
            facts_by.insert(tier, f);
        }
        // Equality: every tier against fentry (the tracepoint tier is exempt where it is
        // expected to miss something).
        let compared: Vec<&str> = TIERS
            .into_iter()
            .filter(|t| !(sc.tracepoint_expect.is_some() && *t == "tracepoint"))
            .collect();
        if let Some(base) = facts_by.get(compared[0]) {
            for t in &compared[1..] {
                if let Some(other) = facts_by.get(t) {
                    if other != base {
                        fail.push(format!(
                            "{}: {t} differs from {}: {}",
                            sc.name,
                            compared[0],
                            diff(base, other)
                        ));
                    }
                }
            }
        }
    }
    failures
}

pub(super) fn print_table(
    scenarios: &[&Scenario],
    runs: &Runs,
    failures: &BTreeMap<&str, Vec<String>>,
) {
    println!();
    println!(
        "{:<16} {:<24} {:<24} {:<24} counts/findings equal?",
        "scenario", "fentry", "kprobe", "tracepoint"
    );
    for sc in scenarios {
        let cell = |tier: &str| -> String {
            match runs.by.get(&(sc.name.to_string(), tier.to_string())) {
                None => "missing".into(),
                Some(r) if r.rc != 0 => format!("rc={}", r.rc),
                Some(r) => match &r.report {
                    None => "no report".into(),
                    Some(rep) => {
                        let f = facts(rep, &format!("/mnt/{tier}/{}", sc.name));
                        let (w, s, u) = f.files.values().fold((0, 0, 0), |(w, s, u), c| {
                            (
                                w + c.writes,
                                s + c.fsyncs + c.fdatasyncs,
                                u + c.unsynced_bytes,
                            )
                        });
                        format!("w{w} s{s} u{u} f{} {:.1}s", f.findings.len(), r.secs)
                    }
                },
            }
        };
        let verdict = match failures.get(sc.name) {
            Some(f) if !f.is_empty() => "NO".to_string(),
            _ if sc.tracepoint_expect.is_some() => {
                "yes (fentry = kprobe; tracepoint misses it, as expected)".to_string()
            }
            _ => "yes".to_string(),
        };
        println!(
            "{:<16} {:<24} {:<24} {:<24} {verdict}",
            sc.name,
            cell("fentry"),
            cell("kprobe"),
            cell("tracepoint")
        );
    }
    println!("(w: writes, s: fsyncs+fdatasyncs, u: unsynced bytes, f: findings, summed over the scenario's files; time per run)");
}

#[cfg(test)]
mod tests {
    use super::*;
    use fsync_trace_workload::scenarios::SCENARIOS;

    #[test]
    fn console_parsing_and_comparison() {
        let report = |tier: &str, fsyncs: u64| {
            format!(
                r#"{{"tier":"{tier}","complete":true,"files":[{{"path":"/mnt/{tier}/good/good.dat","writes":3,"bytes_written":300,"fsyncs":{fsyncs},"fdatasyncs":0,"unsynced_bytes":0}},{{"path":"/mnt/{tier}/good","writes":0,"bytes_written":0,"fsyncs":1,"fdatasyncs":0,"unsynced_bytes":0}}],"findings":[]}}"#
            )
        };
        let mut console = format!("noise\n{MARK} kernel 6.1.0-test\n");
        for (tier, fsyncs) in [("fentry", 1), ("kprobe", 1), ("tracepoint", 2)] {
            console.push_str(&format!(
                "{MARK} begin {tier} good rc=0 start=1.0 end=2.5\nfsync-trace:   write/pwrite64: x\n{MARK} json\n{}\n{MARK} end\n",
                report(tier, fsyncs)
            ));
        }
        let runs = parse_console(&console).unwrap();
        assert_eq!(runs.kernel, "6.1.0-test");
        assert_eq!(runs.by.len(), 3);
        assert!((runs.by[&("good".into(), "kprobe".into())].secs - 1.5).abs() < 1e-9);
        let good = SCENARIOS.iter().find(|s| s.name == "good").unwrap();
        let failures = check(&[good], &runs);
        let f = &failures["good"];
        // The tracepoint run has 2 fsyncs: wrong against the expectation and against fentry.
        assert!(
            f.iter()
                .any(|m| m.contains("tracepoint differs from fentry")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|m| m.starts_with("good/tracepoint: W/good.dat: expected")),
            "{f:?}"
        );
        assert_eq!(f.len(), 2, "{f:?}");
        // Counts print as the tuple the header names.
        assert_eq!(
            f[0],
            "good/tracepoint: W/good.dat: expected (writes, bytes, fsyncs, fdatasyncs, unsynced) \
             (3, 300, 1, 0, 0), got Some((3, 300, 2, 0, 0))"
        );
        assert_eq!(
            f[1],
            "good: tracepoint differs from fentry: W/good.dat: Some((3, 300, 1, 0, 0)) vs \
             Some((3, 300, 2, 0, 0))"
        );
    }
}
