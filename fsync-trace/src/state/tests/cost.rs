//! Unit tests of what syncs cost and covered, and of the advice kinds, fed with event
//! sequences (no kernel).
use super::*;
use super::{actor, dirty, open, open_dir, sync, DIR, F};
use crate::event::{Event, EventKind, SyncCounters};
use crate::state::cost::SyncCost;

/// A sync of `file` whose record read its counters (`writes`, `bytes`) when it returned.
fn sync_c(enter: u64, exit: u64, op: SyncOp, file: FileKey, writes: u64, bytes: u64) -> Event {
    let mut e = sync(enter, exit, op, Some(file), 0);
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

fn cost_of(a: &Analysis, key: FileKey) -> SyncCost {
    let f = a.files.iter().find(|(f, _)| f.key == key).expect("file");
    f.0.cost.get().expect("cost").into_owned()
}

fn kinds(a: &Analysis) -> Vec<(FindingKind, u64)> {
    a.findings.iter().map(|f| (f.kind, f.count)).collect()
}

fn counters(writes: u64, bytes: u64) -> FinalCounters {
    FinalCounters::new(vec![(
        F,
        FileCounters {
            writes,
            bytes,
            ..Default::default()
        },
    )])
}

#[test]
fn one_sync_per_small_write_is_advice_with_exact_figures() {
    let mut s = DurabilityState::new(NoResolver);
    s.start_at(0);
    s.apply(open(1, F, "/d/log", false));
    for i in 0..25u64 {
        let t = 100 + i * 2_000_000;
        s.apply(dirty(t, F, i, i * 100));
        // 1 ms per sync, one after another.
        s.apply(sync_c(
            t + 10,
            t + 10 + 1_000_000,
            SyncOp::Fdatasync,
            F,
            i + 1,
            (i + 1) * 100,
        ));
    }
    let a = s.finish(5_000_000_000, counters(25, 2500));
    let c = cost_of(&a, F);
    assert_eq!((c.calls, c.sync_ns), (25, 25_000_000));
    assert_eq!(
        (c.writes_per_sync.median(), c.writes_per_sync.max()),
        (1, 1)
    );
    assert_eq!(
        (c.bytes_per_sync.median(), c.bytes_per_sync.max()),
        (100, 100)
    );
    assert_eq!((c.redundant, c.in_flight.max()), (0, 1));
    assert_eq!(kinds(&a), [(FindingKind::SyncPerWrite, 25)]);
    let f = &a.findings[0];
    assert_eq!((f.syncs, f.sync_time_us), (Some(25), Some(25_000)));
    assert_eq!((f.pid, f.path.as_str()), (10, "/d/log"));
    // 1 ms median latency: 1000 commits/s one after another, 16000 with batches of 16.
    assert!(f.message.contains("about 1000/s"), "{}", f.message);
    assert!(f.fix.contains("about 16000 records/s"), "{}", f.fix);
    assert!(
        f.message.contains("0.5% of the trace's 5.0 s"),
        "{}",
        f.message
    );
    // The process that synced covered the same.
    let p = a.processes.iter().find(|p| p.pid == 10).unwrap();
    let pc = p.cost.as_deref().unwrap();
    assert_eq!(
        (
            pc.calls,
            pc.writes_per_sync.count(),
            pc.writes_per_sync.median()
        ),
        (25, 25, 1)
    );
}

#[test]
fn batched_syncs_are_not_advice() {
    let mut s = DurabilityState::new(NoResolver);
    s.apply(open(1, F, "/d/log", false));
    for i in 0..25u64 {
        let t = 100 + i * 100;
        s.apply(dirty(t, F, i * 16, i * 1600));
        s.apply(sync_c(
            t + 10,
            t + 20,
            SyncOp::Fdatasync,
            F,
            (i + 1) * 16,
            (i + 1) * 1600,
        ));
    }
    let a = s.finish(10_000, counters(400, 40_000));
    let c = cost_of(&a, F);
    assert_eq!(
        (c.writes_per_sync.median(), c.bytes_per_sync.max()),
        (16, 1600)
    );
    assert_eq!(kinds(&a), []);
}

#[test]
fn a_sync_with_nothing_to_make_durable_is_redundant() {
    let mut s = DurabilityState::new(NoResolver);
    s.apply(open(1, F, "/d/f", false));
    s.apply(dirty(2, F, 0, 0));
    s.apply(sync_c(3, 4, SyncOp::Fsync, F, 3, 300)); // covers 3 writes
    s.apply(sync_c(5, 7, SyncOp::Fsync, F, 3, 300)); // redundant
    s.apply(sync_c(8, 11, SyncOp::Fdatasync, F, 3, 300)); // redundant
    s.apply(dirty(12, F, 3, 300));
    s.apply(sync_c(13, 14, SyncOp::Fsync, F, 4, 400)); // covers 1 write
                                                       // Truncated by an open: a change the counters do not show.
    let mut trunc = open(15, F, "/d/f", false);
    if let EventKind::Open { open_flags, .. } = &mut trunc.kind {
        *open_flags |= fsync_trace_common::open_flags::O_TRUNC;
    }
    s.apply(trunc);
    s.apply(sync_c(16, 17, SyncOp::Fsync, F, 4, 400));
    // A failure forgets the durable point: the retry is not judged.
    s.apply(sync(18, 19, SyncOp::Fsync, Some(F), -5));
    s.apply(sync_c(20, 21, SyncOp::Fsync, F, 4, 400));
    let a = s.finish(100, counters(4, 400));
    let c = cost_of(&a, F);
    assert_eq!((c.calls, c.redundant, c.redundant_ns), (7, 2, 5));
    assert_eq!(c.writes_per_sync.count(), 6);
    assert_eq!(
        (c.writes_per_sync.median(), c.writes_per_sync.max()),
        (0, 3)
    );
    let r: Vec<&Finding> = a
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::RedundantSync)
        .collect();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].count, r[0].ts, r[0].pid), (2, 7, actor().pid));
    assert!(
        r[0].message.starts_with("2 of 7 sync call(s) on /d/f"),
        "{}",
        r[0].message
    );
    // fsync_error and fsync_retry_after_error are the bugs here; the redundant syncs advice.
    assert!(kinds(&a)
        .iter()
        .all(|(k, _)| *k != FindingKind::SyncPerWrite));
}

#[test]
fn data_written_while_a_sync_ran_makes_the_next_sync_needed() {
    let mut s = DurabilityState::new(NoResolver);
    s.apply(open(1, F, "/d/f", false));
    s.apply(dirty(2, F, 0, 0));
    s.apply(sync_c(3, 4, SyncOp::Fsync, F, 1, 100));
    // A write lands while the second sync runs: the reading at its return includes it...
    s.apply(dirty(12, F, 1, 100));
    s.apply(sync_c(10, 20, SyncOp::Fsync, F, 2, 200));
    // ...so this one sees no new writes in the counters, but that data was dirty before it.
    s.apply(sync_c(30, 31, SyncOp::Fsync, F, 2, 200));
    let a = s.finish(100, counters(2, 200));
    assert_eq!(cost_of(&a, F).redundant, 0);
    assert_eq!(kinds(&a), []);
}

#[test]
fn a_directory_sync_is_redundant_only_without_entry_changes() {
    let mut s = DurabilityState::new(NoResolver);
    s.apply(open_dir(1));
    s.apply(sync_c(2, 3, SyncOp::Fsync, DIR, 0, 0)); // first: no known base
    s.apply(open(4, F, "/d/new", true)); // entry created
    s.apply(sync_c(5, 6, SyncOp::Fsync, DIR, 0, 0)); // needed
    s.apply(sync_c(7, 8, SyncOp::Fsync, DIR, 0, 0)); // redundant
    let a = s.finish(100, FinalCounters::default());
    assert_eq!(cost_of(&a, DIR).redundant, 1);
    assert_eq!(kinds(&a), [(FindingKind::RedundantSync, 1)]);
    assert!(a.findings[0].message.contains("no entry created"));
}

#[test]
fn sync_and_syncfs_leave_no_base_to_judge_against() {
    let mut s = DurabilityState::new(NoResolver);
    s.apply(open(1, F, "/d/f", false));
    s.apply(dirty(2, F, 0, 0));
    s.apply(sync_c(3, 4, SyncOp::Fsync, F, 1, 100));
    s.apply(sync(5, 6, SyncOp::Sync, None, 0));
    s.apply(sync_c(7, 8, SyncOp::Fsync, F, 1, 100));
    let a = s.finish(100, counters(1, 100));
    assert_eq!(cost_of(&a, F).redundant, 0);
}

#[test]
fn overlapping_syncs_of_one_file_are_counted() {
    let mut s = DurabilityState::new(NoResolver);
    s.apply(open(1, F, "/d/f", false));
    s.apply(dirty(2, F, 0, 0));
    // Two threads: [10, 50) and [20, 30) overlap.
    s.apply(sync_c(20, 30, SyncOp::Fdatasync, F, 1, 100));
    s.apply(sync_c(10, 50, SyncOp::Fdatasync, F, 1, 100));
    let a = s.finish(100, counters(1, 100));
    assert_eq!(cost_of(&a, F).in_flight.max(), 2);
}
