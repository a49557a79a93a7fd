//! Processes and threads: forks, threads, -p (signals, duration, target exit).
use std::time::{Duration, Instant};

use super::support::*;

// ------------------------------------------------------------------------------------------------
// Processes and threads
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn forked_child_is_followed_and_blamed() {
    // Counts and the child's unsynced_write: the shared table.
    let (_g, d, r) = table_scenario("fork");
    let (parent, child) = (format!("{d}/parent.dat"), format!("{d}/child.dat"));
    r.assert_paths(&[&d, &parent, &child]);
    r.assert_syncs(&[("fsync", 2, 0)]);
    r.assert_unsynced_write(&child, 2, 20);
    let procs = r.processes();
    assert_eq!(procs.len(), 2, "processes: {procs:?}");
    // The command's parent is the tracer (it forked it); the child's is the command.
    let traced: Vec<u64> = procs.iter().map(|p| p.0).collect();
    let (ppid, pcomm, pparent) = procs
        .iter()
        .find(|p| !p.2.is_some_and(|parent| traced.contains(&parent)))
        .cloned()
        .expect("the command");
    let (cpid, ccomm, cparent) = procs
        .iter()
        .find(|p| p.0 != ppid)
        .cloned()
        .expect("the forked child");
    assert_eq!(pcomm.as_str(), WORKLOAD_COMM);
    assert!(pparent.is_some(), "the command has its parent (the tracer)");
    assert_eq!((ccomm.as_str(), cparent), (WORKLOAD_COMM, Some(ppid)));
    assert_ne!(cpid, ppid);
    let finding = r.finding("unsynced_write", &child);
    assert_eq!(finding["pid"].as_u64(), Some(cpid), "blamed on the child");
    assert_eq!(finding["comm"], WORKLOAD_COMM);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn threads_are_counted_exactly() {
    let (_g, d, r) = scenario("threads", &["--records", "1000"]);
    let (t0, t1) = (format!("{d}/thread0.dat"), format!("{d}/thread1.dat"));
    r.assert_paths(&[&d, &t0, &t1]);
    for t in [&t0, &t1] {
        r.assert_file(
            t,
            "file",
            &[
                ("writes", 1000),
                ("bytes_written", 64_000),
                ("fsyncs", 10),
                ("unsynced_bytes", 0),
            ],
        );
    }
    r.assert_syncs(&[("fsync", 21, 0)]);
    r.assert_findings(&[]);
    assert_eq!(r.processes().len(), 1, "threads are not processes");
}

// ------------------------------------------------------------------------------------------------
// -p PID: adopting a running process
// ------------------------------------------------------------------------------------------------

/// The writer's file after `-p`: 3 writes before the trace (not counted), then "wwwsww":
/// 5 writes, one fsync, the last 2 writes unsynced.
fn assert_writer_report(r: &Report, file: &str, pid: u32) {
    r.assert_paths(&[file]);
    r.assert_file(
        file,
        "file",
        &[
            ("writes", 5),
            ("bytes_written", 500),
            ("fsyncs", 1),
            ("unsynced_bytes", 200),
        ],
    );
    r.assert_syncs(&[("fsync", 1, 0)]);
    r.assert_findings(&[fid("unsynced_write", file, None)]);
    r.assert_unsynced_write(file, 2, 200);
    r.assert_adopted_process(pid, "python3");
    assert_eq!(
        r.finding("unsynced_write", file)["pid"].as_u64(),
        Some(u64::from(pid))
    );
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn pid_mode_sigint_reports_and_detaches() {
    let (_g, d) = tempdir();
    let file = format!("{d}/log.dat");
    let mut w = Writer::start(&file);
    w.send("www"); // before the trace: not counted
    let report = format!("{d}.report.json");
    let _rm = RemoveOnDrop(report.clone());
    let pid = w.pid().to_string();
    let mut tracer = spawn_tracer(&["-p", &pid], &report);
    let objs = wait_until_tracing(&mut tracer, w.pid());
    w.send("wwwsww");
    // SAFETY: plain syscall to our child.
    assert_eq!(unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) }, 0);
    let out = wait_output(
        tracer,
        Duration::from_secs(20),
        "fsync-trace -p after SIGINT",
    );
    assert_eq!(
        out.code, 0,
        "exit status after SIGINT; stderr: {}",
        out.stderr
    );
    assert_bpf_released(&objs);
    let r = read_report(&report);
    assert_writer_report(&r, &file, w.pid());
    // The target never noticed: it keeps running, untraced.
    assert!(w.alive(), "the traced process must survive the tracer");
    w.send("w");
    w.quit();
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn pid_mode_duration_stops_and_reports() {
    let (_g, d) = tempdir();
    let file = format!("{d}/log.dat");
    let mut w = Writer::start(&file);
    w.send("www");
    let report = format!("{d}.report.json");
    let _rm = RemoveOnDrop(report.clone());
    let pid = w.pid().to_string();
    let started = Instant::now();
    let mut tracer = spawn_tracer(&["-p", &pid, "--duration", "2"], &report);
    let objs = wait_until_tracing(&mut tracer, w.pid());
    w.send("wwwsww");
    let out = wait_output(
        tracer,
        Duration::from_secs(30),
        "fsync-trace -p --duration 2",
    );
    let took = started.elapsed();
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(12),
        "--duration 2 took {took:?}"
    );
    assert_bpf_released(&objs);
    assert_writer_report(&read_report(&report), &file, w.pid());
    assert!(w.alive(), "the traced process must survive the tracer");
    w.quit();
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn pid_mode_target_exit_ends_the_trace() {
    let (_g, d) = tempdir();
    let file = format!("{d}/log.dat");
    let mut w = Writer::start(&file);
    w.send("www");
    let report = format!("{d}.report.json");
    let _rm = RemoveOnDrop(report.clone());
    let pid = w.pid().to_string();
    // A long duration: only the target's exit can end this trace in time.
    let mut tracer = spawn_tracer(&["-p", &pid, "--duration", "300"], &report);
    let objs = wait_until_tracing(&mut tracer, w.pid());
    w.send("wwwsww");
    let exited = Instant::now();
    w.quit();
    let out = wait_output(
        tracer,
        Duration::from_secs(20),
        "fsync-trace -p after the target exited",
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(
        exited.elapsed() < Duration::from_secs(10),
        "took {:?} to notice the exit",
        exited.elapsed()
    );
    assert_bpf_released(&objs);
    assert_writer_report(&read_report(&report), &file, w.pid());
}
