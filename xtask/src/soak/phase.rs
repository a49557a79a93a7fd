//! One phase of the soak: a fresh `fsync-trace --all`, its memory read from /proc while the
//! load runs, then SIGINT and its end of run watched until it exits.
use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::{
    foreign_bpf,
    page::progress_text,
    report::{read_report, ReportSummary},
    Load, Soak, SoakArgs,
};
use crate::util::{self, kb_field, load_average, mib, tail, tv_us};

/// The tracer's memory is read this often while the load runs; every SERIES_EVERY-th sample
/// goes into the page's time series.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const SERIES_EVERY: u32 = 10;

/// One reading of the tracer's /proc/PID/status (kB), with the load's progress at that time.
#[derive(Clone, Debug, Default)]
pub(super) struct Sample {
    /// Seconds since the load started (0 for the readings before it and after it).
    pub(super) t: f64,
    pub(super) rss: u64,
    pub(super) anon: u64,
    pub(super) file: u64,
    pub(super) hwm: u64,
    pub(super) progress: BTreeMap<String, u64>,
}

fn sample(pid: i32, t: f64, progress: BTreeMap<String, u64>) -> Option<Sample> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| kb_field(&s, key);
    Some(Sample {
        t,
        rss: kb("VmRSS:")?,
        anon: kb("RssAnon:").unwrap_or(0),
        file: kb("RssFile:").unwrap_or(0),
        hwm: kb("VmHWM:").unwrap_or(0),
        progress,
    })
}

/// What one phase measured.
pub(super) struct PhaseResult {
    pub(super) load: Load,
    /// From spawning the tracer to it saying it traces every process.
    pub(super) attach_s: f64,
    pub(super) start: Sample,
    pub(super) end: Sample,
    pub(super) min_rss: u64,
    pub(super) max_rss: Sample,
    pub(super) max_hwm: u64,
    pub(super) series: Vec<Sample>,
    /// The load's final counters (`done` line).
    pub(super) done: BTreeMap<String, u64>,
    /// From SIGINT to the tracer's exit.
    pub(super) stop_s: f64,
    pub(super) stop_timed_out: bool,
    /// Largest VmRSS / VmHWM polled after SIGINT, and wait4's ru_maxrss (whole life).
    pub(super) stop_max_rss: u64,
    pub(super) stop_max_hwm: u64,
    pub(super) ru_maxrss: u64,
    pub(super) tracer_cpu_s: f64,
    pub(super) exit: String,
    pub(super) report: Result<ReportSummary, String>,
    /// Kernel memory the tracer's BPF maps charge (fdinfo `memlock`), in kB.
    pub(super) memlock_kb: u64,
    /// `memory PHASE: VmRSS..., VmHWM...` lines of the tracer's own end-of-run log.
    pub(super) memory_log: Vec<String>,
    pub(super) load1_before: f64,
    pub(super) load1_after: f64,
    pub(super) foreign_bpf: Vec<String>,
}

impl Soak {
    pub(super) fn phase(&self, load: Load, args: &SoakArgs) -> Result<PhaseResult> {
        let name = load.name();
        let work = self.scratch.join(name);
        if work.exists() {
            fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
        }
        fs::create_dir_all(&work)?;
        let work = fs::canonicalize(&work)?;
        let report_path = self.scratch.join(format!("report-{name}.json"));
        let stderr_path = self.scratch.join(format!("tracer-{name}.stderr"));
        let _ = fs::remove_file(&report_path);
        // Earlier dirty data written back before the tracer starts.
        // SAFETY: plain syscall.
        unsafe { libc::sync() };
        let load1_before = load_average();
        let foreign = foreign_bpf();

        let mut cmd = Command::new(&self.tracer);
        if let Some(t) = &self.tier {
            cmd.args(["--tier", t]);
        }
        // -v prints the "tracing every process" line once attached; its memory log (the
        // end-of-run phases) is debug-level in fsync_trace::run, the rest stays quiet.
        cmd.args(["--all", "--json", "-v", "-o"])
            .arg(&report_path)
            .env("RUST_LOG", "warn,fsync_trace::run=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr_path)?);
        eprintln!("[soak] {name}: starting {cmd:?}");
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.tracer.display()))?;
        let pid = child.id() as i32;
        // Reaped with wait4 below (for its rusage), never through `child`.
        drop(child);
        let mut tracer = Reaper { pid, reaped: false };
        let attach_s = self.wait_attached(&mut tracer, &stderr_path)?;
        eprintln!("[soak] {name}: tracer pid {pid} attached after {attach_s:.1} s");
        // Let it settle (runtime threads, first drains) before the start reading.
        std::thread::sleep(Duration::from_secs(3));
        tracer.check_alive(&stderr_path)?;
        let start = sample(pid, 0.0, BTreeMap::new()).context("reading the tracer's status")?;
        let memlock_kb = bpf_memlock_kb(pid);

        // The load.
        let mut load_cmd = Command::new(std::env::current_exe()?);
        load_cmd
            .args(["soak", "--load", name, "--load-dir"])
            .arg(&work)
            .arg("--minutes")
            .arg(args.minutes.to_string())
            .arg("--files")
            .arg(args.files.to_string())
            .arg("--fsync-rate")
            .arg(args.fsync_rate.to_string())
            .arg("--file-rate")
            .arg(args.file_rate.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let load_start = Instant::now();
        let mut load_child = KillOnDrop(load_cmd.spawn().context("starting the load generator")?);
        let progress: Arc<Mutex<LoadProgress>> = Default::default();
        let reader = {
            let progress = progress.clone();
            let stdout = load_child.0.stdout.take().context("load stdout")?;
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let (kind, rest) = line.split_once(' ').unwrap_or((&line, ""));
                    let kv = util::parse_kv(rest);
                    let mut p = progress.lock().unwrap();
                    match kind {
                        "progress" => p.0 = kv,
                        "done" => {
                            p.0 = kv.clone();
                            p.1 = Some(kv);
                        }
                        _ => {}
                    }
                }
            })
        };
        let mut series = vec![start.clone()];
        let mut min_rss = start.rss;
        let mut max_rss = start.clone();
        let mut max_hwm = start.hwm;
        let mut last = start.clone();
        let mut tick = 0u32;
        let load_status = loop {
            tick += 1;
            let due = load_start + SAMPLE_EVERY * tick;
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            let exited = load_child.0.try_wait()?;
            tracer.check_alive(&stderr_path)?;
            let t = load_start.elapsed().as_secs_f64();
            let p = progress.lock().unwrap().0.clone();
            if let Some(s) = sample(pid, t, p) {
                min_rss = min_rss.min(s.rss);
                max_hwm = max_hwm.max(s.hwm);
                if s.rss > max_rss.rss {
                    max_rss = s.clone();
                }
                if tick.is_multiple_of(SERIES_EVERY) {
                    eprintln!(
                        "[soak] {name}: t={:>5.0}s VmRSS {} (anon {}) VmHWM {}  {}",
                        t,
                        mib(s.rss),
                        mib(s.anon),
                        mib(s.hwm),
                        progress_text(&s.progress)
                    );
                    series.push(s.clone());
                }
                last = s;
            }
            if let Some(st) = exited {
                break st;
            }
        };
        let _ = reader.join();
        let load_elapsed = load_start.elapsed().as_secs_f64();
        if series.last().is_some_and(|s| s.t < last.t) {
            series.push(last.clone());
        }
        let end = last;
        let done = progress.lock().unwrap().1.clone();

        // Stop the tracer and watch its end of run.
        let load1_after = load_average();
        eprintln!("[soak] {name}: load done in {load_elapsed:.1} s; SIGINT to the tracer");
        let stopped = Instant::now();
        // SAFETY: plain syscall; our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let mut stop_max_rss = 0;
        let mut stop_max_hwm = 0;
        let mut stop_timed_out = false;
        let (status, ru) = loop {
            if let Some(r) = tracer.try_reap()? {
                break r;
            }
            if let Some(s) = sample(pid, 0.0, BTreeMap::new()) {
                stop_max_rss = stop_max_rss.max(s.rss);
                stop_max_hwm = stop_max_hwm.max(s.hwm);
            }
            if stopped.elapsed() > self.stop_timeout {
                stop_timed_out = true;
                eprintln!(
                    "[soak] {name}: the tracer did not exit within {} s of SIGINT: SIGKILL",
                    self.stop_timeout.as_secs()
                );
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break tracer.reap()?;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stop_s = stopped.elapsed().as_secs_f64();
        let err = fs::read_to_string(&stderr_path).unwrap_or_default();
        let memory_log = err
            .lines()
            .filter_map(|l| l.split_once("memory ").map(|(_, m)| m.trim().to_string()))
            .filter(|m| m.contains("VmRSS"))
            .collect();
        let exit = wait_status_text(status);
        let report = read_report(&report_path, &work);
        if let Err(e) = fs::remove_dir_all(&work) {
            eprintln!("[soak] could not clean {}: {e}", work.display());
        }
        if !load_status.success() {
            bail!(
                "the {name} load generator failed ({load_status}); tracer stderr:\n{}",
                tail(&err, 15)
            );
        }
        let done = done.context("the load generator printed no `done` line")?;
        Ok(PhaseResult {
            load,
            attach_s,
            start,
            end,
            min_rss,
            max_rss,
            max_hwm,
            series,
            done,
            stop_s,
            stop_timed_out,
            stop_max_rss,
            stop_max_hwm,
            ru_maxrss: ru.ru_maxrss.max(0) as u64,
            tracer_cpu_s: (tv_us(ru.ru_utime) + tv_us(ru.ru_stime)) as f64 / 1e6,
            exit,
            report,
            memlock_kb,
            memory_log,
            load1_before,
            load1_after,
            foreign_bpf: foreign,
        })
    }

    /// Waits for the tracer's "tracing every process" line (-v). Should a later build not print
    /// it, a VmRSS that stays put for 2 s after 20 s will do. Returns the seconds it took.
    fn wait_attached(&self, tracer: &mut Reaper, stderr_path: &Path) -> Result<f64> {
        let t0 = Instant::now();
        let mut stable_since: Option<(u64, Instant)> = None;
        loop {
            tracer.check_alive(stderr_path)?;
            let err = fs::read_to_string(stderr_path).unwrap_or_default();
            if err.contains("tracing every process") {
                return Ok(t0.elapsed().as_secs_f64());
            }
            let rss = sample(tracer.pid, 0.0, BTreeMap::new()).map_or(0, |s| s.rss);
            match stable_since {
                Some((r, since)) if r == rss => {
                    if t0.elapsed() > Duration::from_secs(20)
                        && since.elapsed() > Duration::from_secs(2)
                    {
                        eprintln!("[soak] no attach line from the tracer; its VmRSS is stable");
                        return Ok(t0.elapsed().as_secs_f64());
                    }
                }
                _ => stable_since = Some((rss, Instant::now())),
            }
            if t0.elapsed() > Duration::from_mins(2) {
                bail!(
                    "the tracer did not attach within 120 s:\n{}",
                    tail(&err, 15)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The load generator's latest `progress` line and its `done` line.
type LoadProgress = (BTreeMap<String, u64>, Option<BTreeMap<String, u64>>);

/// The load generator, killed if the soak gives up while it runs.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The tracer process, reaped with wait4 (for its rusage); killed if the soak gives up early.
struct Reaper {
    pid: i32,
    reaped: bool,
}

impl Reaper {
    fn wait(&mut self, flags: i32) -> Result<Option<(i32, libc::rusage)>> {
        let reaped = util::wait4(self.pid, flags)?;
        self.reaped |= reaped.is_some();
        Ok(reaped)
    }

    fn try_reap(&mut self) -> Result<Option<(i32, libc::rusage)>> {
        self.wait(libc::WNOHANG)
    }

    fn reap(&mut self) -> Result<(i32, libc::rusage)> {
        self.wait(0)?.context("wait4 returned nothing")
    }

    /// Fails (with its stderr) if the tracer has exited.
    fn check_alive(&mut self, stderr_path: &Path) -> Result<()> {
        if let Some((status, _)) = self.try_reap()? {
            bail!(
                "the tracer exited early ({}):\n{}",
                wait_status_text(status),
                tail(&fs::read_to_string(stderr_path).unwrap_or_default(), 15)
            );
        }
        Ok(())
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: plain syscalls on our own child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

fn wait_status_text(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}

/// Kernel memory charged to the BPF maps the process holds (sum of fdinfo `memlock`), kB.
fn bpf_memlock_kb(pid: i32) -> u64 {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    fds.flatten()
        .filter_map(|fd| fs::read_to_string(fd.path()).ok())
        .filter(|s| s.contains("\nmap_type:"))
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("memlock:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum::<u64>()
        / 1024
}
