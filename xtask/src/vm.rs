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
//! kind, path, entry) and match exact expectations for some scenarios; an io_uring fsync is
//! asserted to be seen by the function-level tiers only. Before the VM, the host check runs the
//! same binaries here: a forced tier that cannot work must fail with a clear message, and
//! auto-selection must pick the best tier that works.
//!
//! Needs root (apt-get, loading eBPF for the host check). Downloads are cached in
//! /var/cache/fsync-trace-vm; the initramfs and the console log go to <target>/vm.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

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
    #[arg(long, value_name = "SECS", default_value_t = 480)]
    timeout: u64,
    /// Skip the check of the tier choice on this machine's kernel.
    #[arg(long)]
    no_host_check: bool,
}

/// (writes, bytes_written, fsyncs, fdatasyncs, unsynced_bytes) of one file.
type Counts = (u64, u64, u64, u64, u64);

/// What one tier must report for a scenario. Paths are relative to the scenario's directory
/// ("" is the directory itself).
struct Expected {
    files: &'static [(&'static str, Counts)],
    /// (kind, path, entry): the complete set of findings.
    findings: &'static [(&'static str, &'static str, Option<&'static str>)],
}

struct Scenario {
    name: &'static str,
    args: &'static [&'static str],
    /// Exact expectations for every tier, if any.
    expect: Option<Expected>,
    /// Seen only by the function-level tiers: fentry and kprobe must match `expect`, the
    /// tracepoint tier must match this instead (and is left out of the equality check).
    tracepoint_expect: Option<Expected>,
}

const NO_FINDINGS: &[(&str, &str, Option<&str>)] = &[];

/// Why each scenario is here is in its comment; the syscalls are documented in workload.rs.
const SCENARIOS: &[Scenario] = &[
    // Plain write + fsync + directory fsync.
    Scenario {
        name: "good",
        args: &[],
        expect: Some(Expected {
            files: &[("good.dat", (3, 300, 1, 0, 0)), ("", (0, 0, 1, 0, 0))],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    Scenario {
        name: "unsynced",
        args: &["--writes", "5"],
        expect: Some(Expected {
            files: &[("unsynced.dat", (5, 500, 0, 0, 500))],
            findings: &[("unsynced_write", "unsynced.dat", None)],
        }),
        tracepoint_expect: None,
    },
    Scenario {
        name: "rename-unsafe",
        args: &[],
        expect: None,
        tracepoint_expect: None,
    },
    // O_DSYNC writes: vfs_write runs vfs_fsync_range inside; it must not count as an fsync.
    Scenario {
        name: "osync",
        args: &[],
        expect: Some(Expected {
            files: &[("osync.dat", (3, 150, 0, 0, 0))],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    // msync(MS_SYNC) runs vfs_fsync_range inside the msync syscall: counted once, as msync.
    Scenario {
        name: "mmap",
        args: &[],
        expect: Some(Expected {
            files: &[("mapped.dat", (0, 0, 0, 0, 0))],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    // fdatasync(2) never reaches vfs_fsync_range's entry on 6.1 (inlined): all must be counted.
    Scenario {
        name: "fsync-bound",
        args: &["--records", "10"],
        expect: Some(Expected {
            files: &[("wal.log", (10, 40960, 0, 10, 0))],
            findings: &[("unsynced_parent_dir", "", Some("wal.log"))],
        }),
        tracepoint_expect: None,
    },
    // writev/pwritev2 bypass vfs_write.
    Scenario {
        name: "writev",
        args: &[],
        expect: Some(Expected {
            files: &[("vec.dat", (3, 300, 1, 0, 100))],
            findings: &[("unsynced_write", "vec.dat", None)],
        }),
        tracepoint_expect: None,
    },
    // IORING_OP_FSYNC: no fsync syscall; only vfs_fsync_range (in an iou-wrk thread) sees it.
    Scenario {
        name: "io-uring-fsync",
        args: &[],
        expect: Some(Expected {
            files: &[("uring.dat", (2, 200, 1, 0, 0))],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: Some(Expected {
            files: &[("uring.dat", (2, 200, 0, 0, 200))],
            findings: &[("unsynced_write", "uring.dat", None)],
        }),
    },
    // Two threads writing concurrently (exact per-file counts across CPUs and tiers).
    Scenario {
        name: "threads",
        args: &["--records", "300"],
        expect: Some(Expected {
            files: &[
                ("thread0.dat", (300, 19200, 3, 0, 0)),
                ("thread1.dat", (300, 19200, 3, 0, 0)),
            ],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    // A forked child (followed) that never syncs.
    Scenario {
        name: "fork",
        args: &[],
        expect: None,
        tracepoint_expect: None,
    },
    Scenario {
        name: "link",
        args: &[],
        expect: None,
        tracepoint_expect: None,
    },
    // Open files freed and reallocated between writes: each write counts on its own file (the
    // write path's per-CPU cache of the last written file must not outlive a close).
    Scenario {
        name: "reopen",
        args: &[],
        expect: Some(Expected {
            files: &[
                ("a.dat", (100, 1000, 1, 0, 0)),
                ("b.dat", (200, 2000, 1, 0, 0)),
            ],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
];

pub fn run(args: VmArgs) -> Result<()> {
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
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
    if vm_time > Duration::from_secs(300) {
        println!("note: the VM part took more than 5 minutes");
    }
    println!("\nall tiers agree on every scenario");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tools, packages, builds
// ---------------------------------------------------------------------------------------------

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// qemu and mkfs.ext4 from Debian if missing (scripts/setup.sh installs them too), and the
/// musl target.
fn ensure_tools() -> Result<()> {
    let mut missing = Vec::new();
    if !have("qemu-system-x86_64") {
        missing.push("qemu-system-x86");
    }
    if !have("mkfs.ext4") {
        missing.push("e2fsprogs");
    }
    if !missing.is_empty() {
        println!("[vm] installing {}", missing.join(" "));
        run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
        run_cmd(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let targets = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !targets.lines().any(|l| l.trim() == MUSL) {
        run_cmd(Command::new("rustup").args(["target", "add", MUSL]))?;
    }
    Ok(())
}

/// The versioned package behind linux-image-cloud-amd64 (names drift: -56 today), or the
/// newest one already cached when apt cannot answer.
fn resolve_kernel_package(cache: &Path) -> Result<String> {
    let ask = || -> Option<String> {
        let out = Command::new("apt-cache")
            .args(["depends", "linux-image-cloud-amd64"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Depends:"))
            .map(|p| p.trim().to_string())
            .find(|p| p.starts_with("linux-image-") && p.ends_with("-cloud-amd64"))
    };
    if let Some(p) = ask() {
        return Ok(p);
    }
    println!("[vm] apt-cache does not know linux-image-cloud-amd64: apt-get update");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    if let Some(p) = ask() {
        return Ok(p);
    }
    let mut cached: Vec<String> = fs::read_dir(cache)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.starts_with("linux-image-") && n.contains("-cloud-amd64_") && n.ends_with(".deb")
        })
        .collect();
    cached.sort();
    match cached.last() {
        Some(n) => Ok(n.split('_').next().unwrap_or(n).to_string()),
        None => bail!("cannot resolve linux-image-cloud-amd64 (apt-cache depends failed) and nothing is cached in {}", cache.display()),
    }
}

/// Downloads `pkg` into `cache` (once) and extracts it (once); returns the extracted tree.
fn fetch_deb(cache: &Path, pkg: &str) -> Result<PathBuf> {
    let find = || -> Result<Option<PathBuf>> {
        Ok(fs::read_dir(cache)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
            }))
    };
    let deb = match find()? {
        Some(d) => d,
        None => {
            println!("[vm] downloading {pkg}");
            // The sandbox user cannot write to a root-owned cache: download as root, quietly.
            let ok = Command::new("apt-get")
                .args(["download", "-qq", "-o", "APT::Sandbox::User=root", pkg])
                .current_dir(cache)
                .status()?
                .success();
            if !ok {
                let _ = Command::new("apt-get").args(["update", "-qq"]).status();
                run_cmd(
                    Command::new("apt-get")
                        .args(["download", "-qq", "-o", "APT::Sandbox::User=root", pkg])
                        .current_dir(cache),
                )?;
            }
            find()?.with_context(|| {
                format!("apt-get download {pkg} left no .deb in {}", cache.display())
            })?
        }
    };
    let dir = cache.join(pkg);
    let stamp = dir.join(".extracted");
    if !stamp.exists() {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        run_cmd(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
        fs::write(
            &stamp,
            deb.file_name().unwrap_or_default().as_encoded_bytes(),
        )?;
    }
    Ok(dir)
}

/// First file under `dir` (recursively) whose name matches.
fn find_file(dir: &Path, matches: impl Fn(&str) -> bool + Copy) -> Result<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let ty = e.file_type()?;
            if ty.is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_str().is_some_and(matches) {
                return Ok(e.path());
            }
        }
    }
    bail!("nothing matching under {}", dir.display())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Static binaries that run in any initramfs (and here): (fsync-trace, fsync-trace-workload).
fn build_musl() -> Result<(PathBuf, PathBuf)> {
    println!("[vm] cargo build --release --target {MUSL} -p fsync-trace");
    let out = cargo()
        .args([
            "build",
            "--release",
            "--target",
            MUSL,
            "-p",
            "fsync-trace",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!("cargo build --target {MUSL} failed");
    }
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(name), Some(exe)) = (v["target"]["name"].as_str(), v["executable"].as_str()) {
            found.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    let get = |n: &str| {
        found
            .get(n)
            .cloned()
            .with_context(|| format!("cargo built no {n} executable"))
    };
    Ok((get("fsync-trace")?, get("fsync-trace-workload")?))
}

/// Cargo's target directory (CARGO_TARGET_DIR or the workspace's `target`).
fn target_dir() -> Result<PathBuf> {
    let out = output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(PathBuf::from(
        v["target_directory"]
            .as_str()
            .context("cargo metadata without target_directory")?,
    ))
}

fn make_ext4(image: &Path) -> Result<()> {
    let _ = fs::remove_file(image);
    fs::File::create(image)?.set_len(32 << 20)?;
    run_cmd(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "4096", "-L", "fsync-trace-vm"])
            .arg(image),
    )
}

// ---------------------------------------------------------------------------------------------
// Host check
// ---------------------------------------------------------------------------------------------

struct HostResult {
    kernel: String,
    forced: Vec<(&'static str, String)>,
    auto: String,
    expected_auto: String,
    failures: Vec<String>,
}

/// Each forced tier must either work or fail with "tier X is not available on this kernel:
/// ..." (exit status 1, no crash); auto-selection must pick the best tier that works.
fn host_check(tracer: &Path, workload: &Path) -> Result<HostResult> {
    let kernel = output(Command::new("uname").arg("-r"))?.trim().to_string();
    println!("[vm] host check on {kernel}");
    let dir = PathBuf::from("/var/tmp/fsync-trace-vm-host");
    let mut failures = Vec::new();
    let mut forced = Vec::new();
    let mut first_working: Option<&str> = None;
    let trace =
        |extra: &[&str], sub: &str| -> Result<(std::process::Output, Option<serde_json::Value>)> {
            let d = dir.join(sub);
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d)?;
            let report = dir.join(format!("{sub}.json"));
            let _ = fs::remove_file(&report);
            let out = Command::new(tracer)
                .args(extra)
                .args(["--json", "-o"])
                .arg(&report)
                .arg("--")
                .arg(workload)
                .arg("good")
                .arg(&d)
                .env("RUST_LOG", "warn")
                .output()?;
            let json = fs::read_to_string(&report)
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok());
            Ok((out, json))
        };
    for tier in TIERS {
        let (out, json) = trace(&["--tier", tier], tier)?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            let got = json
                .as_ref()
                .and_then(|j| j["tier"].as_str())
                .unwrap_or("?")
                .to_string();
            if got != tier {
                failures.push(format!("host: --tier {tier} reported tier {got}"));
            }
            first_working.get_or_insert(tier);
            forced.push((tier, "works".to_string()));
        } else {
            let want = format!("fsync-trace: tier {tier} is not available on this kernel: ");
            let line = stderr
                .lines()
                .find(|l| l.starts_with("fsync-trace: "))
                .unwrap_or("")
                .to_string();
            if out.status.code() != Some(1) || !line.starts_with(&want) {
                failures.push(format!(
                    "host: --tier {tier} failed without the expected message ({}): {stderr}",
                    out.status
                ));
            }
            forced.push((
                tier,
                format!("refused: {}", line.trim_start_matches("fsync-trace: ")),
            ));
        }
    }
    let (out, json) = trace(&["-v"], "auto")?;
    let auto = json
        .as_ref()
        .and_then(|j| j["tier"].as_str())
        .unwrap_or("none")
        .to_string();
    let expected_auto = first_working.unwrap_or("none").to_string();
    if !out.status.success() {
        failures.push(format!(
            "host: auto-selection failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    } else if auto != expected_auto {
        failures.push(format!(
            "host: auto-selection picked {auto}, the best working tier is {expected_auto}"
        ));
    }
    let verbose = String::from_utf8_lossy(&out.stderr);
    for (tier, outcome) in &forced {
        if outcome.starts_with("refused") && !verbose.contains(&format!("tier {tier} skipped: ")) {
            failures.push(format!(
                "host: --verbose does not say why tier {tier} was skipped"
            ));
        }
    }
    let _ = fs::remove_dir_all(&dir);
    Ok(HostResult {
        kernel,
        forced,
        auto,
        expected_auto,
        failures,
    })
}

// ---------------------------------------------------------------------------------------------
// Guest: init script, initramfs, boot
// ---------------------------------------------------------------------------------------------

fn init_script(scenarios: &[&Scenario]) -> String {
    let mut s = format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin RUST_LOG=warn
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
dmesg -n 1
echo "{MARK} kernel $(uname -r)"
insmod /brd.ko rd_nr=1 rd_size=65536 || echo "{MARK} error insmod brd.ko"
dd if=/ext4.img of=/dev/ram0 bs=1M 2>/dev/null || echo "{MARK} error dd"
rm -f /ext4.img
mount -t ext4 /dev/ram0 /mnt || echo "{MARK} error mount /dev/ram0"
run() {{
  t=$1; s=$2; shift 2
  d=/mnt/$t/$s
  mkdir -p $d
  sync
  a=$(cut -d' ' -f1 /proc/uptime)
  timeout 90 /bin/fsync-trace --tier $t -v --json -o /tmp/report.json -- /bin/fsync-trace-workload $s $d "$@" >/dev/null 2>/tmp/err.txt
  rc=$?
  b=$(cut -d' ' -f1 /proc/uptime)
  echo "{MARK} begin $t $s rc=$rc start=$a end=$b"
  grep -E '^(fsync-trace|workload):' /tmp/err.txt
  echo "{MARK} json"
  cat /tmp/report.json 2>/dev/null
  echo
  echo "{MARK} end"
  rm -f /tmp/report.json
}}
"#
    );
    for sc in scenarios {
        for tier in TIERS {
            s.push_str(&format!("run {tier} {} {}\n", sc.name, sc.args.join(" ")));
        }
    }
    s.push_str(&format!("echo \"{MARK} done\"\npoweroff -f\n"));
    s
}

enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// An uncompressed newc cpio archive (what the kernel unpacks as initramfs), with the
/// directories the init script needs and /dev/console.
fn write_initramfs(path: &Path, files: &[(&str, Source, u32)]) -> Result<()> {
    let mut out = std::io::BufWriter::new(fs::File::create(path)?);
    let mut ino = 1u32;
    let mut entry = |out: &mut std::io::BufWriter<fs::File>,
                     name: &str,
                     mode: u32,
                     rdev: (u32, u32),
                     data: &[u8]|
     -> Result<()> {
        let header =
            format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            ino, mode, 0, 0, 1, 0, data.len(), 0, 0, rdev.0, rdev.1, name.len() + 1, 0
        );
        ino += 1;
        out.write_all(header.as_bytes())?;
        out.write_all(name.as_bytes())?;
        out.write_all(&[0])?;
        let pad = |n: usize| (4 - n % 4) % 4;
        out.write_all(&[0; 3][..pad(110 + name.len() + 1)])?;
        out.write_all(data)?;
        out.write_all(&[0; 3][..pad(data.len())])?;
        Ok(())
    };
    for dir in ["bin", "dev", "proc", "sys", "mnt", "tmp"] {
        entry(&mut out, dir, 0o040755, (0, 0), &[])?;
    }
    entry(&mut out, "dev/console", 0o020600, (5, 1), &[])?;
    for (name, source, perm) in files {
        let data = match source {
            Source::Bytes(b) => b.clone(),
            Source::File(p) => fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        };
        entry(&mut out, name, 0o100000 | perm, (0, 0), &data)?;
    }
    entry(&mut out, "TRAILER!!!", 0, (0, 0), &[])?;
    out.flush()?;
    Ok(())
}

/// Boots the guest under TCG and returns its console output (also written to `log`).
fn boot(vmlinuz: &Path, initrd: &Path, timeout: Duration, log: &Path) -> Result<String> {
    println!(
        "[vm] booting {} under qemu (TCG), timeout {}s",
        vmlinuz.display(),
        timeout.as_secs()
    );
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel", "tcg", "-cpu", "max", "-m", "1G", "-smp", "1", "-kernel",
        ])
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 panic=-1 quiet",
            "-display",
            "none",
            "-serial",
            "stdio",
        ])
        .args(["-monitor", "none", "-no-reboot", "-nodefaults"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let mut stdout = child.stdout.take().context("qemu stdout")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let console = String::from_utf8_lossy(&reader.join().unwrap_or_default()).replace('\r', "");
    fs::write(log, &console)?;
    match status {
        None => bail!(
            "the guest did not finish within {}s (console log: {}); last lines:\n{}",
            timeout.as_secs(),
            log.display(),
            tail(&console, 15)
        ),
        Some(s) if !s.success() => bail!(
            "qemu failed ({s}): {}\n{}",
            stderr.trim(),
            tail(&console, 15)
        ),
        Some(_) if !console.contains(&format!("{MARK} done")) => {
            bail!(
                "the guest stopped before finishing (console log: {}):\n{}",
                log.display(),
                tail(&console, 25)
            )
        }
        Some(_) => Ok(console),
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

/// One tracer run in the guest.
struct Run {
    rc: i32,
    secs: f64,
    /// `fsync-trace:` and `workload:` lines from stderr.
    messages: Vec<String>,
    report: Option<serde_json::Value>,
}

struct Runs {
    kernel: String,
    by: BTreeMap<(String, String), Run>,
    /// Per tier: which hook delivers what (from --verbose).
    hooks: BTreeMap<String, Vec<String>>,
}

fn parse_console(console: &str) -> Result<Runs> {
    let mut runs = Runs {
        kernel: "?".into(),
        by: BTreeMap::new(),
        hooks: BTreeMap::new(),
    };
    let mut lines = console.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix(MARK).map(str::trim) else {
            continue;
        };
        if let Some(k) = rest.strip_prefix("kernel ") {
            runs.kernel = k.to_string();
        } else if let Some(e) = rest.strip_prefix("error ") {
            bail!("guest setup failed: {e}");
        } else if let Some(b) = rest.strip_prefix("begin ") {
            let f: Vec<&str> = b.split_whitespace().collect();
            let field = |k: &str| f.iter().find_map(|x| x.strip_prefix(k)).unwrap_or("");
            let (tier, scenario) = (
                f.first().copied().unwrap_or(""),
                f.get(1).copied().unwrap_or(""),
            );
            let secs = field("end=").parse::<f64>().unwrap_or(0.0)
                - field("start=").parse::<f64>().unwrap_or(0.0);
            let mut messages = Vec::new();
            for l in lines.by_ref() {
                if l.starts_with(MARK) {
                    break; // "json"
                }
                messages.push(l.to_string());
            }
            let mut json = String::new();
            for l in lines.by_ref() {
                if l.starts_with(MARK) {
                    break; // "end"
                }
                json.push_str(l);
                json.push('\n');
            }
            let report = serde_json::from_str(json.trim()).ok();
            let hooks: Vec<String> = messages
                .iter()
                .filter_map(|m| m.strip_prefix("fsync-trace:   "))
                .map(str::to_string)
                .collect();
            if !hooks.is_empty() {
                runs.hooks.entry(tier.to_string()).or_insert(hooks);
            }
            let run = Run {
                rc: field("rc=").parse().unwrap_or(-1),
                secs,
                messages,
                report,
            };
            runs.by
                .insert((scenario.to_string(), tier.to_string()), run);
        }
    }
    Ok(runs)
}

/// The facts compared across tiers, with the scenario's directory replaced by "W".
#[derive(Debug, PartialEq, Eq)]
struct Facts {
    files: BTreeMap<String, Counts>,
    findings: BTreeSet<(String, String, Option<String>)>,
}

fn facts(report: &serde_json::Value, dir: &str) -> Facts {
    let norm = |p: &str| -> String {
        if p == dir {
            "W".to_string()
        } else {
            p.strip_prefix(&format!("{dir}/"))
                .map(|r| format!("W/{r}"))
                .unwrap_or_else(|| p.to_string())
        }
    };
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    let files = report["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let counts = (
                n(f, "writes"),
                n(f, "bytes_written"),
                n(f, "fsyncs"),
                n(f, "fdatasyncs"),
                n(f, "unsynced_bytes"),
            );
            (norm(f["path"].as_str().unwrap_or("?")), counts)
        })
        .collect();
    let findings = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or("?").to_string(),
                norm(f["path"].as_str().unwrap_or("?")),
                f["entry"].as_str().map(str::to_string),
            )
        })
        .collect();
    Facts { files, findings }
}

fn rel(p: &str) -> String {
    if p.is_empty() {
        "W".into()
    } else {
        format!("W/{p}")
    }
}

fn check_expected(e: &Expected, f: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    for (path, want) in e.files {
        match f.files.get(&rel(path)) {
            Some(got) if got == want => {}
            got => out.push(format!(
                "{}: expected (writes, bytes, fsyncs, fdatasyncs, unsynced) {want:?}, got {got:?}",
                rel(path)
            )),
        }
    }
    let want: BTreeSet<(String, String, Option<String>)> = e
        .findings
        .iter()
        .map(|(k, p, en)| (k.to_string(), rel(p), en.map(str::to_string)))
        .collect();
    if want != f.findings {
        out.push(format!("findings: expected {want:?}, got {:?}", f.findings));
    }
    out
}

/// Failures by scenario.
fn check(scenarios: &[&Scenario], runs: &Runs) -> BTreeMap<&'static str, Vec<String>> {
    let mut failures: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for sc in scenarios {
        let fail = failures.entry(sc.name).or_default();
        let mut facts_by: BTreeMap<&str, Facts> = BTreeMap::new();
        for tier in TIERS {
            let Some(run) = runs.by.get(&(sc.name.to_string(), tier.to_string())) else {
                fail.push(format!("{}/{tier}: no run on the console", sc.name));
                continue;
            };
            if run.rc != 0 {
                fail.push(format!(
                    "{}/{tier}: exit status {}: {}",
                    sc.name,
                    run.rc,
                    run.messages.join(" | ")
                ));
                continue;
            }
            let Some(report) = &run.report else {
                fail.push(format!("{}/{tier}: no JSON report", sc.name));
                continue;
            };
            if report["tier"].as_str() != Some(tier) {
                fail.push(format!(
                    "{}/{tier}: report says tier {:?}",
                    sc.name, report["tier"]
                ));
            }
            if report["complete"].as_bool() != Some(true) {
                fail.push(format!(
                    "{}/{tier}: report not complete (lost events)",
                    sc.name
                ));
            }
            let f = facts(report, &format!("/mnt/{tier}/{}", sc.name));
            let expected = if tier == "tracepoint" {
                sc.tracepoint_expect.as_ref().or(sc.expect.as_ref())
            } else {
                sc.expect.as_ref()
            };
            if let Some(e) = expected {
                for m in check_expected(e, &f) {
                    fail.push(format!("{}/{tier}: {m}", sc.name));
                }
            }
            facts_by.insert(tier, f);
        }
        // Equality: every tier against fentry (the tracepoint tier is exempt where it is
        // expected to miss something).
        let compared: Vec<&str> = TIERS
            .into_iter()
            .filter(|t| !(sc.tracepoint_expect.is_some() && *t == "tracepoint"))
            .collect();
        if let Some(base) = facts_by.get(compared[0]) {
            for t in &compared[1..] {
                if let Some(other) = facts_by.get(t) {
                    if other != base {
                        fail.push(format!(
                            "{}: {t} differs from {}: {}",
                            sc.name,
                            compared[0],
                            diff(base, other)
                        ));
                    }
                }
            }
        }
    }
    failures
}

fn diff(a: &Facts, b: &Facts) -> String {
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = a.files.keys().chain(b.files.keys()).collect();
    for k in keys {
        let (x, y) = (a.files.get(k), b.files.get(k));
        if x != y {
            out.push(format!("{k}: {x:?} vs {y:?}"));
        }
    }
    for f in a.findings.symmetric_difference(&b.findings) {
        out.push(format!("finding {f:?} only in one"));
    }
    out.join("; ")
}

fn print_table(scenarios: &[&Scenario], runs: &Runs, failures: &BTreeMap<&str, Vec<String>>) {
    println!();
    println!(
        "{:<16} {:<24} {:<24} {:<24} counts/findings equal?",
        "scenario", "fentry", "kprobe", "tracepoint"
    );
    for sc in scenarios {
        let cell = |tier: &str| -> String {
            match runs.by.get(&(sc.name.to_string(), tier.to_string())) {
                None => "missing".into(),
                Some(r) if r.rc != 0 => format!("rc={}", r.rc),
                Some(r) => match &r.report {
                    None => "no report".into(),
                    Some(rep) => {
                        let f = facts(rep, &format!("/mnt/{tier}/{}", sc.name));
                        let (w, s, u) = f
                            .files
                            .values()
                            .fold((0, 0, 0), |(w, s, u), c| (w + c.0, s + c.2 + c.3, u + c.4));
                        format!("w{w} s{s} u{u} f{} {:.1}s", f.findings.len(), r.secs)
                    }
                },
            }
        };
        let verdict = match failures.get(sc.name) {
            Some(f) if !f.is_empty() => "NO".to_string(),
            _ if sc.tracepoint_expect.is_some() => {
                "yes (fentry = kprobe; tracepoint misses it, as expected)".to_string()
            }
            _ => "yes".to_string(),
        };
        println!(
            "{:<16} {:<24} {:<24} {:<24} {verdict}",
            sc.name,
            cell("fentry"),
            cell("kprobe"),
            cell("tracepoint")
        );
    }
    println!("(w: writes, s: fsyncs+fdatasyncs, u: unsynced bytes, f: findings, summed over the scenario's files; time per run)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_archive_layout() {
        let dir = std::env::temp_dir().join(format!("xtask-vm-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.cpio");
        write_initramfs(
            &p,
            &[("init", Source::Bytes(b"#!/bin/sh\n".to_vec()), 0o755)],
        )
        .unwrap();
        let data = fs::read(&p).unwrap();
        assert_eq!(data.len() % 4, 0);
        assert!(data.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&data);
        assert!(
            text.contains("dev/console\0")
                && text.contains("init\0")
                && text.contains("TRAILER!!!\0")
        );
        // newc: file data starts 4-byte aligned.
        assert_eq!(text.find("#!/bin/sh").unwrap() % 4, 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn console_parsing_and_comparison() {
        let report = |tier: &str, fsyncs: u64| {
            format!(
                r#"{{"tier":"{tier}","complete":true,"files":[{{"path":"/mnt/{tier}/good/good.dat","writes":3,"bytes_written":300,"fsyncs":{fsyncs},"fdatasyncs":0,"unsynced_bytes":0}},{{"path":"/mnt/{tier}/good","writes":0,"bytes_written":0,"fsyncs":1,"fdatasyncs":0,"unsynced_bytes":0}}],"findings":[]}}"#
            )
        };
        let mut console = format!("noise\n{MARK} kernel 6.1.0-test\n");
        for (tier, fsyncs) in [("fentry", 1), ("kprobe", 1), ("tracepoint", 2)] {
            console.push_str(&format!(
                "{MARK} begin {tier} good rc=0 start=1.0 end=2.5\nfsync-trace:   write/pwrite64: x\n{MARK} json\n{}\n{MARK} end\n",
                report(tier, fsyncs)
            ));
        }
        let runs = parse_console(&console).unwrap();
        assert_eq!(runs.kernel, "6.1.0-test");
        assert_eq!(runs.by.len(), 3);
        assert!((runs.by[&("good".into(), "kprobe".into())].secs - 1.5).abs() < 1e-9);
        let good = SCENARIOS.iter().find(|s| s.name == "good").unwrap();
        let failures = check(&[good], &runs);
        let f = &failures["good"];
        // The tracepoint run has 2 fsyncs: wrong against the expectation and against fentry.
        assert!(
            f.iter()
                .any(|m| m.contains("tracepoint differs from fentry")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|m| m.starts_with("good/tracepoint: W/good.dat: expected")),
            "{f:?}"
        );
        assert_eq!(f.len(), 2, "{f:?}");
    }
}
