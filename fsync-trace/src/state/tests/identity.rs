//! Unit tests of file identity: names and hard links, inode lifetimes, names the kernel walks
//! for descriptors opened before tracing, reclaimed kernel slots, bounded memory.
use fsync_trace_common::{FileCounters, FileKey, NamespaceOp, SyncOp};

use super::*;
use super::{counters, dirty, ev, file, kinds, ns, open, open_dir, run, sync, DIR, F, G};
use crate::event::EventKind;

fn name_ev(ts: u64, key: FileKey, path: &str, nlink: u32) -> Event {
    ev(
        ts,
        EventKind::Name {
            file: key,
            path: path.into(),
            nlink,
            open_flags: 1,
        },
    )
}

fn open_nlink(ts: u64, key: FileKey, path: &str, nlink: u32) -> Event {
    let mut e = open(ts, key, path, false);
    if let EventKind::Open { nlink: n, .. } = &mut e.kind {
        *n = nlink;
    }
    e
}

fn dir_sync(ts: u64) -> Vec<Event> {
    vec![
        open_dir(ts),
        sync(ts + 1, ts + 2, SyncOp::Fsync, Some(DIR), 0),
    ]
}

#[test]
fn link_then_unlink_keeps_the_data_under_the_new_name() {
    // Git's loose objects: tmp_obj written, linked to its final name, the temp name unlinked.
    let mut events = vec![
        open(1, F, "/d/tmp_obj_1", true),
        dirty(2, F, 0, 0),
        ns(3, NamespaceOp::Link, "tmp_obj_1", Some("ab12")),
        ns(4, NamespaceOp::Unlink, "tmp_obj_1", None),
    ];
    events.extend(dir_sync(5));
    let a = run(events, 100, &[(F, 1, 40)]);
    let f = file(&a, F);
    assert!(!f.removed);
    assert_eq!(f.path_str(), Some("/d/ab12"));
    assert_eq!(
        f.names().iter().map(|n| &**n).collect::<Vec<_>>(),
        ["/d/ab12"]
    );
    assert_eq!(
        kinds(&a),
        vec![(FindingKind::UnsyncedWrite, "/d/ab12".into(), None)]
    );
    assert_eq!(a.findings[0].unsynced_bytes, Some(40));
}

#[test]
fn removing_one_of_two_names_leaves_the_file() {
    let mut events = vec![
        open(1, F, "/d/a", true),
        dirty(2, F, 0, 0),
        ns(3, NamespaceOp::Link, "a", Some("b")),
        ns(4, NamespaceOp::Unlink, "a", None),
    ];
    events.extend(dir_sync(5));
    let a = run(events.clone(), 100, &[(F, 2, 20)]);
    assert!(!file(&a, F).removed);
    assert_eq!(
        kinds(&a),
        vec![(FindingKind::UnsyncedWrite, "/d/b".into(), None)]
    );
    // The last name going removes it.
    events.push(ns(10, NamespaceOp::Unlink, "b", None));
    events.extend(dir_sync(11));
    let a = run(events, 100, &[(F, 2, 20)]);
    assert!(file(&a, F).removed);
    assert!(a.findings.is_empty(), "{:?}", a.findings);
}

#[test]
fn a_name_made_before_tracing_keeps_the_file_alive() {
    // Opened by its one known name, but the kernel counts two links.
    let mut events = vec![
        open_nlink(1, F, "/d/a", 2),
        dirty(2, F, 0, 0),
        ns(3, NamespaceOp::Unlink, "a", None),
    ];
    events.extend(dir_sync(4));
    let a = run(events, 100, &[(F, 1, 10)]);
    let f = file(&a, F);
    assert!(!f.removed, "another name still holds the data");
    assert_eq!(a.findings.len(), 1);
    assert_eq!(a.findings[0].kind, FindingKind::UnsyncedWrite);
}

#[test]
fn rename_between_two_names_of_one_file_changes_nothing() {
    let events = vec![
        open(1, F, "/d/a", true),
        ns(2, NamespaceOp::Link, "a", Some("b")),
        ns(3, NamespaceOp::Rename, "a", Some("b")),
    ];
    let a = run(events, 100, &[(F, 0, 0)]);
    let f = file(&a, F);
    assert!(!f.removed);
    assert_eq!(f.names().len(), 2);
}

#[test]
fn descriptors_opened_before_tracing_are_named_by_the_kernel() {
    let events = vec![
        dirty(1, F, 0, 0),
        name_ev(1, F, "/var/log/app.log", 1),
        dirty(2, G, 0, 0),
        name_ev(2, G, "/var/log/other.log", 1),
    ];
    let a = run(events, 100, &[(F, 1, 5), (G, 2, 6)]);
    assert_eq!(file(&a, F).path_str(), Some("/var/log/app.log"));
    assert_eq!(file(&a, G).path_str(), Some("/var/log/other.log"));
    let mut k = kinds(&a);
    k.sort();
    assert_eq!(
        k,
        vec![
            (FindingKind::UnsyncedWrite, "/var/log/app.log".into(), None),
            (
                FindingKind::UnsyncedWrite,
                "/var/log/other.log".into(),
                None
            ),
        ]
    );
}

#[test]
fn a_deleted_file_is_named_as_such() {
    let events = vec![dirty(1, F, 0, 0), name_ev(1, F, "/d/gone", 0)];
    let a = run(events, 100, &[(F, 1, 5)]);
    let f = file(&a, F);
    assert!(f.removed);
    assert_eq!(f.path_str(), Some("/d/gone"));
    assert!(a.findings.is_empty());
    // Never named at all: the report says why.
    let a = run(vec![dirty(1, G, 0, 0)], 100, &[(G, 1, 5)]);
    assert!(
        a.findings[0].path.contains("name never seen"),
        "{}",
        a.findings[0].path
    );
}

#[test]
fn a_reused_inode_number_starts_a_fresh_history() {
    // A filesystem without generations: the open that creates the new file hands over the
    // old file's final counters (1 write, synced), the new one starts from zero.
    let old = FileCounters {
        writes: 1,
        bytes: 100,
        ..Default::default()
    };
    let mut events = vec![
        open(1, F, "/d/f0", true),
        dirty(2, F, 0, 0),
        sync(3, 4, SyncOp::Fsync, Some(F), 0),
        ns(5, NamespaceOp::Unlink, "f0", None),
    ];
    let mut reuse = open(6, F, "/d/g0", true);
    if let EventKind::Open { prior, .. } = &mut reuse.kind {
        *prior = Some((7, old));
    }
    events.push(reuse);
    events.push(dirty(7, F, 0, 0));
    events.extend(dir_sync(8));
    let mut s = DurabilityState::new(NoResolver);
    for e in events {
        s.apply(e);
    }
    assert_eq!(s.take_slot_work().free, vec![7]);
    let a = s.finish(100, counters(&[(F, 1, 100)]).into());
    let lives: Vec<&(Box<FileState>, FinalCount)> =
        a.files.iter().filter(|(f, _)| f.key == F).collect();
    assert_eq!(lives.len(), 2);
    let old_life = lives
        .iter()
        .find(|(f, _)| f.path_str() == Some("/d/f0"))
        .unwrap();
    assert!(old_life.0.removed);
    assert_eq!((old_life.0.fsyncs, old_life.1.get().writes), (1, 1));
    let new_life = lives
        .iter()
        .find(|(f, _)| f.path_str() == Some("/d/g0"))
        .unwrap();
    assert!(!new_life.0.removed);
    assert_eq!((new_life.0.fsyncs, new_life.1.get().writes), (0, 1));
    assert_eq!(
        kinds(&a),
        vec![(FindingKind::UnsyncedWrite, "/d/g0".into(), None)]
    );
}

#[test]
fn reclaimed_slots_carry_their_counters() {
    let mut s = DurabilityState::new(NoResolver);
    s.apply(open(1, F, "/d/log", true));
    s.apply(dirty(2, F, 0, 0));
    s.apply(sync(3, 4, SyncOp::Fdatasync, Some(F), 0));
    // The kernel table filled: the durable file's slot 5 (3 writes, 300 bytes) is detached.
    s.detach_idle_slots(10);
    assert_eq!(s.take_slot_work().detach, vec![F]);
    let c = FileCounters {
        writes: 3,
        bytes: 300,
        ..Default::default()
    };
    s.absorb_slot(F, 5, c, true);
    // Written again: a new slot, counting from zero.
    let mut d = dirty(6, F, 0, 0);
    if let EventKind::Dirty { slot, .. } = &mut d.kind {
        *slot = 9;
    }
    s.apply(d);
    let a = s.finish(100, counters(&[(F, 2, 20)]).into());
    let (f, total) = a.files.iter().find(|(f, _)| f.key == F).unwrap();
    assert_eq!((total.get().writes, total.get().bytes), (5, 320));
    assert_eq!(f.unsynced(&counters(&[(F, 2, 20)])[&F]), (2, 20, 0));
    assert_eq!(a.released.reclaimed_slots, 1);
    assert_eq!(a.findings[0].unsynced_writes, Some(2));
}

#[test]
fn a_dirty_record_from_a_reclaimed_slot_keeps_its_base() {
    // A record made just before the slot was detached, applied after: its counters are the
    // old slot's, so it sits on the base that slot had.
    let mut s = DurabilityState::new(NoResolver);
    s.apply(open(1, F, "/d/log", true));
    let c = FileCounters {
        writes: 4,
        bytes: 40,
        ..Default::default()
    };
    s.absorb_slot(F, 5, c, true);
    let mut d = dirty(2, F, 3, 30);
    if let EventKind::Dirty { slot, .. } = &mut d.kind {
        *slot = 5;
    }
    s.apply(d);
    // The new slot has nothing yet: 1 write of 10 bytes unsynced (the 4th write, old slot).
    let a = s.finish(100, counters(&[]).into());
    assert_eq!(a.findings[0].unsynced_writes, Some(1));
    assert_eq!(a.findings[0].unsynced_bytes, Some(10));
}

#[test]
fn idle_durable_files_are_released_beyond_the_bound_and_counted() {
    let mut s = DurabilityState::new(NoResolver);
    let key = |i| FileKey {
        dev: 8,
        gen: 0,
        ino: 1000 + i,
    };
    for i in 0..200u64 {
        s.apply(open(i * 10, key(i), &format!("/d/f{i}"), true));
        s.apply(dirty(i * 10 + 1, key(i), 0, 0));
        if i % 2 == 0 {
            s.apply(sync(i * 10 + 2, i * 10 + 3, SyncOp::Fsync, Some(key(i)), 0));
        }
    }
    s.apply(open_dir(5000));
    s.release_idle_files(150);
    // 201 states (with the directory, which has pending entries): the 100 unsynced files
    // and the directory stay, durable ones go, oldest first, down to 135.
    assert_eq!(s.files.len(), 135);
    let work = s.take_slot_work();
    assert_eq!(work.detach.len(), 66);
    assert!(work.detach.contains(&key(0)) && !work.detach.contains(&key(198)));
    let a = s.finish(10_000, counters(&[]).into());
    assert_eq!(a.released.files, 66);
    assert_eq!(
        a.findings
            .iter()
            .filter(|f| f.kind == FindingKind::UnsyncedWrite)
            .count(),
        100
    );
}

#[test]
fn creates_and_removals_in_a_huge_directory_cancel_by_name() {
    // 50,000 creates then removes in one directory: the pending entries cancel by name (each
    // removal looks at its own name only; their cost is measured in `cargo xtask bench`).
    let mut s = DurabilityState::new(NoResolver);
    for i in 0..50_000u64 {
        let k = FileKey {
            dev: 8,
            gen: 0,
            ino: 10_000 + i,
        };
        s.apply(open(i, k, &format!("/d/f{i}"), true));
    }
    for i in 0..50_000u64 {
        s.apply(ns(100_000 + i, NamespaceOp::Unlink, &format!("f{i}"), None));
    }
    let a = s.finish(1_000_000, counters(&[]).into());
    assert!(a.findings.is_empty());
    assert!(a
        .files
        .iter()
        .filter(|(f, _)| !f.is_dir)
        .all(|(f, _)| f.removed));
    let dir = a.files.iter().find(|(f, _)| f.key == DIR).unwrap();
    assert!(dir.0.rare.pending.is_empty());
}

#[test]
fn pending_entries_of_one_actor_share_it() {
    // A directory holds an entry per created name: one actor's entries point to one copy of
    // it (100,000 creates in a directory), another actor's to its own.
    let mut s = DurabilityState::new(NoResolver);
    for i in 0..3u64 {
        let k = FileKey {
            dev: 8,
            gen: 0,
            ino: 10_000 + i,
        };
        let mut e = open(i, k, &format!("/d/f{i}"), true);
        if i == 2 {
            e.actor.pid = 11;
        }
        s.apply(e);
    }
    let a = s.finish(1_000, counters(&[]).into());
    let dir = a.files.iter().find(|(f, _)| f.key == DIR).unwrap();
    let actor_of = |name: &str| dir.0.rare.pending[name][0].actor.clone();
    assert!(std::sync::Arc::ptr_eq(&actor_of("f0"), &actor_of("f1")));
    assert_eq!(*actor_of("f1"), actor());
    assert_eq!(actor_of("f2").pid, 11);
    assert!(!std::sync::Arc::ptr_eq(&actor_of("f1"), &actor_of("f2")));
}

#[test]
fn a_process_is_relabeled_by_the_cgroup_id_it_acts_in_once_the_id_is_named() {
    let mut st = DurabilityState::new(NoResolver);
    st.describe_process(7, Some("w".into()), None, None);
    let w = |c: &str| crate::cgroup::Workload {
        cgroup: c.into(),
        container: None,
        pod: None,
    };
    st.label_process(7, Some(w("/parent")));
    // A record with no id (no cgroup v2) or of an unknown process changes nothing.
    assert!(!st.cgroup_differs(7, 0));
    assert!(!st.cgroup_differs(8, 42));
    // An id not named yet stays "different" until it is: the next record tries again.
    assert!(st.cgroup_differs(7, 42));
    assert!(st.cgroup_differs(7, 42));
    st.label_process_in(7, 42, w("/moved"));
    assert!(!st.cgroup_differs(7, 42));
    assert_eq!(st.workload_of(7).map(|w| w.cgroup.as_str()), Some("/moved"));
    assert!(st.cgroup_differs(7, 43));
}

#[test]
fn a_large_name_index_rebuilt_still_moves_renamed_subtrees() {
    let sub = FileKey { ino: 50, ..DIR };
    let mut s = DurabilityState::new(NoResolver);
    s.apply(ev(
        1,
        EventKind::Open {
            file: sub,
            parent: DIR,
            is_dir: true,
            path: "/d/a".into(),
            open_flags: 0,
            created: false,
            fd: 5,
            nlink: 1,
            prior: None,
        },
    ));
    // In order, past the first rebuilds (4,096 and 8,192 names).
    let key = |i: u64| FileKey { ino: 1000 + i, ..F };
    for i in 0..10_000 {
        s.apply(open(2 + i, key(i), &format!("/d/a/f{i:05}"), true));
    }
    assert!(s.paths_compacted >= 8192);
    s.apply(ns(20_000, NamespaceOp::Rename, "a", Some("b")));
    assert_eq!(s.paths.len(), 10_001);
    assert_eq!(s.paths.get("/d/b/f09999"), Some(&key(9999)));
    let a = s.finish(30_000, counters(&[]).into());
    for i in [0, 4095, 4096, 8191, 9999] {
        let want = format!("/d/b/f{i:05}");
        assert_eq!(file(&a, key(i)).path_str(), Some(want.as_str()));
    }
}
