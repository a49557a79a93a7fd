//! The durability rules: durable points, directory entries, renames, failures, processes.
use super::*;

#[test]
fn write_never_synced_is_reported_with_exact_unsynced_counts() {
    let a = run(
        vec![
            open_dir(1),
            open(2, F, "/d/f", true),
            sync(3, 4, SyncOp::Fsync, Some(DIR), 0),
            dirty(5, F, 0, 0),
        ],
        100,
        &[(F, 3, 300)],
    );
    assert_eq!(
        kinds(&a),
        vec![(FindingKind::UnsyncedWrite, "/d/f".into(), None)]
    );
    assert_eq!(a.findings[0].unsynced_bytes, Some(300));
    assert_eq!(a.findings[0].unsynced_writes, Some(3));
    assert_eq!(a.findings[0].pid, 10);
    assert_eq!(
        file(&a, F).max_dirty_window_ns,
        95,
        "open window counts until the end"
    );
}

#[test]
fn fsync_after_writes_is_a_durable_point() {
    let a = run(
        vec![
            open(1, F, "/d/f", false),
            dirty(10, F, 0, 0),
            sync(20, 30, SyncOp::Fsync, Some(F), 0),
        ],
        100,
        &[(F, 2, 20)],
    );
    assert!(a.findings.is_empty(), "{:?}", a.findings);
    let f = file(&a, F);
    assert_eq!((f.fsyncs, f.max_dirty_window_ns), (1, 20));
    assert_eq!((f.sync_latency.count(), f.sync_latency.max()), (1, 10));
}

#[test]
fn data_dirtied_while_the_fsync_ran_stays_unsynced() {
    let a = run(
        vec![
            open(1, F, "/d/f", false),
            dirty(10, F, 0, 0),
            dirty(25, F, 4, 400),
            sync(20, 30, SyncOp::Fdatasync, Some(F), 0),
        ],
        100,
        &[(F, 6, 600)],
    );
    assert_eq!(
        kinds(&a),
        vec![(FindingKind::UnsyncedWrite, "/d/f".into(), None)]
    );
    assert_eq!(a.findings[0].unsynced_bytes, Some(200));
    assert_eq!(a.findings[0].unsynced_writes, Some(2));
}

#[test]
fn sync_file_range_and_ms_async_are_not_durable_points() {
    let mut events = vec![
        open(1, F, "/d/f", false),
        dirty(10, F, 0, 0),
        sync(20, 30, SyncOp::SyncFileRange, Some(F), 0),
    ];
    events.push(ev(
        31,
        EventKind::Mmap {
            file: F,
            addr: 0x1000,
            len: 0x2000,
        },
    ));
    events.push(ev(
        50,
        EventKind::Sync {
            op: SyncOp::Msync,
            enter_ns: 40,
            ret: 0,
            file: None,
            is_dir: false,
            fd: -1,
            addr: 0x1000,
            len: 0x2000,
            flags: mman::MS_ASYNC,
            counters: None,
        },
    ));
    let a = run(events, 100, &[(F, 1, 10)]);
    assert_eq!(
        kinds(&a),
        vec![(FindingKind::UnsyncedWrite, "/d/f".into(), None)]
    );
}

#[test]
fn msync_ms_sync_over_a_mapping_makes_the_file_durable() {
    let events = vec![
        open(1, F, "/d/f", false),
        ev(
            2,
            EventKind::Mmap {
                file: F,
                addr: 0x1000,
                len: 0x2000,
            },
        ),
        ev(
            10,
            EventKind::Dirty {
                file: F,
                writes_before: 0,
                bytes_before: 0,
                pages_before: 0,
                cause: crate::event::DirtyCause::MappedStore,
                fd: -1,
                slot: 0,
                prev_extent: crate::extent::Extent::Empty,
            },
        ),
        ev(
            50,
            EventKind::Sync {
                op: SyncOp::Msync,
                enter_ns: 40,
                ret: 0,
                file: None,
                is_dir: false,
                fd: -1,
                addr: 0x2000,
                len: 0x1000,
                flags: mman::MS_SYNC,
                counters: None,
            },
        ),
    ];
    let a = run(events.clone(), 100, &[]);
    assert!(a.findings.is_empty(), "{:?}", a.findings);
    // A range that misses the mapping does nothing.
    let mut miss = events;
    if let EventKind::Sync { addr, .. } = &mut miss[3].kind {
        *addr = 0x9000;
    }
    let mut c = counters(&[]);
    c.insert(
        F,
        FileCounters {
            mapped_dirty_pages: 2,
            ..Default::default()
        },
    );
    let mut s = DurabilityState::new(NoResolver);
    for e in miss {
        s.apply(e);
    }
    let a = s.finish(100, c.into());
    assert_eq!(
        kinds(&a),
        vec![(FindingKind::UnsyncedWrite, "/d/f".into(), None)]
    );
    assert_eq!(a.findings[0].unsynced_bytes, Some(2 * PAGE_SIZE));
}

#[test]
fn sync_covers_everything_and_syncfs_only_its_filesystem() {
    let a = run(
        vec![
            dirty(10, F, 0, 0),
            dirty(11, OTHER_DEV, 0, 0),
            sync(20, 30, SyncOp::Syncfs, Some(G), 0),
        ],
        100,
        &[(F, 1, 1), (OTHER_DEV, 1, 1)],
    );
    assert_eq!(a.findings.len(), 1);
    assert_eq!(a.findings[0].kind, FindingKind::UnsyncedWrite);
    let a = run(
        vec![
            dirty(10, F, 0, 0),
            dirty(11, OTHER_DEV, 0, 0),
            sync(20, 30, SyncOp::Sync, None, 0),
        ],
        100,
        &[(F, 1, 1), (OTHER_DEV, 1, 1)],
    );
    assert!(a.findings.is_empty());
}

#[test]
fn o_sync_write_is_a_durable_point() {
    let a = run(
        vec![
            dirty(10, F, 0, 0),
            sync(20, 20, SyncOp::SyncWrite, Some(F), 0),
        ],
        100,
        &[(F, 1, 1)],
    );
    assert!(a.findings.is_empty());
}

#[test]
fn created_entry_needs_a_directory_fsync_after_it() {
    let events = vec![
        open(1, F, "/d/f", true),
        sync(5, 6, SyncOp::Fsync, Some(F), 0),
    ];
    let a = run(events.clone(), 100, &[]);
    assert_eq!(
        kinds(&a),
        vec![(
            FindingKind::UnsyncedParentDir,
            "/d".into(),
            Some("f".into())
        )]
    );
    let mut synced = events.clone();
    synced.push(open_dir(7));
    synced.push(sync(8, 9, SyncOp::Fsync, Some(DIR), 0));
    assert!(run(synced, 100, &[]).findings.is_empty());
    // A directory fsync that started before the entry was created does not cover it.
    let mut early = vec![open_dir(0)];
    early.push(ev(
        9,
        EventKind::Sync {
            op: SyncOp::Fsync,
            enter_ns: 0,
            ret: 0,
            file: Some(DIR),
            is_dir: true,
            fd: 4,
            addr: 0,
            len: 0,
            flags: 0,
            counters: None,
        },
    ));
    early.extend(events);
    assert_eq!(run(early, 100, &[]).findings.len(), 1);
}

#[test]
fn rename_of_unsynced_file_is_reported_and_its_path_follows() {
    let events = vec![
        open(1, F, "/d/cfg.tmp", true),
        dirty(2, F, 0, 0),
        ns(3, NamespaceOp::Rename, "cfg.tmp", Some("cfg")),
        open_dir(4),
        sync(5, 6, SyncOp::Fsync, Some(DIR), 0),
        sync(7, 8, SyncOp::Fsync, Some(F), 0),
    ];
    let a = run(events, 100, &[(F, 1, 64)]);
    assert_eq!(
        kinds(&a),
        vec![(FindingKind::RenameBeforeFsync, "/d/cfg".into(), None)]
    );
    assert_eq!(a.findings[0].source.as_deref(), Some("/d/cfg.tmp"));
    assert_eq!(file(&a, F).path_str(), Some("/d/cfg"));
}

#[test]
fn rename_after_fsync_is_fine_but_the_directory_still_needs_a_sync() {
    let events = vec![
        open(1, F, "/d/cfg.tmp", true),
        dirty(2, F, 0, 0),
        sync(3, 4, SyncOp::Fsync, Some(F), 0),
        ns(5, NamespaceOp::Rename, "cfg.tmp", Some("cfg")),
    ];
    let a = run(events, 100, &[(F, 1, 64)]);
    // The create of cfg.tmp and its rename away cancel out; the new name is pending.
    assert_eq!(
        kinds(&a),
        vec![(
            FindingKind::UnsyncedParentDir,
            "/d".into(),
            Some("cfg".into())
        )]
    );
}

#[test]
fn replaced_and_unlinked_files_do_not_count_as_unsynced() {
    let events = vec![
        open(1, G, "/d/old", false),
        dirty(2, G, 0, 0),
        open(3, F, "/d/new", false),
        sync(4, 5, SyncOp::Fsync, Some(F), 0),
        ns(6, NamespaceOp::Rename, "new", Some("old")),
        open_dir(7),
        sync(8, 9, SyncOp::Fsync, Some(DIR), 0),
    ];
    let a = run(events, 100, &[(G, 1, 1)]);
    assert!(a.findings.is_empty(), "{:?}", a.findings);
    assert!(file(&a, G).removed);
}

#[test]
fn unlink_of_an_existing_entry_is_pending_but_cancels_a_fresh_create() {
    let a = run(
        vec![
            open(1, F, "/d/f", false),
            ns(2, NamespaceOp::Unlink, "f", None),
        ],
        100,
        &[],
    );
    assert_eq!(
        kinds(&a),
        vec![(
            FindingKind::UnsyncedParentDir,
            "/d".into(),
            Some("f".into())
        )]
    );
    let a = run(
        vec![
            open(1, F, "/d/f", true),
            dirty(2, F, 0, 0),
            ns(3, NamespaceOp::Unlink, "f", None),
        ],
        100,
        &[(F, 1, 1)],
    );
    assert!(a.findings.is_empty(), "{:?}", a.findings);
}

#[test]
fn link_mkdir_symlink_are_entry_changes() {
    let a = run(
        vec![
            ns(1, NamespaceOp::Link, "a", Some("b")),
            ns(2, NamespaceOp::Mkdir, "sub", None),
            ns(3, NamespaceOp::Symlink, "s", None),
        ],
        100,
        &[],
    );
    let entries: Vec<_> = a
        .findings
        .iter()
        .map(|f| f.entry.clone().unwrap_or_default())
        .collect();
    assert_eq!(entries, vec!["b", "sub", "s"], "oldest change first");
}

#[test]
fn fsync_error_then_successful_retry() {
    let events = vec![
        open(1, F, "/d/f", false),
        dirty(2, F, 0, 0),
        sync(3, 4, SyncOp::Fsync, Some(F), -(libc::EIO as i64)),
        sync(5, 6, SyncOp::Fsync, Some(F), 0),
    ];
    let a = run(events, 100, &[(F, 1, 10)]);
    assert_eq!(
        kinds(&a),
        vec![
            (FindingKind::FsyncRetryAfterError, "/d/f".into(), None),
            (FindingKind::FsyncError, "/d/f".into(), None)
        ]
    );
    assert!(a.findings.iter().all(|f| f.errno == Some(libc::EIO)));
    assert_eq!(a.ops[&SyncOp::Fsync].errors, 1);
}

#[test]
fn a_failed_fsync_leaves_the_data_unsynced() {
    let a = run(
        vec![
            open(1, F, "/d/f", false),
            dirty(2, F, 0, 0),
            sync(3, 4, SyncOp::Fsync, Some(F), -5),
        ],
        100,
        &[(F, 1, 10)],
    );
    assert_eq!(
        kinds(&a),
        vec![
            (FindingKind::FsyncError, "/d/f".into(), None),
            (FindingKind::UnsyncedWrite, "/d/f".into(), None)
        ]
    );
}

#[test]
fn renaming_a_directory_moves_the_paths_below_it() {
    let sub = FileKey {
        dev: 8,
        gen: 0,
        ino: 50,
    };
    let mut events = vec![ev(
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
    )];
    events.push(open(2, F, "/d/a/f", false));
    events.push(dirty(3, F, 0, 0));
    events.push(ns(4, NamespaceOp::Rename, "a", Some("b")));
    let a = run(events, 100, &[(F, 1, 1)]);
    assert_eq!(file(&a, F).path_str(), Some("/d/b/f"));
    assert!(a
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::UnsyncedWrite && f.path == "/d/b/f"));
}

#[test]
fn forks_and_exits_are_tracked() {
    let mut s = DurabilityState::new(NoResolver);
    s.add_process(10, "app");
    s.apply(ev(1, EventKind::Fork { child: 11 }));
    s.apply(Event {
        ts: 2,
        actor: Actor {
            pid: 11,
            tid: 11,
            comm: "child".into(),
            stack: None,
        },
        kind: EventKind::Exit,
    });
    let a = s.finish(3, HashMap::new().into());
    let p: Vec<_> = a
        .processes
        .iter()
        .map(|p| (p.pid, p.comm.as_str(), p.parent, p.exited))
        .collect();
    assert_eq!(
        p,
        vec![(10, "app", None, false), (11, "child", Some(10), true)]
    );
}
