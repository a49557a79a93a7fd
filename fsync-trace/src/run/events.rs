//! The event loop of a trace: ring buffer drains (on wakeup and on a short timer), slot
//! reclaim, metrics scans, the command's exit, signals and the duration.
use std::{collections::HashSet, time::Duration};

use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
};

use super::{
    child::{set_stop_signals_blocked, wait_exit_status},
    describe,
    live::next_quit,
    FdRef, Session,
};
use crate::{
    cli::Target,
    error::RunError,
    event::EventKind,
    metrics, procfs,
    state::{DurabilityState, ProcResolver},
    tracer::Tracer,
};

impl Session {
    /// Waits for records until every traced process is gone (never with `--all`), a signal, or
    /// the duration. Returns the command's exit status when there is one.
    pub(super) async fn event_loop(
        &mut self,
        duration: Option<Duration>,
    ) -> Result<Ended, RunError> {
        let all = self.target == Target::All;
        let child = self.child;
        // SAFETY: the ring buffer fd stays open, unchanged, for the whole loop (the tracer outlives
        // this AsyncFd, which is dropped at the end of this function).
        let events = unsafe {
            AsyncFd::register_with_interest(
                FdRef(self.tracer.events_fd()),
                tokio::io::Interest::READABLE,
            )
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
        let mut live_tick = tokio::time::interval(crate::live::REFRESH);
        live_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut child_status: Option<i32> = None;
        let mut interrupts = 0;
        let crash_sleep = tokio::time::sleep(self.crash.next_delay(self.clock.mono_ns));
        tokio::pin!(crash_sleep);
        loop {
            tokio::select! {
                // `--crash-at`: what is at risk now, the ring buffer applied first.
                _ = &mut crash_sleep, if self.crash.pending() => {
                    self.drain();
                    self.crash.snapshot(&mut self.state);
                    let next = self.crash.next_delay(self.clock.mono_ns);
                    crash_sleep.as_mut().reset(tokio::time::Instant::now() + next);
                }
                guard = events.readable() => {
                    let mut guard = guard?;
                    self.drain();
                    guard.clear_ready();
                }
                _ = flush.tick() => {
                    self.drain();
                    // Between drains: no record is applied while a slot moves.
                    self.reclaimer.tick(&mut self.tracer, &mut self.state)?;
                }
                scan = metrics::next_scan(&mut self.exporter) => {
                    // At most once a second: data-at-risk gauges from the latest kernel counters.
                    if let (Some(m), Some(counters)) = (self.exporter.as_mut(), scan) {
                        m.live.refresh(&self.state, &counters);
                    }
                }
                status = &mut status_rx, if child.is_some() && child_status.is_none() => {
                    child_status = Some(status.unwrap_or(1));
                    if let Some(pid) = child { self.live.remove(&pid); }
                }
                _ = live_tick.tick(), if self.live_ui.is_some() => {
                    if let Some(ui) = self.live_ui.as_mut() {
                        ui.refresh(&self.tracer, &self.state);
                    }
                }
                () = next_quit(&mut self.live_ui) => {
                    return Ok(match (child, child_status) {
                        (Some(_), None) => Ended::Quit,
                        _ => Ended::Done(child_status),
                    });
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
                    self.live.retain(|&pid| Some(pid) == child || procfs::alive(pid));
                    if let Some(m) = self.exporter.as_mut() {
                        match self.tracer.lost() {
                            Ok(lost) => m.live.set_lost(lost),
                            Err(e) => log::debug!("reading lost-event counters: {e}"),
                        }
                    }
                }
            }
            if !all && self.live.is_empty() && (child.is_none() || child_status.is_some()) {
                break;
            }
        }
        Ok(Ended::Done(child_status))
    }

    /// Applies every record waiting in the ring buffer.
    pub(super) fn drain(&mut self) {
        let Session {
            tracer,
            state,
            live,
            forked,
            cgroup_ids,
            exporter,
            live_ui,
            wal,
            stacks,
            ..
        } = self;
        let mut new_wal_files = Vec::new();
        tracer.drain(|mut ev, cgroup_id| {
            // Issued by any task (jbd2, a kworker): not a process of the trace.
            if matches!(ev.kind, EventKind::DeviceFlush { .. }) {
                state.apply(ev);
                return;
            }
            if let EventKind::Sync { file: Some(f), .. } = &ev.kind {
                if state.wants_disk(f.dev) {
                    state.map_disk(f.dev, procfs::whole_disk(f.dev));
                }
            }
            if let Some(w) = wal.as_mut() {
                new_wal_files.extend(w.observe(&ev));
            }
            if let EventKind::Stack {
                ips,
                sp_words,
                build_ids,
                build_ids_sent,
                walk_skipped,
            } = &ev.kind
            {
                // A new process's first record is often a stack: place it while it lives.
                if !state.knows_process(ev.actor.pid) {
                    stacks.on_first_sight(ev.actor.pid);
                }
                stacks.on_stack(
                    ev.actor.pid,
                    ev.actor.tid,
                    ips,
                    sp_words,
                    build_ids,
                    *build_ids_sent,
                );
                if *walk_skipped {
                    stacks.note_walk_skipped();
                }
                return;
            }
            stacks.attach(&mut ev.actor);
            match &ev.kind {
                EventKind::Fork { child } => {
                    if !state.knows_process(ev.actor.pid) {
                        describe(state, ev.actor.pid);
                        stacks.on_first_sight(ev.actor.pid);
                    }
                    live.insert(*child);
                    describe(state, *child);
                    if !cgroup_ids.names_ids() {
                        // No cgroup v2 tree to name the records' ids: read /proc again at the
                        // child's first record, in case it moved itself after the fork.
                        forked.insert(*child);
                    }
                    // Gone before /proc was read (a short `touch`): its parent is the record's,
                    // and its labels are its parent's (`workload_of` looks there), read when
                    // used, so a parent relabeled later (`forked`) counts.
                    state.describe_process(*child, None, None, Some(ev.actor.pid));
                }
                EventKind::Exit => {
                    if !state.knows_process(ev.actor.pid) {
                        describe(state, ev.actor.pid);
                        stacks.on_first_sight(ev.actor.pid);
                    }
                    live.remove(&ev.actor.pid);
                    forked.remove(&ev.actor.pid);
                    stacks.forget_process(ev.actor.pid);
                }
                _ => {
                    // Unknown, or known without a role yet (its maps are read again too).
                    if state.wants_description(ev.actor.pid) {
                        describe(state, ev.actor.pid);
                        stacks.on_first_sight(ev.actor.pid);
                    } else if forked.remove(&ev.actor.pid) {
                        if let Some(w) = crate::cgroup::of_pid(ev.actor.pid) {
                            state.label_process(ev.actor.pid, Some(w));
                        }
                    }
                }
            }
            // The cgroup the kernel saw it act in: right even if it moved itself there after
            // the fork, or is gone before /proc could be read.
            if state.cgroup_differs(ev.actor.pid, cgroup_id) {
                if let Some(w) = cgroup_ids.workload(cgroup_id) {
                    state.label_process_in(ev.actor.pid, cgroup_id, w.clone());
                }
            }
            let labeled = exporter.as_ref().is_some_and(|m| m.live.labeled());
            if let Some(m) = exporter.as_mut() {
                if let (true, Some(w)) = (labeled, wal.as_mut()) {
                    // Labeled: this event's lags and broken acks are its process's.
                    let mut lags = Vec::new();
                    let broken = w.drain_lags(|ns| lags.push(ns));
                    if broken > 0 || !lags.is_empty() {
                        let labels = m.live.workload_of(Some(ev.actor.pid), state);
                        for ns in lags {
                            m.live.observe_ack_lag(ns, &labels);
                        }
                        m.live.add_broken_acks(broken, labels);
                    }
                }
                m.live.observe(&ev, state);
            }
            if let Some(ui) = live_ui.as_mut() {
                ui.observe(&ev);
            }
            let pid = ev.actor.pid;
            state.apply(ev);
            if let (true, Some(m)) = (labeled, exporter.as_mut()) {
                m.live.after_event(pid, state);
            }
        });
        for key in new_wal_files {
            match tracer.mark_wal(&key) {
                Ok(true) => {}
                Ok(false) => log::debug!("WAL file {key:?} has no kernel slot yet"),
                Err(e) => log::warn!("cannot mark a write-ahead log in the kernel: {e}"),
            }
        }
        if let Some(m) = exporter.as_mut() {
            if let Some(w) = wal.as_mut() {
                // Unlabeled (labeled, each event's were counted as it was applied).
                let mut lags = Vec::new();
                let broken = w.drain_lags(|ns| lags.push(ns));
                if broken > 0 || !lags.is_empty() {
                    let labels = m.live.workload_of(None, state);
                    for ns in lags {
                        m.live.observe_ack_lag(ns, &labels);
                    }
                    m.live.add_broken_acks(broken, labels);
                }
            }
            m.live.after_batch(state);
        }
    }
}

/// How the event loop ended.
pub(super) enum Ended {
    /// The traced processes are gone (with the command's exit status), or the duration passed.
    Done(Option<i32>),
    /// A signal stopped the trace; the command, if any, may still be running.
    Stopped { signal: i32 },
    /// The user ended the trace from the live view while the command was still running.
    Quit,
}

/// The loop was stopped by `signal`: if the command had exited meanwhile, that is all.
fn stopped(child: Option<u32>, status: Option<i32>, signal: i32) -> Ended {
    match (child, status) {
        (Some(_), None) => Ended::Stopped { signal },
        _ => Ended::Done(status),
    }
}

pub(super) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT (Ctrl-C)",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Memory at the end-of-trace phases, for `--verbose` (the peak with many files is here).
pub(super) fn log_memory(phase: &str) {
    if log::log_enabled!(log::Level::Debug) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss: Vec<&str> = status
            .lines()
            .filter(|l| {
                ["VmRSS", "VmHWM", "RssAnon", "RssFile"]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .collect();
        log::debug!("memory {phase}: {}", rss.join(", "));
    }
}

/// How often the ring buffer is drained when no record asked to wake the reader.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

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
pub(super) fn adopt_descendants(
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
