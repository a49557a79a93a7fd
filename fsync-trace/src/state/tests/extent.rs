//! Unit tests of the dirty extent over hand-built events and kernel counters: what the state
//! machine, the crash what-if and the timeline say lies at risk, as opposed to bytes written.
use std::collections::HashMap;

use super::*;
use super::{ev, open, sync, F, G};
use crate::event_fixtures as fixtures;
use crate::extent::Extent;
use fsync_trace_common::EXTENT_UNKNOWN;

const FAR: u64 = 1 << 30;

fn range(lo: u64, hi: u64) -> Extent {
    Extent::Range { lo, hi }
}

/// A `Dirty` record closing a segment of extent `prev`.
fn dirty_after(
    ts: u64,
    file: FileKey,
    writes: u64,
    bytes: u64,
    prev: Extent,
) -> crate::event::Event {
    let mut kind = fixtures::dirty_kind(file, writes, bytes);
    if let EventKind::Dirty { prev_extent, .. } = &mut kind {
        *prev_extent = prev;
    }
    ev(ts, kind)
}

/// Kernel counters: (file, writes, bytes, current segment's extent as the kernel keeps it).
fn kernel(entries: &[(FileKey, u64, u64, u64, u64)]) -> FinalCounters {
    let m: HashMap<FileKey, FileCounters> = entries
        .iter()
        .map(|&(k, writes, bytes, extent_lo, extent_hi)| {
            let c = FileCounters {
                writes,
                bytes,
                extent_lo,
                extent_hi,
                ..Default::default()
            };
            (k, c)
        })
        .collect();
    m.into()
}

/// Applies `events` (recording the timeline), then: what is at risk at `now` per the kernel
/// counters `c`, and the analysis ending at `end` with the same counters.
fn traced(
    events: Vec<crate::event::Event>,
    now: u64,
    end: u64,
    c: &FinalCounters,
) -> (AtRisk, Analysis) {
    let mut s = DurabilityState::new(NoResolver);
    s.record_timeline(1000);
    for e in events {
        s.apply(e);
    }
    s.timeline_readings(now, c);
    let at = s.at_risk_now(now, c);
    (at, s.finish(end, c.clone()))
}

fn extent_now(a: &AtRisk, key: FileKey) -> Extent {
    a.files
        .iter()
        .find(|f| f.key == key)
        .expect("file at risk")
        .extent
}

fn end_extent(a: &Analysis, key: FileKey) -> Option<Extent> {
    let (f, c) = a.files.iter().find(|(f, _)| f.key == key).expect("file");
    f.unsynced_extent(&c.get())
}

fn timeline_at(a: &Analysis, t: u64, key: FileKey) -> Option<(u64, Extent)> {
    let tl = a.timeline.as_ref().expect("timeline");
    tl.at_risk(t)
        .files
        .iter()
        .find(|f| f.key == key)
        .map(|f| (f.written.bytes, f.extent))
}

#[test]
fn a_thousand_overwrites_of_one_page_are_one_page_at_risk() {
    let c = kernel(&[(F, 1000, 4_096_000, 0, 4096)]);
    let (now, a) = traced(
        vec![
            open(1, F, "/d/f", false),
            dirty_after(10, F, 0, 0, Extent::Empty),
        ],
        50,
        100,
        &c,
    );
    assert_eq!(now.bytes(), 4_096_000);
    assert_eq!(extent_now(&now, F), range(0, 4096));
    assert_eq!(end_extent(&a, F), Some(range(0, 4096)));
    assert_eq!(timeline_at(&a, 50, F), Some((4_096_000, range(0, 4096))));
    assert_eq!(timeline_at(&a, 100, F), Some((4_096_000, range(0, 4096))));
}

#[test]
fn appends_across_epochs_unite_every_segment_at_risk() {
    // 10 appends of 100 B; another file's fsync moves the epoch; 50 B more appended.
    let c = kernel(&[(F, 11, 1050, 1000, 1050), (G, 1, 1, 0, 1)]);
    let (now, a) = traced(
        vec![
            open(1, F, "/d/f", false),
            open(2, G, "/d/g", false),
            dirty_after(10, F, 0, 0, Extent::Empty),
            dirty_after(11, G, 0, 0, Extent::Empty),
            sync(20, 25, SyncOp::Fsync, Some(G), 0),
            dirty_after(30, F, 10, 1000, range(0, 1000)),
        ],
        50,
        100,
        &c,
    );
    assert_eq!(extent_now(&now, F), range(0, 1050));
    assert_eq!(end_extent(&a, F), Some(range(0, 1050)));
    // At the second announcement: what was written before it, exactly.
    assert_eq!(timeline_at(&a, 30, F), Some((1000, range(0, 1000))));
    assert_eq!(timeline_at(&a, 100, F), Some((1050, range(0, 1050))));
    assert_eq!(end_extent(&a, G), None, "g was synced");
}

#[test]
fn a_pwrite_far_out_after_a_sync_is_the_only_range_at_risk() {
    // 10 B at 0, fsync; 20 B at 1 GiB: the first record after the sync closes the synced
    // segment (0..10), which is durable and must not widen what is at risk.
    let c = kernel(&[(F, 2, 30, FAR, FAR + 20)]);
    let (now, a) = traced(
        vec![
            open(1, F, "/d/f", false),
            dirty_after(10, F, 0, 0, Extent::Empty),
            sync(20, 30, SyncOp::Fsync, Some(F), 0),
            dirty_after(40, F, 1, 10, range(0, 10)),
        ],
        50,
        100,
        &c,
    );
    assert_eq!(now.bytes(), 20);
    assert_eq!(extent_now(&now, F), range(FAR, FAR + 20));
    assert_eq!(end_extent(&a, F), Some(range(FAR, FAR + 20)));
    let tl = a.timeline.as_ref().expect("timeline");
    let d = &tl.lanes().find(|l| l.key == F).expect("lane").dirty;
    assert_eq!(d[0].extent, Some(range(0, 10)), "the synced interval");
    assert_eq!(d[1].extent, Some(range(FAR, FAR + 20)));
    // Inside the sync, its covered data is at risk with its extent.
    assert_eq!(timeline_at(&a, 25, F), Some((10, range(0, 10))));
}

#[test]
fn data_written_during_a_sync_keeps_only_its_own_extent() {
    // 300 B at 0..300, fsync entered at 20; at 25 (during it) 200 B at 300..500; returns at 30.
    let c = kernel(&[(F, 5, 500, 300, 500)]);
    let (now, a) = traced(
        vec![
            open(1, F, "/d/f", false),
            dirty_after(10, F, 0, 0, Extent::Empty),
            dirty_after(25, F, 3, 300, range(0, 300)),
            sync(20, 30, SyncOp::Fdatasync, Some(F), 0),
        ],
        50,
        100,
        &c,
    );
    assert_eq!(extent_now(&now, F), range(300, 500));
    assert_eq!(end_extent(&a, F), Some(range(300, 500)));
    // While the sync runs, the data it covers is at risk with its extent, exactly.
    assert_eq!(timeline_at(&a, 27, F), Some((300, range(0, 300))));
    assert_eq!(timeline_at(&a, 100, F), Some((200, range(300, 500))));
}

#[test]
fn a_failed_sync_covers_nothing() {
    // 100 B at 0, fsync fails (EIO) but moved the epoch; 100 B more at 100..200.
    let c = kernel(&[(F, 2, 200, 100, 200)]);
    let (now, a) = traced(
        vec![
            open(1, F, "/d/f", false),
            dirty_after(10, F, 0, 0, Extent::Empty),
            sync(20, 30, SyncOp::Fsync, Some(F), -5),
            dirty_after(40, F, 1, 100, range(0, 100)),
        ],
        50,
        100,
        &c,
    );
    assert_eq!(extent_now(&now, F), range(0, 200));
    assert_eq!(end_extent(&a, F), Some(range(0, 200)));
    assert_eq!(timeline_at(&a, 100, F), Some((200, range(0, 200))));
}

#[test]
fn a_store_through_a_mapping_makes_the_extent_unknown() {
    let c = kernel(&[(F, 1, 100, 0, EXTENT_UNKNOWN)]);
    let (now, a) = traced(
        vec![
            open(1, F, "/d/f", false),
            dirty_after(10, F, 0, 0, Extent::Empty),
        ],
        50,
        100,
        &c,
    );
    assert_eq!(extent_now(&now, F), Extent::Unknown);
    assert_eq!(end_extent(&a, F), Some(Extent::Unknown));
    // An unknown closed segment stays unknown once united with known ones.
    let c = kernel(&[(F, 2, 200, 100, 200)]);
    let (now, _) = traced(
        vec![
            open(1, F, "/d/f", false),
            open(2, G, "/d/g", false),
            dirty_after(10, F, 0, 0, Extent::Empty),
            sync(20, 25, SyncOp::Fsync, Some(G), 0),
            dirty_after(30, F, 1, 100, Extent::Unknown),
        ],
        50,
        100,
        &c,
    );
    assert_eq!(extent_now(&now, F), Extent::Unknown);
}

/// An ftruncate's record (a `Dirty` record with a change) closes the kernel's segment like a `Dirty` record: the
/// writes before it and after it are both at risk, united.
#[test]
fn an_ftruncate_between_writes_keeps_both_segments_at_risk() {
    // 4 KiB at 0; ftruncate (its record closes 0..4096); 4 KiB at 8 KiB.
    let c = kernel(&[(F, 2, 8192, 8192, 12288)]);
    let changed = ev(
        20,
        EventKind::Dirty {
            file: F,
            cause: crate::event::DirtyCause::Change(crate::event::Change::Truncate),
            writes_before: 1,
            bytes_before: 4096,
            pages_before: 0,
            fd: 3,
            slot: 0,
            prev_extent: range(0, 4096),
        },
    );
    let (now, a) = traced(
        vec![
            open(1, F, "/d/f", false),
            dirty_after(10, F, 0, 0, Extent::Empty),
            changed,
        ],
        50,
        100,
        &c,
    );
    assert_eq!(extent_now(&now, F), range(0, 12288));
    assert_eq!(end_extent(&a, F), Some(range(0, 12288)));
}

/// truncate(2) by path sends no kernel record: the kernel's segment stays open in the span of
/// the write before it, so that write's extent is still what is at risk (not lost behind the
/// truncate's span, which wrote nothing).
#[test]
fn a_truncate_by_path_leaves_the_open_segment_where_it_is() {
    let c = kernel(&[(F, 1, 4096, 0, 4096)]);
    let by_path = ev(
        20,
        EventKind::TruncatePath {
            path: super::name("f"),
            length: 4096,
        },
    );
    let (now, a) = traced(
        vec![
            open(1, F, "/d/f", false),
            dirty_after(10, F, 0, 0, Extent::Empty),
            by_path,
        ],
        50,
        100,
        &c,
    );
    assert_eq!(extent_now(&now, F), range(0, 4096));
    assert_eq!(end_extent(&a, F), Some(range(0, 4096)));
    // The next record closes that segment into the write's span, not the truncate's.
    let c2 = kernel(&[(F, 2, 4196, 100_000, 100_100)]);
    let (now2, _) = traced(
        vec![
            open(1, F, "/d/f", false),
            dirty_after(10, F, 0, 0, Extent::Empty),
            ev(
                20,
                EventKind::TruncatePath {
                    path: super::name("f"),
                    length: 4096,
                },
            ),
            // A fallocate's Dirty record at 30 closes 0..4096.
            ev(
                30,
                EventKind::Dirty {
                    file: F,
                    cause: crate::event::DirtyCause::Change(crate::event::Change::Fallocate),
                    writes_before: 1,
                    bytes_before: 4096,
                    pages_before: 0,
                    fd: 3,
                    slot: 0,
                    prev_extent: range(0, 4096),
                },
            ),
        ],
        50,
        100,
        &c2,
    );
    assert_eq!(extent_now(&now2, F), range(0, 100_100));
}
