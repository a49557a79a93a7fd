//! Event builders for unit tests (no kernel): the decoded events the tracer hands the state
//! machine, with the fields a test does not care about set as the kernel would set them for
//! a plain call on descriptor 3. The state machine's and the metrics' tests build on these.
use std::collections::HashMap;

use fsync_trace_common::{FileCounters, FileKey, SyncOp};

use crate::event::{Actor, Event, EventKind, NameRef};

/// A single-threaded process.
pub fn actor(pid: u32, comm: &str) -> Actor {
    Actor {
        pid,
        tid: pid,
        comm: comm.into(),
        stack: None,
        cgroup_id: 0,
    }
}

/// An event of `actor` at `ts`.
pub fn by(actor: Actor, ts: u64, kind: EventKind) -> Event {
    Event { ts, actor, kind }
}

/// `open` of a regular file below `parent` on fd 3 (created or not).
pub fn open_kind(file: FileKey, parent: FileKey, path: &str, created: bool) -> EventKind {
    EventKind::Open {
        file,
        parent,
        is_dir: false,
        path: path.into(),
        open_flags: 1,
        created,
        fd: 3,
        nlink: 1,
        prior: None,
    }
}

/// The first write on fd 3 since the file's last durable point, with the counters before it.
pub fn dirty_kind(file: FileKey, writes_before: u64, bytes_before: u64) -> EventKind {
    EventKind::Dirty {
        file,
        writes_before,
        bytes_before,
        pages_before: 0,
        cause: crate::event::DirtyCause::Write,
        fd: 3,
        slot: 0,
        prev_extent: crate::extent::Extent::Empty,
    }
}

/// A sync call on fd 3 that entered at `enter` and returned `ret`.
pub fn sync_kind(
    enter: u64,
    op: SyncOp,
    file: Option<FileKey>,
    is_dir: bool,
    ret: i64,
) -> EventKind {
    EventKind::Sync {
        op,
        enter_ns: enter,
        ret,
        file,
        is_dir,
        fd: 3,
        addr: 0,
        len: 0,
        flags: 0,
        counters: None,
    }
}

/// Entry `n` of directory `dir` (at `/d`, already durable).
pub fn name_in(dir: FileKey, n: &str) -> NameRef {
    NameRef {
        base_dir: dir,
        base_path: "/d".into(),
        base_durable: true,
        name: n.into(),
    }
}

/// Kernel per-file counters: (file, writes, bytes) each.
pub fn counters(entries: &[(FileKey, u64, u64)]) -> HashMap<FileKey, FileCounters> {
    entries
        .iter()
        .map(|&(k, writes, bytes)| {
            (
                k,
                FileCounters {
                    writes,
                    bytes,
                    ..Default::default()
                },
            )
        })
        .collect()
}
