//! Unit tests of the state machine, fed with event sequences (no kernel, no root): the
//! durability rules (rules.rs), file identity (identity.rs), what syncs cost (cost.rs). Here:
//! the event builders they share.
mod changes;
mod cost;
mod extent;
mod identity;
mod metadata;
mod rules;
mod timeline;

use std::collections::HashMap;

use super::*;
use crate::event::{Actor, Event, EventKind, NameRef};
use crate::event_fixtures as fixtures;
use fsync_trace_common::{mman, NamespaceOp, PAGE_SIZE};

pub(super) const DIR: FileKey = FileKey {
    dev: 8,
    gen: 0,
    ino: 100,
};
pub(super) const F: FileKey = FileKey {
    dev: 8,
    gen: 0,
    ino: 1,
};
pub(super) const G: FileKey = FileKey {
    dev: 8,
    gen: 0,
    ino: 2,
};
pub(super) const OTHER_DEV: FileKey = FileKey {
    dev: 9,
    gen: 0,
    ino: 1,
};

pub(super) fn actor() -> Actor {
    fixtures::actor(10, "app")
}

pub(super) fn ev(ts: u64, kind: EventKind) -> Event {
    fixtures::by(actor(), ts, kind)
}

pub(super) fn open(ts: u64, file: FileKey, path: &str, created: bool) -> Event {
    ev(ts, fixtures::open_kind(file, DIR, path, created))
}

pub(super) fn open_dir(ts: u64) -> Event {
    ev(
        ts,
        EventKind::Open {
            file: DIR,
            parent: FileKey::default(),
            is_dir: true,
            path: "/d".into(),
            open_flags: 0,
            created: false,
            fd: 4,
            nlink: 1,
            prior: None,
        },
    )
}

pub(super) fn dirty(ts: u64, file: FileKey, writes_before: u64, bytes_before: u64) -> Event {
    ev(ts, fixtures::dirty_kind(file, writes_before, bytes_before))
}

pub(super) fn sync(enter: u64, exit: u64, op: SyncOp, file: Option<FileKey>, ret: i64) -> Event {
    ev(
        exit,
        fixtures::sync_kind(enter, op, file, file == Some(DIR), ret),
    )
}

pub(super) fn name(n: &str) -> NameRef {
    fixtures::name_in(DIR, n)
}

pub(super) fn ns(ts: u64, op: NamespaceOp, old: &str, new: Option<&str>) -> Event {
    ev(
        ts,
        EventKind::Namespace {
            op,
            old: name(old),
            new: new.map(name),
            flags: 0,
        },
    )
}

pub(super) fn counters(entries: &[(FileKey, u64, u64)]) -> HashMap<FileKey, FileCounters> {
    fixtures::counters(entries)
}

pub(super) fn run(events: Vec<Event>, end: u64, c: &[(FileKey, u64, u64)]) -> Analysis {
    let mut s = DurabilityState::new(NoResolver);
    for e in events {
        s.apply(e);
    }
    s.finish(end, counters(c).into())
}

pub(super) fn kinds(a: &Analysis) -> Vec<(FindingKind, String, Option<String>)> {
    a.findings
        .iter()
        .map(|f| (f.kind, f.path.clone(), f.entry.clone()))
        .collect()
}

pub(super) fn file(a: &Analysis, key: FileKey) -> &FileState {
    &a.files
        .iter()
        .find(|(f, _)| f.key == key)
        .expect("file in analysis")
        .0
}
