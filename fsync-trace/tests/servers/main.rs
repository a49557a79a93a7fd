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
