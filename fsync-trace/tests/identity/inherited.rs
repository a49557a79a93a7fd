//! Descriptors opened before tracing started (inherited by the command, or before `-p`).
use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    os::{fd::AsRawFd, unix::process::CommandExt},
    process::{Command, Stdio},
    time::Duration,
};

use super::support::*;

// ------------------------------------------------------------------------------------------------
// Descriptors opened before tracing started
// ------------------------------------------------------------------------------------------------

/// The traced command inherits each (file, fd number) pair (at most 4): the tracer is started
/// with them, and passes them on as it passes every descriptor on to the command it starts.
fn inherit_fds(cmd: &mut Command, fds: &[(&File, i32)]) {
    assert!(fds.len() <= 4);
    let n = fds.len();
    let mut pairs = [(-1, -1); 4];
    for (slot, (f, target)) in pairs.iter_mut().zip(fds) {
        *slot = (f.as_raw_fd(), *target);
    }
    // SAFETY: between fork and exec the closure allocates nothing and only makes
    // async-signal-safe syscalls (fcntl, dup2, close) on descriptors the parent keeps open
    // until the spawn has returned.
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way of every target number, then onto the targets: a source may
            // itself sit on another pair's target number.
            let mut high = [-1; 4];
            for i in 0..n {
                high[i] = libc::fcntl(pairs[i].0, libc::F_DUPFD, 100);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for i in 0..n {
                // dup2 clears close-on-exec on the target.
                if libc::dup2(high[i], pairs[i].1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(high[i]);
            }
            Ok(())
        });
    }
}

/// Opens `path` for appending (creating it), untraced, as the shell's `7>>FILE` would.
fn open_append(path: &str) -> File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {path}: {e}"))
}

/// `fsync-trace -- sh -c 'echo hello >&7' 7>>FILE`: FILE was opened before the trace, by the
/// tracer's parent. Its one write is reported on FILE, by FILE's path.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn inherited_descriptor_is_reported_by_its_path() {
    let (_g, d) = tempdir();
    let file = format!("{d}/inherited.log");
    let f = open_append(&file);
    let (out, r) = trace_with(&os(&["--", "/bin/sh", "-c", "echo hello >&7"]), |cmd| {
        inherit_fds(cmd, &[(&f, 7)]);
    });
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = r.unwrap_or_else(|| panic!("no report; stderr: {}", out.stderr));
    r.assert_complete();
    r.assert_paths(&[&file]);
    r.assert_file(
        &file,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 6),
            ("fsyncs", 0),
            ("unsynced_bytes", 6),
        ],
    );
    r.assert_removed(&file, false);
    r.assert_syncs(&[]);
    r.assert_findings(&[fid("unsynced_write", &file, None)]);
    r.assert_unsynced_write(&file, 1, 6);
    r.assert_names(&file, &[&file]);
    r.assert_identity();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello\n");
}

/// Two inherited descriptors on two files (fd 7 -> A, fd 8 -> B), each written once: each write
/// on its own file, by its own path.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn two_inherited_descriptors_keep_their_own_paths() {
    let (_g, d) = tempdir();
    let (a, b) = (format!("{d}/a.log"), format!("{d}/b.log"));
    let (fa, fb) = (open_append(&a), open_append(&b));
    let (out, r) = trace_with(
        &os(&["--", "/bin/sh", "-c", "echo alpha >&7; echo beta-two >&8"]),
        |cmd| inherit_fds(cmd, &[(&fa, 7), (&fb, 8)]),
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = r.unwrap_or_else(|| panic!("no report; stderr: {}", out.stderr));
    r.assert_complete();
    r.assert_paths(&[&a, &b]);
    for (p, bytes) in [(&a, 6), (&b, 9)] {
        r.assert_file(
            p,
            "file",
            &[
                ("writes", 1),
                ("bytes_written", bytes),
                ("fsyncs", 0),
                ("unsynced_bytes", bytes),
            ],
        );
        r.assert_removed(p, false);
    }
    r.assert_syncs(&[]);
    r.assert_findings(&[
        fid("unsynced_write", &a, None),
        fid("unsynced_write", &b, None),
    ]);
    r.assert_unsynced_write(&a, 1, 6);
    r.assert_unsynced_write(&b, 1, 9);
    r.assert_names(&a, &[&a]);
    r.assert_names(&b, &[&b]);
    r.assert_identity();
}

/// Opens its file, says "ready", waits for a line on stdin, then writes 100 bytes 3 times and
/// exits at once (`os._exit`: nothing else runs after the writes, so the process and its
/// descriptor are gone a moment after the last write).
const OPEN_THEN_WRITE: &str = r#"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
print("ready", flush=True)
sys.stdin.readline()
for i in range(3):
    assert os.write(fd, b"x" * 99 + b"\n") == 100
os._exit(0)
"#;

/// `-p PID` attached after the process opened its file: the 3 writes are reported on the file,
/// by its path.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn descriptor_opened_before_pid_attach_is_reported_by_its_path() {
    let (_g, d) = tempdir();
    let file = format!("{d}/opened-before.dat");
    let mut py = Command::new(python())
        .args(["-I", "-B", "-c", OPEN_THEN_WRITE, &file])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting python3");
    let pid = py.id();
    let mut stdin = py.stdin.take().unwrap();
    let mut stdout = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let report = format!("{d}.report.json");
    let _rm = RemoveOnDrop(report.clone());
    let mut tracer = spawn_tracer(&["-p", &pid.to_string()], &report);
    wait_until_tracing(&mut tracer, pid);
    writeln!(stdin, "go").unwrap();
    drop(stdin);
    let status = py.wait().unwrap();
    assert!(status.success(), "python: {status}");
    let out = wait_output(
        tracer,
        Duration::from_secs(20),
        "fsync-trace -p after the target exited",
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = read_report(&report);
    r.assert_paths(&[&file]);
    r.assert_file(
        &file,
        "file",
        &[
            ("writes", 3),
            ("bytes_written", 300),
            ("fsyncs", 0),
            ("unsynced_bytes", 300),
        ],
    );
    r.assert_removed(&file, false);
    r.assert_syncs(&[]);
    r.assert_findings(&[fid("unsynced_write", &file, None)]);
    r.assert_unsynced_write(&file, 3, 300);
    r.assert_adopted_process(pid, "python3");
    r.assert_names(&file, &[&file]);
    r.assert_identity();
}
