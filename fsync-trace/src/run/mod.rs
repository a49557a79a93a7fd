//! One trace from start to report, in named phases: [`Checked`] (arguments, privileges,
//! outputs and rules, before anything is traced), [`Session::attach`] (load the programs, start
//! or adopt the targets), [`Session::trace`] (the event loop: `events.rs`), [`Session::report`]
//! (final counters, analysis, judgement, the report written). `child.rs`: the command started
//! stopped, signals, the memlock limit.
mod child;
mod crash;
mod events;
mod live;

use std::{
    collections::HashSet, fs::File, io::Write, os::fd::RawFd, path::PathBuf, time::Duration,
};

use crate::symbolize::Stacks;
use crate::{
    analysis::{self, Rules},
    cli::{Cli, Target},
    error::RunError,
    metrics::{self, Exporter},
    procfs,
    reclaim::Reclaimer,
    report::{self, Clock, Report},
    state::{
        wal::{WalContract, WalGlobs},
        DurabilityState, ProcResolver,
    },
    tracer::{Tracer, TracerOptions},
};
use child::{block_stop_signals, raise_memlock_limit, restore_memlock_limit, spawn_stopped};
use events::{adopt_descendants, signal_name, Ended};

/// Exit status when `--fail-on` matched.
pub const EXIT_FINDINGS: i32 = 3;
/// `--max-files` defaults: a trace of some processes, and the daemon (`--all`).
const DEFAULT_MAX_FILES: u64 = 200_000;
const DEFAULT_MAX_FILES_ALL: u64 = 20_000;

pub fn run(cli: Cli) -> Result<i32, RunError> {
    let checked = Checked::new(&cli)?;
    let mut session = Session::attach(&cli, checked)?;
    let ended = session.trace(&cli)?;
    session.report(&cli, ended)
}

/// Everything that can be refused before tracing starts.
struct Checked {
    target: Target,
    rules: Rules,
    output: Box<dyn Write>,
    metrics_listener: Option<std::net::TcpListener>,
    /// With -p: the processes to trace (tgid, name).
    initial: Vec<(u32, String)>,
    /// `--html`: the page's file, created before tracing.
    html: Option<File>,
    /// With --wal: the write-ahead-log contract to check.
    wal: Option<WalContract>,
    /// `--sarif` (created before tracing) and `--source-root` (absolute).
    sarif: Option<(File, Option<PathBuf>)>,
}

impl Checked {
    fn new(cli: &Cli) -> Result<Self, RunError> {
        let target = cli.target().map_err(RunError::Usage)?;
        // A bad rule file is refused before anything is traced.
        let rules = Rules::load(&cli.profiles, &cli.suppress)?;
        if cli.live && !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return Err(crate::live::LiveError::NotATerminal.into());
        }
        let wal = if cli.wal.is_empty() {
            None
        } else {
            let globs = WalGlobs::new(&cli.wal).map_err(|e| RunError::Usage(e.to_string()))?;
            Some(WalContract::new(globs))
        };
        // SAFETY: plain syscall.
        if unsafe { libc::geteuid() } != 0 {
            return Err(RunError::NotRoot);
        }
        // Ctrl-C / SIGTERM must always end in a report: hold them until the event loop handles
        // them (a signal arriving while the programs load is delivered then).
        block_stop_signals();
        // Fail on an unwritable output before tracing anything.
        let output: Box<dyn Write> = match &cli.output {
            Some(path) => Box::new(File::create(path).map_err(|source| RunError::Output {
                path: path.display().to_string(),
                source,
            })?),
            None => Box::new(std::io::stdout()),
        };
        let html = match &cli.html {
            Some(path) => Some(File::create(path).map_err(|source| RunError::Output {
                path: path.display().to_string(),
                source,
            })?),
            None => None,
        };
        let sarif = match &cli.sarif {
            Some(path) => {
                let root = match &cli.source_root {
                    Some(dir) => Some(
                        std::fs::canonicalize(dir)
                            .ok()
                            .filter(|d| d.is_dir())
                            .ok_or_else(|| {
                                RunError::Usage(format!(
                                    "--source-root {}: not a directory",
                                    dir.display()
                                ))
                            })?,
                    ),
                    None => None,
                };
                let file = File::create(path).map_err(|source| RunError::Output {
                    path: path.display().to_string(),
                    source,
                })?;
                Some((file, root))
            }
            None => None,
        };
        // And on a metrics address that cannot be served.
        let metrics_listener = match cli.metrics {
            Some(addr) => {
                if !addr.ip().is_loopback() {
                    eprintln!(
                        "fsync-trace: warning: metrics on {addr} can be read from other hosts (file paths and process names included); use 127.0.0.1:{} for this host only",
                        addr.port()
                    );
                }
                Some(
                    metrics::server::bind(addr)
                        .map_err(|source| RunError::Metrics { addr, source })?,
                )
            }
            None => None,
        };
        let initial = match &target {
            Target::Pids(pids) => pids
                .iter()
                .map(|&p| {
                    let t = procfs::tgid(p).ok_or(RunError::NoSuchProcess(p))?;
                    if procfs::is_kernel_thread(t) {
                        return Err(RunError::KernelThread(p));
                    }
                    Ok((t, procfs::comm(t)))
                })
                .collect::<Result<_, _>>()?,
            Target::Command(_) | Target::All => Vec::new(),
        };
        Ok(Checked {
            target,
            rules,
            output,
            metrics_listener,
            initial,
            html,
            wal,
            sarif,
        })
    }
}

/// A trace under way: the loaded programs, the state they feed, and what the report needs.
struct Session {
    target: Target,
    rules: Rules,
    output: Box<dyn Write>,
    metrics_listener: Option<std::net::TcpListener>,
    tracer: Tracer,
    state: DurabilityState<ProcResolver>,
    clock: Clock,
    /// Traced processes still running (the trace ends when none is left, but with --all).
    live: HashSet<u32>,
    /// Children labeled with their cgroup at fork, read again at their first other record: a
    /// container runtime (or a shell writing `cgroup.procs`) moves its child into the
    /// container's cgroup after the fork. Emptied as they act or exit.
    forked: HashSet<u32>,
    /// Cgroup ids of records to the workloads they name.
    cgroup_ids: crate::cgroup::Ids,
    /// The command started with `--`.
    child: Option<u32>,
    exporter: Option<Exporter>,
    /// `--live`: the terminal view (dropped, giving the terminal back, before the report).
    live_ui: Option<live::LiveUi>,
    reclaimer: Reclaimer,
    /// How the trace ran, for the reader of the report.
    notes: Vec<String>,
    /// `--crash-at` instants not reached yet, and what each reached one found.
    crash: crash::CrashWhatIf,
    /// `--html`: the page's file.
    html: Option<File>,
    wal: Option<WalContract>,
    /// The user stacks of acts that can become findings.
    stacks: Stacks,
    /// `--sarif`: where the SARIF log goes, and the source root.
    sarif: Option<(File, Option<PathBuf>)>,
}

impl Session {
    /// Loads and attaches the programs, then starts the command or adopts the processes.
    fn attach(cli: &Cli, checked: Checked) -> Result<Self, RunError> {
        let Checked {
            target,
            rules,
            output,
            metrics_listener,
            initial,
            html,
            wal,
            sarif,
        } = checked;
        // With --all every process is traced anyway: no fork following (and no TRACED_TGIDS
        // use).
        let follow = (cli.follow || matches!(target, Target::Command(_))) && target != Target::All;
        let memlock = raise_memlock_limit();
        let tracer = Tracer::start(&TracerOptions {
            follow_forks: follow,
            tier: cli.tier,
            file_slots: cli.file_slots,
            ring_buffer_mib: cli.ring_buffer_mib,
            wal: wal.is_some(),
            no_stacks: cli.no_stacks,
            no_dirty_extent: !cli.dirty_extent_on(),
        });
        // The maps exist now; a traced command must not inherit the raised limit.
        restore_memlock_limit(memlock);
        let tracer = tracer?;
        if cli.verbose {
            say_how_attached(cli, &tracer);
        }
        let max_files = cli.max_files.unwrap_or(if target == Target::All {
            DEFAULT_MAX_FILES_ALL
        } else {
            DEFAULT_MAX_FILES
        });
        let clock = Clock::now();
        let mut state = DurabilityState::new(ProcResolver);
        state.start_at(clock.mono_ns);
        state.record_timeline(cli.timeline_limit);
        let crash = crash::CrashWhatIf::new(&cli.crash_at, &tracer)?;
        if tracer.counts_device_flushes() {
            state.count_device_flushes();
        }
        let mut session = Session {
            target,
            rules,
            output,
            metrics_listener,
            tracer,
            state,
            clock,
            live: HashSet::new(),
            forked: HashSet::new(),
            cgroup_ids: crate::cgroup::Ids::new(),
            child: None,
            exporter: None,
            live_ui: None,
            reclaimer: Reclaimer::new(usize::try_from(max_files).unwrap_or(usize::MAX)),
            notes: Vec::new(),
            crash,
            html,
            wal,
            stacks: Stacks::default(),
            sarif,
        };
        session.start_targets(cli, follow, &initial)?;
        Ok(session)
    }

    fn start_targets(
        &mut self,
        cli: &Cli,
        follow: bool,
        initial: &[(u32, String)],
    ) -> Result<(), RunError> {
        match &self.target {
            Target::Pids(_) => {
                for (tgid, comm) in initial {
                    self.tracer.trace_tgid(*tgid)?;
                    self.state.add_process(*tgid, comm);
                    describe(&mut self.state, *tgid);
                    self.live.insert(*tgid);
                }
                if follow {
                    // Forks from now on are followed in the kernel (the root is traced);
                    // children that existed already are adopted here, after their parent was
                    // traced, so a child forked meanwhile is caught by one or the other.
                    let roots: Vec<u32> = initial.iter().map(|(t, _)| *t).collect();
                    for pid in adopt_descendants(&mut self.tracer, &mut self.state, &roots)? {
                        self.live.insert(pid);
                    }
                } else {
                    for (tgid, comm) in initial {
                        let kids = procfs::children(*tgid).len();
                        if kids > 0 {
                            self.notes.push(format!(
                                "process {tgid} ({comm}) has {kids} child process(es) that were not traced: with -f its existing and future children are traced too"
                            ));
                        }
                    }
                }
            }
            Target::Command(cmd) => {
                self.stacks.learn_program(&cmd[0]);
                let spawned = spawn_stopped(cmd)?;
                self.tracer.trace_tgid(spawned.pid)?;
                self.state
                    .add_process(spawned.pid, &cmd[0].to_string_lossy());
                self.state
                    .describe_process(spawned.pid, None, None, Some(std::process::id()));
                // Its cgroup is ours until it moves itself (a later describe reads it again).
                self.state
                    .label_process(spawned.pid, crate::cgroup::of_pid(spawned.pid));
                self.live.insert(spawned.pid);
                self.child = Some(spawned.pid);
                spawned.resume(cmd)?;
            }
            Target::All => {
                self.tracer.trace_all()?;
                if cli.verbose {
                    eprintln!(
                        "fsync-trace: tracing every process but this one (pid {}) until SIGINT/SIGTERM",
                        std::process::id()
                    );
                }
            }
        }
        Ok(())
    }

    /// Runs the event loop on a tokio runtime (with the metrics endpoint, if asked for) until
    /// the targets are gone, a signal or the duration.
    fn trace(&mut self, cli: &Cli) -> Result<Ended, RunError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        // Metrics after the command was forked (the scanner is a thread; fork wants none).
        if let Some(listener) = self.metrics_listener.take() {
            let addr = listener.local_addr()?;
            let top_files = cli.metrics_top_files.map_or(0, usize::from);
            let labels = cli.metrics_labels.map(|c| {
                let top = cli
                    .metrics_top
                    .map_or(metrics::workload::DEFAULT_TOP, usize::from);
                (c, top)
            });
            let reader = self.tracer.file_counters_reader()?;
            self.state.track_live();
            self.exporter = Some(Exporter::start(
                listener,
                self.tracer.tier().name(),
                top_files,
                labels,
                reader,
                runtime.handle(),
            ));
            if cli.verbose || cli.metrics.is_some_and(|a| a.port() == 0) {
                eprintln!("fsync-trace: serving metrics on http://{addr}/metrics");
            }
        }
        if cli.live {
            // After the command started: it should not inherit the key reader thread.
            self.live_ui = Some(live::LiveUi::open(&self.tracer, self.clock.mono_ns)?);
        }
        let duration = cli.duration.map(Duration::from_secs_f64);
        let ended = runtime.block_on(self.event_loop(duration));
        // The terminal is given back before anything else is printed.
        self.live_ui = None;
        let ended = ended?;
        // The runtime has nothing left to wait for (the command is reaped on a thread of its
        // own).
        runtime.shutdown_background();
        Ok(ended)
    }

    /// Ends tracing and writes the report; returns the exit status.
    fn report(mut self, cli: &Cli, ended: Ended) -> Result<i32, RunError> {
        let child_status = match ended {
            Ended::Done(status) => status,
            Ended::Stopped { signal } => {
                if let Some(pid) = self.child {
                    self.notes.push(format!(
                        "the trace was stopped by {} while the command (pid {pid}) was still running; it keeps running untraced",
                        signal_name(signal)
                    ));
                }
                self.child.map(|_| 128 + signal)
            }
            Ended::Quit => {
                if let Some(pid) = self.child {
                    self.notes.push(format!(
                        "the trace was ended from the live view while the command (pid {pid}) was still running; it keeps running untraced"
                    ));
                }
                None
            }
        };
        // Everything still in the ring buffer belongs to the trace.
        self.drain();
        events::log_memory("after-loop");
        // What the last events freed (a directory's pending entries once it is synced: megabytes
        // in one block) stays with the allocator, which the end phase's arrays (mapped apart)
        // cannot reuse: hand it back first.
        release_free_memory();
        events::log_memory("trimmed");
        let end_ns = report::monotonic_ns();
        let Session {
            tracer,
            mut state,
            rules,
            clock,
            mut notes,
            mut output,
            crash,
            html,
            wal,
            mut stacks,
            sarif,
            ..
        } = self;
        let html = cli.html.as_deref().zip(html);
        let crash_at = crash.finish(clock.mono_ns, end_ns, &mut notes);
        let lost = tracer.lost()?;
        let tier = tracer.tier();
        for dev in state.synced_devices() {
            let (name, cache) = procfs::block_device(dev);
            state.describe_device(dev, name, cache);
        }
        // Ends tracing; each file's final counters go straight into its state.
        let counters = tracer.into_file_counters()?;
        let mut closing = state.closing(end_ns, counters.files());
        counters.for_each(|key, c| closing.add(key, c))?;
        events::log_memory("counters");
        let mut analysis = closing.finish();
        if let Some(wal) = wal {
            notes.push(format!(
                "write-ahead-log contract (--wal): {} repl{} judged (the first socket send after each log write)",
                wal.acks(),
                if wal.acks() == 1 { "y" } else { "ies" }
            ));
            // A scan per broken log (few), rather than an index of every file at the peak.
            let files = &analysis.files;
            let current = |key: &_| {
                files
                    .iter()
                    .find(|(f, _)| f.key == *key)
                    .and_then(|(f, _)| f.path_str().map(str::to_string))
            };
            let broken = wal.finish(current);
            analysis.findings.extend(broken);
        }
        let judged = analysis::judge(
            std::mem::take(&mut analysis.findings),
            &analysis.processes,
            &rules,
            cli.group_over,
        );
        events::log_memory("analysis");
        // Suppressed findings never fail the run.
        let failed_on = cli
            .fail_on
            .as_ref()
            .is_some_and(|f| judged.findings.iter().any(|x| f.matches(x.kind)));
        let mut report = Report::build(analysis, judged, tier.name(), lost, clock, end_ns);
        report.notes = notes;
        report.crash_at = crash_at;
        report.dirty_extents = cli.dirty_extent_on();
        let wanted = report.stack_ids();
        let resolved = stacks.resolve(|id| wanted.contains(&id));
        report.attach_stacks(&resolved, stacks.stats);
        drop((stacks, resolved));
        events::log_memory("report");
        write_report(cli, &report, &mut output)?;
        if let Some((path, file)) = html {
            write_html(path, file, &report)?;
        }
        if let (Some((file, root)), Some(path)) = (sarif, &cli.sarif) {
            write_sarif(&report, file, root.as_deref(), path)?;
        }
        if failed_on {
            return Ok(EXIT_FINDINGS);
        }
        Ok(child_status.unwrap_or(0))
    }
}

/// `-v`: which tier runs, and why better ones were skipped.
/// Hands the allocator's free pages back to the system.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: a libc call without pointers; it only returns free pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn say_how_attached(cli: &Cli, tracer: &Tracer) {
    let selection = tracer.selection();
    for why in &selection.skipped {
        eprintln!("fsync-trace: {why}");
    }
    let how = if cli.tier.is_some() {
        "forced"
    } else {
        "the best that works here"
    };
    eprintln!("fsync-trace: using the {} tier ({how})", selection.tier);
    for line in selection.describe() {
        eprintln!("fsync-trace:   {line}");
    }
    eprintln!("fsync-trace:   {}", tracer.sync_entry());
    eprintln!("fsync-trace:   {}", tracer.uring());
}

/// The `--html` page, to the file opened before tracing.
fn write_html(path: &std::path::Path, file: File, report: &Report) -> Result<(), RunError> {
    let mut out = std::io::BufWriter::new(file);
    out.write_all(report::render_html(report).as_bytes())
        .and_then(|_| out.flush())
        .map_err(|source| RunError::Output {
            path: path.display().to_string(),
            source,
        })
}

/// The report as JSON or text. Streamed, not built as one string: with 100,000 files the JSON
/// is tens of MiB.
fn write_report(cli: &Cli, report: &Report, output: &mut Box<dyn Write>) -> Result<(), RunError> {
    let written = {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut *output);
        let r = if cli.json {
            serde_json::to_writer_pretty(&mut out, report)
                .map_err(std::io::Error::other)
                .and_then(|_| out.write_all(b"\n"))
        } else {
            out.write_all(report::render_text(report, cli.show_suppressed).as_bytes())
        };
        r.and_then(|_| out.flush())
    };
    written
        .and_then(|_| output.flush())
        .map_err(|source| RunError::Output {
            path: cli
                .output
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "stdout".into()),
            source,
        })
}

/// `--sarif`: the findings as a SARIF log.
fn write_sarif(
    report: &Report,
    file: File,
    root: Option<&std::path::Path>,
    path: &std::path::Path,
) -> Result<(), RunError> {
    let log = report::sarif::render(report, root);
    let mut out = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, &log)
        .map_err(std::io::Error::other)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|source| RunError::Output {
            path: path.display().to_string(),
            source,
        })
}

/// Names process `pid` from /proc while it lives: its name, its role, its parent, its cgroup.
fn describe(state: &mut DurabilityState<ProcResolver>, pid: u32) {
    state.describe_process(
        pid,
        Some(procfs::comm(pid)),
        procfs::role(pid),
        procfs::ppid(pid),
    );
    state.label_process(pid, crate::cgroup::of_pid(pid));
}

struct FdRef(RawFd);
impl std::os::fd::AsRawFd for FdRef {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}
