//! Helpers every task shares: running commands, finding the workspace and its binaries, reading
//! /proc, and formatting numbers for the generated pages.
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};

/// Bytes in a MiB (kB in a GiB).
pub const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------------
// Commands.
// ---------------------------------------------------------------------------------------------

/// Runs `cmd` with inherited stdio; fails unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// The stdout of `cmd`; fails (with its stderr) unless it exits with status 0.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cargo that runs this xtask.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Whether `cmd` is on PATH (`command -v`).
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `cmd arg` (e.g. `strace -V`) runs and succeeds: the tool is there and works.
pub fn answers(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// First line of `cmd arg`'s stdout (e.g. `bpftrace --version`), "" if it cannot run.
pub fn version(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// Today's date and time for the generated pages ("2026-12-03 00:23 UTC").
pub fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The last `n` lines of `s` (a failed command's stderr, a console log).
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `key=N` pairs of a line such as the workload's `elapsed_ns=N utime_us=N ...` (words that are
/// not such a pair are skipped).
pub fn parse_kv(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Processes (libc).
// ---------------------------------------------------------------------------------------------

pub fn is_root() -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::geteuid() == 0 }
}

/// wait4 on our own child `pid` (retried on EINTR), so that its rusage comes with it: the wait
/// status and rusage once it is reaped, None while it runs (only with `flags` WNOHANG).
pub fn wait4(pid: i32, flags: i32) -> Result<Option<(i32, libc::rusage)>> {
    // SAFETY: all-zero is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    loop {
        // SAFETY: our own child; valid out pointers.
        let r = unsafe { libc::wait4(pid, &raw mut status, flags, &raw mut ru) };
        if r == pid {
            return Ok(Some((status, ru)));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            bail!("wait4: {e}");
        }
    }
}

pub fn tv_us(t: libc::timeval) -> u64 {
    (t.tv_sec * 1_000_000 + t.tv_usec).max(0) as u64
}

/// fsync-trace ignores tmpfs (nothing there is durable), so its counts there would all be 0:
/// scratch directories must be on a disk filesystem.
pub fn check_disk_fs(dir: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: all-zero is a valid statfs; valid C string and out pointer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &raw mut st) } != 0 {
        bail!(
            "statfs {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
    }
    if st.f_type == libc::TMPFS_MAGIC {
        bail!(
            "{} is on tmpfs: pass --dir on a disk filesystem",
            dir.display()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The workspace and its release binaries.
// ---------------------------------------------------------------------------------------------

/// The workspace root (xtask's parent directory).
pub fn workspace_root() -> Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf())
}

/// `--target-dir` if given, else $CARGO_TARGET_DIR, else the workspace's target/; relative
/// paths are from the workspace root.
pub fn target_dir(arg: Option<&Path>, root: &Path) -> PathBuf {
    let dir = arg
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| root.join("target"));
    if dir.is_relative() {
        root.join(dir)
    } else {
        dir
    }
}

/// `cargo build --release -p fsync-trace` into `target_dir`: the tracer and the workload.
pub fn build_release(root: &Path, target_dir: &Path) -> Result<()> {
    run(cargo()
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "fsync-trace",
            "-p",
            "fsync-trace-workload",
            "--target-dir",
        ])
        .arg(target_dir))
}

// ---------------------------------------------------------------------------------------------
// /proc and the machine.
// ---------------------------------------------------------------------------------------------

/// The value of `key` ("VmRSS:") in a /proc status or meminfo text, in kB.
pub fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `key` of /proc/PID/status, in kB.
pub fn status_kb(pid: i32, key: &str) -> Option<u64> {
    kb_field(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

/// The 1-min load average (NaN if unreadable).
pub fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// The trimmed contents of `p`, "?" if unreadable.
pub fn read_trim(p: &str) -> String {
    fs::read_to_string(p).map_or_else(|_| "?".into(), |s| s.trim().to_string())
}

/// "3.8 GiB".
pub fn mem_total() -> String {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| kb_field(&s, "MemTotal:"))
        .map_or_else(|| "?".into(), |kb| format!("{:.1} GiB", kb as f64 / MIB))
}

/// "ext4 (/dev/vda)" for the filesystem holding `dir`.
pub fn fs_of(dir: &Path) -> String {
    Command::new("df")
        .args(["--output=fstype,source"])
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| {
            let out = String::from_utf8_lossy(&o.stdout).to_string();
            let line = out.lines().nth(1)?.to_string();
            let mut it = line.split_whitespace();
            Some(format!("{} ({})", it.next()?, it.next()?))
        })
        .unwrap_or_else(|| "?".into())
}

/// Another process holding BPF programs: another tracer attached to the syscall tracepoints
/// slows every syscall on the machine, untraced ones included.
pub struct BpfUser {
    pub pid: String,
    pub comm: String,
    pub progs: usize,
    /// Its command line, arguments separated by spaces.
    pub cmdline: String,
}

/// The other processes holding BPF programs (this one left out).
pub fn bpf_users() -> Vec<BpfUser> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(p.path().join("fdinfo")) else {
            continue;
        };
        let progs = fds
            .flatten()
            .filter(|fd| {
                fs::read_to_string(fd.path())
                    .is_ok_and(|s| s.starts_with("pos:") && s.contains("\nprog_type:"))
            })
            .count();
        if progs > 0 {
            let comm = read_trim(&format!("/proc/{pid}/comm"));
            let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            found.push(BpfUser {
                pid,
                comm,
                progs,
                cmdline,
            });
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// Formatting.
// ---------------------------------------------------------------------------------------------

/// 1234567 as "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in kB as "12.3 MiB".
pub fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// A duration in ns as "1.23 s", "4.5 ms" or "67 µs".
pub fn fmt_ns(ns: u64) -> String {
    fmt_ns_f(ns as f64)
}

pub fn fmt_ns_f(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.0} µs", ns / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(mib(15_667), "15.3 MiB");
        assert_eq!(fmt_ns(1_234_000_000), "1.23 s");
        assert_eq!(fmt_ns(4_500_000), "4.5 ms");
        assert_eq!(fmt_ns(67_000), "67 µs");
    }

    #[test]
    fn lines_and_fields() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 15), "a");
        let kv = parse_kv("elapsed_ns=12 utime_us=3 junk x=y");
        assert_eq!(kv.len(), 2);
        assert_eq!(kv["elapsed_ns"], 12);
        assert_eq!(
            kb_field("Name:\tx\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048)
        );
        assert_eq!(kb_field("VmRSS:\t2048 kB\n", "VmHWM:"), None);
    }
}
