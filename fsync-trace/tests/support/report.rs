//! Reading reports: files, findings, syncs, processes; files as inodes with names and a
//! lifetime.
use super::*;

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
