//! Tasks cargo cannot do alone: root integration runs, the demo, (later) VM kernels and benches.
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

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
    /// Run the root-only integration tests (load the real eBPF programs into this kernel).
    Integration {
        /// Extra arguments for the test harness (e.g. a test name filter).
        args: Vec<String>,
    },
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn main() -> Result<()> {
    match Xtask::parse().cmd {
        Cmd::Demo { json } => {
            run(cargo().args(["build", "--release", "-p", "fsync-trace"]))?;
            let dir = std::path::Path::new("/var/tmp/fsync-trace-demo");
            if dir.exists() {
                std::fs::remove_dir_all(dir).context("cleaning the demo directory")?;
            }
            std::fs::create_dir_all(dir).context("creating the demo directory")?;
            let mut cmd = Command::new("target/release/fsync-trace");
            if json {
                cmd.arg("--json");
            }
            cmd.args(["--", "target/release/fsync-trace-workload", "demo"]).arg(dir);
            run(&mut cmd)
        }
        Cmd::Integration { args } => {
            // SAFETY: plain syscall.
            if unsafe { libc_geteuid() } != 0 {
                bail!("integration tests load eBPF programs: run as root");
            }
            run(cargo()
                .args(["test", "--release", "-p", "fsync-trace", "--test", "integration", "--", "--include-ignored", "--test-threads=1"])
                .args(args))
        }
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
