//! What the write-ahead-log contract (`--wal`) costs a busy server: `redis-benchmark` SETs
//! against a real Redis with `appendfsync always` (each reply follows an append and an
//! fdatasync, so the first reply of each event-loop pass is an ack the kernel records), untraced and traced with
//! `fsync-trace -p <redis> --wal <its AOF>`, alternating. The traced report must show no lost
//! events, no `ack_before_durable` and at least one judged ack per SET (its note).
use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Requests per run, and clients of `redis-benchmark`.
pub struct RedisLoad {
    pub requests: u64,
    pub clients: u32,
    pub reps: usize,
}

/// Median SET rates (requests/s), untraced and traced.
pub struct RedisResult {
    pub untraced_rps: f64,
    pub traced_rps: f64,
    pub load: RedisLoad,
}

impl RedisResult {
    /// Traced time per request over untraced (rates inverted).
    pub fn ratio(&self) -> f64 {
        self.untraced_rps / self.traced_rps
    }

    /// One line for the page's notes.
    pub fn note(&self) -> String {
        format!(
            "redis-benchmark (SET, appendfsync always, {} requests, {} clients, median of {}): untraced {:.0} req/s, fsync-trace --wal {:.0} req/s: {:.3}x the time per request",
            self.load.requests,
            self.load.clients,
            self.load.reps,
            self.untraced_rps,
            self.traced_rps,
            self.ratio()
        )
    }
}

/// Both sides, `load.reps` times each, alternating which goes first; an error if Redis's tools
/// are missing or a traced report is wrong.
pub fn measure(tracer: &Path, scratch: &Path, load: RedisLoad) -> Result<RedisResult> {
    for tool in ["redis-server", "redis-benchmark", "redis-cli"] {
        if !crate::util::have(tool) {
            bail!("{tool} is not installed (scripts/setup.sh installs it)");
        }
    }
    let mut untraced = Vec::new();
    let mut traced = Vec::new();
    for rep in 0..load.reps {
        for traced_first in [rep % 2 == 1, rep % 2 == 0] {
            let rps = one_run(tracer, scratch, &load, traced_first)?;
            eprintln!(
                "[bench] redis rep {}/{} {:<9} {rps:>9.0} req/s",
                rep + 1,
                load.reps,
                if traced_first { "traced" } else { "untraced" }
            );
            if traced_first {
                traced.push(rps);
            } else {
                untraced.push(rps);
            }
        }
    }
    Ok(RedisResult {
        untraced_rps: median(&mut untraced),
        traced_rps: median(&mut traced),
        load,
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// One redis-benchmark run against a fresh Redis, traced or not; its rate.
fn one_run(tracer: &Path, scratch: &Path, load: &RedisLoad, traced: bool) -> Result<f64> {
    let dir = scratch.join("redis");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port()
        .to_string();
    let mut redis = Guard(
        Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--dir"])
            .arg(&dir)
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--logfile", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?,
    );
    let start = Instant::now();
    while !crate::util::output(Command::new("redis-cli").args(["-p", &port, "ping"]))
        .is_ok_and(|o| o.trim() == "PONG")
    {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("redis-server never answered");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let report = scratch.join("redis-report.json");
    let mut tracing = None;
    if traced {
        let wal = format!("{}/appendonlydir/*.incr.aof", dir.display());
        let child = Command::new(tracer)
            .args(["--json", "-o"])
            .arg(&report)
            .args(["-p", &redis.0.id().to_string(), "--wal", &wal])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting fsync-trace")?;
        tracing = Some(Guard(child));
        // Attached, and the AOF named and marked (one SET first) before measuring.
        thread::sleep(Duration::from_millis(1500));
        crate::util::output(Command::new("redis-cli").args(["-p", &port, "set", "warm", "1"]))?;
        thread::sleep(Duration::from_millis(300));
    }
    let csv = crate::util::output(Command::new("redis-benchmark").args([
        "-p",
        &port,
        "-t",
        "set",
        "-n",
        &load.requests.to_string(),
        "-c",
        &load.clients.to_string(),
        "--csv",
    ]))?;
    let rps = parse_rps(&csv).with_context(|| format!("redis-benchmark output: {csv}"))?;
    if let Some(mut t) = tracing.take() {
        // SAFETY: plain syscall to our own child.
        unsafe { libc::kill(t.0.id() as i32, libc::SIGINT) };
        let status = t.0.wait()?;
        if !status.success() {
            bail!("fsync-trace -p redis --wal exited with {status}");
        }
        check_report(&report, load.requests / u64::from(load.clients.max(1)))?;
        let _ = fs::remove_file(&report);
    }
    let _ = redis.0.kill();
    let _ = redis.0.wait();
    let _ = fs::remove_dir_all(&dir);
    Ok(rps)
}

/// The "rps" column of the SET line of `redis-benchmark --csv`.
fn parse_rps(csv: &str) -> Option<f64> {
    let line = csv.lines().find(|l| l.starts_with("\"SET\""))?;
    line.split(',').nth(1)?.trim_matches('"').parse().ok()
}

/// No lost events, no broken contract, and at least `min_judged` replies judged: Redis appends
/// and syncs once per event-loop pass for every client served in it, so only the first reply of
/// a pass follows a log write (at most `clients` replies per pass).
fn check_report(path: &Path, min_judged: u64) -> Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let r: Value = serde_json::from_str(&text)?;
    let lost = r
        .get("lost_events")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    if lost != 0 {
        bail!("fsync-trace lost {lost} events tracing redis");
    }
    let findings = r["findings"].as_array().cloned().unwrap_or_default();
    if findings.iter().any(|f| f["kind"] == "ack_before_durable") {
        bail!("appendfsync always reported as ack_before_durable");
    }
    let judged = r["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|n| n.strip_prefix("write-ahead-log contract (--wal): "))
        .and_then(|n| n.split(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    if judged < min_judged {
        bail!("only {judged} replies were judged (expected at least {min_judged})");
    }
    Ok(())
}

/// Kills the child if a run fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_read_from_the_set_line() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\"\n\"SET\",\"12345.68\",\"0.1\"\n";
        assert_eq!(parse_rps(csv), Some(12345.68));
        assert_eq!(parse_rps("\"GET\",\"1\"\n"), None);
    }
}
