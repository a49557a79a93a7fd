//! Unit tests of the timeline and the crash what-if, over hand-built event sequences.
use super::*;
use super::{counters, dirty, ns, open, open_dir, sync, DIR, F, G};
use crate::state::timeline::Count;
use fsync_trace_common::NamespaceOp;

/// Applies `events` with a timeline, then ends at `end` with final counters `c`.
fn traced(events: Vec<crate::event::Event>, end: u64, c: &[(FileKey, u64, u64)]) -> Timeline {
    let mut s = DurabilityState::new(NoResolver);
    s.record_timeline(1000);
    for e in events {
        s.apply(e);
    }
    *s.finish(end, counters(c).into())
        .timeline
        .expect("timeline recorded")
}

/// (path, writes, bytes, since) of the files at risk at `t`.
fn files_at(t: &Timeline, at: u64) -> Vec<(String, u64, u64, u64)> {
    t.at_risk(at)
        .files
        .iter()
        .map(|f| {
            let p = f.path.as_deref().unwrap_or("?").to_string();
            (p, f.written.writes, f.written.bytes, f.since)
        })
        .collect()
}

/// (dir, entry, op) of the entries at risk at `t`.
fn entries_at(t: &Timeline, at: u64) -> Vec<(String, String, EntryOp)> {
    t.at_risk(at)
        .entries
        .iter()
        .map(|e| {
            let d = e.dir_path.as_deref().unwrap_or("?").to_string();
            (d, e.entry.to_string(), e.op)
        })
        .collect()
}

fn lane(t: &Timeline, key: FileKey) -> &crate::state::timeline::Lane {
    t.lanes().find(|l| l.key == key).expect("lane")
}

#[test]
fn a_sync_that_starts_before_and_ends_after_t_leaves_the_data_at_risk_until_it_returns() {
    let t = traced(
        vec![
            open(1, F, "/d/f", false),
            dirty(10, F, 0, 0),
            sync(20, 30, SyncOp::Fsync, Some(F), 0),
            // The next dirtying reads the counters: the interval wrote 5 writes, 500 bytes.
            dirty(40, F, 5, 500),
        ],
        100,
        &[(F, 6, 600)],
    );
    let d = &lane(&t, F).dirty;
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].from, d[0].durable.get()), (10, Some(30)));
    assert_eq!(
        d[0].total,
        Some(Count {
            writes: 5,
            bytes: 500
        })
    );
    assert_eq!((d[1].from, d[1].durable.get()), (40, None));
    assert_eq!(
        d[1].total,
        Some(Count {
            writes: 1,
            bytes: 100
        })
    );
    // Before the sync entered: at risk, bytes unknown yet (lower bound 0).
    assert_eq!(files_at(&t, 15), vec![("/d/f".into(), 0, 0, 10)]);
    // Inside the sync: everything it covers is still at risk, exactly.
    assert_eq!(files_at(&t, 20), vec![("/d/f".into(), 5, 500, 10)]);
    assert_eq!(files_at(&t, 29), vec![("/d/f".into(), 5, 500, 10)]);
    // Returned: durable.
    assert!(files_at(&t, 30).is_empty());
    assert!(files_at(&t, 39).is_empty());
    assert_eq!(files_at(&t, 40), vec![("/d/f".into(), 0, 0, 40)]);
    // The end's counters are the last reading.
    assert_eq!(files_at(&t, 100), vec![("/d/f".into(), 1, 100, 40)]);
    assert!(files_at(&t, 5).is_empty());
    let s = &lane(&t, F).syncs;
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].enter, s[0].exit, s[0].op), (20, 30, SyncOp::Fsync));
}

#[test]
fn data_written_during_a_sync_is_not_covered_by_it() {
    let t = traced(
        vec![
            open(1, F, "/d/f", false),
            dirty(10, F, 0, 0),
            // Written while the fsync runs: a new epoch, so a new announcement.
            dirty(25, F, 3, 300),
            sync(20, 30, SyncOp::Fdatasync, Some(F), 0),
        ],
        100,
        &[(F, 5, 500)],
    );
    let d = &lane(&t, F).dirty;
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].from, d[0].durable.get()), (10, Some(30)));
    assert_eq!(d[0].total.map(|c| c.bytes), Some(300));
    assert!(
        d[0].readings.is_empty(),
        "the reading at 25 is the new data's"
    );
    assert_eq!((d[1].from, d[1].durable.get()), (25, None));
    assert_eq!(d[1].total.map(|c| c.bytes), Some(200));
    // During the sync both are at risk: the covered 300 bytes and the new data.
    assert_eq!(files_at(&t, 27), vec![("/d/f".into(), 3, 300, 10)]);
    // After it: only what was written during it (its bytes known at the end).
    assert_eq!(files_at(&t, 30), vec![("/d/f".into(), 0, 0, 25)]);
    assert_eq!(files_at(&t, 100), vec![("/d/f".into(), 2, 200, 25)]);
}

#[test]
fn renames_leave_the_new_name_at_risk_until_the_directory_is_synced() {
    let t = traced(
        vec![
            open_dir(1),
            open(2, F, "/d/tmp", true),
            dirty(3, F, 0, 0),
            sync(4, 5, SyncOp::Fsync, Some(F), 0),
            ns(6, NamespaceOp::Rename, "tmp", Some("f")),
            sync(50, 60, SyncOp::Fsync, Some(DIR), 0),
        ],
        100,
        &[(F, 1, 10)],
    );
    let d = "/d".to_string();
    assert_eq!(
        entries_at(&t, 2),
        vec![(d.clone(), "tmp".into(), EntryOp::Create)]
    );
    assert_eq!(files_at(&t, 4), vec![("/d/f".into(), 1, 10, 3)]);
    // The temporary name was created and renamed away before any directory sync: the
    // directory's durable state never had it.
    assert_eq!(
        entries_at(&t, 6),
        vec![(d.clone(), "f".into(), EntryOp::Rename)]
    );
    assert_eq!(
        entries_at(&t, 55),
        vec![(d.clone(), "f".into(), EntryOp::Rename)]
    );
    assert!(entries_at(&t, 60).is_empty());
    let e = &lane(&t, DIR).entries;
    let summary: Vec<_> = e
        .iter()
        .map(|c| (c.at, &*c.entry, c.op, c.durable.get(), c.cancelled.get()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, "tmp", EntryOp::Create, None, Some(6)),
            (6, "tmp", EntryOp::RenameOldName, None, Some(6)),
            (6, "f", EntryOp::Rename, Some(60), None),
        ]
    );
}

#[test]
fn entries_synced_by_a_directory_fsync_started_before_t_are_at_risk_until_it_returns() {
    let t = traced(
        vec![
            open_dir(1),
            open(5, F, "/d/a", true),
            open(15, G, "/d/b", true),
            sync(10, 20, SyncOp::Fsync, Some(DIR), 0),
        ],
        100,
        &[],
    );
    let d = "/d".to_string();
    assert_eq!(
        entries_at(&t, 17),
        vec![
            (d.clone(), "a".into(), EntryOp::Create),
            (d.clone(), "b".into(), EntryOp::Create)
        ]
    );
    // The directory fsync returned: "a" is durable, "b" (created while it ran) is not.
    assert_eq!(
        entries_at(&t, 20),
        vec![(d.clone(), "b".into(), EntryOp::Create)]
    );
    assert_eq!(entries_at(&t, 99), vec![(d, "b".into(), EntryOp::Create)]);
}

#[test]
fn the_exposure_peak_is_just_before_the_biggest_durable_point() {
    let t = traced(
        vec![
            open_dir(1),
            open(2, F, "/d/f", true),
            open(3, G, "/d/g", true),
            dirty(10, F, 0, 0),
            dirty(12, G, 0, 0),
            sync(20, 30, SyncOp::Fsync, Some(F), 0),
            sync(31, 32, SyncOp::Fsync, Some(DIR), 0),
        ],
        100,
        &[(F, 5, 500), (G, 1, 100)],
    );
    let p = t.exposure_peak().expect("a peak");
    assert_eq!(p.at, 20);
    assert_eq!(p.bytes(), 500);
    let files: Vec<_> = p.files.iter().map(|f| f.path.as_deref()).collect();
    assert_eq!(files, vec![Some("/d/f"), Some("/d/g")]);
    assert_eq!(p.entries.len(), 2, "both creations still at risk");
    // After the directory sync only g's data remains: 100 bytes, known at the end.
    assert_eq!(t.at_risk(99).files.len(), 1);
    assert_eq!(t.at_risk(100).bytes(), 100);
    assert!(Timeline::new(10).exposure_peak().is_none());
}

#[test]
fn a_removed_file_stops_being_at_risk() {
    let t = traced(
        vec![
            open_dir(1),
            open(2, F, "/d/f", false),
            dirty(10, F, 0, 0),
            ns(20, NamespaceOp::Unlink, "f", None),
        ],
        100,
        &[(F, 2, 20)],
    );
    assert_eq!(files_at(&t, 15).len(), 1);
    assert!(files_at(&t, 20).is_empty());
    assert_eq!(
        entries_at(&t, 20),
        vec![("/d".into(), "f".into(), EntryOp::Unlink)]
    );
    assert_eq!(lane(&t, F).dirty[0].removed.get(), Some(20));
}

#[test]
fn the_bound_cuts_later_items_and_counts_them() {
    let mut s = DurabilityState::new(NoResolver);
    s.record_timeline(3);
    s.apply(open(1, F, "/d/f", false));
    s.apply(dirty(10, F, 0, 0)); // lane + interval
    s.apply(sync(20, 30, SyncOp::Fsync, Some(F), 0)); // sync mark
    s.apply(dirty(40, F, 1, 10)); // cut
    s.apply(dirty(41, G, 0, 0)); // cut (its lane and interval)
    let t = s.timeline().expect("timeline");
    assert_eq!(t.items(), 3);
    assert_eq!(t.cut.items, 3);
    assert_eq!(t.cut.first_ns, Some(40));
    // What was kept is still completed.
    assert_eq!(lane(t, F).dirty[0].total.map(|c| c.bytes), Some(10));
}

#[test]
fn at_risk_now_reads_the_state_and_the_kernel_counters() {
    let mut s = DurabilityState::new(NoResolver);
    for e in [
        open_dir(1),
        open(2, F, "/d/f", true),
        dirty(10, F, 0, 0),
        open(11, G, "/d/g", false),
        dirty(12, G, 0, 0),
        sync(13, 14, SyncOp::Fsync, Some(G), 0),
    ] {
        s.apply(e);
    }
    let now = s.at_risk_now(50, &counters(&[(F, 7, 7000), (G, 1, 1)]).into());
    assert_eq!(now.at, 50);
    assert_eq!(now.bytes(), 7000);
    assert_eq!(now.files.len(), 1);
    assert_eq!(
        now.files[0].written,
        Count {
            writes: 7,
            bytes: 7000
        }
    );
    assert_eq!(now.files[0].since, 10);
    assert_eq!(now.entries.len(), 1);
    assert_eq!(&*now.entries[0].entry, "f");
}

#[test]
fn timeline_items_stay_small() {
    use crate::state::timeline::{EntryChange, Interval, Lane};
    // 100,000 items: each byte here is 100 KB at the peak (a lane with one interval and one
    // sync is one allocation of at most 272 bytes).
    assert!(std::mem::size_of::<Interval>() <= 112);
    assert!(std::mem::size_of::<EntryChange>() <= 56);
    assert!(std::mem::size_of::<Lane>() <= 264);
}

#[test]
fn a_lane_of_one_interval_and_one_sync_fits_a_240_byte_block() {
    // 232 + 8 bytes of allocator header: up to 25,000 lanes (a bound of 100,000 items).
    assert!(std::mem::size_of::<crate::state::timeline::Lane>() <= 232);
    assert_eq!(std::mem::size_of::<crate::state::timeline::SyncMark>(), 24);
}
