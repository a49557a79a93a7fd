//! The `--metrics` suite's harness: a shell the tests control, the tracer serving /metrics, a
//! real Prometheus scraping it, promtool, and small HTTP helpers.
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

use super::bins::workload;

pub(crate) const TRACER: &str = env!("CARGO_BIN_EXE_fsync-trace");
/// Longest any wait in these tests may take (a hang is a failure).
pub(crate) const TIMEOUT: Duration = Duration::from_mins(1);

/// A fresh directory on /var/tmp (a filesystem that can be durable), by canonical path.
pub(crate) fn tempdir(prefix: &str) -> (TempDir, PathBuf) {
    let d = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .expect("temp dir in /var/tmp");
    let p = std::fs::canonicalize(d.path()).unwrap();
    (d, p)
}

/// A port free on 127.0.0.1 right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `MAJ:MIN` of the filesystem holding `path`, as the `device` label shows it.
pub(crate) fn device_of(path: &Path) -> String {
    let dev = std::fs::metadata(path).unwrap().dev();
    format!("{}:{}", libc::major(dev), libc::minor(dev))
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

/// One HTTP/1.0 GET (so no chunked replies), everything bounded by `timeout`.
pub(crate) fn http_get(
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

pub(crate) fn urlencode(s: &str) -> String {
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
pub(crate) fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
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
pub(crate) struct Reaped(pub(crate) Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A shell that waits for "go", runs `script`, then waits for "done". `$W` is the workload
/// binary, `$D` the directory.
pub(crate) struct Shell {
    pub(crate) child: Reaped,
    pub(crate) stdin: ChildStdin,
}

impl Shell {
    pub(crate) fn start(script: &str, dir: &Path) -> Shell {
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
    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }
    pub(crate) fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("writing to the shell");
    }
}

/// The tracer with `--metrics` on a free loopback port.
pub(crate) struct Tracer {
    pub(crate) child: Reaped,
    pub(crate) addr: SocketAddr,
}

impl Tracer {
    pub(crate) fn start(args: &[&str]) -> Tracer {
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

    pub(crate) fn scrape(&self) -> String {
        let r = http_get(self.addr, "/metrics", None, Duration::from_secs(10))
            .expect("scraping the tracer");
        assert_eq!(r.status, 200, "{}", r.head);
        r.body
    }

    /// Waits for the tracer to finish on its own; its exit status.
    pub(crate) fn wait(mut self) -> i32 {
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
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A real Prometheus on loopback scraping `target` every second.
pub(crate) struct Prometheus {
    _child: Reaped,
    pub(crate) addr: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    pub(crate) fn start(target: SocketAddr) -> Prometheus {
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
    pub(crate) fn query(&self, expr: &str) -> Vec<(Value, f64)> {
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
    pub(crate) fn value(&self, expr: &str) -> Option<f64> {
        let r = self.query(expr);
        assert!(r.len() <= 1, "{expr}: more than one series: {r:?}");
        r.first().map(|(_, v)| *v)
    }
}

/// `promtool check metrics` accepts `text` and prints nothing.
pub(crate) fn promtool_check(text: &str) {
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
