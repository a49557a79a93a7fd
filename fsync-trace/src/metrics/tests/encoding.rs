//! Names, types, values and `# EOF` of the exposition; live finding counts; data at risk.
use super::*;

#[test]
fn encodes_names_types_and_eof_after_synthetic_events() {
    let (mut live, mut state) = new_live();
    let mut events = vec![create(1_000, 10, F, "/d/wal")];
    // 3 fdatasyncs of 50 µs, 2 ms and 3 s on 8:1; one failed fsync; a sync(2).
    let mut t = 10_000;
    for lat in [50_000u64, 2_000_000, 3_000_000_000] {
        events.push(dirty(t, 10, F, 0));
        events.push(sync(
            t + 10,
            t + 10 + lat,
            10,
            SyncOp::Fdatasync,
            Some(F),
            0,
        ));
        t += lat + 1_000_000;
    }
    events.push(sync(t, t + 1_000, 10, SyncOp::Fsync, Some(F), -5));
    events.push(sync(t + 2_000, t + 3_000, 10, SyncOp::Sync, None, 0));
    feed(&mut live, &mut state, events);
    let text = live.metrics().encode();
    assert!(text.ends_with("# EOF\n"), "{text}");
    for (family, kind) in [
        ("fsync_trace_sync_latency_seconds", "histogram"),
        ("fsync_trace_dirty_window_seconds", "histogram"),
        ("fsync_trace_writes", "counter"),
        ("fsync_trace_written_bytes", "counter"),
        ("fsync_trace_findings", "counter"),
        ("fsync_trace_lost_events", "counter"),
        ("fsync_trace_sync_errors", "counter"),
        ("fsync_trace_events", "counter"),
        ("fsync_trace_build", "info"),
        ("fsync_trace_unsynced_bytes", "gauge"),
        ("fsync_trace_oldest_unsynced_age_seconds", "gauge"),
        ("fsync_trace_comm_unsynced_bytes", "gauge"),
    ] {
        assert!(
            text.contains(&format!("\n# TYPE {family} {kind}\n")),
            "no {kind} {family} in\n{text}"
        );
    }
    assert!(text.contains("# UNIT fsync_trace_sync_latency_seconds seconds\n"));
    assert!(text.contains("# UNIT fsync_trace_written_bytes bytes\n"));
    assert!(
        !text.contains("fsync_trace_file_unsynced"),
        "per-file series are opt-in"
    );

    let fdatasync = "{op=\"fdatasync\",device=\"8:1\"}";
    assert_eq!(
        sample(
            &text,
            &format!("fsync_trace_sync_latency_seconds_count{fdatasync}")
        ),
        Some(3.0)
    );
    let sum = sample(
        &text,
        &format!("fsync_trace_sync_latency_seconds_sum{fdatasync}"),
    )
    .unwrap();
    assert!((sum - 3.00205).abs() < 1e-9, "{sum}");
    // Buckets are cumulative: 50 µs <= 80 µs; 2 ms <= 2.56 ms; 3 s only from 5.12 s.
    let bucket = |le: &str| {
        sample(
            &text,
            &format!("fsync_trace_sync_latency_seconds_bucket{{le=\"{le}\",op=\"fdatasync\",device=\"8:1\"}}"),
        )
    };
    assert_eq!(bucket("0.00001"), Some(0.0));
    assert_eq!(bucket("0.00008"), Some(1.0));
    assert_eq!(bucket("0.00256"), Some(2.0));
    assert_eq!(bucket("2.62144"), Some(2.0));
    assert_eq!(bucket("5.24288"), Some(3.0));
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert_eq!(
        sample(
            &text,
            "fsync_trace_sync_latency_seconds_count{op=\"fsync\",device=\"8:1\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "fsync_trace_sync_latency_seconds_count{op=\"sync\",device=\"all\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "fsync_trace_sync_errors_total{op=\"fsync\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "fsync_trace_sync_errors_total{op=\"fdatasync\"}"),
        Some(0.0)
    );
    // Three dirty windows closed by the three fdatasyncs (a 4th? no: sync(2) found F clean).
    assert_eq!(
        sample(&text, "fsync_trace_dirty_window_seconds_count"),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "fsync_trace_findings_total{kind=\"fsync_error\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "fsync_trace_findings_total{kind=\"unsynced_write\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "fsync_trace_events_total"), Some(9.0));
    assert_eq!(
        sample(
            &text,
            "fsync_trace_lost_events_total{reason=\"ring_buffer_full\"}"
        ),
        Some(0.0)
    );
    assert!(text.contains(&format!(
        "fsync_trace_build_info{{version=\"{}\",tier=\"tracepoint\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));
}

#[test]
fn findings_live_counts_and_exit_rule() {
    let (mut live, mut state) = new_live();
    feed(
        &mut live,
        &mut state,
        vec![
            // pid 10: creates and dirties /d/a, never syncs; renames a dirty tmp file over /d/b.
            create(1, 10, F, "/d/a"),
            dirty(2, 10, F, 0),
            create(3, 10, G, "/d/b.tmp"),
            dirty(4, 10, G, 0),
            ev(
                5,
                10,
                EventKind::Namespace {
                    op: NamespaceOp::Rename,
                    old: name("b.tmp"),
                    new: Some(name("b")),
                    flags: 0,
                },
            ),
        ],
    );
    let text = live.metrics().encode();
    assert_eq!(
        sample(
            &text,
            "fsync_trace_findings_total{kind=\"rename_before_fsync\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "fsync_trace_findings_total{kind=\"unsynced_write\"}"),
        Some(0.0),
        "still running"
    );
    // Another process exiting does not count pid 10's files.
    feed(&mut live, &mut state, vec![ev(6, 11, EventKind::Exit)]);
    assert_eq!(state.unsynced_at_exit(), (0, 0));
    feed(&mut live, &mut state, vec![ev(7, 10, EventKind::Exit)]);
    let text = live.metrics().encode();
    // Two dirty files; directory entries: "a" created, "b.tmp" created then renamed away
    // (cancels), "b" renamed in: a and b.
    assert_eq!(
        sample(&text, "fsync_trace_findings_total{kind=\"unsynced_write\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "fsync_trace_findings_total{kind=\"unsynced_parent_dir\"}"
        ),
        Some(2.0)
    );
    // Counted once: a second exit record of the same pid adds nothing.
    feed(&mut live, &mut state, vec![ev(8, 10, EventKind::Exit)]);
    assert_eq!(state.unsynced_at_exit(), (2, 2));
}

#[test]
fn data_at_risk_snapshot() {
    let (mut live, mut state) = new_live();
    let mut events = vec![create(1, 10, F, "/d/wal"), dirty(1_000, 10, F, 100)];
    events.push(Event {
        ts: 2_000,
        actor: actor(20, "other\"app"),
        kind: EventKind::Dirty {
            file: G,
            writes_before: 0,
            bytes_before: 0,
            pages_before: 0,
            cause: crate::event::DirtyCause::Write,
            fd: 3,
            slot: 0,
            prev_extent: crate::extent::Extent::Empty,
        },
    });
    feed(&mut live, &mut state, events);
    let counters: HashMap<FileKey, FileCounters> = [
        (
            F,
            FileCounters {
                writes: 5,
                bytes: 600,
                ..Default::default()
            },
        ),
        (
            G,
            FileCounters {
                writes: 1,
                bytes: 50,
                ..Default::default()
            },
        ),
    ]
    .into_iter()
    .collect();
    live.refresh(&state, &counters);
    let snap = live.m.snapshot.get();
    assert_eq!(snap.unsynced_bytes, 550);
    assert_eq!(snap.unsynced_files, 2);
    assert_eq!(snap.unsynced_dir_entries, 1);
    assert_eq!(snap.oldest_unsynced_ns, Some(1_000));
    assert_eq!(
        snap.by_comm,
        vec![(Escaped::new("db"), 500), (Escaped::new("other\"app"), 50)]
    );
    let text = live.metrics().encode();
    assert_eq!(sample(&text, "fsync_trace_unsynced_bytes"), Some(550.0));
    assert_eq!(
        sample(
            &text,
            "fsync_trace_comm_unsynced_bytes{comm=\"other\\\"app\"}"
        ),
        Some(50.0)
    );
    // Monotonic ns 1000 is long ago: the age is taken at scrape time.
    assert!(sample(&text, "fsync_trace_oldest_unsynced_age_seconds").unwrap() > 0.0);
}
