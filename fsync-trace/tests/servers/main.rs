//! Auditing servers as they run (root, real kernel, real programs): PostgreSQL adopted with
//! `-p <postmaster> -f` during a pgbench run, Redis with a BGREWRITEAOF child, a 100k-entry
//! directory storm reported as one grouped finding, suppression rules and profiles, and the
//! tracer's signals under a real process group.
#[path = "../support/mod.rs"]
mod support;

mod grouping;
mod postgres;
mod redis;
mod signals;
mod wal;

use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use support::*;

fn sigint(pid: i32) {
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
}

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn must(cmd: &mut Command, what: &str) -> String {
    let out = run(cmd, what);
    assert_eq!(out.code, 0, "{what}: {}{}", out.stdout, out.stderr);
    out.stdout
}

/// Starts redis-server with an append-only file synced per `appendfsync` in `dir`; waits until
/// it answers.
pub(crate) fn start_redis(dir: &str, port: &str, appendfsync: &str) -> Child {
    let redis = Command::new("redis-server")
        .args([
            "--port",
            port,
            "--bind",
            "127.0.0.1",
            "--dir",
            dir,
            "--appendonly",
            "yes",
            "--appendfsync",
            appendfsync,
            "--save",
            "",
            "--logfile",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/setup.sh installs it)");
    let start = Instant::now();
    while run(Command::new("redis-cli").args(["-p", port, "ping"]), "ping")
        .stdout
        .trim()
        != "PONG"
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "redis never answered"
        );
        thread::sleep(Duration::from_millis(50));
    }
    redis
}
