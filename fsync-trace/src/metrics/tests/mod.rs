//! Metrics fed with synthetic events (no kernel, no root): names, types, values and `# EOF`
//! (encoding.rs); bounded labels, lost counts, the file-stats scanner, cost counters
//! (labels.rs). Here: the event builders they share.
mod encoding;
mod labels;

use std::collections::HashMap;

use fsync_trace_common::{FileCounters, FileKey, NamespaceOp, SyncOp};

use super::{exporter::spawn_file_stats_scanner, *};
use crate::{
    event::{Actor, Event, EventKind, NameRef},
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

fn actor(pid: u32, comm: &str) -> Actor {
    Actor {
        pid,
        tid: pid,
        comm: comm.into(),
    }
}

fn ev(ts: u64, pid: u32, kind: EventKind) -> Event {
    Event {
        ts,
        actor: actor(pid, "db"),
        kind,
    }
}

fn create(ts: u64, pid: u32, file: FileKey, path: &str) -> Event {
    ev(
        ts,
        pid,
        EventKind::Open {
            file,
            parent: DIR,
            is_dir: false,
            path: path.into(),
            open_flags: 1,
            created: true,
            fd: 3,
            nlink: 1,
            prior: None,
        },
    )
}

fn dirty(ts: u64, pid: u32, file: FileKey, bytes_before: u64) -> Event {
    ev(
        ts,
        pid,
        EventKind::Dirty {
            file,
            writes_before: 0,
            bytes_before,
            pages_before: 0,
            by_mapping: false,
            fd: 3,
            slot: 0,
        },
    )
}

fn sync(enter: u64, exit: u64, pid: u32, op: SyncOp, file: Option<FileKey>, ret: i64) -> Event {
    ev(
        exit,
        pid,
        EventKind::Sync {
            op,
            enter_ns: enter,
            ret,
            file,
            is_dir: false,
            fd: 3,
            addr: 0,
            len: 0,
            flags: 0,
            counters: None,
        },
    )
}

fn name(n: &str) -> NameRef {
    NameRef {
        base_dir: DIR,
        base_path: "/d".into(),
        base_durable: true,
        name: n.into(),
    }
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
