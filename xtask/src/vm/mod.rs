//! `cargo xtask vm`: the three attach tiers on a second kernel, and the tier choice on this one.
//!
//! This machine's kernel (lockdown, no kprobes) can only run the tracepoint tier, so the
//! function-level tiers are proven on Debian bookworm's cloud kernel (6.1: fentry, kprobes and
//! BTF all work there) booted with QEMU's TCG (KVM is not usable here) from an initramfs:
//! busybox, static musl builds of fsync-trace and fsync-trace-workload, brd.ko, and an ext4
//! image made here and copied onto /dev/ram0 (block-backed, so writeback behaves as on a disk).
//! `/init` runs every scenario under `--tier fentry`, `--tier kprobe` and `--tier tracepoint`
//! and prints each JSON report between marker lines on the serial console. The reports must
//! agree across tiers (files' writes, bytes, fsyncs, fdatasyncs, unsynced bytes; findings'
//! kind, path, entry) and match exact expectations for some scenarios (the io_uring ones
//! included: every tier sees them through the io_uring tracepoints). Before the VM, the host check runs the
//! same binaries here: a forced tier that cannot work must fail with a clear message, and
//! auto-selection must pick the best tier that works.
//!
//! Needs root (apt-get, loading eBPF for the host check). Downloads are cached in
//! /var/cache/fsync-trace-vm; the initramfs and the console log go to <target>/vm.
//!
//! - `fsync_trace_workload::scenarios` (shared with the integration tests): what runs in the
//!   guest and the exact counts some scenarios must show;
//! - [`setup`]: tools, the kernel and busybox packages, the static builds, the ext4 image;
//! - [`host`]: the tier choice on this machine's kernel;
//! - [`guest`]: the init script, the initramfs and the boot under QEMU;
//! - [`check`]: the reports read from the console, compared across tiers and to expectations.
use std::{
    fs,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::util;

mod check;
mod guest;
mod host;

mod setup;

use check::{check, parse_console, print_table};
use fsync_trace_workload::scenarios::{Scenario, SCENARIOS};
use guest::{boot, init_script, write_initramfs, Source};
use host::host_check;
use setup::{
    build_musl, ensure_tools, fetch_deb, find_file, make_ext4, resolve_kernel_package, target_dir,
};

const TIERS: [&str; 3] = ["fentry", "kprobe", "tracepoint"];
const MUSL: &str = "x86_64-unknown-linux-musl";
/// Marker prefix on the guest console.
const MARK: &str = "@@FSYNC-TRACE-VM";

#[derive(clap::Args)]
pub struct VmArgs {
    /// Kernel package to boot (default: what linux-image-cloud-amd64 depends on today).
    #[arg(long, value_name = "PACKAGE")]
    kernel_package: Option<String>,
    /// Where the downloaded .deb files are kept.
    #[arg(long, value_name = "DIR", default_value = "/var/cache/fsync-trace-vm")]
    cache: PathBuf,
    /// Only these scenarios (comma list; default: all).
    #[arg(long, value_name = "NAMES")]
    scenarios: Option<String>,
    /// Give up on the guest after this many seconds (it needs about 3 minutes on an idle host).
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    timeout: u64,
    /// Skip the check of the tier choice on this machine's kernel.
    #[arg(long)]
    no_host_check: bool,
}

pub fn run(args: VmArgs) -> Result<()> {
    if !util::is_root() {
        bail!(
            "cargo xtask vm needs root (apt-get for the kernel and tools, eBPF for the host check)"
        );
    }
    let total = Instant::now();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    let scenarios: Vec<&Scenario> = match &args.scenarios {
        None => SCENARIOS.iter().collect(),
        Some(list) => list
            .split(',')
            .map(|n| {
                SCENARIOS
                    .iter()
                    .find(|s| s.name == n.trim())
                    .with_context(|| {
                        format!(
                            "unknown scenario {n:?} (known: {})",
                            SCENARIOS
                                .iter()
                                .map(|s| s.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
            })
            .collect::<Result<_>>()?,
    };

    let t = Instant::now();
    ensure_tools()?;
    fs::create_dir_all(&args.cache)
        .with_context(|| format!("creating {}", args.cache.display()))?;
    let kernel_pkg = match &args.kernel_package {
        Some(p) => p.clone(),
        None => resolve_kernel_package(&args.cache)?,
    };
    let kernel_dir = fetch_deb(&args.cache, &kernel_pkg)?;
    let busybox_dir = fetch_deb(&args.cache, "busybox-static")?;
    let vmlinuz = find_file(&kernel_dir.join("boot"), |n| n.starts_with("vmlinuz-"))?;
    let brd = find_file(&kernel_dir.join("lib/modules"), |n| n == "brd.ko").context(
        "brd.ko not found in the kernel package (a compressed .ko.xz cannot be loaded by busybox insmod)",
    )?;
    timings.push(("kernel + busybox (download or cache)", t.elapsed()));

    let t = Instant::now();
    let (tracer, workload) = build_musl()?;
    timings.push(("static musl build", t.elapsed()));

    let host = if args.no_host_check {
        None
    } else {
        let t = Instant::now();
        let h = host_check(&tracer, &workload)?;
        timings.push(("host check", t.elapsed()));
        Some(h)
    };

    let t = Instant::now();
    let work = target_dir()?.join("vm");
    fs::create_dir_all(&work)?;
    let image = work.join("ext4.img");
    make_ext4(&image)?;
    let initrd = work.join("initramfs.cpio");
    let init = init_script(&scenarios);
    write_initramfs(
        &initrd,
        &[
            ("init", Source::Bytes(init.into_bytes()), 0o755),
            (
                "bin/busybox",
                Source::File(busybox_dir.join("bin/busybox")),
                0o755,
            ),
            ("bin/fsync-trace", Source::File(tracer.clone()), 0o755),
            (
                "bin/fsync-trace-workload",
                Source::File(workload.clone()),
                0o755,
            ),
            ("brd.ko", Source::File(brd), 0o644),
            ("ext4.img", Source::File(image.clone()), 0o644),
        ],
    )?;
    timings.push(("ext4 image + initramfs", t.elapsed()));

    let t = Instant::now();
    let console = boot(
        &vmlinuz,
        &initrd,
        Duration::from_secs(args.timeout),
        &work.join("console.log"),
    )?;
    let vm_time = t.elapsed();
    timings.push(("VM (boot, 3 tiers x scenarios, poweroff)", vm_time));

    let runs = parse_console(&console)?;
    let failures = check(&scenarios, &runs);

    println!();
    if let Some(h) = &host {
        println!("host ({}):", h.kernel);
        for (tier, outcome) in &h.forced {
            println!("  --tier {tier:<10} {outcome}");
        }
        println!(
            "  auto-selection     picked {} (expected {})",
            h.auto, h.expected_auto
        );
    }
    println!(
        "guest ({}): {}",
        runs.kernel,
        vmlinuz.file_name().unwrap_or_default().to_string_lossy()
    );
    for (tier, lines) in &runs.hooks {
        println!("  {tier}: {}", lines.join("; "));
    }
    print_table(&scenarios, &runs, &failures);
    println!();
    for (what, d) in &timings {
        println!("  {what:<42} {:>6.1} s", d.as_secs_f64());
    }
    println!("  {:<42} {:>6.1} s", "total", total.elapsed().as_secs_f64());
    let mut all: Vec<String> = failures.values().flatten().cloned().collect();
    if let Some(h) = &host {
        all.extend(h.failures.iter().cloned());
    }
    if !all.is_empty() {
        println!();
        for f in &all {
            println!("FAIL {f}");
        }
        bail!(
            "{} check(s) failed (console log: {})",
            all.len(),
            work.join("console.log").display()
        );
    }
    if vm_time > Duration::from_mins(5) {
        println!("note: the VM part took more than 5 minutes");
    }
    println!("\nall tiers agree on every scenario");
    Ok(())
}
