//! `--crash-at`: at each instant asked for, what a power cut would lose, from the state machine
//! (after the ring buffer was drained) and the kernel's per-file counters read at that moment.
//!
//! Why a snapshot rather than the timeline: the set of files and entries at risk is exact from
//! the timeline at any instant, but the bytes of a file are only read when something happens to
//! it (a new dirtying, a sync); between two readings the timeline knows a lower bound. The
//! kernel keeps every file's counters current, so reading them at the instant gives the exact
//! bytes written since each file's oldest unsynced announcement. The snapshot is taken within
//! a millisecond or so of the instant (a timer, a drain, one pass over the per-file map); its
//! real instant is reported as `taken_s`. The readings also go into the timeline, so the
//! HTML page's crash control is exact at `taken_s` as well.
use std::{collections::HashMap, time::Duration};

use fsync_trace_common::{FileCounters, FileKey};

use crate::{
    error::RunError,
    report::{monotonic_ns, CrashPoint},
    state::{AtRisk, DurabilityState, FinalCounters, ProcResolver},
    tracer::Tracer,
};

type CountersReader = Box<dyn FnMut() -> Result<HashMap<FileKey, FileCounters>, String> + Send>;

pub(super) struct CrashWhatIf {
    /// Instants not reached yet (ns after the start), latest first.
    pending: Vec<u64>,
    /// (instant asked for, what was at risk then).
    taken: Vec<(u64, AtRisk)>,
    reader: Option<CountersReader>,
    /// Snapshots that could not read the kernel's counters.
    failed: Vec<(u64, String)>,
}

impl CrashWhatIf {
    pub(super) fn new(offsets_s: &[f64], tracer: &Tracer) -> Result<Self, RunError> {
        let mut pending: Vec<u64> = offsets_s.iter().map(|s| (s * 1e9) as u64).collect();
        pending.sort_unstable_by(|a, b| b.cmp(a));
        pending.dedup();
        let reader = if pending.is_empty() {
            None
        } else {
            Some(Box::new(tracer.file_counters_reader()?) as CountersReader)
        };
        Ok(CrashWhatIf {
            pending,
            taken: Vec::new(),
            reader,
            failed: Vec::new(),
        })
    }

    pub(super) fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// How long until the next instant (the trace started at `start`, CLOCK_MONOTONIC ns).
    pub(super) fn next_delay(&self, start: u64) -> Duration {
        let Some(&next) = self.pending.last() else {
            return Duration::from_secs(u64::MAX / 4);
        };
        Duration::from_nanos((start + next).saturating_sub(monotonic_ns()))
    }

    /// The next instant has come: what is at risk now.
    pub(super) fn snapshot(&mut self, state: &mut DurabilityState<ProcResolver>) {
        let Some(asked) = self.pending.pop() else {
            return;
        };
        let Some(read) = self.reader.as_mut() else {
            return;
        };
        match read() {
            Ok(counters) => {
                let now = monotonic_ns();
                let counters = FinalCounters::from(counters);
                self.taken.push((asked, state.at_risk_now(now, &counters)));
                // The page's crash control is then exact at this instant too.
                state.timeline_readings(now, &counters);
            }
            Err(e) => self.failed.push((asked, e)),
        }
    }

    /// The crash points for the report; instants never reached (the trace ended first) or not
    /// read are said in `notes`.
    pub(super) fn finish(self, start: u64, end: u64, notes: &mut Vec<String>) -> Vec<CrashPoint> {
        let s = |ns: u64| ns as f64 / 1e9;
        for &asked in self.pending.iter().rev() {
            notes.push(format!(
                "--crash-at {}: the trace ended {:.3} s in, before that instant",
                s(asked),
                s(end.saturating_sub(start))
            ));
        }
        for (asked, e) in &self.failed {
            notes.push(format!(
                "--crash-at {}: the kernel's per-file counters could not be read ({e})",
                s(*asked)
            ));
        }
        self.taken
            .iter()
            .map(|(asked, r)| {
                let mut p = CrashPoint::build(r, start, start + asked, true);
                p.taken_s = Some(crate::report::offset_s(start, r.at));
                p
            })
            .collect()
    }
}
