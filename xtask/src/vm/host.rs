//! The host check: on this machine's kernel, a forced tier that cannot work must fail with a
//! clear message, and auto-selection must pick the best tier that works.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Result;

use super::TIERS;
use crate::util::output;

pub(super) struct HostResult {
    pub(super) kernel: String,
    pub(super) forced: Vec<(&'static str, String)>,
    pub(super) auto: String,
    pub(super) expected_auto: String,
    pub(super) failures: Vec<String>,
}

/// Each forced tier must either work or fail with "tier X is not available on this kernel:
/// ..." (exit status 1, no crash); auto-selection must pick the best tier that works.
pub(super) fn host_check(tracer: &Path, workload: &Path) -> Result<HostResult> {
    let kernel = output(Command::new("uname").arg("-r"))?.trim().to_string();
    println!("[vm] host check on {kernel}");
    let dir = PathBuf::from("/var/tmp/fsync-trace-vm-host");
    let mut failures = Vec::new();
    let mut forced = Vec::new();
    let mut first_working: Option<&str> = None;
    let trace =
        |extra: &[&str], sub: &str| -> Result<(std::process::Output, Option<serde_json::Value>)> {
            let d = dir.join(sub);
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d)?;
            let report = dir.join(format!("{sub}.json"));
            let _ = fs::remove_file(&report);
            let out = Command::new(tracer)
                .args(extra)
                .args(["--json", "-o"])
                .arg(&report)
                .arg("--")
                .arg(workload)
                .arg("good")
                .arg(&d)
                .env("RUST_LOG", "warn")
                .output()?;
            let json = fs::read_to_string(&report)
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok());
            Ok((out, json))
        };
    for tier in TIERS {
        let (out, json) = trace(&["--tier", tier], tier)?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            let got = json
                .as_ref()
                .and_then(|j| j["tier"].as_str())
                .unwrap_or("?")
                .to_string();
            if got != tier {
                failures.push(format!("host: --tier {tier} reported tier {got}"));
            }
            first_working.get_or_insert(tier);
            forced.push((tier, "works".to_string()));
        } else {
            let want = format!("fsync-trace: tier {tier} is not available on this kernel: ");
            let line = stderr
                .lines()
                .find(|l| l.starts_with("fsync-trace: "))
                .unwrap_or("")
                .to_string();
            if out.status.code() != Some(1) || !line.starts_with(&want) {
                failures.push(format!(
                    "host: --tier {tier} failed without the expected message ({}): {stderr}",
                    out.status
                ));
            }
            forced.push((
                tier,
                format!("refused: {}", line.trim_start_matches("fsync-trace: ")),
            ));
        }
    }
    let (out, json) = trace(&["-v"], "auto")?;
    let auto = json
        .as_ref()
        .and_then(|j| j["tier"].as_str())
        .unwrap_or("none")
        .to_string();
    let expected_auto = first_working.unwrap_or("none").to_string();
    if !out.status.success() {
        failures.push(format!(
            "host: auto-selection failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    } else if auto != expected_auto {
        failures.push(format!(
            "host: auto-selection picked {auto}, the best working tier is {expected_auto}"
        ));
    }
    let verbose = String::from_utf8_lossy(&out.stderr);
    for (tier, outcome) in &forced {
        if outcome.starts_with("refused") && !verbose.contains(&format!("tier {tier} skipped: ")) {
            failures.push(format!(
                "host: --verbose does not say why tier {tier} was skipped"
            ));
        }
    }
    let _ = fs::remove_dir_all(&dir);
    Ok(HostResult {
        kernel,
        forced,
        auto,
        expected_auto,
        failures,
    })
}
