//! `fsync-trace-workload`: small, deterministic durability scenarios.
//!
//! Used by the integration tests, the demo and the benchmarks. Every scenario
//! issues an exact, known sequence of syscalls, so the tracer's findings can
//! be checked against it. That is why the code talks to libc directly instead
//! of going through `std::fs`: `File::write_all` may loop, and std may add
//! syscalls (statx, fcntl, ...) of its own. Here one record is one write(2),
//! and a short write is an error rather than a retry.
//!
//! Usage: `fsync-trace-workload <scenario> <dir> [options]` (see `--help`, `cli.rs`).
//! All files are created inside `<dir>`, which must exist. Nothing is printed
//! on stdout; on any error the program prints
//! `workload: <scenario>: <what>: <err>` to stderr and exits 1.

/// Prints one line to stderr with a single write(2): `eprintln!` may split a
/// line into several writes, which clutters strace output and the tracer's
/// view of the process. Errors writing to stderr are ignored (nowhere to go).
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = format!("{}\n", format_args!($($arg)*));
        let _ = io::stderr().write_all(line.as_bytes());
    }};
}

mod cli;
mod cost;
mod durability;
mod exposure;
mod extent;
mod hold;
mod load;
mod metadata;
mod sys;
mod truncate;
mod uring;
mod vectored;
mod walserver;

pub(crate) use durability::*;
use load::{fsync_bound, many_files, write_storm, Lockstep, BUSY_NS};
pub(crate) use sys::*;
use vectored::{io_uring_fsync, writev};

use clap::{CommandFactory, FromArgMatches};
use fsync_trace_workload::scenarios::THREADS_FSYNC_EVERY;
use std::ffi::CString;
use std::io::{self, Write};
use std::path::Path;
use std::process::exit;
use std::sync::atomic::Ordering;

fn main() {
    let matches = cli::Cli::command().get_matches();
    let scenario = matches.subcommand_name().unwrap_or_default().to_string();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let (dir, run) = cli.scenario.into_run();
    let report_elapsed = cli.report_elapsed;
    let start = std::time::Instant::now();
    if let Err(e) = run(&dir) {
        say!("workload: {scenario}: {e}");
        exit(1);
    }
    if report_elapsed {
        let elapsed = match BUSY_NS.load(Ordering::Relaxed) {
            0 => start.elapsed().as_nanos(),
            busy => u128::from(busy),
        };
        // SAFETY: getrusage fills the zeroed struct we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut ru) };
        let us = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
        say!(
            "elapsed_ns={elapsed} utime_us={} stime_us={} maxrss_kb={}",
            us(ru.ru_utime),
            us(ru.ru_stime),
            ru.ru_maxrss
        );
    }
}
