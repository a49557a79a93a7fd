//! Running a workload under a tool and measuring it: wall and workload time, CPU from wait4's
//! rusage, peak RSS (and, when asked, the tracer's RSS polled from /proc), load and steal time.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::workload::Workload;
use crate::util::{self, load_average, status_kb, tail, tv_us};

/// Syscalls strace is restricted to: the ones fsync-trace looks at.
pub(super) const STRACE_SYSCALLS: &str =
    "write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync,sync,syncfs,\
sync_file_range,msync,mmap,open,openat,openat2,creat,rename,renameat,renameat2,link,linkat,\
symlink,symlinkat,unlink,unlinkat,mkdir,mkdirat,rmdir";

/// The minimal bpftrace equivalent: count writes per fd, time fdatasync, for the command only.
pub(super) const BPFTRACE_SCRIPT: &str = "tracepoint:syscalls:sys_enter_write /pid == cpid/ { @writes[args->fd] = count(); } \
tracepoint:syscalls:sys_enter_fdatasync /pid == cpid/ { @start[tid] = nsecs; } \
tracepoint:syscalls:sys_exit_fdatasync /@start[tid]/ { @fdatasync_ns = hist(nsecs - @start[tid]); delete(@start[tid]); }";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Tool {
    Untraced,
    /// `None`: the binary has no --tier option; the tier is whatever it chose (from the report).
    FsyncTrace(Option<String>),
    Strace,
    Bpftrace,
}

pub(super) struct Bins {
    pub(super) tracer: PathBuf,
    pub(super) workload: PathBuf,
}

/// One run's measurements.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    /// The workload's own wall time (`elapsed_ns=` on its stderr).
    pub(super) elapsed_ns: u64,
    /// From spawning the outer command to reaping it: tracer start-up and report included.
    pub(super) wall_ns: u64,
    /// user + system CPU of the tracer process itself (its rusage minus the workload's).
    pub(super) tool_cpu_us: u64,
    /// user + system CPU of the workload (its own getrusage): less sensitive than its wall time
    /// to other jobs on the machine.
    pub(super) workload_cpu_us: u64,
    /// Peak RSS of the tool's process tree (`ru_maxrss`: the largest of tracer and workload).
    /// On runs with `poll_hwm` it comes from `/usr/bin/time` launching the tool (see
    /// [`Bench::run`]); otherwise from wait4, which also counts this process's own peak.
    pub(super) maxrss_kb: u64,
    pub(super) load1: f64,
    /// Share of the machine's CPU time the hypervisor gave to something else during the run
    /// (steal time in /proc/stat, over wall time × CPUs).
    pub(super) steal: f64,
}

/// Other processes holding BPF programs (another tracer attached to the syscall tracepoints
/// slows every syscall on the machine, the untraced runs included), as "pid N comm (N BPF
/// programs): command line".
pub(super) fn foreign_bpf() -> Vec<String> {
    util::bpf_users()
        .into_iter()
        .map(|u| {
            format!(
                "pid {} {} ({} BPF programs): {}",
                u.pid,
                u.comm,
                u.progs,
                u.cmdline.chars().take(120).collect::<String>()
            )
        })
        .collect()
}

pub(super) struct Outcome {
    pub(super) sample: Sample,
    /// fsync-trace: its JSON report.
    pub(super) report: Option<Value>,
    /// Highest VmHWM seen while polling the tracer (only when asked).
    pub(super) polled_hwm_kb: u64,
    /// The polled sample with the largest VmRSS: (VmRSS, RssAnon, RssFile) in kB.
    pub(super) polled_peak: (u64, u64, u64),
}

pub(super) struct Bench {
    pub(super) bins: Bins,
    pub(super) scratch: PathBuf,
    /// Tier a `FsyncTrace(None)` tool turned out to use.
    pub(super) default_tier: Option<String>,
    /// Runs started, how many of them while other processes held BPF programs, and who they
    /// were.
    pub(super) runs: usize,
    pub(super) foreign_runs: usize,
    pub(super) foreign: BTreeSet<String>,
}

impl Bench {
    pub(super) fn label(&self, tool: &Tool) -> String {
        match tool {
            Tool::Untraced => "untraced".into(),
            Tool::FsyncTrace(Some(t)) => format!("fsync-trace ({t})"),
            Tool::FsyncTrace(None) => format!(
                "fsync-trace ({})",
                self.default_tier.as_deref().unwrap_or("default tier")
            ),
            Tool::Strace => "strace".into(),
            Tool::Bpftrace => "bpftrace".into(),
        }
    }

    pub(super) fn work_dir(&self) -> PathBuf {
        self.scratch.join("run")
    }

    fn command(&self, tool: &Tool, w: &Workload) -> Result<Command> {
        self.command_with(tool, w.args(&self.work_dir()))
    }

    /// `tool` running the workload with arguments `args`.
    fn command_with(&self, tool: &Tool, args: Vec<String>) -> Result<Command> {
        Ok(match tool {
            Tool::Untraced => {
                let mut c = Command::new(&self.bins.workload);
                c.args(&args);
                c
            }
            Tool::FsyncTrace(tier) => {
                let mut c = Command::new(&self.bins.tracer);
                if let Some(t) = tier {
                    c.args(["--tier", t]);
                }
                c.arg("--json")
                    .arg("-o")
                    .arg(self.scratch.join("report.json"))
                    .arg("--")
                    .arg(&self.bins.workload)
                    .args(&args);
                c
            }
            Tool::Strace => {
                let mut c = Command::new("strace");
                c.args(["-f", "--seccomp-bpf", "-e"])
                    .arg(format!("trace={STRACE_SYSCALLS}"))
                    .args(["-o", "/dev/null", "--"])
                    .arg(&self.bins.workload)
                    .args(&args);
                c
            }
            Tool::Bpftrace => {
                // bpftrace -c splits its command on spaces (no shell quoting).
                let cmdline = std::iter::once(self.bins.workload.display().to_string())
                    .chain(args)
                    .collect::<Vec<_>>();
                if cmdline.iter().any(|a| a.contains(char::is_whitespace)) {
                    bail!("bpftrace -c cannot run paths with spaces: {cmdline:?}");
                }
                let mut c = Command::new("bpftrace");
                c.arg("-o")
                    .arg(self.scratch.join("bpftrace.txt"))
                    .args(["-e", BPFTRACE_SCRIPT, "-c"])
                    .arg(cmdline.join(" "));
                c
            }
        })
    }

    /// One run in a fresh, empty work dir, with earlier runs' dirty data already written back.
    ///
    /// With `poll_hwm` (the memory runs) the tool is launched by `/usr/bin/time`, whose
    /// `ru_maxrss` is the figure reported: a process's `ru_maxrss` also counts the memory it had
    /// before its exec, and a child spawned straight from this process starts in this process's
    /// address space (vfork) or a copy of it (fork). So wait4 here would report this process's
    /// own peak (every parsed report so far) whenever it is larger than the tracer's; GNU time's
    /// child starts from a copy of GNU time (about 2 MiB).
    pub(super) fn run(&mut self, tool: &Tool, w: &Workload, poll_hwm: bool) -> Result<Outcome> {
        let work = self.fresh_work_dir()?;
        let stderr_path = self.scratch.join("stderr.txt");
        let stderr = fs::File::create(&stderr_path)?;
        let maxrss_path = self.scratch.join("maxrss.txt");
        let _ = fs::remove_file(&maxrss_path);
        let mut cmd = self.command(tool, w)?;
        if poll_hwm {
            let mut timed = Command::new("/usr/bin/time");
            timed
                .args(["-f", "%M", "-o"])
                .arg(&maxrss_path)
                .arg(cmd.get_program())
                .args(cmd.get_args());
            cmd = timed;
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let load1 = load_average();
        let foreign = foreign_bpf();
        self.runs += 1;
        if !foreign.is_empty() {
            self.foreign_runs += 1;
            self.foreign.extend(foreign);
        }
        let steal_before = steal_ticks();
        let start = Instant::now();
        let child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let pid = child.id() as i32;
        // The tool itself: GNU time's only child, once it exists.
        let mut tool_pid = None;
        let mut polled_hwm_kb = 0;
        let mut polled_peak = (0, 0, 0);
        let flags = if poll_hwm { libc::WNOHANG } else { 0 };
        // wait4 reaps it, for its rusage (`child` is never waited).
        let (status, ru) = loop {
            if let Some(reaped) = util::wait4(pid, flags)? {
                break reaped;
            }
            if poll_hwm && tool_pid.is_none() {
                tool_pid = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                    .ok()
                    .and_then(|c| c.split_whitespace().next()?.parse::<i32>().ok());
            }
            if let Some(pid) = tool_pid {
                polled_hwm_kb = polled_hwm_kb.max(status_kb(pid, "VmHWM:").unwrap_or(0));
                let rss = status_kb(pid, "VmRSS:").unwrap_or(0);
                if rss > polled_peak.0 {
                    let anon = status_kb(pid, "RssAnon:").unwrap_or(0);
                    polled_peak = (rss, anon, status_kb(pid, "RssFile:").unwrap_or(0));
                }
            }
            if poll_hwm {
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        let wall_ns = start.elapsed().as_nanos() as u64;
        let steal = steal_share(steal_ticks().saturating_sub(steal_before), wall_ns);
        let err = fs::read_to_string(&stderr_path).unwrap_or_default();
        let label = self.label(tool);
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            bail!(
                "{} / {label} failed (wait status {status:#x}):\n{}",
                w.name(),
                tail(&err, 15)
            );
        }
        let stats = parse_elapsed(&err).ok_or_else(|| {
            anyhow!(
                "{} / {label}: no elapsed_ns line from the workload:\n{}",
                w.name(),
                tail(&err, 15)
            )
        })?;
        let total_cpu = tv_us(ru.ru_utime) + tv_us(ru.ru_stime);
        let workload_cpu = stats.get("utime_us").copied().unwrap_or(0)
            + stats.get("stime_us").copied().unwrap_or(0);
        let sample = Sample {
            elapsed_ns: stats.get("elapsed_ns").copied().unwrap_or(0),
            wall_ns,
            tool_cpu_us: if *tool == Tool::Untraced {
                0
            } else {
                total_cpu.saturating_sub(workload_cpu)
            },
            workload_cpu_us: workload_cpu,
            maxrss_kb: if poll_hwm {
                timed_maxrss_kb(&maxrss_path)?
            } else {
                ru.ru_maxrss.max(0) as u64
            },
            load1,
            steal,
        };
        let mut report = None;
        match tool {
            Tool::FsyncTrace(tier) => {
                report = Some(self.checked_report(tier.as_deref(), w, &work, w.name())?);
            }
            Tool::Bpftrace => {
                // The script's own counts: proves it saw every write (fd 2 is the elapsed line).
                let out = fs::read_to_string(self.scratch.join("bpftrace.txt")).unwrap_or_default();
                let counted: u64 = out
                    .lines()
                    .filter_map(|l| l.strip_prefix("@writes["))
                    .filter_map(|l| l.split_once("]: "))
                    .filter(|(fd, _)| *fd != "2")
                    .filter_map(|(_, n)| n.trim().parse::<u64>().ok())
                    .sum();
                if counted != w.writes() {
                    bail!(
                        "{} / bpftrace counted {counted} writes, expected {}:\n{}",
                        w.name(),
                        w.writes(),
                        tail(&out, 15)
                    );
                }
            }
            _ => {}
        }
        Ok(Outcome {
            sample,
            report,
            polled_hwm_kb,
            polled_peak,
        })
    }

    /// An empty work dir, with earlier runs' outputs removed and their dirty data written back
    /// (so that write-back does not land in the next run's time).
    fn fresh_work_dir(&self) -> Result<PathBuf> {
        let work = self.work_dir();
        if work.exists() {
            fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
        }
        fs::create_dir_all(&work)?;
        for f in ["report.json", "bpftrace.txt"] {
            let _ = fs::remove_file(self.scratch.join(f));
        }
        // SAFETY: plain syscall.
        unsafe { libc::sync() };
        std::thread::sleep(Duration::from_millis(100));
        Ok(work)
    }

    /// The fsync-trace report of the run that just ended (asked for tier `tier`, None: the
    /// default, which is remembered), checked for exact counts of workload `w` run in `dir`.
    fn checked_report(
        &mut self,
        tier: Option<&str>,
        w: &Workload,
        dir: &Path,
        what: &str,
    ) -> Result<Value> {
        let path = self.scratch.join("report.json");
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let r: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let got = r
            .get("tier")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        match tier {
            Some(t) if t != got => bail!("asked for the {t} tier, the report says {got}"),
            Some(_) => {}
            None => self.default_tier = Some(got),
        }
        let label = self.label(&Tool::FsyncTrace(tier.map(String::from)));
        w.check(&r, &fs::canonicalize(dir)?)
            .with_context(|| format!("{what} / {label}: the report is not exact"))?;
        Ok(r)
    }

    /// One lockstep pair of fsync-bound (`fsync-trace-workload fsync-bound --lockstep`): an
    /// untraced and a traced process take turns, one record (append + fdatasync) each, and each
    /// reports only the time spent in its own records. Both see the disk and the host in the same
    /// state, millisecond by millisecond, which whole runs seconds apart do not. Returns
    /// (untraced, traced) time in ns; the traced report is checked for exact counts.
    pub(super) fn lockstep(
        &mut self,
        tool: &Tool,
        w: &Workload,
        traced_first: bool,
    ) -> Result<(u64, u64)> {
        let work = self.fresh_work_dir()?;
        let (udir, tdir) = (work.join("untraced"), work.join("traced"));
        fs::create_dir_all(&udir)?;
        fs::create_dir_all(&tdir)?;
        let (u2t, t2u) = (work.join("u2t.fifo"), work.join("t2u.fifo"));
        for f in [&u2t, &t2u] {
            let c = std::ffi::CString::new(f.as_os_str().as_encoded_bytes())?;
            // SAFETY: a NUL-terminated path we own.
            if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                bail!(
                    "mkfifo {}: {}",
                    f.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
        let args = |dir: &Path, input: &Path, output: &Path, first: bool| {
            let mut a = vec![
                "fsync-bound".to_string(),
                dir.display().to_string(),
                "--records".into(),
                w.n.to_string(),
                "--lockstep".into(),
                input.display().to_string(),
                output.display().to_string(),
                "--report-elapsed".into(),
            ];
            if first {
                a.push("--lockstep-first".into());
            }
            a
        };
        let (uerr, terr) = (
            self.scratch.join("stderr-u.txt"),
            self.scratch.join("stderr.txt"),
        );
        let mut ucmd =
            self.command_with(&Tool::Untraced, args(&udir, &t2u, &u2t, !traced_first))?;
        let mut tcmd = self.command_with(tool, args(&tdir, &u2t, &t2u, traced_first))?;
        for (c, e) in [(&mut ucmd, &uerr), (&mut tcmd, &terr)] {
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(e)?);
        }
        let mut children = [ucmd.spawn()?, tcmd.spawn()?];
        // A partner that fails before opening its FIFOs would leave the other waiting forever.
        let deadline = Instant::now() + Duration::from_mins(10);
        let mut status = [None, None];
        while status.iter().any(Option::is_none) {
            for (c, st) in children.iter_mut().zip(status.iter_mut()) {
                if st.is_none() {
                    *st = c.try_wait()?;
                }
            }
            let failed = status.iter().flatten().any(|s| !s.success());
            if failed || Instant::now() > deadline {
                for c in &mut children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                bail!(
                    "fsync-bound lockstep / {} failed:\n{}\n{}",
                    self.label(tool),
                    tail(&fs::read_to_string(&uerr).unwrap_or_default(), 15),
                    tail(&fs::read_to_string(&terr).unwrap_or_default(), 15)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let busy = |p: &Path| -> Result<u64> {
            let err = fs::read_to_string(p).unwrap_or_default();
            parse_elapsed(&err)
                .and_then(|m| m.get("elapsed_ns").copied())
                .ok_or_else(|| anyhow!("lockstep: no elapsed_ns line:\n{}", tail(&err, 15)))
        };
        let (u, t) = (busy(&uerr)?, busy(&terr)?);
        let _ = fs::remove_file(&uerr);
        if let Tool::FsyncTrace(tier) = tool {
            self.checked_report(tier.as_deref(), w, &tdir, "fsync-bound lockstep")?;
        }
        Ok((u, t))
    }
}

/// The `%M` (peak RSS in KiB) GNU time wrote to `path`.
fn timed_maxrss_kb(path: &Path) -> Result<u64> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .ok_or_else(|| {
            anyhow!(
                "no peak RSS from /usr/bin/time in {}: {text:?}",
                path.display()
            )
        })
}

/// Steal time of all CPUs so far, in clock ticks (`cpu` line of /proc/stat, 8th value).
fn steal_ticks() -> u64 {
    fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.to_string();
            line.split_whitespace().nth(8)?.parse().ok()
        })
        .unwrap_or(0)
}

/// `ticks` of steal time as a share of `wall_ns` on every CPU.
fn steal_share(ticks: u64, wall_ns: u64) -> f64 {
    // SAFETY: plain sysconf calls.
    let (hz, cpus) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_NPROCESSORS_ONLN),
        )
    };
    if hz <= 0 || cpus <= 0 || wall_ns == 0 {
        return f64::NAN;
    }
    ticks as f64 * 1e9 / hz as f64 / (wall_ns as f64 * cpus as f64)
}

/// The workload's `elapsed_ns=N utime_us=N ...` line.
fn parse_elapsed(stderr: &str) -> Option<BTreeMap<String, u64>> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("elapsed_ns="))?;
    Some(util::parse_kv(line))
}
