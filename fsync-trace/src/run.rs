//! One trace from start to report: check the arguments and the system, attach, start or adopt
//! the targets, feed the state machine until they are gone (or a signal / the duration), report.
use std::{
    collections::HashSet,
    ffi::{CString, OsString},
    fs::File,
    io::Write,
    os::{fd::RawFd, unix::ffi::OsStrExt},
    time::Duration,
};

use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
};

use crate::{
    analysis::{self, Rules},
    cli::{Cli, Target},
    error::RunError,
    event::EventKind,
    metrics::{self, Exporter},
    procfs,
    reclaim::Reclaimer,
    report::{self, Clock, Report},
    state::{DurabilityState, FinalCounters, ProcResolver},
    tracer::{Tracer, TracerOptions},
};

/// Exit status when `--fail-on` matched.
pub const EXIT_FINDINGS: i32 = 3;
/// `--max-files` defaults: a trace of some processes, and the daemon (`--all`).
const DEFAULT_MAX_FILES: u64 = 200_000;
const DEFAULT_MAX_FILES_ALL: u64 = 20_000;

pub fn run(cli: Cli) -> Result<i32, RunError> {
    let target = cli.target().map_err(RunError::Usage)?;
    // A bad rule file is refused before anything is traced.
    let rules = Rules::load(&cli.profiles, &cli.suppress)?;
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        return Err(RunError::NotRoot);
    }
    // Ctrl-C / SIGTERM must always end in a report: hold them until the event loop handles them
    // (a signal arriving while the programs load is delivered then).
    block_stop_signals();
    // Fail on an unwritable output before tracing anything.
    let mut output: Box<dyn Write> = match &cli.output {
        Some(path) => Box::new(File::create(path).map_err(|source| RunError::Output {
            path: path.display().to_string(),
            source,
        })?),
        None => Box::new(std::io::stdout()),
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
            Some(metrics::server::bind(addr).map_err(|source| RunError::Metrics { addr, source })?)
        }
        None => None,
    };
    let initial: Vec<(u32, String)> = match &target {
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
    // With --all every process is traced anyway: no fork following (and no TRACED_TGIDS use).
    let follow = (cli.follow || matches!(target, Target::Command(_))) && target != Target::All;
    let memlock = raise_memlock_limit();
    let tracer = Tracer::start(&TracerOptions {
        follow_forks: follow,
        tier: cli.tier,
        file_slots: cli.file_slots,
        ring_buffer_mib: cli.ring_buffer_mib,
    });
    // The maps exist now; a traced command must not inherit the raised limit.
    restore_memlock_limit(memlock);
    let mut tracer = tracer?;
    if cli.verbose {
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
    }
    let clock = Clock::now();
    let mut state = DurabilityState::new(ProcResolver);
    state.start_at(clock.mono_ns);
    let mut live: HashSet<u32> = HashSet::new();
    let mut child: Option<u32> = None;
    let mut notes: Vec<String> = Vec::new();
    match &target {
        Target::Pids(_) => {
            for (tgid, comm) in &initial {
                tracer.trace_tgid(*tgid)?;
                state.add_process(*tgid, comm);
                describe(&mut state, *tgid);
                live.insert(*tgid);
            }
            if follow {
                // Forks from now on are followed in the kernel (the root is traced); children
                // that existed already are adopted here, after their parent was traced, so a
                // child forked meanwhile is caught by one or the other.
                let roots: Vec<u32> = initial.iter().map(|(t, _)| *t).collect();
                for pid in adopt_descendants(&mut tracer, &mut state, &roots)? {
                    live.insert(pid);
                }
            } else {
                for (tgid, comm) in &initial {
                    let kids = procfs::children(*tgid).len();
                    if kids > 0 {
                        notes.push(format!(
                            "process {tgid} ({comm}) has {kids} child process(es) that were not traced: with -f its existing and future children are traced too"
                        ));
                    }
                }
            }
        }
        Target::Command(cmd) => {
            let spawned = spawn_stopped(cmd)?;
            tracer.trace_tgid(spawned.pid)?;
            state.add_process(spawned.pid, &cmd[0].to_string_lossy());
            state.describe_process(spawned.pid, None, None, Some(std::process::id()));
            live.insert(spawned.pid);
            child = Some(spawned.pid);
            spawned.resume(cmd)?;
        }
        Target::All => {
            tracer.trace_all()?;
            if cli.verbose {
                eprintln!(
                    "fsync-trace: tracing every process but this one (pid {}) until SIGINT/SIGTERM",
                    std::process::id()
                );
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Metrics after the command was forked (the scanner is a thread; fork wants none).
    let mut exporter = match metrics_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let top_files = cli.metrics_top_files.map_or(0, usize::from);
            let reader = tracer.file_counters_reader()?;
            state.track_live();
            let exporter = Exporter::start(
                listener,
                tracer.tier().name(),
                top_files,
                reader,
                runtime.handle(),
            );
            if cli.verbose || cli.metrics.is_some_and(|a| a.port() == 0) {
                eprintln!("fsync-trace: serving metrics on http://{addr}/metrics");
            }
            Some(exporter)
        }
        None => None,
    };
    let duration = cli.duration.map(Duration::from_secs_f64);
    let all = target == Target::All;
    let max_files = cli.max_files.unwrap_or(if all {
        DEFAULT_MAX_FILES_ALL
    } else {
        DEFAULT_MAX_FILES
    });
    let mut reclaimer = Reclaimer::new(usize::try_from(max_files).unwrap_or(usize::MAX));
    let ended = runtime.block_on(event_loop(
        &mut tracer,
        &mut state,
        &mut live,
        child,
        duration,
        all,
        &mut exporter,
        &mut reclaimer,
    ))?;
    // The runtime has nothing left to wait for (the command is reaped on a thread of its own).
    runtime.shutdown_background();
    let child_status = match ended {
        Ended::Done(status) => status,
        Ended::Stopped { signal } => {
            if let Some(pid) = child {
                notes.push(format!(
                    "the trace was stopped by {} while the command (pid {pid}) was still running; it keeps running untraced",
                    signal_name(signal)
                ));
            }
            child.map(|_| 128 + signal)
        }
    };
    // Everything still in the ring buffer belongs to the trace.
    drain_events(&mut tracer, &mut state, &mut live, &mut exporter);
    log_memory("after-loop");
    let end_ns = report::monotonic_ns();
    let lost = tracer.lost()?;
    let tier = tracer.tier();
    // Ends tracing: detaches every program.
    let counters = FinalCounters::new(tracer.into_file_counters()?);
    log_memory("counters");
    let mut analysis = state.finish(end_ns, &counters);
    drop(counters);
    let judged = analysis::judge(
        std::mem::take(&mut analysis.findings),
        &analysis.processes,
        &rules,
        cli.group_over,
    );
    log_memory("analysis");
    // Suppressed findings never fail the run.
    let failed_on = cli
        .fail_on
        .as_ref()
        .is_some_and(|f| judged.findings.iter().any(|x| f.matches(x.kind)));
    let mut report = Report::build(analysis, judged, tier.name(), lost, clock, end_ns);
    report.notes = notes;
    log_memory("report");
    // Streamed, not built as one string: with 100,000 files the JSON is tens of MiB.
    let written = {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut output);
        let r = if cli.json {
            serde_json::to_writer_pretty(&mut out, &report)
                .map_err(std::io::Error::other)
                .and_then(|_| out.write_all(b"\n"))
        } else {
            out.write_all(report::render_text(&report, cli.show_suppressed).as_bytes())
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
        })?;
    if failed_on {
        return Ok(EXIT_FINDINGS);
    }
    Ok(child_status.unwrap_or(0))
}

/// Waits for records until every traced process is gone (never with `all`), a signal, or the
/// duration. Returns the command's exit status when there is one.
#[allow(clippy::too_many_arguments)]
async fn event_loop(
    tracer: &mut Tracer,
    state: &mut DurabilityState<ProcResolver>,
    live: &mut HashSet<u32>,
    child: Option<u32>,
    duration: Option<Duration>,
    all: bool,
    exporter: &mut Option<Exporter>,
    reclaimer: &mut Reclaimer,
) -> Result<Ended, RunError> {
    // SAFETY: the ring buffer fd stays open, unchanged, for the whole loop (the tracer outlives
    // this AsyncFd, which is dropped at the end of this function).
    let events = unsafe {
        AsyncFd::register_with_interest(FdRef(tracer.events_fd()), tokio::io::Interest::READABLE)
    }
    .map_err(|e| RunError::Io(std::io::Error::other(e.to_string())))?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    // Handlers are in place: let this thread take the held signals (workers keep them blocked).
    set_stop_signals_blocked(false);
    let deadline = tokio::time::sleep(duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    // Most records are submitted without waking us (see `wakeup_flags` in the eBPF crate):
    // collect them on this timer. A filling buffer still wakes us through `events`.
    let mut flush = tokio::time::interval(DRAIN_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (status_tx, mut status_rx) = tokio::sync::oneshot::channel::<i32>();
    if let Some(pid) = child {
        // waitpid blocks: reap the command on a thread of its own, not the runtime's blocking
        // pool, so a trace stopped while the command still runs does not wait for it to exit.
        std::thread::spawn(move || {
            let _ = status_tx.send(wait_exit_status(pid as i32));
        });
    }
    let mut child_status: Option<i32> = None;
    let mut interrupts = 0;
    loop {
        tokio::select! {
            guard = events.readable() => {
                let mut guard = guard?;
                drain_events(tracer, state, live, exporter);
                guard.clear_ready();
            }
            _ = flush.tick() => {
                drain_events(tracer, state, live, exporter);
                // Between drains: no record is applied while a slot moves.
                reclaimer.tick(tracer, state)?;
            }
            scan = metrics::next_scan(exporter) => {
                // At most once a second: data-at-risk gauges from the latest kernel counters.
                if let (Some(m), Some(counters)) = (exporter.as_mut(), scan) {
                    m.live.refresh(state, &counters);
                }
            }
            status = &mut status_rx, if child.is_some() && child_status.is_none() => {
                child_status = Some(status.unwrap_or(1));
                if let Some(pid) = child { live.remove(&pid); }
            }
            _ = sigint.recv() => {
                interrupts += 1;
                if !forward_interrupt(child, child_status, interrupts) {
                    return Ok(stopped(child, child_status, libc::SIGINT));
                }
            }
            // SIGTERM always ends the trace with a report (the command keeps its own fate).
            _ = sigterm.recv() => return Ok(stopped(child, child_status, libc::SIGTERM)),
            _ = &mut deadline => break,
            _ = poll.tick() => {
                // Exit records can be lost if the ring buffer overflows: also look at /proc.
                live.retain(|&pid| Some(pid) == child || procfs::alive(pid));
                if let Some(m) = exporter.as_mut() {
                    match tracer.lost() {
                        Ok(lost) => m.live.set_lost(lost),
                        Err(e) => log::debug!("reading lost-event counters: {e}"),
                    }
                }
            }
        }
        if !all && live.is_empty() && (child.is_none() || child_status.is_some()) {
            break;
        }
    }
    Ok(Ended::Done(child_status))
}

/// How the event loop ended.
enum Ended {
    /// The traced processes are gone (with the command's exit status), or the duration passed.
    Done(Option<i32>),
    /// A signal stopped the trace; the command, if any, may still be running.
    Stopped { signal: i32 },
}

/// The loop was stopped by `signal`: if the command had exited meanwhile, that is all.
fn stopped(child: Option<u32>, status: Option<i32>, signal: i32) -> Ended {
    match (child, status) {
        (Some(_), None) => Ended::Stopped { signal },
        _ => Ended::Done(status),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT (Ctrl-C)",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Memory at the end-of-trace phases, for `--verbose` (the peak with many files is here).
fn log_memory(phase: &str) {
    if log::log_enabled!(log::Level::Debug) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss: Vec<&str> = status
            .lines()
            .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
            .collect();
        log::debug!("memory {phase}: {}", rss.join(", "));
    }
}

/// How often the ring buffer is drained when no record asked to wake the reader.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

/// Applies every record waiting in the ring buffer.
fn drain_events(
    tracer: &mut Tracer,
    state: &mut DurabilityState<ProcResolver>,
    live: &mut HashSet<u32>,
    exporter: &mut Option<Exporter>,
) {
    tracer.drain(|ev| {
        if !state.knows_process(ev.actor.pid) {
            describe(state, ev.actor.pid);
        }
        match &ev.kind {
            EventKind::Fork { child } => {
                live.insert(*child);
                describe(state, *child);
            }
            EventKind::Exit => {
                live.remove(&ev.actor.pid);
            }
            _ => {
                if state.wants_role(ev.actor.pid) {
                    describe(state, ev.actor.pid);
                }
            }
        }
        if let Some(m) = exporter.as_mut() {
            m.live.observe(&ev, state);
        }
        state.apply(ev);
    });
    if let Some(m) = exporter.as_mut() {
        m.live.after_batch(state);
    }
}

/// With a command, the first Ctrl-C is passed on to it and tracing continues until it exits (as
/// strace does); a second one stops at once. Without one, Ctrl-C stops. True: keep tracing.
fn forward_interrupt(child: Option<u32>, status: Option<i32>, interrupts: u32) -> bool {
    match (child, status) {
        (Some(pid), None) if interrupts == 1 => {
            // SAFETY: plain syscall; the child is ours and not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGINT) };
            true
        }
        _ => false,
    }
}

/// Traces the existing descendants of `roots` (children of children too), until a pass finds
/// none new: a process forked by a traced one is followed in the kernel, so only those forked
/// before their parent was traced are found here. Returns the pids adopted.
fn adopt_descendants(
    tracer: &mut Tracer,
    state: &mut DurabilityState<ProcResolver>,
    roots: &[u32],
) -> Result<Vec<u32>, RunError> {
    let mut seen: HashSet<u32> = roots.iter().copied().collect();
    let mut queue: Vec<u32> = roots.to_vec();
    let mut adopted = Vec::new();
    while let Some(parent) = queue.pop() {
        for pid in procfs::children(parent) {
            if !seen.insert(pid) || procfs::is_kernel_thread(pid) {
                continue;
            }
            tracer.trace_tgid(pid)?;
            state.add_process(pid, &procfs::comm(pid));
            describe(state, pid);
            adopted.push(pid);
            queue.push(pid);
        }
    }
    if !adopted.is_empty() {
        log::debug!("adopted {} existing descendant process(es)", adopted.len());
    }
    Ok(adopted)
}

/// Names process `pid` from /proc while it lives: its name, its role, its parent.
fn describe(state: &mut DurabilityState<ProcResolver>, pid: u32) {
    state.describe_process(
        pid,
        Some(procfs::comm(pid)),
        procfs::role(pid),
        procfs::ppid(pid),
    );
}

struct FdRef(RawFd);
impl std::os::fd::AsRawFd for FdRef {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

fn wait_exit_status(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 1;
        }
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Kernels before 5.11 charge BPF maps (the 4 MiB ring buffer among them) to RLIMIT_MEMLOCK;
/// later ones use memory cgroups and ignore it. Raising the hard limit needs CAP_SYS_RESOURCE
/// (see deploy/README.md); without it loading fails on those kernels only. Returns the limit to
/// restore once the maps are created.
fn raise_memlock_limit() -> Option<libc::rlimit> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to plain structs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old) != 0 {
            return None;
        }
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) != 0 {
            log::debug!(
                "cannot raise RLIMIT_MEMLOCK: {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
    }
    Some(old)
}

fn restore_memlock_limit(old: Option<libc::rlimit>) {
    if let Some(old) = old {
        // SAFETY: valid pointer to a plain struct; lowering a limit needs no privilege.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &old) };
    }
}

fn block_stop_signals() {
    set_stop_signals_blocked(true);
}

/// Blocks or unblocks SIGINT and SIGTERM in the calling thread (async-signal-safe).
fn set_stop_signals_blocked(blocked: bool) {
    // SAFETY: sigset manipulation on a local; pthread_sigmask only affects this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let how = if blocked {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// A command forked and stopped before exec, so tracing is in place before its first instruction.
struct Spawned {
    pid: u32,
    /// Read end of a close-on-exec pipe: EOF means exec succeeded, 4 bytes are its errno.
    exec_result: RawFd,
}

fn spawn_stopped(cmd: &[OsString]) -> Result<Spawned, RunError> {
    let argv: Vec<CString> = cmd
        .iter()
        .map(|a| {
            CString::new(a.as_bytes())
                .map_err(|_| RunError::Usage("command arguments cannot contain NUL bytes".into()))
        })
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut fds = [0 as RawFd; 2];
    // SAFETY: valid out array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(RunError::Spawn(std::io::Error::last_os_error()));
    }
    // SAFETY: fork before any other thread exists (the runtime starts later); the child only
    // calls async-signal-safe functions before exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(RunError::Spawn(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        unsafe {
            libc::close(fds[0]);
            // The command gets the signal mask we started with.
            set_stop_signals_blocked(false);
            libc::raise(libc::SIGSTOP);
            libc::execvp(argv_ptrs[0], argv_ptrs.as_ptr());
            let errno = *libc::__errno_location();
            libc::write(fds[1], &errno as *const i32 as *const libc::c_void, 4);
            libc::_exit(127);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut status = 0;
    // SAFETY: valid out pointer; wait for the child to stop itself.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED) };
    if r != pid || !libc::WIFSTOPPED(status) {
        unsafe { libc::close(fds[0]) };
        return Err(RunError::Spawn(std::io::Error::other(
            "the command did not start",
        )));
    }
    Ok(Spawned {
        pid: pid as u32,
        exec_result: fds[0],
    })
}

impl Spawned {
    /// Lets the stopped command run, and reports whether its exec worked.
    fn resume(self, cmd: &[OsString]) -> Result<(), RunError> {
        // SAFETY: our stopped child.
        unsafe { libc::kill(self.pid as i32, libc::SIGCONT) };
        let mut errno = 0i32;
        // SAFETY: reading 4 bytes into an i32.
        let n = unsafe {
            libc::read(
                self.exec_result,
                &mut errno as *mut i32 as *mut libc::c_void,
                4,
            )
        };
        unsafe { libc::close(self.exec_result) };
        if n == 4 {
            let mut status = 0;
            unsafe { libc::waitpid(self.pid as i32, &mut status, 0) };
            let command = cmd[0].to_string_lossy().into_owned();
            if errno == libc::ENOENT {
                return Err(RunError::CommandNotFound { command });
            }
            if errno == libc::EACCES && std::path::Path::new(&cmd[0]).is_dir() {
                return Err(RunError::CommandIsDirectory { command });
            }
            return Err(RunError::Exec {
                command,
                source: std::io::Error::from_raw_os_error(errno),
            });
        }
        Ok(())
    }
}
