//! Unit tests of metadata changes (chmod, chown, utimes, xattrs): the next sync is needed;
//! one left unsynced alone is listed in the file's unsynced changes but is not a finding,
//! while beside unsynced data or a truncate the finding is theirs, as before.
use super::*;
use super::{open, sync, F};
use crate::event::{Change, DirtyCause, Event, EventKind, SyncCounters};
use crate::extent::Extent;

/// A successful fsync of F whose record read 1 write, 100 bytes at return.
fn sync_c(enter: u64, exit: u64) -> Event {
    let mut e = sync(enter, exit, SyncOp::Fsync, Some(F), 0);
    if let EventKind::Sync { counters, .. } = &mut e.kind {
        *counters = Some(SyncCounters {
            slot: 0,
            writes: 1,
            bytes: 100,
            mapped_pages: 0,
        });
    }
    e
}

/// F changed by `change` through a descriptor, after its one write of 100 bytes.
fn changed(ts: u64, change: Change) -> Event {
    ev(
        ts,
        EventKind::Dirty {
            file: F,
            cause: DirtyCause::Change(change),
            writes_before: 1,
            bytes_before: 100,
            pages_before: 0,
            fd: 3,
            slot: 0,
            prev_extent: Extent::Empty,
        },
    )
}

fn metadata_path(ts: u64, n: &str) -> Event {
    ev(ts, EventKind::MetadataPath { path: name(n) })
}

/// F's final counters: one write of 100 bytes, `metadata` changes through a descriptor,
/// `truncates` ftruncates.
fn final_counters(metadata: u64, truncates: u64) -> FinalCounters {
    FinalCounters::new(vec![(
        F,
        FileCounters {
            writes: 1,
            bytes: 100,
            truncates,
            metadata_changes: metadata,
            ..Default::default()
        },
    )])
}

/// F opened, written and synced at 10..30.
fn state_written_and_synced() -> DurabilityState<NoResolver> {
    let mut s = DurabilityState::new(NoResolver);
    s.apply(open(1, F, "/d/f", false));
    s.apply(dirty(10, F, 0, 0));
    s.apply(sync_c(20, 30));
    s
}

fn redundant(a: &Analysis) -> u64 {
    file(a, F).cost.get().map_or(0, |c| c.redundant)
}

#[test]
fn a_sync_after_a_metadata_change_is_not_redundant_the_next_one_is() {
    for by_path in [false, true] {
        let mut s = state_written_and_synced();
        s.apply(if by_path {
            metadata_path(40, "f")
        } else {
            changed(40, Change::Metadata)
        });
        s.apply(sync_c(50, 60)); // needed: the chmod
        s.apply(sync_c(70, 80)); // nothing since
        let a = s.finish(100, final_counters(u64::from(!by_path), 0));
        assert_eq!(redundant(&a), 1, "by path: {by_path}");
        assert_eq!(
            kinds(&a),
            [(FindingKind::RedundantSync, "/d/f".to_string(), None)]
        );
        assert_eq!(file(&a, F).rare.path_metadata_changes, u32::from(by_path));
    }
}

#[test]
fn an_unsynced_metadata_change_alone_is_listed_but_not_a_finding() {
    let mut s = state_written_and_synced();
    s.apply(changed(40, Change::Metadata));
    s.apply(metadata_path(41, "f"));
    let a = s.finish(100, final_counters(1, 0));
    assert!(a.findings.is_empty(), "{:?}", kinds(&a));
    let f = file(&a, F);
    assert_eq!(f.unsynced_changes(), Change::Metadata.bit());
    assert_eq!(f.rare.path_metadata_changes, 1);
}

#[test]
fn a_metadata_change_beside_a_truncate_leaves_the_truncate_finding() {
    let mut s = state_written_and_synced();
    s.apply(changed(40, Change::Metadata));
    s.apply(changed(41, Change::Truncate));
    let a = s.finish(100, final_counters(1, 1));
    let f = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::UnsyncedWrite)
        .expect("unsynced_write");
    assert_eq!(f.op.as_deref(), Some("truncate"));
    assert_eq!(a.findings.len(), 1, "{:?}", kinds(&a));
}

#[test]
fn writes_after_a_metadata_change_are_still_a_finding() {
    // fchmod announces the file (its epoch mark set), so the write after it in the same epoch
    // sends no record: the metadata span holds the write's risk.
    let mut s = state_written_and_synced();
    s.apply(changed(40, Change::Metadata));
    let c = FinalCounters::new(vec![(
        F,
        FileCounters {
            writes: 2,
            bytes: 200,
            metadata_changes: 1,
            ..Default::default()
        },
    )]);
    let a = s.finish(100, c);
    let f = &a.findings[0];
    assert_eq!(f.kind, FindingKind::UnsyncedWrite);
    assert_eq!((f.unsynced_writes, f.unsynced_bytes), (Some(1), Some(100)));
    assert_eq!(
        f.op, None,
        "a metadata change is not named as the finding's op"
    );
}

#[test]
fn a_metadata_change_of_a_directory_by_path_is_ignored() {
    let mut s = state_written_and_synced();
    s.apply(open_dir(2));
    s.apply(sync(50, 60, SyncOp::Fsync, Some(DIR), 0));
    // The directory's own path, relative to itself: not a regular file.
    s.apply(ev(
        70,
        EventKind::MetadataPath {
            path: absolute("/d"),
        },
    ));
    let a = s.finish(100, final_counters(0, 0));
    assert_eq!(file(&a, DIR).unsynced_changes(), 0);
    assert_eq!(file(&a, DIR).rare.path_metadata_changes, 0);
}

/// An absolute path (resolved whatever the base).
fn absolute(p: &str) -> crate::event::NameRef {
    let mut n = name("x");
    n.name = p.to_string();
    n
}
