//! The tracer's signals under a real process group (Ctrl-C twice, SIGTERM).

use super::*;

/// `fsync-trace -- sh -c '<script>'` in a new session (its own process group, as a shell's
/// foreground job is), with the report as JSON in `report`.
fn traced_job(report: &str, script: &str) -> Child {
    let mut cmd = Command::new(TRACER);
    // The command's own output goes nowhere: it outlives the tracer, and must not hold the
    // tracer's pipes open.
    let script = format!("exec >/dev/null 2>&1; {script}");
    cmd.args(["--json", "-o", report, "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().expect("fsync-trace")
}

fn wait_for_file(path: &str) {
    let start = Instant::now();
    while !Path::new(path).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{path} never appeared"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn second_ctrl_c_ends_the_trace_while_the_command_ignores_it() {
    let (_g, d) = tempdir();
    let report = format!("{d}/report.json");
    let ready = format!("{d}/ready");
    let tracer = traced_job(
        &report,
        &format!("trap '' INT; echo x > {d}/data; touch {ready}; sleep 60"),
    );
    wait_for_file(&ready);
    let pgid = tracer.id() as i32;
    // Ctrl-C at a terminal goes to the whole foreground group: tracer, shell, sleep.
    sigint(-pgid);
    thread::sleep(Duration::from_millis(300));
    sigint(-pgid);
    let out = wait_output(
        tracer,
        Duration::from_secs(20),
        "fsync-trace after two Ctrl-C",
    );
    assert_eq!(out.code, 128 + libc::SIGINT, "{}", out.stderr);
    let r = read_report(&report);
    let notes = r.0["notes"].to_string();
    assert!(notes.contains("still running"), "{notes}");
    r.assert_findings(&[
        fid("unsynced_write", &format!("{d}/data"), None),
        fid("unsynced_parent_dir", &d, Some("data")),
        fid("unsynced_parent_dir", &d, Some("ready")),
    ]);
    // The command kept its own fate (it ignores SIGINT): end it.
    // SAFETY: plain syscall.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn sigterm_always_ends_the_trace_with_a_report() {
    let (_g, d) = tempdir();
    let report = format!("{d}/report.json");
    let ready = format!("{d}/ready");
    let tracer = traced_job(
        &report,
        &format!("trap '' INT TERM; touch {ready}; sleep 60"),
    );
    wait_for_file(&ready);
    let pgid = tracer.id() as i32;
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::kill(pgid, libc::SIGTERM) }, 0);
    let out = wait_output(tracer, Duration::from_secs(20), "fsync-trace after SIGTERM");
    assert_eq!(out.code, 128 + libc::SIGTERM, "{}", out.stderr);
    let r = read_report(&report);
    assert!(r.0["notes"].to_string().contains("still running"));
    // SAFETY: plain syscall.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}
