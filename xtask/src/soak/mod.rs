//! `cargo xtask soak`: memory soak of the daemon mode, `fsync-trace --all` (issue 10: a day of
//! `--all` must stay under a fixed memory ceiling). Writes a Markdown page (docs/soak.md).
//!
//! Two phases, each with a fresh tracer (`fsync-trace --all --json -o report.json`):
//!
//! - **steady**: for `--minutes` (default 10), about 1,000 appends of 100 B + fdatasync per
//!   second over 4 log files, plus 100 new files per second (create, write 1 KiB, fsync, close;
//!   files older than 10 s unlinked; the directory fsynced once a second).
//! - **churn**: `--files` (default 500,000) files created, written (100 B) and closed in 4
//!   subdirectories, then unlinked, in batches of 10,000, as fast as it goes, with no sync.
//!
//! The load runs in a child process (this binary again, with the hidden `--load` option) under
//! /var/tmp, on a disk filesystem. While it runs, the tracer's VmRSS and VmHWM are read from
//! /proc every second; then the tracer gets SIGINT and its end of run (report writing) is polled
//! too, and its `ru_maxrss` taken from wait4. Lost events and the release counters come from the
//! tracer's JSON report.
//!
//! - [`phase`]: one phase: the tracer started, watched while the load runs, stopped;
//! - [`load`]: the load generators (run in the child process);
//! - [`report`]: what the tracer's JSON report says;
//! - [`page`]: the Markdown page and the summary on stdout.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context, Result};

use crate::util;

mod load;
mod page;
mod phase;
mod report;

#[derive(clap::Args)]
pub struct SoakArgs {
    /// Which phase(s) to run.
    #[arg(long, value_enum, default_value_t = Phase::Both)]
    phase: Phase,
    /// Length of the steady phase, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Files the churn phase creates and removes.
    #[arg(long, default_value_t = 500_000)]
    files: u64,
    /// Steady phase: appends + fdatasync per second (over 4 log files).
    #[arg(long, default_value_t = 1000)]
    fsync_rate: u64,
    /// Steady phase: new files per second (each written, fsynced, unlinked 10 s later).
    #[arg(long, default_value_t = 100)]
    file_rate: u64,
    /// Markdown page to write (relative paths are from the workspace root).
    #[arg(long, default_value = "docs/soak.md")]
    out: PathBuf,
    /// Scratch directory: the load's files, the tracer's reports and stderr (disk, not tmpfs).
    #[arg(long, default_value = "/var/tmp/fsync-trace-soak")]
    dir: PathBuf,
    /// Cargo target dir to build into and take target/release/fsync-trace from
    /// (default: $CARGO_TARGET_DIR, else the workspace's target/).
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Use the fsync-trace binary already built instead of building it.
    #[arg(long)]
    no_build: bool,
    /// Force the tracer's tier (fentry, kprobe, tracepoint); default: its own choice.
    #[arg(long)]
    tier: Option<String>,
    /// Seconds to allow the tracer for its end of run (report) after SIGINT.
    #[arg(long, default_value_t = 120)]
    stop_timeout: u64,
    /// Internal: run the load generator of this phase (in the child process).
    #[arg(long, hide = true, value_enum)]
    load: Option<Load>,
    /// Internal: the load generator's directory.
    #[arg(long, hide = true)]
    load_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Phase {
    Steady,
    Churn,
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Load {
    Steady,
    Churn,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Steady => "steady",
            Load::Churn => "churn",
        }
    }
}

pub fn run(args: SoakArgs) -> Result<()> {
    if let Some(load) = args.load {
        let dir = args
            .load_dir
            .as_deref()
            .context("--load needs --load-dir")?;
        return match load {
            Load::Steady => load::steady_load(
                dir,
                Duration::from_secs_f64(args.minutes * 60.0),
                args.fsync_rate,
                args.file_rate,
            ),
            Load::Churn => load::churn_load(dir, args.files),
        };
    }
    if !util::is_root() {
        bail!("the soak loads eBPF programs (fsync-trace --all): run as root");
    }
    if args.minutes.is_nan()
        || args.minutes <= 0.0
        || args.files == 0
        || args.fsync_rate == 0
        || args.file_rate == 0
    {
        bail!("--minutes, --files, --fsync-rate and --file-rate must be positive");
    }
    let root = util::workspace_root()?;
    let target_dir = util::target_dir(args.target_dir.as_deref(), &root);
    if !args.no_build {
        util::build_release(&root, &target_dir)?;
    }
    let tracer = target_dir.join("release/fsync-trace");
    if !tracer.is_file() {
        bail!(
            "{} does not exist (build it, or drop --no-build)",
            tracer.display()
        );
    }
    let out = if args.out.is_relative() {
        root.join(&args.out)
    } else {
        args.out.clone()
    };
    fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let scratch = fs::canonicalize(&args.dir)?;
    util::check_disk_fs(&scratch)?;
    let soak = Soak {
        tracer,
        scratch,
        tier: args.tier.clone(),
        stop_timeout: Duration::from_secs(args.stop_timeout),
    };
    for f in foreign_bpf() {
        eprintln!("[soak] note: another BPF user is running: {f}");
    }
    let phases: Vec<Load> = match args.phase {
        Phase::Steady => vec![Load::Steady],
        Phase::Churn => vec![Load::Churn],
        Phase::Both => vec![Load::Steady, Load::Churn],
    };
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for p in phases {
        match soak.phase(p, &args) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("[soak] {} phase FAILED: {e:#}", p.name());
                failures.push(format!("{}: {e:#}", p.name()));
            }
        }
    }
    let page = page::markdown(&args, &soak, &results, &failures, &git_describe(&root));
    if let Some(d) = out.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(&out, page).with_context(|| format!("writing {}", out.display()))?;
    print!("{}", page::summary_table(&results));
    eprintln!("[soak] wrote {}", out.display());
    if !failures.is_empty() {
        bail!("{} phase(s) failed (see above)", failures.len());
    }
    Ok(())
}

struct Soak {
    tracer: PathBuf,
    scratch: PathBuf,
    tier: Option<String>,
    stop_timeout: Duration,
}

/// Other processes holding BPF programs, as "pid N comm (N BPF programs)".
fn foreign_bpf() -> Vec<String> {
    util::bpf_users()
        .into_iter()
        .map(|u| format!("pid {} {} ({} BPF programs)", u.pid, u.comm, u.progs))
        .collect()
}

/// The commit the tracer was built from, "-dirty" if the work tree had changes.
fn git_describe(root: &Path) -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "?".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )
}
