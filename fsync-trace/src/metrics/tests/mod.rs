//! Metrics fed with synthetic events (no kernel, no root): names, types, values and `# EOF`
//! (encoding.rs); bounded labels, lost counts, the file-stats scanner, cost counters
//! (labels.rs). Here: the event builders they share.
mod encoding;
mod labels;
mod workload;

use std::collections::HashMap;

use fsync_trace_common::{FileCounters, FileKey, NamespaceOp, SyncOp};

use super::{exporter::spawn_file_stats_scanner, *};
use crate::{
    event::{Event, EventKind, NameRef},
    event_fixtures as fixtures,
    state::{DurabilityState, NoResolver},
};

/// dev 8:1 in the kernel's encoding (12-bit major, 20-bit minor).
const DEV: u32 = (8 << 20) | 1;
const DIR: FileKey = FileKey {
    dev: DEV,
    gen: 0,
    ino: 100,
};
const F: FileKey = FileKey {
    dev: DEV,
    gen: 0,
    ino: 1,
};
const G: FileKey = FileKey {
    dev: DEV,
    gen: 0,
    ino: 2,
};

use crate::event_fixtures::actor;

fn ev(ts: u64, pid: u32, kind: EventKind) -> Event {
    fixtures::by(actor(pid, "db"), ts, kind)
}

fn create(ts: u64, pid: u32, file: FileKey, path: &str) -> Event {
    ev(ts, pid, fixtures::open_kind(file, DIR, path, true))
}

fn dirty(ts: u64, pid: u32, file: FileKey, bytes_before: u64) -> Event {
    ev(ts, pid, fixtures::dirty_kind(file, 0, bytes_before))
}

fn sync(enter: u64, exit: u64, pid: u32, op: SyncOp, file: Option<FileKey>, ret: i64) -> Event {
    ev(exit, pid, fixtures::sync_kind(enter, op, file, false, ret))
}

fn name(n: &str) -> NameRef {
    fixtures::name_in(DIR, n)
}

/// Feeds events as the event loop does.
fn feed(live: &mut LiveMetrics, state: &mut DurabilityState<NoResolver>, events: Vec<Event>) {
    for e in events {
        live.observe(&e, state);
        state.apply(e);
    }
    live.after_batch(state);
}

fn new_live() -> (LiveMetrics, DurabilityState<NoResolver>) {
    let mut state = DurabilityState::new(NoResolver);
    state.track_live();
    (LiveMetrics::new(Metrics::new("tracepoint", 0)), state)
}

/// The value of the sample line starting with `prefix` (name and labels, exactly).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(prefix)
            .and_then(|v| v.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    })
}
