//! `cargo xtask bench`: what tracing costs the traced program, fsync-trace against strace and
//! bpftrace (issue 4). Writes a Markdown page (docs/benchmarks.md) and an SVG chart next to it.
//!
//! Every workload runs untraced, under fsync-trace (each tier that works here), under strace
//! (restricted to the syscalls fsync-trace looks at) and under a minimal bpftrace script,
//! interleaved (rep 1: A B C D, rep 2: B C D A, ...) so slow drifts of the machine hit every tool
//! alike. The time compared is the workload's own (`--report-elapsed`: from its first syscall to
//! its last), so tracer start-up and report writing are left out; the total wall time including
//! them is reported separately. Every fsync-trace report is checked: no lost events and exact
//! counts (N writes reported as N), or the bench fails.
//!
//! - [`workload`]: the workloads and the exact counts their reports must show;
//! - [`measure`]: one run of a workload under a tool, and its measurements;
//! - [`stats`]: medians, spreads, ratios and correlation over the runs;
//! - [`hooks`]: what each kernel program costs per run and per operation (BPF run-time stats);
//! - [`tables`], [`page`] and [`chart`]: the tables, the Markdown page and the SVG chart.
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::util::{self, fmt_ns, load_average, mib, thousands};

mod chart;
mod hooks;
mod measure;
mod page;
mod redis;
mod stats;
mod tables;
mod workload;

use measure::{foreign_bpf, Bench, Bins, Outcome, Sample, Tool};
use page::Page;
use workload::{Kind, Workload, FSYNC_BOUND_REPS_FACTOR};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Repetitions of every (workload, tool) pair.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Smoke test: small sizes, one repetition, and the page goes to the target dir unless --out.
    #[arg(long)]
    quick: bool,
    /// Markdown page to write; the chart goes next to it with the extension .svg
    /// (default: docs/benchmarks.md, or <target-dir>/bench/benchmarks-quick.md with --quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cargo target dir to build into and take the release binaries from
    /// (default: $CARGO_TARGET_DIR, else the workspace's target/).
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Use the binaries already in <target-dir>/release instead of building them.
    #[arg(long)]
    no_build: bool,
    /// Only measure what each kernel program costs (BPF run-time statistics) and print that
    /// section of the page.
    #[arg(long)]
    hooks_only: bool,
    /// Scratch directory for the workloads' files (must be on a disk filesystem, not tmpfs).
    #[arg(long, default_value = "/var/tmp/fsync-trace-bench")]
    dir: PathBuf,
    /// Only the Redis measurement of the WAL contract's cost (redis-benchmark SETs, untraced vs
    /// `--wal`), with this many requests per run; printed, no page written.
    #[arg(long, value_name = "REQUESTS")]
    redis_only: Option<u64>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if !util::is_root() {
        bail!("the benchmark loads eBPF programs (fsync-trace, bpftrace): run as root");
    }
    let root = util::workspace_root()?;
    let target_dir = util::target_dir(args.target_dir.as_deref(), &root);
    if !args.no_build {
        util::build_release(&root, &target_dir)?;
    }
    let bins = Bins {
        tracer: target_dir.join("release/fsync-trace"),
        workload: target_dir.join("release/fsync-trace-workload"),
    };
    for b in [&bins.tracer, &bins.workload] {
        if !b.is_file() {
            bail!(
                "{} does not exist (build it, or drop --no-build)",
                b.display()
            );
        }
    }
    let (reps, quick) = if args.quick {
        (1, true)
    } else {
        (args.reps.max(1), false)
    };
    let out = match &args.out {
        Some(p) if p.is_relative() => root.join(p),
        Some(p) => p.clone(),
        None if quick => target_dir.join("bench/benchmarks-quick.md"),
        None => root.join("docs/benchmarks.md"),
    };
    fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let scratch = fs::canonicalize(&args.dir)?;
    util::check_disk_fs(&scratch)?;

    let redis_load = |requests| redis::RedisLoad {
        requests,
        clients: 4,
        reps: if quick { 1 } else { reps },
    };
    if let Some(requests) = args.redis_only {
        let r = redis::measure(&bins.tracer, &scratch, redis_load(requests))?;
        println!("{}", r.note());
        return Ok(());
    }
    let mut notes: Vec<String> = Vec::new();
    let mut tools = vec![Tool::Untraced];
    let tiers = detect_tiers(&bins.tracer, &scratch, &mut notes)?;
    tools.extend(tiers.iter().cloned().map(Tool::FsyncTrace));
    if util::answers("strace", "-V") {
        tools.push(Tool::Strace);
    } else {
        notes.push("strace is not installed (scripts/setup.sh installs it): skipped".into());
    }
    if util::answers("bpftrace", "--version") {
        if ensure_tracefs() {
            tools.push(Tool::Bpftrace);
        } else {
            notes.push("tracefs (syscall tracepoints) is not available: bpftrace skipped".into());
        }
    } else {
        notes.push("bpftrace is not installed (scripts/setup.sh installs it): skipped".into());
    }
    if args.hooks_only {
        let runs = hooks::measure(&bins.tracer, &bins.workload, &scratch, &tiers)?;
        print!("{}", hooks::markdown(&runs));
        return Ok(());
    }
    let mut bench = Bench {
        bins,
        scratch: scratch.clone(),
        default_tier: None,
        runs: 0,
        foreign_runs: 0,
        foreign: Default::default(),
    };
    for f in foreign_bpf() {
        eprintln!("[bench] warning: another BPF user is running and slows every syscall: {f}");
    }
    let workloads = Workload::set(quick);
    let load_before = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("[bench] load average now: {}", load_before.trim());
    if load_average() > 1.0 {
        eprintln!("[bench] the machine is busy: the numbers will be noisy");
    }

    if !quick {
        // Warm-up (not recorded): page cache, binaries, and every tool proven to work.
        eprintln!("[bench] warm-up");
        for w in Workload::set(true) {
            for t in &tools {
                bench.run(t, &w, false)?;
            }
        }
    }

    let mut samples: BTreeMap<(Kind, Tool), Vec<Sample>> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut traced_runs = 0;
    let max_reps = workloads
        .iter()
        .map(|w| reps * w.reps_factor())
        .max()
        .unwrap_or(reps);
    for rep in 0..max_reps {
        for w in &workloads {
            if rep >= reps * w.reps_factor() {
                continue;
            }
            let mut order = tools.clone();
            order.rotate_left(rep % tools.len());
            for t in &order {
                match bench.run(t, w, false) {
                    Ok(o) => {
                        if o.report.is_some() {
                            traced_runs += 1;
                        }
                        let s = o.sample;
                        eprintln!(
                            "[bench] rep {}/{} {:<12} {:<26} workload {:>9}  total {:>9}  tracer cpu {:>8}  load {:.2}",
                            rep + 1,
                            reps * w.reps_factor(),
                            w.name(),
                            bench.label(t),
                            fmt_ns(s.elapsed_ns),
                            fmt_ns(s.wall_ns),
                            fmt_ns(s.tool_cpu_us * 1000),
                            s.load1
                        );
                        samples.entry((w.kind, t.clone())).or_default().push(s);
                    }
                    Err(e) => {
                        eprintln!("[bench] FAILED: {e:#}");
                        failures.push(format!("{e:#}"));
                    }
                }
            }
        }
    }

    // fsync-bound again, in lockstep pairs (see `Bench::lockstep`): who goes first alternates.
    let mut lockstep: BTreeMap<Tool, Vec<(u64, u64)>> = BTreeMap::new();
    if let Some(w) = workloads.iter().find(|w| w.kind == Kind::FsyncBound) {
        let pairs = if quick {
            2
        } else {
            reps * FSYNC_BOUND_REPS_FACTOR
        };
        for i in 0..pairs {
            for t in tools.iter().filter(|t| matches!(t, Tool::FsyncTrace(_))) {
                match bench.lockstep(t, w, i % 2 == 1) {
                    Ok((u, tr)) => {
                        traced_runs += 1;
                        eprintln!(
                            "[bench] lockstep {}/{pairs} fsync-bound {:<26} untraced {:>9}  traced {:>9}  ratio {:.3}",
                            i + 1,
                            bench.label(t),
                            fmt_ns(u),
                            fmt_ns(tr),
                            tr as f64 / u as f64
                        );
                        lockstep.entry(t.clone()).or_default().push((u, tr));
                    }
                    Err(e) => {
                        eprintln!("[bench] FAILED: {e:#}");
                        failures.push(format!("{e:#}"));
                    }
                }
            }
        }
    }

    // The WAL contract on a real server (issue 15): redis-benchmark, untraced vs --wal.
    match redis::measure(
        &bench.bins.tracer,
        &scratch,
        redis_load(if quick { 2_000 } else { 50_000 }),
    ) {
        Ok(r) => notes.push(r.note()),
        Err(e) => {
            eprintln!("[bench] FAILED: redis: {e:#}");
            failures.push(format!("redis: {e:#}"));
        }
    }

    // Memory with many tracked files: one run per fsync-trace tier.
    let rss_files = if quick { 10_000 } else { 100_000 };
    let mut memory = Vec::new();
    for t in tools.iter().filter(|t| matches!(t, Tool::FsyncTrace(_))) {
        let w = Workload {
            kind: Kind::ManyFiles,
            n: rss_files,
        };
        eprintln!(
            "[bench] memory: {} with {} files",
            bench.label(t),
            thousands(rss_files)
        );
        match bench.run(t, &w, true) {
            Ok(o) => {
                let report_bytes =
                    fs::metadata(bench.scratch.join("report.json")).map_or(0, |m| m.len());
                let lost = o
                    .report
                    .as_ref()
                    .and_then(|r| r.get("lost_events"))
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::MAX);
                eprintln!(
                    "[bench] memory: peak RSS {} (VmHWM polled {}), tracer cpu {}, lost {lost}",
                    mib(o.sample.maxrss_kb),
                    mib(o.polled_hwm_kb),
                    fmt_ns(o.sample.tool_cpu_us * 1000)
                );
                memory.push(MemoryRun {
                    label: bench.label(t),
                    files: rss_files,
                    outcome: o,
                    lost,
                    report_bytes,
                });
            }
            Err(e) => {
                eprintln!("[bench] FAILED: {e:#}");
                failures.push(format!("{e:#}"));
            }
        }
    }
    // What each kernel program costs (BPF run-time statistics), per tier.
    let hook_runs = match hooks::measure(&bench.bins.tracer, &bench.bins.workload, &scratch, &tiers)
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("[bench] FAILED: {e:#}");
            failures.push(format!("{e:#}"));
            Vec::new()
        }
    };
    if let Err(e) = fs::remove_dir_all(bench.work_dir()) {
        eprintln!(
            "[bench] could not clean {}: {e}",
            bench.work_dir().display()
        );
    }
    for f in ["report.json", "bpftrace.txt", "stderr.txt"] {
        let _ = fs::remove_file(bench.scratch.join(f));
    }

    let load_after = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let page = Page {
        bench: &bench,
        quick,
        reps,
        tools: &tools,
        workloads: &workloads,
        samples: &samples,
        lockstep: &lockstep,
        memory: &memory,
        hooks: &hook_runs,
        notes: &notes,
        failures: &failures,
        traced_runs,
        load_before: load_before.trim().to_string(),
        load_after: load_after.trim().to_string(),
    };
    let svg_path = out.with_extension("svg");
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&svg_path, page.svg())?;
    let md = page.markdown(
        svg_path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("benchmarks.svg"),
    );
    fs::write(&out, &md)?;
    eprintln!("[bench] wrote {} and {}", out.display(), svg_path.display());
    print!("{}", page.results_table());
    print!("{}", page.targets_table());
    if !failures.is_empty() {
        bail!(
            "{} run(s) failed or reported inexact counts / lost events (see above)",
            failures.len()
        );
    }
    Ok(())
}

/// The run of many-files with the tracer's memory polled, per fsync-trace tier.
struct MemoryRun {
    label: String,
    files: u64,
    outcome: Outcome,
    lost: u64,
    report_bytes: u64,
}

/// The fsync-trace tiers to benchmark: each one that works here (`--tier`), or the default one.
fn detect_tiers(
    tracer: &Path,
    scratch: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<Option<String>>> {
    let help = Command::new(tracer)
        .arg("--help")
        .output()
        .context("running fsync-trace --help")?;
    if !String::from_utf8_lossy(&help.stdout).contains("--tier") {
        return Ok(vec![None]);
    }
    let mut tiers = Vec::new();
    for t in ["fentry", "kprobe", "tracepoint"] {
        let report = scratch.join("tier-probe.json");
        let out = Command::new(tracer)
            .args(["--tier", t, "--json", "-o"])
            .arg(&report)
            .args(["--", "true"])
            .stdout(Stdio::null())
            .output()
            .context("running fsync-trace")?;
        let got = fs::read_to_string(&report)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v.get("tier").and_then(Value::as_str).map(str::to_string));
        let _ = fs::remove_file(&report);
        if out.status.success() && got.as_deref() == Some(t) {
            tiers.push(Some(t.to_string()));
        } else {
            let why = String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("failed")
                .to_string();
            notes.push(format!("fsync-trace tier {t}: not available here ({why})"));
        }
    }
    if tiers.is_empty() {
        bail!("no fsync-trace tier works here: {}", notes.join("; "));
    }
    Ok(tiers)
}

/// bpftrace's syscall tracepoints need tracefs; mount it if nobody has.
fn ensure_tracefs() -> bool {
    match fsync_trace_common::host::ensure_tracefs() {
        Ok(mounted) => {
            if mounted {
                eprintln!("[bench] mounted tracefs on /sys/kernel/tracing (bpftrace needs it)");
            }
            true
        }
        Err(e) => {
            eprintln!("[bench] {e}");
            false
        }
    }
}
