//! Root tests of `--metrics`: the real tracer serving /metrics, scraped by a real Prometheus and
//! checked by promtool, with exact counts for known workloads.
//!
//! Run as root: `cargo test --release -p fsync-trace --test metrics -- --include-ignored
//! --test-threads=1`. Needs the Debian `prometheus` package (prometheus + promtool; see
//! scripts/setup.sh). Nothing listens beyond 127.0.0.1.
//!
//! The tracer stops when its targets are gone, so most tests trace a shell they control with
//! `-f -p PID`: the shell waits for a line on stdin, runs the workload (a followed child), then
//! waits for another line, keeping the tracer (and its endpoint) alive until the test is done.
//! The `--all` test stops the tracer with SIGTERM instead.
#![allow(clippy::zombie_processes)]

#[path = "support/bins.rs"]
mod bins;
use bins::workload;
#[path = "support/cgroup.rs"]
#[allow(dead_code)]
mod cgroup;
use cgroup::Subtree;
#[path = "metrics/harness.rs"]
mod harness;
#[allow(clippy::wildcard_imports)]
use harness::*;

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tempfile::TempDir;

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

/// 200 fdatasyncs scraped by Prometheus: the histogram count for the workload's device is exactly
/// 200, the kernel counters are exact, and the findings counters are what the workload did
/// (wal.log created and never its directory fsynced: one unsynced_parent_dir, at its exit).
#[test]
#[ignore = "needs root"]
fn prometheus_scrapes_exact_counts() {
    let (_d, dir) = tempdir("fsync-trace-metrics.");
    let dev = device_of(&dir);
    let mut sh = Shell::start("\"$W\" fsync-bound \"$D\" --records 200", &dir);
    let pid = sh.pid().to_string();
    let tracer = Tracer::start(&["-f", "-p", &pid]);
    let prom = Prometheus::start(tracer.addr);
    // Prometheus parsed an OpenMetrics scrape of ours before anything happened.
    wait_for("a first scrape", || {
        prom.value("up{job=\"fsync-trace\"}").filter(|&v| v == 1.0)
    });
    let info = prom.query("fsync_trace_build_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].0["version"], env!("CARGO_PKG_VERSION"));
    assert!(info[0].0["tier"].is_string());

    sh.say("go");
    let count =
        format!("fsync_trace_sync_latency_seconds_count{{op=\"fdatasync\",device=\"{dev}\"}}");
    let got = wait_for("200 fdatasyncs in prometheus", || {
        prom.value(&count).filter(|&v| v >= 200.0)
    });
    assert_eq!(got, 200.0, "{count}");
    // Findings: the workload's exit is counted once the state machine has seen it.
    let unsynced_dir = "fsync_trace_findings_total{kind=\"unsynced_parent_dir\"}";
    wait_for("the unsynced_parent_dir finding", || {
        prom.value(unsynced_dir).filter(|&v| v >= 1.0)
    });
    // Kernel counters are refreshed at most once a second.
    wait_for("200 writes", || {
        prom.value("fsync_trace_writes_total")
            .filter(|&v| v >= 200.0)
    });
    thread::sleep(Duration::from_secs(3)); // a few more scrapes: nothing may grow further
    assert_eq!(prom.value(&count), Some(200.0));
    assert_eq!(
        prom.value(&format!(
            "fsync_trace_sync_latency_seconds_bucket{{op=\"fdatasync\",device=\"{dev}\",le=\"+Inf\"}}"
        )),
        Some(200.0)
    );
    assert_eq!(
        prom.value("sum(fsync_trace_sync_latency_seconds_count)"),
        Some(200.0),
        "no other sync calls"
    );
    assert_eq!(prom.value("fsync_trace_writes_total"), Some(200.0));
    assert_eq!(
        prom.value("fsync_trace_written_bytes_total"),
        Some(200.0 * 4096.0)
    );
    let findings: Vec<(String, f64)> = prom
        .query("fsync_trace_findings_total")
        .into_iter()
        .map(|(m, v)| (m["kind"].as_str().unwrap().to_string(), v))
        .collect();
    // One series per durability bug kind (FindingKind::BUGS).
    assert_eq!(findings.len(), 8, "{findings:?}");
    for (kind, v) in &findings {
        let want = if kind == "unsynced_parent_dir" {
            1.0
        } else {
            0.0
        };
        assert_eq!(*v, want, "findings_total{{kind={kind}}}: {findings:?}");
    }
    assert_eq!(prom.value("sum(fsync_trace_lost_events_total)"), Some(0.0));
    assert_eq!(
        prom.value("fsync_trace_sync_errors_total{op=\"fdatasync\"}"),
        Some(0.0)
    );
    // Data at risk once the workload is done: no unsynced data, the one directory entry.
    assert_eq!(prom.value("fsync_trace_unsynced_bytes"), Some(0.0));
    assert_eq!(prom.value("fsync_trace_unsynced_dir_entries"), Some(1.0));
    // Quantiles from the buckets work (over the whole run: the dashboard's rate() over a
    // window would be 0/0 here, as all 200 calls came before the series' first scrape).
    let p99 = prom
        .value("histogram_quantile(0.99, sum by (le) (fsync_trace_sync_latency_seconds_bucket{op=\"fdatasync\"}))")
        .expect("p99 of fdatasync latency");
    assert!(p99 > 0.0 && p99 < 10.0, "p99 {p99}");
    eprintln!(
        "prometheus: {count} = {got}; fdatasync p99 ~ {:.3} ms",
        p99 * 1000.0
    );

    sh.say("done");
    assert_eq!(tracer.wait(), 0);
}

/// `promtool check metrics` accepts a scrape (the classic text format, which curl and promtool
/// get), and the OpenMetrics scrape ends with `# EOF`.
#[test]
#[ignore = "needs root"]
fn promtool_accepts_a_scrape() {
    let (_d, dir) = tempdir("fsync-trace-metrics.");
    let mut sh = Shell::start(
        "\"$W\" fsync-bound \"$D\" --records 20 && \"$W\" rename-unsafe \"$D\" && \"$W\" unsynced \"$D\"",
        &dir,
    );
    let pid = sh.pid().to_string();
    let tracer = Tracer::start(&["-f", "-p", &pid, "--metrics-top-files", "5"]);
    sh.say("go");
    let text = wait_for("the workloads' findings", || {
        let t = tracer.scrape();
        // rename-unsafe leaves config dirty, unsynced leaves unsynced.dat dirty: 2 at their exits.
        (sample(&t, "fsync_trace_findings_total{kind=\"unsynced_write\"}") == Some(2.0)
            && sample(
                &t,
                "fsync_trace_findings_total{kind=\"rename_before_fsync\"}",
            ) == Some(1.0)
            && sample(&t, "fsync_trace_writes_total").is_some_and(|w| w > 20.0)
            && t.contains("fsync_trace_file_unsynced_bytes{"))
        .then_some(t)
    });
    assert!(text.contains("# TYPE fsync_trace_sync_latency_seconds histogram\n"));
    assert!(
        !text.contains("# EOF"),
        "classic text for a client without Accept: openmetrics"
    );
    promtool_check(&text);
    let om = http_get(
        tracer.addr,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(om.status, 200);
    assert!(
        om.head
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{}",
        om.head
    );
    assert!(om.body.ends_with("# EOF\n"));
    assert!(om.body.contains("# TYPE fsync_trace_build info\n"));
    let not_found = http_get(tracer.addr, "/nope", None, Duration::from_secs(10)).unwrap();
    assert_eq!(not_found.status, 404);
    sh.say("done");
    assert_eq!(tracer.wait(), 0);
}

/// The endpoint answers promptly while a write storm is traced: 50 scrapes, each within 5 s,
/// while the kernel counters keep growing between the first and the last.
#[test]
#[ignore = "needs root"]
fn endpoint_stays_responsive_during_a_write_storm() {
    let (_d, dir) = tempdir("fsync-trace-metrics.");
    let mut sh = Shell::start(
        "while [ ! -e \"$D/stop\" ]; do \"$W\" write-storm \"$D\" --writes 200000 || exit 1; done",
        &dir,
    );
    let pid = sh.pid().to_string();
    let tracer = Tracer::start(&["-f", "-p", &pid]);
    sh.say("go");
    let first = wait_for("the storm to start", || {
        sample(&tracer.scrape(), "fsync_trace_writes_total").filter(|&w| w > 0.0)
    });
    let mut slowest = Duration::ZERO;
    let mut last = first;
    for i in 0..50 {
        let start = Instant::now();
        let r = http_get(
            tracer.addr,
            "/metrics",
            Some("application/openmetrics-text"),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
        let took = start.elapsed();
        assert_eq!(r.status, 200, "request {i}");
        assert!(
            r.body.ends_with("# EOF\n"),
            "request {i}: truncated exposition"
        );
        assert!(took < Duration::from_secs(5), "request {i} took {took:?}");
        slowest = slowest.max(took);
        last = sample(&r.body, "fsync_trace_writes_total").unwrap();
        thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(dir.join("stop"), b"").unwrap();
    assert!(
        last > first,
        "the storm was not traced during the requests ({first} -> {last} writes)"
    );
    let text = tracer.scrape();
    eprintln!(
        "50 scrapes during the storm: slowest {slowest:?}; writes_total {first} -> {last}; lost {:?}",
        sample(&text, "fsync_trace_lost_events_total{reason=\"ring_buffer_full\"}")
    );
    sh.say("done");
    assert_eq!(tracer.wait(), 0);
}

/// `--all` traces processes it never heard of (started after it, not its children) but not
/// itself, and stops on SIGTERM with the usual final report.
#[test]
#[ignore = "needs root"]
fn all_traces_every_process_until_sigterm() {
    let (_d, dir) = tempdir("fsync-trace-metrics.");
    let report = dir.join("report.json");
    let tracer = Tracer::start(&["--all", "--json", "--output", report.to_str().unwrap()]);
    let tracer_pid = tracer.child.0.id();
    // A process unrelated to the tracer.
    let status = Command::new(workload())
        .args(["fsync-bound", dir.to_str().unwrap(), "--records", "50"])
        .status()
        .unwrap();
    assert!(status.success());
    // Other processes on the machine may sync on the same device too: at least ours.
    let count = format!(
        "fsync_trace_sync_latency_seconds_count{{op=\"fdatasync\",device=\"{}\"}}",
        device_of(&dir)
    );
    wait_for("the workload's 50 fdatasyncs", || {
        sample(&tracer.scrape(), &count).filter(|&v| v >= 50.0)
    });
    // SAFETY: plain syscall on our own child.
    assert_eq!(unsafe { libc::kill(tracer_pid as i32, libc::SIGTERM) }, 0);
    assert_eq!(
        tracer.wait(),
        0,
        "SIGTERM ends --all with the report, status 0"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let wal = dir.join("wal.log");
    let file = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == wal.to_str().unwrap())
        .unwrap_or_else(|| panic!("{} not in the --all report", wal.display()));
    assert_eq!(file["fdatasyncs"], 50);
    assert_eq!(file["writes"], 50);
    let pids: Vec<u64> = r["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert!(
        !pids.contains(&u64::from(tracer_pid)),
        "the tracer traced itself"
    );
}

/// `--wal`: a server replying before its log is durable, scraped by Prometheus: one lag per
/// reply in `fsync_trace_ack_durability_lag_seconds`, and the replies in
/// `findings_total{kind="ack_before_durable"}`.
#[test]
#[ignore = "needs root"]
fn prometheus_sees_each_reply_sent_before_the_log_was_durable() {
    let (_d, dir) = tempdir("fsync-trace-metrics.");
    let mut sh = Shell::start(
        "\"$W\" wal-server \"$D\" --requests 30 --order reply-then-sync",
        &dir,
    );
    let pid = sh.pid().to_string();
    let tracer = Tracer::start(&["-f", "-p", &pid, "--wal", "**/wal/*"]);
    let prom = Prometheus::start(tracer.addr);
    wait_for("a first scrape", || {
        prom.value("up{job=\"fsync-trace\"}").filter(|&v| v == 1.0)
    });
    assert_eq!(
        prom.value("fsync_trace_ack_durability_lag_seconds_count"),
        Some(0.0)
    );
    sh.say("go");
    let count = "fsync_trace_ack_durability_lag_seconds_count";
    let got = wait_for("30 lags in prometheus", || {
        prom.value(count).filter(|&v| v >= 30.0)
    });
    assert_eq!(got, 30.0);
    let broken = "fsync_trace_findings_total{kind=\"ack_before_durable\"}";
    wait_for("30 broken acks", || {
        prom.value(broken).filter(|&v| v >= 30.0)
    });
    thread::sleep(Duration::from_secs(2)); // nothing may grow further
    assert_eq!(prom.value(count), Some(30.0));
    assert_eq!(prom.value(broken), Some(30.0));
    // Each reply's log became durable at the fdatasync right after it: well under a second.
    assert_eq!(
        prom.value("fsync_trace_ack_durability_lag_seconds_bucket{le=\"+Inf\"}"),
        Some(30.0)
    );
    let p99 = prom
        .value(
            "histogram_quantile(0.99, sum by (le) (fsync_trace_ack_durability_lag_seconds_bucket))",
        )
        .expect("p99 of the durability lag");
    assert!(p99 > 0.0 && p99 < 1.0, "p99 {p99}");
    sh.say("done");
    assert_eq!(tracer.wait(), 0);
}

#[path = "metrics/labels.rs"]
mod labels;
