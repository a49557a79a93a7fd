//! Workload labels (`--metrics-labels`, `--metrics-top`): which label sets get series, the
//! `other` bucket, the encoding, and counters that stay monotonic however workloads churn.
use std::collections::BTreeMap;

use super::*;
use crate::{
    cgroup::workload,
    metrics::workload::{LabelChoice, LabelSelector, Selected},
};

const ID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const POD_A: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";

fn all_labels() -> LabelChoice {
    LabelChoice::parse("cgroup,container,pod").unwrap()
}

/// A kubelet (systemd driver) + containerd cgroup path.
fn k8s(pod: &str, id: &str) -> String {
    format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{id}.scope",
        pod.replace('-', "_")
    )
}

/// The encoded label set (what follows the metric name).
fn encoded(l: &WorkloadLabels) -> String {
    let m = Metrics::with_labels("tracepoint", 0, Some((all_labels(), 5)));
    m.redundant_syncs.get(l);
    let text = m.encode();
    let line = text
        .lines()
        .find(|l| l.starts_with("fsync_trace_redundant_syncs_total{"))
        .expect("the series");
    line["fsync_trace_redundant_syncs_total".len()..]
        .rsplit_once(' ')
        .unwrap()
        .0
        .to_string()
}

#[test]
fn label_lists_parse_and_bad_ones_are_one_sentence() {
    let c = LabelChoice::parse("pod, container").unwrap();
    assert_eq!((c.cgroup, c.container, c.pod), (false, true, true));
    assert!(all_labels().cgroup);
    for bad in ["", ",", "node", "pod,Container"] {
        let e = LabelChoice::parse(bad).unwrap_err();
        assert!(
            !e.contains('\n') && e.contains("cgroup, container, pod"),
            "{e}"
        );
    }
}

#[test]
fn first_n_active_label_sets_keep_series_and_the_rest_are_other() {
    let mut sel = LabelSelector::new(all_labels(), 2);
    let a = workload(&k8s(POD_A, ID_A));
    let b = workload(&format!("/system.slice/docker-{ID_B}.scope"));
    let host = workload("/user.slice/user-0.slice/session-1.scope");
    let sa = sel.select(Some(&a));
    assert!(sa.new);
    assert_eq!(
        encoded(&sa.labels),
        format!(
            "{{cgroup=\"{}\",container=\"{ID_A}\",pod=\"{POD_A}\"}}",
            a.cgroup
        )
    );
    // No pod: the empty value, not "other".
    let sb = sel.select(Some(&b));
    assert!(sb.new);
    assert_eq!(
        encoded(&sb.labels),
        format!("{{cgroup=\"{}\",container=\"{ID_B}\",pod=\"\"}}", b.cgroup)
    );
    // Full: the third workload is counted as other (its first use creates other's series).
    let sh = sel.select(Some(&host));
    assert!(sh.new);
    assert_eq!(
        encoded(&sh.labels),
        "{cgroup=\"other\",container=\"other\",pod=\"other\"}"
    );
    assert!(!sel.select(Some(&host)).new);
    assert_eq!(sel.select(None).labels, sh.labels, "unknown: other too");
    // Admitted ones keep theirs, however late.
    assert_eq!(sel.select(Some(&a)), Selected::old(sa.labels.clone()));
    assert_eq!(sel.select(Some(&b)).labels, sb.labels);
    assert_eq!(sel.admitted(), 2);
    // Lookups (gauges) never admit.
    let mut sel = LabelSelector::new(all_labels(), 2);
    assert_eq!(encoded(&sel.lookup(Some(&a))), encoded(&sh.labels));
    assert_eq!(sel.admitted(), 0);
    // An unknown process's labels are all empty.
    assert_eq!(
        encoded(&sel.select(None).labels),
        "{cgroup=\"\",container=\"\",pod=\"\"}"
    );
}

#[test]
fn only_the_chosen_labels_tell_workloads_apart() {
    // container,pod: every process outside containers is one label set.
    let mut sel = LabelSelector::new(LabelChoice::parse("container,pod").unwrap(), 2);
    let x = sel.select(Some(&workload("/system.slice/cron.service")));
    let y = sel.select(Some(&workload("/user.slice/session-2.scope")));
    assert!(x.new && !y.new);
    assert_eq!(x.labels, y.labels);
    assert_eq!(encoded(&x.labels), "{container=\"\",pod=\"\"}");
    let z = sel.select(Some(&workload(&k8s(POD_A, ID_A))));
    assert!(z.new);
    assert_eq!(sel.admitted(), 2);
}

/// Process `pid` known to the state machine, in cgroup `path`.
fn in_cgroup(state: &mut DurabilityState<NoResolver>, pid: u32, path: &str) {
    state.add_process(pid, "db");
    state.label_process(pid, Some(workload(path)));
}

/// Feeds events as the event loop does with labels: each settled under its process.
fn feed_labeled(
    live: &mut LiveMetrics,
    state: &mut DurabilityState<NoResolver>,
    events: Vec<Event>,
) {
    assert!(live.labeled());
    for e in events {
        live.observe(&e, state);
        let pid = e.actor.pid;
        state.apply(e);
        live.after_event(pid, state);
    }
    live.after_batch(state);
}

fn labeled_live(top: usize) -> (LiveMetrics, DurabilityState<NoResolver>) {
    let mut state = DurabilityState::new(NoResolver);
    state.track_live();
    let m = Metrics::with_labels("tracepoint", 0, Some((all_labels(), top)));
    (LiveMetrics::new(m), state)
}

fn file(ino: u64) -> FileKey {
    FileKey {
        dev: DEV,
        gen: 0,
        ino,
    }
}

/// `syncs` fdatasyncs of a new file by `pid`, then its exit (the file's directory entry was
/// never synced: one unsynced_parent_dir finding at the exit).
fn syncs_then_exit(pid: u32, ino: u64, t0: u64, syncs: u64) -> Vec<Event> {
    let f = file(ino);
    let mut v = vec![create(t0, pid, f, &format!("/d/f{ino}"))];
    let mut t = t0 + 10;
    for i in 0..syncs {
        v.push(dirty(t, pid, f, i * 100));
        let mut s = sync(t + 1, t + 1_001, pid, SyncOp::Fdatasync, Some(f), 0);
        if let EventKind::Sync { counters, .. } = &mut s.kind {
            // One write covered by each sync (writes_per_sync).
            *counters = Some(crate::event::SyncCounters {
                slot: 0,
                writes: i + 1,
                bytes: (i + 1) * 100,
                mapped_pages: 0,
            });
        }
        v.push(s);
        t += 2_000;
    }
    v.push(ev(t, pid, EventKind::Exit));
    v
}

#[test]
fn labeled_series_count_each_workload_exactly_and_the_rest_in_other() {
    let (mut live, mut state) = labeled_live(2);
    let (a, b, c) = (
        k8s(POD_A, ID_A),
        format!("/docker/{ID_B}"),
        "/system.slice/backup.service".to_string(),
    );
    in_cgroup(&mut state, 10, &a);
    in_cgroup(&mut state, 20, &b);
    in_cgroup(&mut state, 30, &c);
    in_cgroup(&mut state, 31, &c);
    let mut events = syncs_then_exit(10, 1, 1_000, 3);
    events.extend(syncs_then_exit(20, 2, 100_000, 2));
    events.extend(syncs_then_exit(30, 3, 200_000, 4));
    events.extend(syncs_then_exit(31, 4, 300_000, 1));
    feed_labeled(&mut live, &mut state, events);
    let text = live.metrics().encode();
    let la = format!("cgroup=\"{a}\",container=\"{ID_A}\",pod=\"{POD_A}\"");
    let lb = format!("cgroup=\"{b}\",container=\"{ID_B}\",pod=\"\"");
    let lo = "cgroup=\"other\",container=\"other\",pod=\"other\"";
    for (labels, syncs) in [(&la, 3.0), (&lb, 2.0), (&lo.to_string(), 5.0)] {
        assert_eq!(
            sample(
                &text,
                &format!(
                    "fsync_trace_sync_latency_seconds_count{{op=\"fdatasync\",device=\"8:1\",{labels}}}"
                )
            ),
            Some(syncs),
            "{labels}\n{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!("fsync_trace_dirty_window_seconds_count{{{labels}}}")
            ),
            Some(syncs),
            "{labels}\n{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!("fsync_trace_writes_per_sync_count{{{labels}}}")
            ),
            Some(syncs),
            "{labels}"
        );
        // Counted at each process's exit, under its own workload.
        let exits = if labels.as_str() == lo { 2.0 } else { 1.0 };
        assert_eq!(
            sample(
                &text,
                &format!("fsync_trace_findings_total{{kind=\"unsynced_parent_dir\",{labels}}}")
            ),
            Some(exits),
            "{labels}"
        );
        // Fixed series exist at zero from a label set's first use.
        assert_eq!(
            sample(
                &text,
                &format!("fsync_trace_sync_errors_total{{op=\"fsync\",{labels}}}")
            ),
            Some(0.0),
            "{labels}"
        );
        assert_eq!(
            sample(
                &text,
                &format!("fsync_trace_redundant_syncs_total{{{labels}}}")
            ),
            Some(0.0)
        );
    }
    // No unlabeled series of a labeled family, and no other label set.
    assert!(
        !text.contains("fsync_trace_dirty_window_seconds_count "),
        "{text}"
    );
    let findings: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("fsync_trace_findings_total{"))
        .collect();
    assert_eq!(findings.len(), 3 * FindingKind::BUGS.len(), "{findings:?}");
    let sets: std::collections::BTreeSet<&str> = findings
        .iter()
        .filter_map(|l| l.split_once(",cgroup=")?.1.rsplit_once(' '))
        .map(|(labels, _)| labels)
        .collect();
    assert_eq!(sets.len(), 3, "{sets:?}");
    // Kernel counters are per file, never labeled.
    assert!(text.contains("\nfsync_trace_writes_total 0\n"), "{text}");
}

#[test]
fn unsynced_bytes_by_workload_of_the_first_dirtier() {
    let (mut live, mut state) = labeled_live(1);
    let a = k8s(POD_A, ID_A);
    in_cgroup(&mut state, 10, &a);
    in_cgroup(&mut state, 20, "/system.slice/x.service");
    feed_labeled(
        &mut live,
        &mut state,
        vec![
            // pid 10 syncs once (admitted), then dirties F; pid 20 dirties G only.
            create(1, 10, F, "/d/f"),
            sync(2, 3, 10, SyncOp::Fdatasync, Some(F), 0),
            dirty(10, 10, F, 0),
            create(11, 20, G, "/d/g"),
            dirty(12, 20, G, 0),
        ],
    );
    let counters: HashMap<FileKey, FileCounters> = [
        (
            F,
            FileCounters {
                writes: 1,
                bytes: 300,
                ..Default::default()
            },
        ),
        (
            G,
            FileCounters {
                writes: 2,
                bytes: 50,
                ..Default::default()
            },
        ),
    ]
    .into_iter()
    .collect();
    live.refresh(&state, &counters);
    let text = live.metrics().encode();
    assert!(
        text.contains("\n# TYPE fsync_trace_workload_unsynced_bytes gauge\n"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("fsync_trace_workload_unsynced_bytes{{cgroup=\"{a}\",container=\"{ID_A}\",pod=\"{POD_A}\"}}")
        ),
        Some(300.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "fsync_trace_workload_unsynced_bytes{cgroup=\"other\",container=\"other\",pod=\"other\"}"
        ),
        Some(50.0),
        "{text}"
    );
    // Without labels the family does not exist.
    let (mut plain, _) = new_live();
    plain.refresh(&state, &counters);
    assert!(!plain.metrics().encode().contains("workload_unsynced"));
}

/// Every sample of counters, histogram counts/sums/buckets, by series.
fn cumulative_samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.contains("_total")
                || l.contains("_count")
                || l.contains("_sum")
                || l.contains("_bucket")
        })
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            Some((series.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn counters_stay_monotonic_and_series_stay_while_workloads_churn() {
    let top = 3;
    let (mut live, mut state) = labeled_live(top);
    let mut previous: BTreeMap<String, f64> = BTreeMap::new();
    let mut pid = 100;
    let mut ino = 1_000;
    let mut t = 1_000;
    // 12 rounds; each starts processes in new containers and in old ones, some busier than
    // the admitted ones, and lets some exit with unsynced data.
    for round in 0..12u64 {
        let mut events = Vec::new();
        for k in 0..4u64 {
            pid += 1;
            ino += 1;
            let id = format!("{:064x}", (round * 4 + k) % 7 + 1);
            in_cgroup(&mut state, pid, &format!("/docker/{id}"));
            let syncs = 1 + (round + k) % 5;
            events.extend(syncs_then_exit(pid, ino, t, syncs));
            t += 100_000;
            if k == 3 {
                // A failing fsync and a process that exits leaving data unsynced.
                events.push(sync(
                    t,
                    t + 5,
                    pid + 1_000,
                    SyncOp::Fsync,
                    Some(file(ino)),
                    -5,
                ));
                ino += 1;
                events.push(create(t + 10, pid + 1_000, file(ino), "/d/x"));
                events.push(dirty(t + 20, pid + 1_000, file(ino), 0));
                events.push(ev(t + 30, pid + 1_000, EventKind::Exit));
                t += 1_000;
            }
        }
        feed_labeled(&mut live, &mut state, events);
        let now = cumulative_samples(&live.metrics().encode());
        for (series, before) in &previous {
            let after = now.get(series);
            assert!(
                after.is_some_and(|a| a >= before),
                "round {round}: {series} was {before}, now {after:?}"
            );
        }
        previous = now;
    }
    // Bounded: at most `top` label sets besides other, and other was used.
    let text = live.metrics().encode();
    let sets: std::collections::BTreeSet<String> = text
        .lines()
        .filter(|l| l.starts_with("fsync_trace_sync_latency_seconds_count{"))
        .filter_map(|l| {
            l.split_once("cgroup=")
                .map(|(_, r)| r.split_once(',').unwrap().0.to_string())
        })
        .collect();
    assert!(sets.contains("\"other\""), "{sets:?}");
    assert_eq!(sets.len(), top + 1, "{sets:?}");
    // Nothing lost: the labeled series add up to every sync seen.
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("fsync_trace_sync_latency_seconds_count{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    let expected: u64 = (0..12u64)
        .flat_map(|r| (0..4u64).map(move |k| 1 + (r + k) % 5 + u64::from(k == 3)))
        .sum();
    assert_eq!(total, expected as f64);
}

#[test]
fn ack_lags_and_broken_acks_are_counted_under_the_given_workload() {
    let (mut live, mut state) = labeled_live(1);
    let a = k8s(POD_A, ID_A);
    in_cgroup(&mut state, 10, &a);
    // As the event loop does with --wal: the labels of the process whose event measured them.
    let wa = live.workload_of(Some(10), &state);
    live.observe_ack_lag(2_000_000, &wa);
    live.add_broken_acks(3, wa);
    let other = live.workload_of(Some(99), &state);
    live.observe_ack_lag(1_000, &other);
    let text = live.metrics().encode();
    let la = format!("cgroup=\"{a}\",container=\"{ID_A}\",pod=\"{POD_A}\"");
    assert_eq!(
        sample(
            &text,
            &format!("fsync_trace_ack_durability_lag_seconds_count{{{la}}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("fsync_trace_findings_total{{kind=\"ack_before_durable\",{la}}}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "fsync_trace_ack_durability_lag_seconds_count{cgroup=\"other\",container=\"other\",pod=\"other\"}"
        ),
        Some(1.0)
    );
}

/// A process whose cgroup was never read (gone before /proc was) takes its nearest labeled
/// ancestor's, read when used: a parent relabeled later counts.
#[test]
fn a_process_without_a_cgroup_takes_its_ancestors() {
    let mut state = DurabilityState::new(NoResolver);
    state.add_process(10, "sh");
    state.describe_process(11, Some("child".into()), None, Some(10));
    state.describe_process(12, Some("grandchild".into()), None, Some(11));
    assert!(state.workload_of(12).is_none());
    state.label_process(10, Some(workload(&k8s(POD_A, ID_A))));
    let w = state.workload_of(12).expect("the shell's");
    assert_eq!(w.container.as_deref(), Some(ID_A));
    state.label_process(12, Some(workload("/system.slice/cron.service")));
    assert_eq!(
        state.workload_of(12).map(|w| w.cgroup.as_str()),
        Some("/system.slice/cron.service")
    );
    assert!(state.workload_of(99).is_none(), "unknown process");
}
