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

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tempfile::TempDir;

const TRACER: &str = env!("CARGO_BIN_EXE_fsync-trace");
/// Longest any wait in these tests may take (a hang is a failure).
const TIMEOUT: Duration = Duration::from_mins(1);

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// A fresh directory on /var/tmp (a filesystem that can be durable), by canonical path.
fn tempdir(prefix: &str) -> (TempDir, PathBuf) {
    let d = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .expect("temp dir in /var/tmp");
    let p = std::fs::canonicalize(d.path()).unwrap();
    (d, p)
}

/// A port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `MAJ:MIN` of the filesystem holding `path`, as the `device` label shows it.
fn device_of(path: &Path) -> String {
    let dev = std::fs::metadata(path).unwrap().dev();
    format!("{}:{}", libc::major(dev), libc::minor(dev))
}

struct Response {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.0 GET (so no chunked replies), everything bounded by `timeout`.
fn http_get(
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
    timeout: Duration,
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `f` every 200 ms until it returns Some, or fails after [`TIMEOUT`].
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "gave up waiting for {what} after {TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Kills and reaps a child when dropped (a failing test leaves nothing running).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A shell that waits for "go", runs `script`, then waits for "done". `$W` is the workload
/// binary, `$D` the directory.
struct Shell {
    child: Reaped,
    stdin: ChildStdin,
}

impl Shell {
    fn start(script: &str, dir: &Path) -> Shell {
        let mut child = Command::new("sh")
            .args(["-c", &format!("read go; {script}; read done")])
            .env("W", workload())
            .env("D", dir)
            .stdin(Stdio::piped())
            .spawn()
            .expect("starting sh");
        let stdin = child.stdin.take().unwrap();
        Shell {
            child: Reaped(child),
            stdin,
        }
    }
    fn pid(&self) -> u32 {
        self.child.0.id()
    }
    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("writing to the shell");
    }
}

/// The tracer with `--metrics` on a free loopback port.
struct Tracer {
    child: Reaped,
    addr: SocketAddr,
}

impl Tracer {
    fn start(args: &[&str]) -> Tracer {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(TRACER)
            .args(args)
            .args(["--metrics", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting fsync-trace");
        let mut t = Tracer {
            child: Reaped(child),
            addr,
        };
        wait_for("the metrics endpoint", || {
            if let Some(status) = t.child.0.try_wait().unwrap() {
                panic!("fsync-trace exited early: {status}");
            }
            http_get(addr, "/metrics", None, Duration::from_secs(2))
                .ok()
                .filter(|r| r.status == 200)
        });
        t
    }

    fn scrape(&self) -> String {
        let r = http_get(self.addr, "/metrics", None, Duration::from_secs(10))
            .expect("scraping the tracer");
        assert_eq!(r.status, 200, "{}", r.head);
        r.body
    }

    /// Waits for the tracer to finish on its own; its exit status.
    fn wait(mut self) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(start.elapsed() < TIMEOUT, "fsync-trace did not stop");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A sample value of the classic text exposition (`name{labels}` exactly as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A real Prometheus on loopback scraping `target` every second.
struct Prometheus {
    _child: Reaped,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prom.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: fsync-trace\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting prometheus ({e}): install it with scripts/setup.sh")
            });
        let p = Prometheus {
            _child: Reaped(child),
            addr,
            _dir: dir,
        };
        wait_for("prometheus to be ready", || {
            http_get(p.addr, "/-/ready", None, Duration::from_secs(2))
                .ok()
                .filter(|r| r.status == 200)
        });
        p
    }

    /// The result vector of an instant query: (labels, value) per series.
    fn query(&self, expr: &str) -> Vec<(Value, f64)> {
        let r = http_get(
            self.addr,
            &format!("/api/v1/query?query={}", urlencode(expr)),
            None,
            Duration::from_secs(10),
        )
        .expect("querying prometheus");
        let v: Value =
            serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{expr}: {e}: {}", r.body));
        assert_eq!(v["status"], "success", "{expr}: {}", r.body);
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["metric"].clone(),
                    s["value"][1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    /// The value of a query returning one series.
    fn value(&self, expr: &str) -> Option<f64> {
        let r = self.query(expr);
        assert!(r.len() <= 1, "{expr}: more than one series: {r:?}");
        r.first().map(|(_, v)| *v)
    }
}

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

/// `promtool check metrics` accepts `text` and prints nothing.
fn promtool_check(text: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (install with scripts/setup.sh)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "promtool check metrics: {}\n{}{}\n--- scrape ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[path = "metrics/labels.rs"]
mod labels;
