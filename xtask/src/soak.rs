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
use std::{
    collections::{BTreeMap, VecDeque},
    fmt::Write as _,
    fs,
    io::{BufRead, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

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

const MIB: f64 = 1024.0;
/// Log files the steady phase appends to.
const LOG_FILES: usize = 4;
/// Bytes per log append.
const LOG_RECORD: usize = 100;
/// Bytes written to each new file of the steady phase.
const NEW_FILE_BYTES: usize = 1024;
/// New files of the steady phase are unlinked once older than this.
const NEW_FILE_LIFETIME: Duration = Duration::from_secs(10);
/// Churn: subdirectories, files per batch, bytes per file.
const CHURN_DIRS: u64 = 4;
const CHURN_BATCH: u64 = 10_000;
const CHURN_BYTES: usize = 100;
/// The tracer's memory is read this often while the load runs; every SERIES_EVERY-th sample
/// goes into the page's time series.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const SERIES_EVERY: u32 = 10;

pub fn run(args: SoakArgs) -> Result<()> {
    if let Some(load) = args.load {
        let dir = args
            .load_dir
            .as_deref()
            .context("--load needs --load-dir")?;
        return match load {
            Load::Steady => steady_load(
                dir,
                Duration::from_secs_f64(args.minutes * 60.0),
                args.fsync_rate,
                args.file_rate,
            ),
            Load::Churn => churn_load(dir, args.files),
        };
    }
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let target_dir = args
        .target_dir
        .clone()
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| root.join("target"));
    let target_dir = if target_dir.is_relative() {
        root.join(target_dir)
    } else {
        target_dir
    };
    if !args.no_build {
        crate::run(
            crate::cargo()
                .current_dir(&root)
                .args(["build", "--release", "-p", "fsync-trace", "--target-dir"])
                .arg(&target_dir),
        )?;
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
    check_disk_fs(&scratch)?;
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
    let page = markdown(&args, &soak, &results, &failures, &git_describe(&root));
    if let Some(d) = out.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(&out, page).with_context(|| format!("writing {}", out.display()))?;
    print!("{}", summary_table(&results));
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

/// One reading of the tracer's /proc/PID/status (kB), with the load's progress at that time.
#[derive(Clone, Debug, Default)]
struct Sample {
    /// Seconds since the load started (negative: before).
    t: f64,
    rss: u64,
    anon: u64,
    file: u64,
    hwm: u64,
    progress: BTreeMap<String, u64>,
}

fn sample(pid: i32, t: f64, progress: BTreeMap<String, u64>) -> Option<Sample> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<u64> {
        s.lines()
            .find_map(|l| l.strip_prefix(key))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(Sample {
        t,
        rss: kb("VmRSS:")?,
        anon: kb("RssAnon:").unwrap_or(0),
        file: kb("RssFile:").unwrap_or(0),
        hwm: kb("VmHWM:").unwrap_or(0),
        progress,
    })
}

/// What the tracer's JSON report says.
#[derive(Debug, Default)]
struct ReportSummary {
    tier: String,
    lost_events: Option<u64>,
    complete: Option<bool>,
    lost: String,
    released_files: Option<u64>,
    reclaimed_slots: Option<u64>,
    files: usize,
    files_in_load_dir: usize,
    removed_files: usize,
    findings: BTreeMap<String, u64>,
    bytes: u64,
}

struct PhaseResult {
    load: Load,
    /// From spawning the tracer to it saying it traces every process.
    attach_s: f64,
    start: Sample,
    end: Sample,
    min_rss: u64,
    max_rss: Sample,
    max_hwm: u64,
    series: Vec<Sample>,
    /// The load's final counters (`done` line).
    done: BTreeMap<String, u64>,
    /// From SIGINT to the tracer's exit.
    stop_s: f64,
    stop_timed_out: bool,
    /// Largest VmRSS / VmHWM polled after SIGINT, and wait4's ru_maxrss (whole life).
    stop_max_rss: u64,
    stop_max_hwm: u64,
    ru_maxrss: u64,
    tracer_cpu_s: f64,
    exit: String,
    report: Result<ReportSummary, String>,
    /// Kernel memory the tracer's BPF maps charge (fdinfo `memlock`), in kB.
    memlock_kb: u64,
    /// `memory PHASE: VmRSS..., VmHWM...` lines of the tracer's own end-of-run log.
    memory_log: Vec<String>,
    load1_before: f64,
    load1_after: f64,
    foreign_bpf: Vec<String>,
}

impl Soak {
    fn phase(&self, load: Load, args: &SoakArgs) -> Result<PhaseResult> {
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
                    let kv: BTreeMap<String, u64> = rest
                        .split_whitespace()
                        .filter_map(|kv| kv.split_once('='))
                        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                        .collect();
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
                tail(&err)
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
            if t0.elapsed() > Duration::from_secs(120) {
                bail!("the tracer did not attach within 120 s:\n{}", tail(&err));
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
        // SAFETY: all-zero is a valid rusage.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let mut status = 0;
        loop {
            // SAFETY: our own child; valid out pointers.
            let r = unsafe { libc::wait4(self.pid, &mut status, flags, &mut ru) };
            if r == self.pid {
                self.reaped = true;
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
                tail(&fs::read_to_string(stderr_path).unwrap_or_default())
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

fn read_report(path: &Path, load_dir: &Path) -> Result<ReportSummary, String> {
    let bytes = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let r: Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    drop(text);
    let prefix = format!("{}/", load_dir.display());
    let files = r.get("files").and_then(Value::as_array);
    let mut findings = BTreeMap::new();
    for f in r
        .get("findings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = f.get("kind").and_then(Value::as_str).unwrap_or("?");
        *findings.entry(kind.to_string()).or_insert(0) += 1;
    }
    Ok(ReportSummary {
        tier: r
            .get("tier")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
        lost_events: r.get("lost_events").and_then(Value::as_u64),
        complete: r.get("complete").and_then(Value::as_bool),
        lost: r
            .get("lost")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| v.as_u64() != Some(0))
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        released_files: find_key(&r, "released_files").and_then(Value::as_u64),
        reclaimed_slots: find_key(&r, "reclaimed_slots").and_then(Value::as_u64),
        files: files.map_or(0, Vec::len),
        files_in_load_dir: files.map_or(0, |f| {
            f.iter()
                .filter(|f| {
                    f.get("path")
                        .and_then(Value::as_str)
                        .is_some_and(|p| p.starts_with(&prefix))
                })
                .count()
        }),
        removed_files: files.map_or(0, |f| {
            f.iter()
                .filter(|f| f.get("removed") == Some(&Value::Bool(true)))
                .count()
        }),
        findings,
        bytes,
    })
}

/// `key` in the report's top-level object or any object nested in it (not in arrays: those are
/// the per-file and per-finding lists).
fn find_key<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let o = v.as_object()?;
    o.get(key).or_else(|| {
        o.values()
            .filter(|v| v.is_object())
            .find_map(|v| find_key(v, key))
    })
}

// ---------------------------------------------------------------------------------------------
// Load generators (the child process).
// ---------------------------------------------------------------------------------------------

fn kv_line(kind: &str, kv: &[(&str, u64)]) {
    let mut s = kind.to_string();
    for (k, v) in kv {
        let _ = write!(s, " {k}={v}");
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// Sleeps until `due` (no-op if it has passed); returns how late we are, in µs.
fn sleep_until(due: Instant) -> u64 {
    let now = Instant::now();
    match due.checked_duration_since(now) {
        Some(d) => {
            std::thread::sleep(d);
            0
        }
        None => now.duration_since(due).as_micros() as u64,
    }
}

#[derive(Default)]
struct SteadyCounters {
    appends: AtomicU64,
    created: AtomicU64,
    removed: AtomicU64,
    dir_fsyncs: AtomicU64,
    max_lag_us: AtomicU64,
}

impl SteadyCounters {
    fn snapshot(&self, elapsed: Duration) -> Vec<(&'static str, u64)> {
        vec![
            ("elapsed_ms", elapsed.as_millis() as u64),
            ("appends", self.appends.load(Ordering::Relaxed)),
            ("files_created", self.created.load(Ordering::Relaxed)),
            ("files_removed", self.removed.load(Ordering::Relaxed)),
            ("dir_fsyncs", self.dir_fsyncs.load(Ordering::Relaxed)),
            ("max_lag_ms", self.max_lag_us.load(Ordering::Relaxed) / 1000),
        ]
    }
}

/// About `fsync_rate` appends (100 B) + fdatasync per second over 4 log files, and `file_rate`
/// new files per second (create, 1 KiB, fsync, close; unlinked after 10 s; the directory
/// fsynced each second), each on a sleep-based schedule in its own thread (a late operation
/// runs at once: the schedule catches up, it does not drift).
fn steady_load(dir: &Path, length: Duration, fsync_rate: u64, file_rate: u64) -> Result<()> {
    let logs_dir = dir.join("logs");
    let new_dir = dir.join("new");
    fs::create_dir_all(&logs_dir)?;
    fs::create_dir_all(&new_dir)?;
    let c = SteadyCounters::default();
    let finished = AtomicBool::new(false);
    let start = Instant::now();
    let end = start + length;
    std::thread::scope(|s| -> Result<()> {
        let logs = s.spawn(|| -> Result<()> {
            let mut files = (0..LOG_FILES)
                .map(|i| {
                    fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(logs_dir.join(format!("log{i}.log")))
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            let period = Duration::from_secs(1) / fsync_rate as u32;
            let record = [b'l'; LOG_RECORD];
            for i in 0u64.. {
                let due = start + period * i as u32;
                if due >= end {
                    break;
                }
                c.max_lag_us.fetch_max(sleep_until(due), Ordering::Relaxed);
                let f = &mut files[i as usize % LOG_FILES];
                f.write_all(&record)?;
                f.sync_data()?;
                c.appends.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        let new_files = s.spawn(|| -> Result<()> {
            let dirf = fs::File::open(&new_dir)?;
            let period = Duration::from_secs(1) / file_rate as u32;
            let data = [b'n'; NEW_FILE_BYTES];
            let mut live: VecDeque<(Instant, PathBuf)> = VecDeque::new();
            let mut next_dir_sync = start + Duration::from_secs(1);
            for i in 0u64.. {
                let due = start + period * i as u32;
                if due >= end {
                    break;
                }
                c.max_lag_us.fetch_max(sleep_until(due), Ordering::Relaxed);
                let path = new_dir.join(format!("f{i:08}"));
                let mut f = fs::File::create(&path)?;
                f.write_all(&data)?;
                f.sync_all()?;
                drop(f);
                c.created.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                live.push_back((now, path));
                while live
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > NEW_FILE_LIFETIME)
                {
                    let (_, p) = live.pop_front().unwrap();
                    fs::remove_file(&p)?;
                    c.removed.fetch_add(1, Ordering::Relaxed);
                }
                if now >= next_dir_sync {
                    dirf.sync_all()?;
                    c.dir_fsyncs.fetch_add(1, Ordering::Relaxed);
                    next_dir_sync += Duration::from_secs(1);
                }
            }
            dirf.sync_all()?;
            c.dir_fsyncs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        s.spawn(|| {
            let mut tick = 1;
            while !finished.load(Ordering::Relaxed) {
                sleep_until(start + Duration::from_secs(1) * tick);
                tick += 1;
                kv_line("progress", &c.snapshot(start.elapsed()));
            }
        });
        let r1 = logs
            .join()
            .map_err(|_| anyhow::anyhow!("log thread panicked"))?;
        let r2 = new_files
            .join()
            .map_err(|_| anyhow::anyhow!("new-file thread panicked"))?;
        finished.store(true, Ordering::Relaxed);
        r1.context("log appends")?;
        r2.context("new files")?;
        Ok(())
    })?;
    kv_line("done", &c.snapshot(start.elapsed()));
    Ok(())
}

/// `n` files created, written (100 B) and closed in 4 subdirectories, then unlinked, in batches
/// of 10,000, as fast as it goes; nothing is synced.
fn churn_load(dir: &Path, n: u64) -> Result<()> {
    let dirs: Vec<PathBuf> = (0..CHURN_DIRS).map(|i| dir.join(format!("d{i}"))).collect();
    for d in &dirs {
        fs::create_dir_all(d)?;
    }
    let created = AtomicU64::new(0);
    let removed = AtomicU64::new(0);
    let create_us = AtomicU64::new(0);
    let remove_us = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let start = Instant::now();
    let snapshot = || {
        vec![
            ("elapsed_ms", start.elapsed().as_millis() as u64),
            ("created", created.load(Ordering::Relaxed)),
            ("removed", removed.load(Ordering::Relaxed)),
            ("create_ms", create_us.load(Ordering::Relaxed) / 1000),
            ("remove_ms", remove_us.load(Ordering::Relaxed) / 1000),
        ]
    };
    std::thread::scope(|s| -> Result<()> {
        s.spawn(|| {
            let mut tick = 1;
            while !finished.load(Ordering::Relaxed) {
                sleep_until(start + Duration::from_secs(1) * tick);
                tick += 1;
                kv_line("progress", &snapshot());
            }
        });
        let r = (|| -> Result<()> {
            let data = [b'c'; CHURN_BYTES];
            let path = |j: u64| dirs[(j % CHURN_DIRS) as usize].join(format!("f{j:08}"));
            let mut i = 0;
            while i < n {
                let b = CHURN_BATCH.min(n - i);
                let t = Instant::now();
                for j in i..i + b {
                    fs::File::create(path(j))?.write_all(&data)?;
                    created.fetch_add(1, Ordering::Relaxed);
                }
                create_us.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                let t = Instant::now();
                for j in i..i + b {
                    fs::remove_file(path(j))?;
                    removed.fetch_add(1, Ordering::Relaxed);
                }
                remove_us.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                i += b;
            }
            Ok(())
        })();
        finished.store(true, Ordering::Relaxed);
        r
    })?;
    kv_line("done", &snapshot());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Output.
// ---------------------------------------------------------------------------------------------

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / MIB)
}

fn signed_mib(from: u64, to: u64) -> String {
    let d = to as f64 - from as f64;
    format!(
        "{}{:.1} MiB",
        if d >= 0.0 { "+" } else { "−" },
        d.abs() / MIB
    )
}

fn thousands(n: u64) -> String {
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

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

fn progress_text(p: &BTreeMap<String, u64>) -> String {
    let g = |k: &str| p.get(k).copied().unwrap_or(0);
    if p.contains_key("appends") {
        format!(
            "appends {} new files {}",
            thousands(g("appends")),
            thousands(g("files_created"))
        )
    } else if p.contains_key("created") {
        format!(
            "created {} removed {}",
            thousands(g("created")),
            thousands(g("removed"))
        )
    } else {
        String::new()
    }
}

impl PhaseResult {
    fn get(&self, k: &str) -> u64 {
        self.done.get(k).copied().unwrap_or(0)
    }

    fn secs(&self) -> f64 {
        self.get("elapsed_ms") as f64 / 1000.0
    }

    fn rate(&self, k: &str) -> f64 {
        self.get(k) as f64 / self.secs().max(1e-9)
    }

    /// Files the load created (the ones the tracer could have to remember).
    fn files_created(&self) -> u64 {
        match self.load {
            Load::Steady => self.get("files_created"),
            Load::Churn => self.get("created"),
        }
    }

    fn end_peak(&self) -> u64 {
        self.ru_maxrss.max(self.stop_max_hwm)
    }

    fn operations(&self) -> String {
        match self.load {
            Load::Steady => format!(
                "{} appends + fdatasync ({:.0}/s); {} new files ({:.1}/s), {} unlinked; {} directory fsyncs; largest lag behind schedule {} ms",
                thousands(self.get("appends")),
                self.rate("appends"),
                thousands(self.get("files_created")),
                self.rate("files_created"),
                thousands(self.get("files_removed")),
                thousands(self.get("dir_fsyncs")),
                thousands(self.get("max_lag_ms")),
            ),
            Load::Churn => {
                let c = self.get("created");
                let per = |n: u64, ms: u64| n as f64 / (ms as f64 / 1000.0).max(1e-9);
                format!(
                    "{} files created + written + closed ({:.0}/s while creating), {} unlinked ({:.0}/s while unlinking); {:.0} files/s overall",
                    thousands(c),
                    per(c, self.get("create_ms")),
                    thousands(self.get("removed")),
                    per(self.get("removed"), self.get("remove_ms")),
                    self.rate("created"),
                )
            }
        }
    }
}

fn summary_table(results: &[PhaseResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<7} {:>8} {:>10} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>6} {:>8} {:>9} {:>9}",
        "phase",
        "time",
        "files",
        "RSS start",
        "RSS end",
        "RSS max",
        "VmHWM",
        "end peak",
        "growth",
        "lost",
        "complete",
        "released",
        "reclaimed"
    );
    for r in results {
        let (lost, complete, rel, rec) = match &r.report {
            Ok(x) => (
                opt(x.lost_events),
                opt(x.complete),
                opt(x.released_files),
                opt(x.reclaimed_slots),
            ),
            Err(_) => ("?".into(), "?".into(), "?".into(), "?".into()),
        };
        let _ = writeln!(
            s,
            "{:<7} {:>7.0}s {:>10} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>6} {:>8} {:>9} {:>9}",
            r.load.name(),
            r.secs(),
            thousands(r.files_created()),
            mib(r.start.rss),
            mib(r.end.rss),
            mib(r.max_rss.rss),
            mib(r.max_hwm),
            mib(r.end_peak()),
            signed_mib(r.start.rss, r.end.rss),
            lost,
            complete,
            rel,
            rec
        );
    }
    s
}

fn markdown(
    args: &SoakArgs,
    soak: &Soak,
    results: &[PhaseResult],
    failures: &[String],
    build: &str,
) -> String {
    let mut s = String::new();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut cmdline = "cargo xtask soak".to_string();
    match args.phase {
        Phase::Both => {}
        Phase::Steady => cmdline.push_str(" --phase steady"),
        Phase::Churn => cmdline.push_str(" --phase churn"),
    }
    if args.phase != Phase::Churn && args.minutes != 10.0 {
        let _ = write!(cmdline, " --minutes {}", args.minutes);
    }
    if args.phase != Phase::Steady && args.files != 500_000 {
        let _ = write!(cmdline, " --files {}", args.files);
    }
    if args.fsync_rate != 1000 {
        let _ = write!(cmdline, " --fsync-rate {}", args.fsync_rate);
    }
    if args.file_rate != 100 {
        let _ = write!(cmdline, " --file-rate {}", args.file_rate);
    }
    if let Some(t) = &soak.tier {
        let _ = write!(cmdline, " --tier {t}");
    }
    let tier = results
        .iter()
        .find_map(|r| r.report.as_ref().ok().map(|x| x.tier.clone()))
        .unwrap_or_else(|| "?".into());
    s.push_str("# Memory soak of the daemon mode (`fsync-trace --all`)\n\n");
    let _ = writeln!(
        s,
        "Does `fsync-trace --all` stay under a fixed memory ceiling while the machine keeps \
         syncing and creating files? Generated by `{cmdline}` (xtask/src/soak.rs) on {date}; run it \
         again (as root) to refresh this page.\n"
    );
    s.push_str("| | |\n| --- | --- |\n");
    let _ = writeln!(s, "| date | {date} |");
    let _ = writeln!(
        s,
        "| kernel | Linux {} |",
        read_trim("/proc/sys/kernel/osrelease")
    );
    let _ = writeln!(s, "| tier | {tier} |");
    let _ = writeln!(s, "| fsync-trace build | {build} |");
    let _ = writeln!(
        s,
        "| machine | {} cores, {} |",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_total()
    );
    let _ = writeln!(
        s,
        "| load directory | {} ({}) |",
        soak.scratch.display(),
        fs_of(&soak.scratch)
    );
    s.push('\n');

    if !results.is_empty() {
        s.push_str("## Summary\n\n");
        s.push_str(
            "| phase | duration | files created | RSS at start | RSS at end | RSS max | VmHWM while loaded | end-of-run peak | growth start → end | lost events | complete | released_files | reclaimed_slots |\n",
        );
        s.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |\n");
        for r in results {
            let (lost, complete, rel, rec) = match &r.report {
                Ok(x) => (
                    opt(x.lost_events),
                    opt(x.complete),
                    opt(x.released_files),
                    opt(x.reclaimed_slots),
                ),
                Err(_) => ("?".into(), "?".into(), "?".into(), "?".into()),
            };
            let _ = writeln!(
                s,
                "| {} | {:.0} s | {} | {} | {} | {} | {} | {} | {} | {lost} | {complete} | {rel} | {rec} |",
                r.load.name(),
                r.secs(),
                thousands(r.files_created()),
                mib(r.start.rss),
                mib(r.end.rss),
                mib(r.max_rss.rss),
                mib(r.max_hwm),
                mib(r.end_peak()),
                signed_mib(r.start.rss, r.end.rss),
            );
        }
        s.push('\n');
        s.push_str(
            "*RSS at start*: the tracer's VmRSS 3 s after it said it traces every process, before the \
             load starts. *RSS at end*: the last reading while the load ran, before SIGINT. *RSS max* and \
             *VmHWM*: over the readings (every second) while the load ran. *End-of-run peak*: the \
             tracer's peak over its whole life, report writing after SIGINT included (wait4 `ru_maxrss`, \
             or VmHWM polled every 50 ms after SIGINT if larger). `released_files` and \
             `reclaimed_slots` are the report's counters of file states dropped and kernel counter slots \
             reused; `null`: this build's report has no such field.\n\n",
        );
    }

    for r in results {
        let _ = writeln!(s, "## {}\n", r.load.name());
        let what = match r.load {
            Load::Steady => format!(
                "For {} min: {} × (append {LOG_RECORD} B + fdatasync) per second over {LOG_FILES} log files, \
                 and {} new files per second (create, write 1 KiB, fsync, close; unlinked once older than \
                 {} s; the directory fsynced once a second), each on a sleep-based schedule in its own \
                 thread. A well-behaved program: everything it keeps is synced.",
                args.minutes,
                args.fsync_rate,
                args.file_rate,
                NEW_FILE_LIFETIME.as_secs()
            ),
            Load::Churn => format!(
                "{} files created, written ({CHURN_BYTES} B) and closed in {CHURN_DIRS} subdirectories, then \
                 unlinked, in batches of {}, as fast as it goes. Nothing is synced (the data and the entries \
                 are gone before any sync would matter), so every file is a new (device, inode) the tracer \
                 sees dirtied and removed.",
                thousands(args.files),
                thousands(CHURN_BATCH)
            ),
        };
        let _ = writeln!(s, "{what}\n");
        s.push_str("| | |\n| --- | ---: |\n");
        let _ = writeln!(s, "| load duration | {:.1} s |", r.secs());
        let _ = writeln!(s, "| operations | {} |", r.operations());
        let _ = writeln!(s, "| tracer attached after | {:.1} s |", r.attach_s);
        let _ = writeln!(
            s,
            "| tracer VmRSS at start (after attach) | {} (anon {}, file {}) |",
            mib(r.start.rss),
            mib(r.start.anon),
            mib(r.start.file)
        );
        let _ = writeln!(
            s,
            "| tracer VmRSS at end (before SIGINT) | {} (anon {}, file {}) |",
            mib(r.end.rss),
            mib(r.end.anon),
            mib(r.end.file)
        );
        let _ = writeln!(
            s,
            "| growth start → end | {}{} |",
            signed_mib(r.start.rss, r.end.rss),
            if r.files_created() > 0 {
                format!(
                    " ({:.2} KiB per 1,000 files created)",
                    (r.end.rss as f64 - r.start.rss as f64) / (r.files_created() as f64 / 1000.0)
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            s,
            "| tracer VmRSS min – max while loaded | {} – {} (max at {:.0} s) |",
            mib(r.min_rss),
            mib(r.max_rss.rss),
            r.max_rss.t
        );
        let _ = writeln!(s, "| tracer VmHWM while loaded | {} |", mib(r.max_hwm));
        let _ = writeln!(
            s,
            "| end of run (SIGINT → exit) | {:.1} s{}, VmRSS up to {}, exit {} |",
            r.stop_s,
            if r.stop_timed_out {
                " (timed out: killed)"
            } else {
                ""
            },
            mib(r.stop_max_rss),
            r.exit
        );
        let _ = writeln!(s, "| end-of-run peak (ru_maxrss) | {} |", mib(r.end_peak()));
        if !r.memory_log.is_empty() {
            let _ = writeln!(
                s,
                "| tracer's own memory log (end phases) | {} |",
                r.memory_log.join("; ")
            );
        }
        let _ = writeln!(
            s,
            "| BPF map memory (memlock, kernel) | {} |",
            mib(r.memlock_kb)
        );
        let _ = writeln!(
            s,
            "| tracer CPU (user + system) | {:.1} s |",
            r.tracer_cpu_s
        );
        match &r.report {
            Ok(x) => {
                let _ = writeln!(
                    s,
                    "| lost events | {}{} |",
                    opt(x.lost_events),
                    if x.lost.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", x.lost)
                    }
                );
                let _ = writeln!(s, "| complete | {} |", opt(x.complete));
                let _ = writeln!(s, "| released_files | {} |", opt(x.released_files));
                let _ = writeln!(s, "| reclaimed_slots | {} |", opt(x.reclaimed_slots));
                let _ = writeln!(
                    s,
                    "| files in the report | {} ({} under the load directory, {} marked removed) |",
                    thousands(x.files as u64),
                    thousands(x.files_in_load_dir as u64),
                    thousands(x.removed_files as u64)
                );
                let findings = if x.findings.is_empty() {
                    "none".to_string()
                } else {
                    x.findings
                        .iter()
                        .map(|(k, v)| format!("{k} {}", thousands(*v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let _ = writeln!(s, "| findings | {findings} |");
                let _ = writeln!(
                    s,
                    "| JSON report size | {:.1} MiB |",
                    x.bytes as f64 / MIB / MIB
                );
            }
            Err(e) => {
                let _ = writeln!(s, "| report | unreadable: {e} |");
            }
        }
        let _ = writeln!(
            s,
            "| 1-min load before / after | {:.2} / {:.2} |",
            r.load1_before, r.load1_after
        );
        if !r.foreign_bpf.is_empty() {
            let _ = writeln!(
                s,
                "| other BPF users at start | {} |",
                r.foreign_bpf.join("; ")
            );
        }
        s.push('\n');
        s.push_str("Tracer memory over time (t = seconds since the load started):\n\n");
        let (c1, c2) = match r.load {
            Load::Steady => ("appends", "new files"),
            Load::Churn => ("created", "removed"),
        };
        let _ = writeln!(
            s,
            "| t | VmRSS | RssAnon | RssFile | VmHWM | {c1} | {c2} |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for p in &r.series {
            let g = |k: &str| p.progress.get(k).copied().unwrap_or(0);
            let (a, b) = match r.load {
                Load::Steady => (g("appends"), g("files_created")),
                Load::Churn => (g("created"), g("removed")),
            };
            let _ = writeln!(
                s,
                "| {:.0} | {} | {} | {} | {} | {} | {} |",
                p.t,
                mib(p.rss),
                mib(p.anon),
                mib(p.file),
                mib(p.hwm),
                thousands(a),
                thousands(b)
            );
        }
        s.push('\n');
    }
    if !failures.is_empty() {
        s.push_str("## Failures\n\n");
        for f in failures {
            let _ = writeln!(s, "- {}", f.replace('\n', " "));
        }
        s.push('\n');
    }
    s.push_str(
        "## How it runs\n\n\
         Each phase starts its own tracer, `fsync-trace --all --json -v -o report.json` \
         (`RUST_LOG=warn,fsync_trace::run=debug` for its end-of-run memory log), waits for it to say it \
         traces every process, lets it settle for 3 s, then starts the load (this xtask again, as a \
         child process) in a fresh directory on the scratch filesystem. The tracer's `/proc/PID/status` \
         is read every second while the load runs (every 10th reading is in the tables above). When the \
         load has exited, the tracer gets SIGINT and is given up to 120 s for its report. Everything \
         else the machine does meanwhile is traced too (it is `--all`): the report's file count says \
         how many files were not the load's.\n",
    );
    s
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

fn tv_us(t: libc::timeval) -> u64 {
    (t.tv_sec * 1_000_000 + t.tv_usec).max(0) as u64
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn read_trim(p: &str) -> String {
    fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn mem_total() -> String {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb / MIB / MIB))
        .unwrap_or_else(|| "?".into())
}

/// "ext4 (/dev/vda)" for the filesystem holding `dir`.
fn fs_of(dir: &Path) -> String {
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

/// The commit the tracer was built from, "-dirty" if the work tree had changes.
fn git_describe(root: &Path) -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
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

/// Other processes holding BPF programs, as "pid comm".
fn foreign_bpf() -> Vec<String> {
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
            .filter(|fd| fs::read_to_string(fd.path()).is_ok_and(|s| s.contains("\nprog_type:")))
            .count();
        if progs > 0 {
            let comm = read_trim(&format!("/proc/{pid}/comm"));
            found.push(format!("pid {pid} {comm} ({progs} BPF programs)"));
        }
    }
    found
}

/// fsync-trace ignores tmpfs (nothing there is durable): the load must be on a disk filesystem.
fn check_disk_fs(dir: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: all-zero is a valid statfs; valid C string and out pointer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
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
