//! Tasks cargo cannot do alone: the demo, the root-only integration tests, the overhead
//! benchmark (bench), the tier check on a second kernel (vm) and the memory soak (soak).
use std::{path::Path, process::Command};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use util::{cargo, run};

mod bench;
mod soak;
mod util;
mod vm;

#[derive(Parser)]
#[command(name = "xtask")]
struct Xtask {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build release binaries and trace the bundled demo workload.
    Demo {
        /// Print the JSON report instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the root-only integration tests (load the real eBPF programs into this kernel): the
    /// `integration`, `identity`, `servers`, `cost`, `live` and `device` test targets of fsync-trace.
    Integration {
        /// Extra arguments for the test harness (e.g. a test name filter).
        args: Vec<String>,
    },
    /// Overhead benchmark against strace and bpftrace (root); writes docs/benchmarks.md and .svg.
    Bench(bench::BenchArgs),
    /// Prove the fentry, kprobe and tracepoint tiers agree on a second kernel (Debian's 6.1 cloud
    /// kernel under QEMU/TCG), and check the tier choice on this one (root).
    Vm(vm::VmArgs),
    /// Memory soak of `fsync-trace --all` under steady syncs and file churn (root); writes
    /// docs/soak.md.
    Soak(soak::SoakArgs),
}

fn main() -> Result<()> {
    match Xtask::parse().cmd {
        Cmd::Demo { json } => demo(json),
        Cmd::Bench(args) => bench::run(args),
        Cmd::Vm(args) => vm::run(args),
        Cmd::Soak(args) => soak::run(args),
        Cmd::Integration { args } => {
            if !util::is_root() {
                bail!("integration tests load eBPF programs: run as root");
            }
            // The suites run the workload binary of its own crate.
            run(cargo().args(["build", "--release", "-p", "fsync-trace-workload"]))?;
            run(cargo()
                .args([
                    "test",
                    "--release",
                    // Both targets run even if the first one has failures.
                    "--no-fail-fast",
                    "-p",
                    "fsync-trace",
                    "--test",
                    "integration",
                    "--test",
                    "identity",
                    "--test",
                    "servers",
                    "--test",
                    "cost",
                    "--test",
                    "live",
                    "--test",
                    "device",
                    "--",
                    "--include-ignored",
                    "--test-threads=1",
                ])
                .args(args))
        }
    }
}

/// Traces the bundled demo workload, including a failing fsync on a small FUSE filesystem
/// (tests/fixtures/failfs.c) so every kind of finding shows up.
fn demo(json: bool) -> Result<()> {
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "fsync-trace",
        "-p",
        "fsync-trace-workload",
    ]))?;
    let root = Path::new("/var/tmp/fsync-trace-demo");
    let mnt = root.join("fuse");
    let _ = Command::new("fusermount3")
        .arg("-u")
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status();
    if root.exists() {
        std::fs::remove_dir_all(root).context("cleaning the demo directory")?;
    }
    let data = root.join("data");
    std::fs::create_dir_all(&data).context("creating the demo directory")?;
    std::fs::create_dir_all(&mnt)?;
    let failfs = root.join("failfs");
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "fuse3"])
        .output()
        .context("pkg-config (run scripts/setup.sh)")?;
    let flags = String::from_utf8_lossy(&flags.stdout).to_string();
    run(Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&failfs)
        .arg("fsync-trace/tests/fixtures/failfs.c")
        .args(flags.split_whitespace()))?;
    let mut fuse = Command::new(&failfs)
        .args(["-f", "-s"])
        .arg(&mnt)
        .spawn()
        .context("starting failfs")?;
    let mounted = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::read_to_string("/proc/self/mountinfo")
            .is_ok_and(|m| m.contains(mnt.to_str().unwrap_or("?")))
    });
    let result = if mounted {
        let mut cmd = Command::new("target/release/fsync-trace");
        if json {
            cmd.arg("--json");
        }
        cmd.args(["--", "target/release/fsync-trace-workload", "demo"])
            .arg(&data)
            .arg("--fuse")
            .arg(&mnt);
        run(&mut cmd)
    } else {
        Err(anyhow::anyhow!(
            "the demo FUSE filesystem did not mount at {}",
            mnt.display()
        ))
    };
    let _ = Command::new("fusermount3").arg("-u").arg(&mnt).status();
    let _ = fuse.wait();
    result
}
