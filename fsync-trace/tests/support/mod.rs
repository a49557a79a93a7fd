//! The shared harness of the root integration suites (`integration.rs`, `identity.rs`):
//! running the real tracer on real workloads and reading its JSON reports, adopting running
//! processes with `-p`, and looking at the BPF objects the tracer holds in the kernel.
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

pub use serde_json::Value;
pub use tempfile::TempDir;

pub const TRACER: &str = env!("CARGO_BIN_EXE_fsync-trace");
pub use bins::workload;
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

// ------------------------------------------------------------------------------------------------
// Reading reports
// ------------------------------------------------------------------------------------------------

/// (kind, path, entry) of a finding: what the exact-findings assertions compare.
pub type FindingId = (String, String, Option<String>);

pub fn fid(kind: &str, path: &str, entry: Option<&str>) -> FindingId {
    (
        kind.to_string(),
        path.to_string(),
        entry.map(str::to_string),
    )
}

pub struct Report(pub Value);

impl Report {
    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(&self.0).unwrap()
    }

    pub fn u64_at(v: &Value, key: &str) -> u64 {
        v.get(key)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no integer {key:?} in {v}"))
    }

    /// Version 1, nothing lost.
    pub fn assert_complete(&self) {
        assert_eq!(self.0["version"], 1, "{}", self.pretty());
        assert_eq!(
            self.0["lost_events"],
            0,
            "events were lost:\n{}",
            self.pretty()
        );
        assert_eq!(self.0["complete"], true, "{}", self.pretty());
    }

    pub fn files(&self) -> &Vec<Value> {
        self.0["files"].as_array().expect("files array")
    }

    pub fn findings_json(&self) -> &Vec<Value> {
        self.0["findings"].as_array().expect("findings array")
    }

    pub fn file(&self, path: &str) -> &Value {
        let hits: Vec<&Value> = self.files().iter().filter(|f| f["path"] == path).collect();
        assert_eq!(
            hits.len(),
            1,
            "expected exactly one file {path} in the report:\n{}",
            self.pretty()
        );
        hits[0]
    }

    /// Exactly these files were reported (written, mapped or synced), no others.
    pub fn assert_paths(&self, expected: &[&str]) {
        let got: BTreeSet<String> = self
            .files()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect();
        let want: BTreeSet<String> = expected
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        assert_eq!(got, want, "files in the report:\n{}", self.pretty());
    }

    /// Each listed counter of `path` has exactly this value.
    pub fn assert_file(&self, path: &str, kind: &str, counters: &[(&str, u64)]) {
        let f = self.file(path);
        assert_eq!(f["type"], kind, "type of {path}:\n{}", self.pretty());
        for (key, want) in counters {
            let got = Self::u64_at(f, key);
            assert_eq!(got, *want, "{key} of {path}:\n{}", self.pretty());
        }
        assert_eq!(
            Self::u64_at(&f["fsync_latency_us"], "count"),
            Self::u64_at(f, "fsyncs") + Self::u64_at(f, "fdatasyncs"),
            "one latency sample per fsync/fdatasync of {path}"
        );
    }

    pub fn assert_removed(&self, path: &str, removed: bool) {
        assert_eq!(
            self.file(path)["removed"],
            removed,
            "removed of {path}:\n{}",
            self.pretty()
        );
    }

    /// The `syncs` table: op -> (calls, errors), exactly.
    pub fn assert_syncs(&self, expected: &[(&str, u64, u64)]) {
        let got: BTreeMap<String, (u64, u64)> = self.0["syncs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["op"].as_str().unwrap().to_string(),
                    (Self::u64_at(s, "calls"), Self::u64_at(s, "errors")),
                )
            })
            .collect();
        let want: BTreeMap<String, (u64, u64)> = expected
            .iter()
            .map(|(op, c, e)| (op.to_string(), (*c, *e)))
            .collect();
        assert_eq!(got, want, "syncs:\n{}", self.pretty());
    }

    /// Exactly these findings (kind, path, entry), in any order, nothing else.
    pub fn assert_findings(&self, expected: &[FindingId]) {
        let mut got: Vec<FindingId> = self
            .findings_json()
            .iter()
            .map(|f| {
                fid(
                    f["kind"].as_str().unwrap(),
                    f["path"].as_str().unwrap(),
                    f.get("entry").and_then(Value::as_str),
                )
            })
            .collect();
        got.sort();
        let mut want = expected.to_vec();
        want.sort();
        assert_eq!(
            got,
            want,
            "findings (kind, path, entry):\n{}",
            self.pretty()
        );
        // Every finding explains itself and says what to do.
        for f in self.findings_json() {
            assert!(
                f["message"].as_str().is_some_and(|m| !m.is_empty()),
                "no message: {f}"
            );
            assert!(
                f["fix"].as_str().is_some_and(|m| !m.is_empty()),
                "no fix: {f}"
            );
            assert!(f["count"].as_u64().is_some_and(|c| c >= 1), "no count: {f}");
            assert!(f["pid"].as_u64().is_some_and(|p| p > 0), "no pid: {f}");
        }
    }

    /// With `--wal`: the acks the write-ahead-log contract judged (from the report's note).
    pub fn wal_acks_judged(&self) -> u64 {
        let notes = self.0["notes"].as_array().cloned().unwrap_or_default();
        let note = notes
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .find(|n| n.starts_with("write-ahead-log contract"))
            .unwrap_or_else(|| panic!("no WAL note:\n{}", self.pretty()));
        note.split(": ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad WAL note {note}"))
    }

    /// The one finding of this kind on this path.
    pub fn finding(&self, kind: &str, path: &str) -> &Value {
        let hits: Vec<&Value> = self
            .findings_json()
            .iter()
            .filter(|f| f["kind"] == kind && f["path"] == path)
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "expected one {kind} finding on {path}:\n{}",
            self.pretty()
        );
        hits[0]
    }

    pub fn assert_unsynced_write(&self, path: &str, writes: u64, bytes: u64) {
        let f = self.finding("unsynced_write", path);
        assert_eq!(
            f["unsynced_writes"],
            writes,
            "unsynced_writes of {path}:\n{}",
            self.pretty()
        );
        assert_eq!(
            f["unsynced_bytes"],
            bytes,
            "unsynced_bytes of {path}:\n{}",
            self.pretty()
        );
    }

    pub fn kinds(&self) -> BTreeSet<String> {
        self.findings_json()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn processes(&self) -> Vec<(u64, String, Option<u64>)> {
        self.0["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    Self::u64_at(p, "pid"),
                    p["comm"].as_str().unwrap().to_string(),
                    p.get("parent").and_then(Value::as_u64),
                )
            })
            .collect()
    }
}

impl Report {
    /// The report's only process is `pid`, named `comm`, adopted with `-p`: its parent is read
    /// from /proc (this test process spawned it).
    pub fn assert_adopted_process(&self, pid: u32, comm: &str) {
        assert_eq!(
            self.processes(),
            vec![(
                u64::from(pid),
                comm.to_string(),
                Some(u64::from(std::process::id()))
            )]
        );
    }
}

/// comm of the workload binary as the kernel stores it (15 characters).
pub const WORKLOAD_COMM: &str = "fsync-trace-wor";

// ------------------------------------------------------------------------------------------------
// Reading reports: files as inodes with names and a lifetime
// ------------------------------------------------------------------------------------------------

impl Report {
    /// `names` of a file entry: every live absolute name the tracer knows for it, sorted.
    pub fn names_of(f: &Value) -> Vec<String> {
        let mut names: Vec<String> = f["names"]
            .as_array()
            .unwrap_or_else(|| panic!("no names array in {f}"))
            .iter()
            .map(|n| {
                n.as_str()
                    .unwrap_or_else(|| panic!("a name that is not a string in {f}"))
                    .to_string()
            })
            .collect();
        names.sort();
        names
    }

    /// The one file named `path` that still exists (not removed). A file that was unlinked or
    /// replaced may be listed with the same `path`, as removed.
    pub fn live_file(&self, path: &str) -> &Value {
        let hits: Vec<&Value> = self
            .files()
            .iter()
            .filter(|f| f["path"] == path && f["removed"] == false)
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "expected exactly one file {path} not removed in the report:\n{}",
            self.pretty()
        );
        hits[0]
    }

    /// The paths of the files that are not removed.
    pub fn live_paths(&self) -> BTreeSet<String> {
        self.files()
            .iter()
            .filter(|f| f["removed"] == false)
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    }

    /// [`Report::assert_file`] on the live file named `path`.
    pub fn assert_live_file(&self, path: &str, kind: &str, counters: &[(&str, u64)]) {
        let f = self.live_file(path);
        assert_eq!(f["type"], kind, "type of {path}:\n{}", self.pretty());
        for (key, want) in counters {
            let got = Self::u64_at(f, key);
            assert_eq!(got, *want, "{key} of {path}:\n{}", self.pretty());
        }
    }

    /// The `names` of the (only) file `path` are exactly `expected`.
    pub fn assert_names(&self, path: &str, expected: &[&str]) {
        let got = Self::names_of(self.file(path));
        let mut want: Vec<String> = expected
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        want.sort();
        assert_eq!(got, want, "names of {path}:\n{}", self.pretty());
    }

    /// What every report keeps, whatever was traced: each file has `names`; a removed file has
    /// none, a file that is not removed is listed under one of its names; no path is a
    /// placeholder (`<unknown ...>`); every unsynced_write names a live file by a live name;
    /// `released_files` and `reclaimed_slots` are counts.
    pub fn assert_identity(&self) {
        for f in self.files() {
            let path = f["path"].as_str().unwrap_or_else(|| panic!("no path: {f}"));
            assert!(
                path.starts_with('/'),
                "a file without a real path: {f}\n{}",
                self.pretty()
            );
            let names = Self::names_of(f);
            for n in &names {
                assert!(n.starts_with('/'), "a name that is not absolute: {f}");
            }
            if f["removed"] == true {
                assert!(names.is_empty(), "a removed file with names: {f}");
            } else {
                assert_eq!(f["removed"], false, "removed is not a boolean: {f}");
                assert!(
                    names.iter().any(|n| n == path),
                    "path {path} is not one of the file's names: {f}"
                );
            }
        }
        for w in self
            .findings_json()
            .iter()
            .filter(|w| w["kind"] == "unsynced_write")
        {
            let path = w["path"].as_str().unwrap();
            assert!(
                self.files()
                    .iter()
                    .any(|f| f["removed"] == false && Self::names_of(f).iter().any(|n| n == path)),
                "unsynced_write on {path}, which is no live name of a live file:\n{}",
                self.pretty()
            );
        }
        for key in ["released_files", "reclaimed_slots"] {
            assert!(
                self.0[key].is_u64(),
                "no integer {key:?} at the top of the report"
            );
        }
    }
}

/// The distribution's python (linked to the system libsqlite3); `-I -B`: no user site, no
/// environment, no .pyc writes (which would be writes of the traced process).
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

// ------------------------------------------------------------------------------------------------
// -p PID: adopting a running process
// ------------------------------------------------------------------------------------------------

/// A running python process that writes 100 bytes ("w"), fsyncs ("s") or exits ("q") on
/// command, answering "ok" once the syscall has returned. Its file is opened before any trace.
pub const WRITER: &str = r#"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
print("ready", flush=True)
for line in sys.stdin:
    c = line.strip()
    if c == "w":
        assert os.write(fd, b"x" * 99 + b"\n") == 100
    elif c == "s":
        os.fsync(fd)
    elif c == "q":
        break
    print("ok", flush=True)
os.close(fd)
"#;

pub struct Writer {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: BufReader<ChildStdout>,
}

impl Writer {
    pub fn start(file: &str) -> Writer {
        let mut child = Command::new(python())
            .args(["-I", "-B", "-c", WRITER, file])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting python3");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut w = Writer {
            child,
            stdin,
            stdout,
        };
        assert_eq!(w.read_line(), "ready");
        w
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn read_line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        l.trim().to_string()
    }
    /// Sends commands one by one, each acknowledged after its syscall returned.
    pub fn send(&mut self, cmds: &str) {
        for c in cmds.chars() {
            writeln!(self.stdin.as_mut().unwrap(), "{c}").unwrap();
            assert_eq!(self.read_line(), "ok", "writer did not acknowledge {c:?}");
        }
    }
    pub fn quit(&mut self) {
        writeln!(self.stdin.as_mut().unwrap(), "q").unwrap();
        self.stdin = None;
        let status = self.child.wait().unwrap();
        assert!(status.success(), "writer: {status}");
    }
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raw bpf(2), for checking what the tracer holds in the kernel (no bpftool needed).
pub mod bpf {
    use std::{
        io,
        os::fd::{FromRawFd, OwnedFd},
    };

    const MAP_LOOKUP_ELEM: libc::c_long = 1;
    const PROG_GET_FD_BY_ID: libc::c_long = 13;
    const MAP_GET_FD_BY_ID: libc::c_long = 14;
    const OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const LINK_GET_FD_BY_ID: libc::c_long = 30;

    #[repr(C, align(8))]
    struct Attr([u8; 128]);

    impl Attr {
        fn new() -> Attr {
            Attr([0; 128])
        }
        fn u32(mut self, off: usize, v: u32) -> Attr {
            self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
            self
        }
        fn u64(mut self, off: usize, v: u64) -> Attr {
            self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
            self
        }
    }

    fn sys_bpf(cmd: libc::c_long, mut attr: Attr) -> io::Result<i64> {
        // SAFETY: `attr` is a zero-padded bpf_attr of the size passed.
        let r =
            unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len() as u32) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Kind {
        Prog,
        Map,
        Link,
    }

    /// A descriptor of the kernel object with this id, or None if the kernel has none.
    pub fn get(kind: Kind, id: u32) -> io::Result<Option<OwnedFd>> {
        let cmd = match kind {
            Kind::Prog => PROG_GET_FD_BY_ID,
            Kind::Map => MAP_GET_FD_BY_ID,
            Kind::Link => LINK_GET_FD_BY_ID,
        };
        match sys_bpf(cmd, Attr::new().u32(0, id)) {
            // SAFETY: a new descriptor we own.
            Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Name of a map (struct bpf_map_info: name[16] at offset 24).
    pub fn map_name(fd: &OwnedFd) -> io::Result<String> {
        use std::os::fd::AsRawFd;
        let mut info = [0u8; 64];
        let attr = Attr::new()
            .u32(0, fd.as_raw_fd() as u32)
            .u32(4, info.len() as u32)
            .u64(8, info.as_mut_ptr() as u64);
        sys_bpf(OBJ_GET_INFO_BY_FD, attr)?;
        let name = &info[24..40];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Ok(String::from_utf8_lossy(&name[..end]).into_owned())
    }

    /// Whether a hash map with u32 keys (and values of `value_size` bytes) holds `key`.
    pub fn map_has_u32(fd: &OwnedFd, key: u32, value_size: usize) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let mut value = vec![0u8; value_size];
        let attr = Attr::new()
            .u32(0, fd.as_raw_fd() as u32)
            .u64(8, &raw const key as u64)
            .u64(16, value.as_mut_ptr() as u64);
        match sys_bpf(MAP_LOOKUP_ELEM, attr) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The BPF programs, maps and links process `pid` holds descriptors of (from fdinfo).
pub fn bpf_objects_of(pid: u32) -> BTreeSet<(bpf::Kind, u32)> {
    let mut out = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let field = |name: &str| -> Option<u32> {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
        };
        if let Some(id) = field("link_id:") {
            out.insert((bpf::Kind::Link, id));
        }
        if let Some(id) = field("prog_id:") {
            out.insert((bpf::Kind::Prog, id));
        }
        if let Some(id) = field("map_id:") {
            out.insert((bpf::Kind::Map, id));
        }
    }
    out
}

/// Fails the test if the tracer exited (with its stderr).
fn assert_still_running(tracer: &mut Child) {
    if let Some(status) = tracer.try_wait().unwrap() {
        let mut err = String::new();
        let _ = tracer.stderr.take().map(|mut e| e.read_to_string(&mut err));
        panic!("fsync-trace exited before tracing: {status}; stderr: {err}");
    }
}

/// True once process `pid` has a SIGINT handler (the tracer installs it when attached).
fn catches_sigint(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGINT - 1)) != 0)
}

/// Waits until tracer `tracer` traces `target` (its TRACED_TGIDS map holds the pid) and has
/// its SIGINT handler in place; returns the BPF objects it holds then.
pub fn wait_until_tracing(tracer: &mut Child, target: u32) -> BTreeSet<(bpf::Kind, u32)> {
    let start = Instant::now();
    loop {
        assert_still_running(tracer);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "fsync-trace never started tracing pid {target}"
        );
        let objs = bpf_objects_of(tracer.id());
        let traced = objs
            .iter()
            .filter(|(k, _)| *k == bpf::Kind::Map)
            .any(|&(_, id)| {
                let Ok(Some(fd)) = bpf::get(bpf::Kind::Map, id) else {
                    return false;
                };
                bpf::map_name(&fd).is_ok_and(|n| n == "TRACED_TGIDS")
                    && bpf::map_has_u32(&fd, target, 4).unwrap_or(false)
            });
        let caught = catches_sigint(tracer.id());
        if traced && caught {
            // The leak check after exit looks these up by id: make sure the lookup sees them now.
            for &(kind, id) in &objs {
                assert!(
                    bpf::get(kind, id).expect("bpf(2)").is_some(),
                    "{kind:?} {id} held by the tracer is not visible"
                );
            }
            return objs;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until tracer `tracer` (started with `--all`) has attached its programs and has its
/// SIGINT handler in place (it installs it once everything is attached).
pub fn wait_until_attached(tracer: &mut Child) {
    let start = Instant::now();
    loop {
        assert_still_running(tracer);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "fsync-trace never attached"
        );
        let objs = bpf_objects_of(tracer.id());
        let links = objs.iter().filter(|o| o.0 == bpf::Kind::Link).count();
        let caught = catches_sigint(tracer.id());
        if links > 0 && caught {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Every BPF program, link and map the tracer held is gone from the kernel (not pinned, not
/// held by anything else) once it exited. Freeing is asynchronous (RCU, workqueues): poll.
pub fn assert_bpf_released(objs: &BTreeSet<(bpf::Kind, u32)>) {
    let progs = objs.iter().filter(|o| o.0 == bpf::Kind::Prog).count();
    let links = objs.iter().filter(|o| o.0 == bpf::Kind::Link).count();
    assert!(
        progs > 0 && links > 0,
        "the tracer held no programs or links: {objs:?}"
    );
    let start = Instant::now();
    loop {
        let left: Vec<_> = objs
            .iter()
            .filter(|&&(k, id)| bpf::get(k, id).expect("bpf(2)").is_some())
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still in the kernel after fsync-trace exited: {left:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
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
