//! `--live` inside a trace: the terminal, the view's model, and the kernel's per-file counters
//! read at each refresh (the bytes at risk of a file are its counters minus what they were at
//! its last durable point).
use std::collections::HashMap;

use fsync_trace_common::{FileCounters, FileKey};

use crate::{
    event::Event,
    live::{LiveModel, LiveTerminal},
    report,
    state::{DurabilityState, ProcResolver},
    tracer::Tracer,
};

type ReadCounters = Box<dyn FnMut() -> Result<HashMap<FileKey, FileCounters>, String> + Send>;

pub(super) struct LiveUi {
    terminal: LiveTerminal,
    model: LiveModel,
    read_counters: ReadCounters,
}

impl LiveUi {
    pub(super) fn open(tracer: &Tracer, started_ns: u64) -> Result<Self, crate::error::RunError> {
        let read_counters: ReadCounters = Box::new(tracer.file_counters_reader()?);
        Ok(LiveUi {
            terminal: LiveTerminal::open()?,
            model: LiveModel::new(tracer.tier().name(), started_ns),
            read_counters,
        })
    }

    pub(super) fn observe(&mut self, ev: &Event) {
        self.model.observe(ev);
    }

    /// Redraws from the state machine and the kernel's counters now.
    pub(super) fn refresh(&mut self, tracer: &Tracer, state: &DurabilityState<ProcResolver>) {
        if let Ok(lost) = tracer.lost() {
            self.model.set_lost(lost.total());
        }
        let counters = match (self.read_counters)() {
            Ok(c) => c,
            Err(e) => {
                log::debug!("--live: reading the per-file counters: {e}");
                HashMap::new()
            }
        };
        let rows = self.terminal.rows_that_fit();
        let view = self
            .model
            .view(state, &counters, report::monotonic_ns(), rows);
        if let Err(e) = self.terminal.draw(&view) {
            log::debug!("--live: drawing: {e}");
        }
    }

    pub(super) async fn quit_requested(&mut self) {
        self.terminal.quit_requested().await;
    }
}

/// Resolves when the user asks to end the trace from the view; never without one.
pub(super) async fn next_quit(live: &mut Option<LiveUi>) {
    match live.as_mut() {
        Some(l) => l.quit_requested().await,
        None => std::future::pending().await,
    }
}
