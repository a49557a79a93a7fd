//! What each kernel program costs, measured by the kernel itself: with BPF run-time statistics
//! on (`BPF_ENABLE_STATS`), every program's `run_cnt` and `run_time_ns` (in
//! `/proc/<tracer>/fdinfo/<prog fd>`) count each run and the time spent in it. One tracer run
//! per (tier, workload); the figures are read while the tracer still holds its programs.
//! Syscall tracepoints fire for every process on the machine (the programs filter early), so a
//! program's runs include other processes' syscalls: on a quiet machine they are few.
//! The statistics add about 20 ns per run themselves (two clock reads); the per-operation
//! totals include that.
use std::{
    collections::BTreeMap,
    fs,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};

/// One workload for the hook table, with the operation its cost is divided by.
struct HookWorkload {
    name: &'static str,
    args: &'static [&'static str],
    ops: u64,
    op: &'static str,
}

const WORKLOADS: &[HookWorkload] = &[
    HookWorkload {
        name: "write-storm",
        args: &["--writes", "100000"],
        ops: 100_000,
        op: "write",
    },
    HookWorkload {
        name: "fsync-bound",
        args: &["--records", "300"],
        ops: 300,
        op: "record (write + fdatasync)",
    },
    HookWorkload {
        name: "many-files",
        args: &["--files", "3000"],
        ops: 3000,
        op: "file (create, write, fsync, close)",
    },
];

/// One program's figures in one run.
pub(super) struct ProgCost {
    pub(super) name: String,
    pub(super) runs: u64,
    pub(super) ns: u64,
}

/// One (tier, workload) run.
pub(super) struct HookRun {
    pub(super) tier: String,
    pub(super) workload: &'static str,
    pub(super) ops: u64,
    pub(super) op: &'static str,
    /// Programs that ran, most time first.
    pub(super) programs: Vec<ProgCost>,
}

/// (run_cnt, run_time_ns) by program id, of the programs `pid` holds.
fn prog_stats(pid: u32) -> BTreeMap<u32, (u64, u64)> {
    let mut out = BTreeMap::new();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for fd in fds.flatten() {
        let is_prog =
            fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:bpf-prog");
        if !is_prog {
            continue;
        }
        let Ok(info) = fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        )) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let (Some(id), Some(cnt), Some(ns)) =
            (field("prog_id:"), field("run_cnt:"), field("run_time_ns:"))
        {
            if let Ok(id) = u32::try_from(id) {
                out.insert(id, (cnt, ns));
            }
        }
    }
    out
}

/// `union bpf_attr` for BPF_OBJ_GET_INFO_BY_FD.
#[repr(C)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// (id, name) of the program behind `fd` (ours): `struct bpf_prog_info` has the id at byte 4
/// and `name[16]` at byte 64.
fn prog_info(fd: i32) -> Option<(u32, String)> {
    let mut info = [0u8; 256];
    let req = InfoByFd {
        bpf_fd: u32::try_from(fd).ok()?,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    let mut attr = [0u8; 128];
    // SAFETY: `attr` is larger than `InfoByFd`; `info` outlives the call, which writes at most
    // `info_len` bytes into it.
    let r = unsafe {
        std::ptr::copy_nonoverlapping(
            (&raw const req).cast::<u8>(),
            attr.as_mut_ptr(),
            std::mem::size_of::<InfoByFd>(),
        );
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            attr.as_mut_ptr(),
            attr.len(),
        )
    };
    if r != 0 {
        return None;
    }
    let id = u32::from_ne_bytes([info[4], info[5], info[6], info[7]]);
    let name = &info[64..80];
    let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    Some((id, String::from_utf8_lossy(&name[..end]).into_owned()))
}

/// The names of the programs `pid` holds, by id (the kernel keeps the first 15 bytes): each fd
/// is duplicated with pidfd_getfd(2) and asked with BPF_OBJ_GET_INFO_BY_FD (iterating program
/// ids is refused under lockdown).
fn prog_names(pid: u32) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    // SAFETY: plain syscall; the fd is closed below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let Ok(pidfd) = i32::try_from(pidfd) else {
        return out;
    };
    if pidfd < 0 {
        return out;
    }
    for fd in fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let is_prog =
            fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:bpf-prog");
        let Some(target) = fd.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if !is_prog {
            continue;
        }
        // SAFETY: plain syscall; the duplicate is closed below.
        let mine = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) };
        let Ok(mine) = i32::try_from(mine) else {
            continue;
        };
        if mine < 0 {
            continue;
        }
        if let Some((id, name)) = prog_info(mine) {
            out.insert(id, name);
        }
        // SAFETY: ours, closed once.
        unsafe { libc::close(mine) };
    }
    // SAFETY: ours, closed once.
    unsafe { libc::close(pidfd) };
    out
}

/// Runs every hook workload under every tier in `tiers` (None: the default one).
pub(super) fn measure(
    tracer: &Path,
    workload: &Path,
    scratch: &Path,
    tiers: &[Option<String>],
) -> Result<Vec<HookRun>> {
    // Statistics stay on while this fd is open.
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("enabling BPF run-time statistics (BPF_ENABLE_STATS)")?;
    let mut runs = Vec::new();
    for tier in tiers {
        for w in WORKLOADS {
            let dir = scratch.join("hooks");
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir)?;
            let report = scratch.join("hooks-report.json");
            // The workload, then a pause in which the last figures are read.
            let script = format!(
                "{} {} {} {} && sleep 0.4",
                workload.display(),
                w.name,
                dir.display(),
                w.args.join(" ")
            );
            let mut cmd = Command::new(tracer);
            if let Some(t) = tier {
                cmd.args(["--tier", t]);
            }
            let mut child = cmd
                .args(["--json", "-o"])
                .arg(&report)
                .args(["--", "sh", "-c", &script])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting fsync-trace")?;
            let mut last = BTreeMap::new();
            let mut names = BTreeMap::new();
            let status = loop {
                if let Some(s) = child.try_wait()? {
                    break s;
                }
                let now = prog_stats(child.id());
                if now.keys().any(|id| !names.contains_key(id)) {
                    names.extend(prog_names(child.id()));
                }
                // Counts only grow; while the tracer detaches, some programs are already gone.
                for (id, (cnt, ns)) in now {
                    let e = last.entry(id).or_insert((0, 0));
                    *e = (e.0.max(cnt), e.1.max(ns));
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            if !status.success() {
                bail!("hook costs: fsync-trace on {} failed ({status})", w.name);
            }
            let mut programs: Vec<ProgCost> = last
                .into_iter()
                .filter(|(_, (cnt, _))| *cnt > 0)
                .map(|(id, (runs, ns))| ProgCost {
                    name: names
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| format!("id {id}")),
                    runs,
                    ns,
                })
                .collect();
            programs.sort_by_key(|p| std::cmp::Reverse(p.ns));
            let tier_name = fs::read_to_string(&report)
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|v| v["tier"].as_str().map(str::to_string))
                .unwrap_or_else(|| tier.clone().unwrap_or_else(|| "default".into()));
            let _ = fs::remove_file(&report);
            let _ = fs::remove_dir_all(&dir);
            eprintln!(
                "[bench] hooks: {tier_name} {}: {:.0} ns of BPF per {}",
                w.name,
                total_ns(&programs) as f64 / w.ops as f64,
                w.op
            );
            runs.push(HookRun {
                tier: tier_name,
                workload: w.name,
                ops: w.ops,
                op: w.op,
                programs,
            });
        }
    }
    Ok(runs)
}

fn total_ns(p: &[ProgCost]) -> u64 {
    p.iter().map(|c| c.ns).sum()
}

/// The page's section.
pub(super) fn markdown(runs: &[HookRun]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    s.push_str("## Kernel hooks: what each program costs\n\n");
    s.push_str(
        "Measured by the kernel (`BPF_ENABLE_STATS`: each program's run count and time, read \
         from the tracer's `fdinfo` while it runs; xtask/src/bench/hooks.rs). One run per tier \
         and workload. *ns/run* is the mean time of one run of the program; *per op* is the time \
         of all its runs divided by the workload's operations. Syscall tracepoint programs run \
         for every process's syscalls and return early for untraced ones, so their run counts \
         include the rest of the machine (little, on a quiet one). A program reached by a tail call \
         (e.g. `sys_exit_name`) is timed as part of its caller. The statistics themselves add \
         about 20 ns per run.\n\n",
    );
    let mut by_tier: BTreeMap<&str, Vec<&HookRun>> = BTreeMap::new();
    for r in runs {
        by_tier.entry(r.tier.as_str()).or_default().push(r);
    }
    for (tier, rs) in by_tier {
        let _ = writeln!(s, "### {tier} tier\n");
        for r in rs {
            let _ = writeln!(
                s,
                "**{}** ({} × {}): {:.0} ns of BPF per {}.\n",
                r.workload,
                crate::util::thousands(r.ops),
                r.op,
                total_ns(&r.programs) as f64 / r.ops as f64,
                r.op
            );
            s.push_str("| program | runs | runs per op | ns/run | per op (ns) |\n| --- | ---: | ---: | ---: | ---: |\n");
            for p in &r.programs {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {:.2} | {:.0} | {:.1} |",
                    p.name,
                    crate::util::thousands(p.runs),
                    p.runs as f64 / r.ops as f64,
                    p.ns as f64 / p.runs.max(1) as f64,
                    p.ns as f64 / r.ops as f64
                );
            }
            s.push('\n');
        }
    }
    s
}
