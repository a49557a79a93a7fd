//! Unit tests of changes that write no data (ftruncate, fallocate, truncate(2) by path): the
//! next sync is needed, and one left unsynced is at risk with 0 bytes and named.
use super::*;
use super::{open, sync, F};
use crate::event::{Change, Event, EventKind, SyncCounters};
use crate::extent::Extent;

/// A successful sync of F whose record read its counters (`writes`, `bytes`) at return.
fn sync_c(enter: u64, exit: u64, writes: u64, bytes: u64) -> Event {
    let mut e = sync(enter, exit, SyncOp::Fsync, Some(F), 0);
    if let EventKind::Sync { counters, .. } = &mut e.kind {
        *counters = Some(SyncCounters {
            slot: 0,
            writes,
            bytes,
            mapped_pages: 0,
        });
    }
    e
}

/// F changed by `change` with (writes, bytes) counted before it.
fn changed(ts: u64, change: Change, writes: u64, bytes: u64) -> Event {
    ev(
        ts,
        EventKind::Dirty {
            file: F,
            cause: crate::event::DirtyCause::Change(change),
            writes_before: writes,
            bytes_before: bytes,
            pages_before: 0,
            fd: 3,
            slot: 0,
            prev_extent: Extent::Empty,
        },
    )
}

fn truncate_path(ts: u64, n: &str, length: u64) -> Event {
    ev(
        ts,
        EventKind::TruncatePath {
            path: name(n),
            length,
        },
    )
}

/// F's final counters: one write of 100 bytes, and `truncates` ftruncates to `len`.
fn final_counters(truncates: u64, fallocates: u64, len: u64) -> FinalCounters {
    FinalCounters::new(vec![(
        F,
        FileCounters {
            writes: 1,
            bytes: 100,
            truncates,
            fallocates,
            truncate_len: len,
            ..Default::default()
        },
    )])
}

/// F written and synced (its counters read: 1 write, 100 bytes) at 10..30.
fn written_and_synced() -> Vec<Event> {
    vec![
        open(1, F, "/d/f", false),
        dirty(10, F, 0, 0),
        sync_c(20, 30, 1, 100),
    ]
}

fn redundant(a: &Analysis) -> u64 {
    file(a, F).cost.get().map_or(0, |c| c.redundant)
}

#[test]
fn a_sync_after_a_truncate_or_fallocate_is_not_redundant() {
    for change in [Change::Truncate, Change::Fallocate] {
        let mut s = DurabilityState::new(NoResolver);
        for e in written_and_synced() {
            s.apply(e);
        }
        s.apply(changed(40, change, 1, 100));
        s.apply(sync_c(50, 60, 1, 100)); // needed: the change
        s.apply(sync_c(70, 80, 1, 100)); // nothing since
        let a = s.finish(100, final_counters(1, 1, 0));
        assert_eq!(redundant(&a), 1, "{change:?}");
        assert!(a
            .findings
            .iter()
            .all(|f| f.kind != FindingKind::UnsyncedWrite));
    }
}

#[test]
fn without_the_change_the_same_sync_is_redundant() {
    let mut s = DurabilityState::new(NoResolver);
    for e in written_and_synced() {
        s.apply(e);
    }
    s.apply(sync_c(50, 60, 1, 100));
    s.apply(sync_c(70, 80, 1, 100));
    let a = s.finish(100, final_counters(0, 0, 0));
    assert_eq!(redundant(&a), 2);
}

#[test]
fn an_unsynced_truncate_is_at_risk_with_zero_bytes_and_named() {
    let mut s = DurabilityState::new(NoResolver);
    s.record_timeline(100);
    for e in written_and_synced() {
        s.apply(e);
    }
    s.apply(changed(40, Change::Truncate, 1, 100));
    let counters = final_counters(1, 0, 50);
    let now = s.at_risk_now(45, &counters);
    assert_eq!(now.files.len(), 1);
    assert_eq!(now.files[0].written.bytes, 0);
    assert_eq!(now.files[0].changes, Change::Truncate.bit());
    let a = s.finish(100, counters);
    let f = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::UnsyncedWrite)
        .expect("unsynced_write");
    assert_eq!((f.unsynced_bytes, f.unsynced_writes), (Some(0), Some(0)));
    assert_eq!(f.ts, 40);
    assert_eq!(f.op.as_deref(), Some("truncate"));
    assert!(
        f.message
            .contains("/d/f was truncated to 50 bytes and never synced"),
        "{}",
        f.message
    );
    let lane = a
        .timeline
        .as_deref()
        .and_then(|t| t.lanes().find(|l| l.key == F).cloned())
        .expect("lane");
    let last = lane.dirty.last().expect("interval");
    assert_eq!(
        (last.durable.get(), last.changes),
        (None, Change::Truncate.bit())
    );
}

#[test]
fn unsynced_writes_and_a_fallocate_are_named_together() {
    let mut s = DurabilityState::new(NoResolver);
    s.apply(open(1, F, "/d/f", false));
    s.apply(dirty(10, F, 0, 0));
    s.apply(changed(20, Change::Fallocate, 1, 100));
    let a = s.finish(100, final_counters(0, 1, 0));
    let f = &a.findings[0];
    assert_eq!(f.kind, FindingKind::UnsyncedWrite);
    assert_eq!((f.unsynced_bytes, f.unsynced_writes), (Some(100), Some(1)));
    assert_eq!(f.op.as_deref(), Some("fallocate"));
    assert!(
        f.message.contains("1 write(s), 100 bytes to /d/f")
            && f.message.contains("changed by fallocate"),
        "{}",
        f.message
    );
    // Only the first span's stack and time: the write made it dirty first.
    assert_eq!(f.ts, 10);
}

#[test]
fn a_sync_covers_the_change_only_if_it_entered_after_it() {
    let mut s = DurabilityState::new(NoResolver);
    for e in written_and_synced() {
        s.apply(e);
    }
    // Announced while the sync ran (it entered at 35): still at risk, and the sync had
    // nothing to make durable when it began.
    s.apply(changed(40, Change::Truncate, 1, 100));
    s.apply(sync_c(35, 50, 1, 100));
    let a = s.finish(100, final_counters(1, 0, 0));
    assert_eq!(
        kinds(&a),
        [
            (FindingKind::UnsyncedWrite, "/d/f".to_string(), None),
            (FindingKind::RedundantSync, "/d/f".to_string(), None)
        ]
    );
}

#[test]
fn truncate_by_path_finds_a_known_file() {
    let mut s = DurabilityState::new(NoResolver);
    for e in written_and_synced() {
        s.apply(e);
    }
    s.apply(truncate_path(40, "f", 7));
    // Not the file: nothing happens to it (NoResolver finds no other file).
    s.apply(truncate_path(41, "other", 0));
    let a = s.finish(100, final_counters(0, 0, 0));
    let f = file(&a, F);
    assert_eq!((f.rare.path_truncates, f.path_truncate_len()), (1, Some(7)));
    assert_eq!(a.files.len(), 1, "no state for an unknown path");
    let finding = &a.findings[0];
    assert_eq!(finding.unsynced_bytes, Some(0));
    assert!(
        finding.message.contains("truncated to 7 bytes"),
        "{}",
        finding.message
    );
}

#[test]
fn a_sync_after_truncate_by_path_is_needed() {
    let mut s = DurabilityState::new(NoResolver);
    for e in written_and_synced() {
        s.apply(e);
    }
    s.apply(truncate_path(40, "f", 0));
    s.apply(sync_c(50, 60, 1, 100));
    let a = s.finish(100, final_counters(0, 0, 0));
    assert_eq!(redundant(&a), 0);
    assert!(a.findings.is_empty(), "{:?}", kinds(&a));
}
