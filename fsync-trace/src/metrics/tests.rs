//! Metrics fed with synthetic events (no kernel, no root): names, types, values, `# EOF`.
use std::collections::HashMap;

use fsync_trace_common::{FileCounters, FileKey, NamespaceOp, SyncOp};

use super::{exporter::spawn_file_stats_scanner, *};
use crate::{
    event::{Actor, Event, EventKind, NameRef},
    state::{DurabilityState, NoResolver},
};

/// dev 8:1 in the kernel's encoding (12-bit major, 20-bit minor).
const DEV: u32 = (8 << 20) | 1;
const DIR: FileKey = FileKey {
    dev: DEV,
    gen: 0,
    ino: 100,
};
const F: FileKey = FileKey {
    dev: DEV,
    gen: 0,
    ino: 1,
};
const G: FileKey = FileKey {
    dev: DEV,
    gen: 0,
    ino: 2,
};

fn actor(pid: u32, comm: &str) -> Actor {
    Actor {
        pid,
        tid: pid,
        comm: comm.into(),
        stack: None,
    }
}

fn ev(ts: u64, pid: u32, kind: EventKind) -> Event {
    Event {
        ts,
        actor: actor(pid, "db"),
        kind,
    }
}

fn create(ts: u64, pid: u32, file: FileKey, path: &str) -> Event {
    ev(
        ts,
        pid,
        EventKind::Open {
            file,
            parent: DIR,
            is_dir: false,
            path: path.into(),
            open_flags: 1,
            created: true,
            fd: 3,
            nlink: 1,
            prior: None,
        },
    )
}

fn dirty(ts: u64, pid: u32, file: FileKey, bytes_before: u64) -> Event {
    ev(
        ts,
        pid,
        EventKind::Dirty {
            file,
            writes_before: 0,
            bytes_before,
            pages_before: 0,
            by_mapping: false,
            fd: 3,
            slot: 0,
        },
    )
}

fn sync(enter: u64, exit: u64, pid: u32, op: SyncOp, file: Option<FileKey>, ret: i64) -> Event {
    ev(
        exit,
        pid,
        EventKind::Sync {
            op,
            enter_ns: enter,
            ret,
            file,
            is_dir: false,
            fd: 3,
            addr: 0,
            len: 0,
            flags: 0,
            counters: None,
        },
    )
}

fn name(n: &str) -> NameRef {
    NameRef {
        base_dir: DIR,
        base_path: "/d".into(),
        base_durable: true,
        name: n.into(),
    }
}

/// Feeds events as the event loop does.
fn feed(live: &mut LiveMetrics, state: &mut DurabilityState<NoResolver>, events: Vec<Event>) {
    for e in events {
        live.observe(&e, state);
        state.apply(e);
    }
    live.after_batch(state);
}

fn new_live() -> (LiveMetrics, DurabilityState<NoResolver>) {
    let mut state = DurabilityState::new(NoResolver);
    state.track_live();
    (LiveMetrics::new(Metrics::new("tracepoint", 0)), state)
}

/// The value of the sample line starting with `prefix` (name and labels, exactly).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(prefix)
            .and_then(|v| v.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    })
}

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
            by_mapping: false,
            fd: 3,
            slot: 0,
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
                by_mapping: false,
                fd: 3,
                slot: 0,
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
