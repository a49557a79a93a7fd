//! The shared harness of the root integration suites (integration/, identity/, servers, cost,
//! metrics): running the real tracer on real workloads (here), reading its JSON reports
//! (report.rs), the BPF objects it holds in the kernel and waiting for it to attach
//! (kernel.rs), the shared scenario table (table.rs), finding the binaries (bins.rs).
#![allow(dead_code, clippy::zombie_processes)]

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsString,
    io::{BufRead, BufReader, Read, Write},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

mod bins;
mod cgroup;
mod kernel;
mod report;
mod table;

pub use serde_json::Value;
pub use tempfile::TempDir;

pub use bins::workload;
#[allow(unused_imports)]
pub use cgroup::{cgroup2_root, Subtree};
// Not every suite uses every part of the harness.
#[allow(unused_imports)]
pub use kernel::*;
pub use report::*;
#[allow(unused_imports)]
pub use table::{run_table_scenario, table_entry, table_mismatches, table_scenario};

pub const TRACER: &str = env!("CARGO_BIN_EXE_fsync-trace");
/// Longest any single traced run may take before the test gives up (a hang is a failure).
pub const RUN_TIMEOUT: Duration = Duration::from_mins(1);

// ------------------------------------------------------------------------------------------------
// Running things
// ------------------------------------------------------------------------------------------------

/// A fresh directory on /var/tmp (ext4 here, i.e. a filesystem that can be durable), by its
/// canonical path: that is the path the kernel walks and the report shows.
pub fn tempdir() -> (TempDir, String) {
    let d = tempfile::Builder::new()
        .prefix("fsync-trace-it.")
        .tempdir_in("/var/tmp")
        .expect("creating a temp dir in /var/tmp");
    let p = std::fs::canonicalize(d.path())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    (d, p)
}

pub struct Output {
    /// Exit code, or 128 + signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn exit_code(s: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

pub fn reader<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    })
}

/// Waits for `child` (stdout and stderr piped) at most `timeout`; kills it and fails after that.
pub fn wait_output(mut child: Child, timeout: Duration, what: &str) -> Output {
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: still running after {timeout:?}; killed. stderr: {}",
                err.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        code: exit_code(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

pub fn run(cmd: &mut Command, what: &str) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    wait_output(child, RUN_TIMEOUT, what)
}

/// `fsync-trace --json -o <tmp>/report.json <args>`: the exit code, output and the parsed
/// report (None if the file is missing or empty).
pub fn trace(args: &[OsString]) -> (Output, Option<Report>) {
    trace_with(args, |_| {})
}

/// [`trace`], with `setup` applied to the tracer's command first (environment, working
/// directory, descriptors to inherit: the traced command inherits all of them).
pub fn trace_with(args: &[OsString], setup: impl FnOnce(&mut Command)) -> (Output, Option<Report>) {
    let (_rdir, rdir) = tempdir();
    let report_path = format!("{rdir}/report.json");
    let mut cmd = Command::new(TRACER);
    cmd.args(["--json", "-o", &report_path]).args(args);
    setup(&mut cmd);
    let out = run(&mut cmd, "fsync-trace");
    let text = std::fs::read_to_string(&report_path).unwrap_or_default();
    let report = (!text.trim().is_empty()).then(|| {
        Report(
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("report is not JSON ({e}): {text}")),
        )
    });
    (out, report)
}

pub fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Traces `fsync-trace-workload <scenario> <dir> <extra>`, expecting success and a complete
/// report.
pub fn scenario_in(dir: &str, scenario: &str, extra: &[&str]) -> Report {
    let mut args = os(&["--", workload(), scenario, dir]);
    args.extend(os(extra));
    let (out, report) = trace(&args);
    assert_eq!(
        out.code, 0,
        "fsync-trace on workload {scenario}: exit {}; stderr: {}",
        out.code, out.stderr
    );
    let report =
        report.unwrap_or_else(|| panic!("no report for {scenario}; stderr: {}", out.stderr));
    report.assert_complete();
    report
}

/// A scenario in a fresh directory: (guard, dir, report).
pub fn scenario(name: &str, extra: &[&str]) -> (TempDir, String, Report) {
    let (guard, dir) = tempdir();
    let r = scenario_in(&dir, name, extra);
    (guard, dir, r)
}

pub fn spawn_tracer(args: &[&str], report: &str) -> Child {
    Command::new(TRACER)
        .args(["--json", "-o", report])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting fsync-trace")
}

pub fn read_report(path: &str) -> Report {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("report {path}: {e}"));
    let r = Report(
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON ({e}): {text}")),
    );
    r.assert_complete();
    r
}

pub struct RemoveOnDrop(pub String);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the Python SQLite application `app` (its arguments: database path, mode, row count):
/// first `setup` untraced in a fresh directory, then `mode` with `n` rows under the tracer.
/// Returns (guard, directory of app.db, complete report).
pub fn traced_sqlite_app(app: &str, mode: &str, n: usize) -> (TempDir, String, Report) {
    let (_sdir, sdir) = tempdir();
    let script = format!("{sdir}/app.py");
    std::fs::write(&script, app).unwrap();
    let (g, d) = tempdir();
    let db = format!("{d}/app.db");
    let setup = run(
        Command::new(python()).args(["-I", "-B", &script, &db, "setup", "0"]),
        "sqlite setup",
    );
    assert_eq!(setup.code, 0, "sqlite setup: {}", setup.stderr);
    let n = n.to_string();
    let (out, r) = trace(&os(&["--", python(), "-I", "-B", &script, &db, mode, &n]));
    assert_eq!(out.code, 0, "traced sqlite app: {}", out.stderr);
    let r = r.expect("report");
    r.assert_complete();
    (g, d, r)
}
