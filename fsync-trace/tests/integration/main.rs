//! Root integration tests: the real `fsync-trace` binary loads its eBPF programs into this kernel
//! and traces real workloads (`fsync-trace-workload` scenarios, SQLite, a python process adopted
//! with `-p`, a FUSE filesystem whose fsync fails). Every run must be complete (nothing lost) and
//! every report is checked for exact counts and the exact list of findings: a finding that is
//! missing or extra fails the test.
//!
//! Run as root: `cargo xtask integration` (one test at a time: each one attaches to the kernel).
//! Needs gcc, pkg-config, libfuse3-dev and fusermount3 (failfs), python3 with sqlite3, setpriv.
#![allow(clippy::zombie_processes)]

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod cgroups;
mod crash;
mod demo;
mod deploy;
mod durable_points;
mod extent;
mod failures;
mod metadata;
mod processes;
mod rules;
mod sqlite;
mod stacks;
mod table;
mod truncate;
mod uring;
mod wal;
