//! Bounded cardinality, opt-in top files, lost counts, the classic text format, the
//! file-stats scanner, and the cost counters.
use super::*;

#[test]
fn cardinality_is_bounded() {
    let (mut live, mut state) = new_live();
    let mut events = Vec::new();
    for i in 0..(MAX_COMMS as u32 + 10) {
        let key = FileKey {
            dev: DEV,
            gen: 0,
            ino: 1000 + i as u64,
        };
        events.push(Event {
            ts: 10 + i as u64,
            actor: actor(100 + i, &format!("c{i}")),
            kind: EventKind::Dirty {
                file: key,
                writes_before: 0,
                bytes_before: 0,
                pages_before: 0,
                cause: crate::event::DirtyCause::Write,
                fd: 3,
                slot: 0,
                prev_extent: crate::extent::Extent::Empty,
            },
        });
    }
    for d in 0..(MAX_DEVICES as u32 + 5) {
        let key = FileKey {
            dev: (9 << 20) | d,
            gen: 0,
            ino: 1,
        };
        events.push(sync(1, 2, 10, SyncOp::Fsync, Some(key), 0));
    }
    feed(&mut live, &mut state, events);
    let counters: HashMap<FileKey, FileCounters> = (0..(MAX_COMMS as u64 + 10))
        .map(|i| {
            (
                FileKey {
                    dev: DEV,
                    gen: 0,
                    ino: 1000 + i,
                },
                FileCounters {
                    writes: 1,
                    bytes: 10 + i,
                    ..Default::default()
                },
            )
        })
        .collect();
    live.refresh(&state, &counters);
    let text = live.metrics().encode();
    let comms = text
        .lines()
        .filter(|l| l.starts_with("fsync_trace_comm_unsynced_bytes{"))
        .count();
    assert_eq!(comms, MAX_COMMS + 1);
    // The 10 smallest are summed into "other": 10+11+...+19.
    assert_eq!(
        sample(&text, "fsync_trace_comm_unsynced_bytes{comm=\"other\"}"),
        Some(145.0)
    );
    let devices = text
        .lines()
        .filter(|l| l.starts_with("fsync_trace_sync_latency_seconds_count{op=\"fsync\""))
        .count();
    assert_eq!(devices, MAX_DEVICES + 1);
    assert_eq!(
        sample(
            &text,
            "fsync_trace_sync_latency_seconds_count{op=\"fsync\",device=\"other\"}"
        ),
        Some(5.0)
    );
}

#[test]
fn top_files_are_opt_in_and_escaped() {
    let mut state = DurabilityState::new(NoResolver);
    state.track_live();
    let mut live = LiveMetrics::new(Metrics::new("tracepoint", 1));
    feed(
        &mut live,
        &mut state,
        vec![
            create(1, 10, F, "/d/a\"b\\c"),
            dirty(2, 10, F, 0),
            create(3, 10, G, "/d/small"),
            dirty(4, 10, G, 0),
        ],
    );
    let counters: HashMap<FileKey, FileCounters> = [
        (
            F,
            FileCounters {
                bytes: 4096,
                ..Default::default()
            },
        ),
        (
            G,
            FileCounters {
                bytes: 1,
                ..Default::default()
            },
        ),
    ]
    .into_iter()
    .collect();
    live.refresh(&state, &counters);
    let text = live.metrics().encode();
    assert_eq!(
        sample(
            &text,
            "fsync_trace_file_unsynced_bytes{path=\"/d/a\\\"b\\\\c\",device=\"8:1\"}"
        ),
        Some(4096.0),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("fsync_trace_file_unsynced_bytes{"))
            .count(),
        1
    );
    assert!(text
        .contains("fsync_trace_file_unsynced_age_seconds{path=\"/d/a\\\"b\\\\c\",device=\"8:1\"}"));
}

#[test]
fn lost_counts_are_cumulative_deltas() {
    let (mut live, _) = new_live();
    live.set_lost(LostCounts {
        ring_buffer_full: 3,
        ..Default::default()
    });
    live.set_lost(LostCounts {
        ring_buffer_full: 5,
        undecodable: 1,
        ..Default::default()
    });
    let text = live.metrics().encode();
    assert_eq!(
        sample(
            &text,
            "fsync_trace_lost_events_total{reason=\"ring_buffer_full\"}"
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &text,
            "fsync_trace_lost_events_total{reason=\"undecodable\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn classic_text_for_clients_without_openmetrics() {
    let (mut live, mut state) = new_live();
    feed(
        &mut live,
        &mut state,
        vec![sync(1, 2, 10, SyncOp::Fdatasync, Some(F), 0)],
    );
    let classic = to_classic_text(&live.metrics().encode());
    assert!(classic.contains("# HELP fsync_trace_writes_total "));
    assert!(
        classic.contains("# TYPE fsync_trace_writes_total counter\nfsync_trace_writes_total 0\n"),
        "{classic}"
    );
    assert!(classic.contains("# TYPE fsync_trace_build_info gauge\nfsync_trace_build_info{"));
    assert!(classic.contains("# TYPE fsync_trace_sync_latency_seconds histogram\n"));
    assert!(
        !classic.contains("# EOF") && !classic.contains("# UNIT") && !classic.contains(" info\n")
    );
}

#[test]
fn file_stats_scanner_adds_growth_and_hands_over_scans() {
    let m = Metrics::new("tracepoint", 0);
    let mut round = 0u64;
    let scan = move || {
        round += 1;
        Ok([(
            F,
            FileCounters {
                writes: round * 2,
                bytes: round * 100,
                sync_writes: 1,
                sync_write_bytes: 10,
                ..Default::default()
            },
        )]
        .into_iter()
        .collect())
    };
    let (_handle, mut rx) = spawn_file_stats_scanner(scan, &m);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first = rt
        .block_on(async {
            rx.changed().await.unwrap();
            rx.borrow_and_update().clone()
        })
        .unwrap();
    assert_eq!(first[&F].bytes, 100);
    let text = m.encode();
    assert_eq!(sample(&text, "fsync_trace_writes_total"), Some(3.0));
    assert_eq!(
        sample(&text, "fsync_trace_written_bytes_total"),
        Some(110.0)
    );
}

#[test]
fn writes_per_sync_and_redundant_syncs_are_counted() {
    let (mut live, mut state) = new_live();
    let with_counters = |enter: u64, exit: u64, writes: u64| {
        let mut e = sync(enter, exit, 10, SyncOp::Fdatasync, Some(F), 0);
        if let EventKind::Sync { counters, .. } = &mut e.kind {
            *counters = Some(crate::event::SyncCounters {
                slot: 0,
                writes,
                bytes: writes * 100,
                mapped_pages: 0,
            });
        }
        e
    };
    let events = vec![
        create(1_000, 10, F, "/d/wal"),
        dirty(2_000, 10, F, 0),
        with_counters(3_000, 4_000, 1), // 1 write
        with_counters(5_000, 6_000, 1), // nothing new: redundant
        dirty(7_000, 10, F, 100),
        with_counters(8_000, 9_000, 4), // 3 writes
    ];
    feed(&mut live, &mut state, events);
    let text = live.metrics().encode();
    assert!(
        text.contains("\n# TYPE fsync_trace_writes_per_sync histogram\n"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "fsync_trace_writes_per_sync_count"),
        Some(3.0)
    );
    assert_eq!(sample(&text, "fsync_trace_writes_per_sync_sum"), Some(4.0));
    assert_eq!(
        sample(&text, "fsync_trace_writes_per_sync_bucket{le=\"0.0\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "fsync_trace_writes_per_sync_bucket{le=\"2.0\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "fsync_trace_redundant_syncs_total"),
        Some(1.0)
    );
    // Advice kinds are not durability findings: no findings_total series for them.
    assert!(!text.contains("kind=\"redundant_sync\""), "{text}");
}
