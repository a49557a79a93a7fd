//! `--metrics-labels cgroup,container,pod` with a small `--metrics-top`: workloads run in cgroup
//! v2 subtrees made here with the names a kubelet (systemd driver) and containerd give (two
//! containers of two pods) and a plain service; each label set's samples are exact, the third
//! workload lands in `other`, and promtool accepts the scrape.
use super::*;

const ID_A: &str = "4f1c9b2e8d7a6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615f4e3";
const ID_B: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";
const POD_A: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
const POD_B: &str = "11111111-2222-3333-4444-555555555555";
/// fdatasyncs of each workload (fsync-bound --records).
const RECORDS: u32 = 25;

/// A kubelet (systemd driver) pod slice holding a containerd scope, under `top`.
fn k8s(top: &str, pod: &str, id: &str) -> String {
    format!(
        "{top}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{id}.scope",
        pod.replace('-', "_")
    )
}

/// One workload: a shell that joins cgroup `rel` at once, waits for "go", runs fsync-bound,
/// marks it finished (a shell builtin: a `touch` would be one more process leaving an
/// unsynced entry), then waits for "done".
struct Workload {
    sh: Shell,
    dir: PathBuf,
    _tmp: TempDir,
    /// The label set its series carry (what follows `,` after the family's own labels).
    labels: String,
}

impl Workload {
    fn start(tree: &Subtree, rel: &str, container: &str, pod: &str) -> Workload {
        let run = format!("fsync-bound \"$D\" --records {RECORDS}");
        Self::start_with(tree, rel, container, pod, &run)
    }

    /// The same, running the workload subcommand `run` (arguments included).
    fn start_with(tree: &Subtree, rel: &str, container: &str, pod: &str, run: &str) -> Workload {
        let (tmp, dir) = tempdir("fsync-trace-labels.");
        let script = format!(
            "echo $$ > {}/cgroup.procs && read go && \"$W\" {run} && : > \"$D/finished\"; read done",
            tree.dir(rel)
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .env("W", workload())
            .env("D", &dir)
            .stdin(Stdio::piped())
            .spawn()
            .expect("starting sh");
        let stdin = child.stdin.take().unwrap();
        let sh = Shell {
            child: Reaped(child),
            stdin,
        };
        let procs = tree.dir(&format!("{rel}/cgroup.procs"));
        let pid = sh.pid().to_string();
        wait_for("the shell in its cgroup", || {
            std::fs::read_to_string(&procs)
                .ok()
                .filter(|p| p.lines().any(|l| l == pid))
        });
        Workload {
            sh,
            dir,
            _tmp: tmp,
            labels: format!("cgroup=\"/{rel}\",container=\"{container}\",pod=\"{pod}\""),
        }
    }

    /// Runs the workload and waits until it has finished.
    fn run(&mut self) {
        self.sh.say("go");
        let done = self.dir.join("finished");
        wait_for("the workload to finish", || done.exists().then_some(()));
    }

    fn syncs(&self, text: &str, labels: &str) -> Option<f64> {
        sample(
            text,
            &format!(
                "fsync_trace_sync_latency_seconds_count{{op=\"fdatasync\",device=\"{}\",{labels}}}",
                device_of(&self.dir)
            ),
        )
    }
}

/// Scrapes until `ok` holds; the last scrape in the failure after [`TIMEOUT`].
fn scrape_until(tracer: &Tracer, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let t = tracer.scrape();
        if ok(&t) {
            return t;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "gave up waiting for {what}; last scrape:\n{t}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

const OTHER: &str = "cgroup=\"other\",container=\"other\",pod=\"other\"";

fn parent_dir_findings(text: &str, labels: &str) -> Option<f64> {
    sample(
        text,
        &format!("fsync_trace_findings_total{{kind=\"unsynced_parent_dir\",{labels}}}"),
    )
}

/// The distinct workload label sets of the fdatasync latency series.
fn label_sets(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("fsync_trace_sync_latency_seconds_count{op=\"fdatasync\""))
        .filter_map(|l| {
            let (series, _) = l.rsplit_once(' ')?;
            let at = series.find("cgroup=")?;
            Some(series[at..series.len() - 1].to_string())
        })
        .collect()
}

/// The three shells start in their cgroups, the tracer traces the subtree (`--cgroup`): only
/// these workloads are seen, so the admission order is theirs and every value is exact.
#[test]
#[ignore = "needs root"]
fn each_workload_has_its_labels_and_past_the_top_n_they_are_other() {
    let top = format!("fsync-trace-test-labels-{}", std::process::id());
    let (a, b, c) = (
        k8s(&top, POD_A, ID_A),
        k8s(&top, POD_B, ID_B),
        format!("{top}/system.slice/app.service"),
    );
    let tree = Subtree::new(&top).with(&a).with(&b).with(&c);
    let mut wa = Workload::start(&tree, &a, ID_A, POD_A);
    let mut wb = Workload::start(&tree, &b, ID_B, POD_B);
    let mut wc = Workload::start(&tree, &c, "", "");
    let tracer = Tracer::start(&[
        "--cgroup",
        &format!("/{top}"),
        "--metrics-labels",
        "cgroup,container,pod",
        "--metrics-top",
        "2",
    ]);
    let prom = Prometheus::start(tracer.addr);
    let n = f64::from(RECORDS);
    // One at a time: A and B take the two label sets, C is counted as other.
    for (w, labels) in [(&mut wa, None), (&mut wb, None), (&mut wc, Some(OTHER))] {
        w.run();
        let labels = labels.map_or(w.labels.clone(), str::to_string);
        scrape_until(&tracer, &format!("{labels}: syncs and exit finding"), |t| {
            w.syncs(t, &labels) == Some(n) && parent_dir_findings(t, &labels) == Some(1.0)
        });
    }
    let text = tracer.scrape();
    assert_eq!(wa.syncs(&text, &wa.labels), Some(n), "{text}");
    assert_eq!(wb.syncs(&text, &wb.labels), Some(n), "{text}");
    assert_eq!(
        wc.syncs(&text, &wc.labels),
        None,
        "C is past the top 2: {text}"
    );
    assert_eq!(wc.syncs(&text, OTHER), Some(n), "{text}");
    assert_eq!(
        label_sets(&text),
        [wa.labels.clone(), wb.labels.clone(), OTHER.to_string()]
            .into_iter()
            .collect(),
        "{text}"
    );
    // Every admitted label set has its fixed series, and a service's container is "".
    for labels in [&wa.labels, &wb.labels, &OTHER.to_string()] {
        assert_eq!(
            sample(
                &text,
                &format!("fsync_trace_sync_errors_total{{op=\"fsync\",{labels}}}")
            ),
            Some(0.0),
            "{labels}: {text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!("fsync_trace_writes_per_sync_count{{{labels}}}")
            ),
            Some(n),
            "{labels}: {text}"
        );
    }
    assert!(wc.labels.contains("container=\"\",pod=\"\""));
    // Kernel counters (per file) stay unlabeled.
    assert!(text.contains("\nfsync_trace_writes_total "), "{text}");
    promtool_check(&text);
    // A real Prometheus stores them apart: by container, and three label sets in all.
    let by_a = format!(
        "sum(fsync_trace_sync_latency_seconds_count{{op=\"fdatasync\",container=\"{ID_A}\"}})"
    );
    wait_for("prometheus to see A's syncs", || {
        prom.value(&by_a).filter(|&v| v == n)
    });
    let sets = "count(count by (cgroup, container, pod) (fsync_trace_sync_latency_seconds_count{op=\"fdatasync\"}))";
    wait_for("prometheus to see the other label set", || {
        prom.value(sets).filter(|&v| v == 3.0)
    });
    let other = "sum(fsync_trace_sync_latency_seconds_count{op=\"fdatasync\",pod=\"other\"})";
    wait_for("prometheus to see C's syncs in other", || {
        prom.value(other).filter(|&v| v == n)
    });
    for w in [&mut wa, &mut wb, &mut wc] {
        w.sh.say("done");
    }
    assert_eq!(tracer.wait(), 0);
}

/// Daemon mode (`--all`): the same workloads among whatever else runs on the machine. Each
/// shell moves itself into its cgroup after the fork, and the tracer only sees the workload
/// once it runs: the cgroup id the kernel puts in each record labels it, even where /proc was
/// read before the move or after the exit. With room for every set (`--metrics-top 8`; the
/// root cgroup's processes take one), each workload has exactly its own syncs.
#[test]
#[ignore = "needs root"]
fn all_with_labels_counts_each_workload_under_its_own_labels() {
    let top = format!("fsync-trace-test-labels-all-{}", std::process::id());
    let (a, b, c) = (
        k8s(&top, POD_A, ID_A),
        k8s(&top, POD_B, ID_B),
        format!("{top}/system.slice/app.service"),
    );
    let tree = Subtree::new(&top).with(&a).with(&b).with(&c);
    let tracer = Tracer::start(&[
        "--all",
        "--metrics-labels",
        "cgroup,container,pod",
        "--metrics-top",
        "8",
    ]);
    let tracer_pid = tracer.child.0.id();
    let mut ws = [
        Workload::start(&tree, &a, ID_A, POD_A),
        Workload::start(&tree, &b, ID_B, POD_B),
        Workload::start(&tree, &c, "", ""),
    ];
    let n = f64::from(RECORDS);
    for w in ws.iter_mut() {
        w.run();
    }
    let text = scrape_until(&tracer, "the three workloads' syncs", |t| {
        ws.iter()
            .all(|w| w.syncs(t, &w.labels).is_some_and(|v| v >= n))
    });
    for w in &ws {
        assert_eq!(w.syncs(&text, &w.labels), Some(n), "{}: {text}", w.labels);
    }
    let sets = label_sets(&text);
    assert!(
        sets.len() <= 9,
        "at most --metrics-top 8 sets and other: {sets:?}"
    );
    promtool_check(&text);
    for w in ws.iter_mut() {
        w.sh.say("done");
    }
    // SAFETY: plain syscall on our own child.
    assert_eq!(unsafe { libc::kill(tracer_pid as i32, libc::SIGTERM) }, 0);
    assert_eq!(tracer.wait(), 0);
}

/// `--wal` with labels: a server in a pod's container replying before its log is durable; each
/// lag and each broken ack is counted under its container and pod (`container,pod` only, as the
/// DaemonSet does).
#[test]
#[ignore = "needs root"]
fn wal_lags_and_broken_acks_carry_the_servers_labels() {
    let top = format!("fsync-trace-test-labels-wal-{}", std::process::id());
    let a = k8s(&top, POD_A, ID_A);
    let tree = Subtree::new(&top).with(&a);
    let mut w = Workload::start_with(
        &tree,
        &a,
        ID_A,
        POD_A,
        "wal-server \"$D\" --requests 30 --order reply-then-sync",
    );
    let tracer = Tracer::start(&[
        "--cgroup",
        &format!("/{top}"),
        "--wal",
        "**/wal/*",
        "--metrics-labels",
        "container,pod",
    ]);
    w.run();
    let labels = format!("container=\"{ID_A}\",pod=\"{POD_A}\"");
    let text = scrape_until(&tracer, "30 labeled lags and broken acks", |t| {
        sample(
            t,
            &format!("fsync_trace_ack_durability_lag_seconds_count{{{labels}}}"),
        ) == Some(30.0)
            && sample(
                t,
                &format!("fsync_trace_findings_total{{kind=\"ack_before_durable\",{labels}}}"),
            ) == Some(30.0)
    });
    // Nothing unlabeled, nothing elsewhere.
    assert!(
        !text.contains("\nfsync_trace_ack_durability_lag_seconds_count "),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("fsync_trace_ack_durability_lag_seconds_count{"))
            .count(),
        1,
        "{text}"
    );
    promtool_check(&text);
    w.sh.say("done");
    assert_eq!(tracer.wait(), 0);
}
