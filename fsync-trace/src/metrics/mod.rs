//! Prometheus / OpenMetrics endpoint (`--metrics ADDR`): live counters, histograms and gauges of
//! the trace, served on `/metrics` while tracing goes on (see `server.rs`).
//!
//! Built on [`prometheus_client`] rather than the older `prometheus` crate or hand-written text:
//! it is the official Rust client of the Prometheus project, it speaks OpenMetrics natively
//! (`_total` counters, `# UNIT`, info metrics, `# EOF`), its registry is typed (the kind, unit
//! and label set of every metric are Rust types, so a sample can never disagree with its
//! `# TYPE`), and it has no global state: every metric lives in one [`Metrics`] value, so tests
//! build as many independent registries as they like.
//!
//! Who touches what, so the endpoint stays responsive however fast events arrive:
//! - the event loop (run.rs) feeds every decoded event to [`LiveMetrics::observe`] and calls
//!   [`LiveMetrics::after_batch`] after each ring-buffer drain. That only updates counters
//!   (atomics) and histograms (a short per-histogram lock inside prometheus-client), looked up
//!   by label sets that are `Copy` values: a series is allocated once, by its first observation
//!   (or up front, for the fixed label values), never per event;
//! - gauges describing the current state (data at risk, per comm, per file) are computed by the
//!   event loop at most once a second ([`LiveMetrics::refresh`]) into an immutable [`Snapshot`]
//!   and published by swapping an `Arc` under a mutex held only for that pointer copy;
//! - the kernel's per-file counters (FILE_STATS: writes, bytes) are read on a thread of their own
//!   ([`spawn_file_stats_scanner`]), at most once a second, never on the event loop;
//! - the HTTP server encodes on a tokio worker thread and never touches the state machine.
//!
//! Label cardinality is bounded: no pid or path label by default; devices are capped at
//! [`MAX_DEVICES`] (then `device="other"`), comms at [`MAX_COMMS`] (then `comm="other"`), and
//! per-file series exist only with `--metrics-top-files N` (N <= [`MAX_TOP_FILES`]).
//!
//! Findings are final only at the end of a trace (`DurabilityState::finish`); live, they are
//! counted as follows: `rename_before_fsync`, `fsync_error` and `fsync_retry_after_error` when the
//! state machine records them (as the event happens); `unsynced_write` and `unsynced_parent_dir`
//! when a traced process exits leaving data it dirtied unsynced (one per file) or directory
//! entries it changed unsynced (one per entry name). Processes still running when tracing stops
//! are not counted there (the final report has them).
pub mod server;

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

use fsync_trace_common::{kdev_major, kdev_minor, FileCounters, FileKey, SyncOp};
use prometheus_client::{
    collector::Collector,
    encoding::{
        DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
        LabelValueEncoder,
    },
    metrics::{
        counter::Counter,
        family::Family,
        gauge::ConstGauge,
        histogram::{exponential_buckets, Histogram},
        info::Info,
        MetricType,
    },
    registry::{Registry, Unit},
};
use tokio::sync::watch;

use crate::{
    event::{Event, EventKind},
    report::monotonic_ns,
    state::{DurabilityState, FindingKind, Resolver},
    tracer::LostCounts,
};

/// Every metric name starts with this (and `_`).
pub const PREFIX: &str = "fsync_trace";
/// Distinct `device` label values before `device="other"`.
pub const MAX_DEVICES: usize = 64;
/// Distinct `comm` label values of `fsync_trace_comm_unsynced_bytes` (the most at risk), the
/// rest summed into `comm="other"`.
pub const MAX_COMMS: usize = 50;
/// Upper bound of `--metrics-top-files`.
pub const MAX_TOP_FILES: usize = 1000;
/// Gauges and kernel counters are refreshed at most this often.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Sync calls the latency histogram covers (o_sync_write is a write, not a call).
pub const SYNC_OPS: [SyncOp; 6] = [
    SyncOp::Fsync,
    SyncOp::Fdatasync,
    SyncOp::Msync,
    SyncOp::SyncFileRange,
    SyncOp::Syncfs,
    SyncOp::Sync,
];

/// Sync latency buckets: 10 µs doubling to ~10.5 s (21 buckets, then +Inf).
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(10e-6, 2.0, 21)
}

/// Dirty-window buckets: 1 ms, x4, to ~70 min (12 buckets, then +Inf).
fn window_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(1e-3, 4.0, 12)
}

/// Writes per sync: 0 (redundant), 1, 2 (one sync per record), then powers of two to 4096.
fn writes_per_sync_buckets() -> impl Iterator<Item = f64> {
    [0.0].into_iter().chain(exponential_buckets(1.0, 2.0, 13))
}

fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// The `device` label of a sync call: the filesystem's `MAJ:MIN`, `all` for sync(2) (every
/// filesystem), `none` when the call names no file on a durable filesystem (e.g. tmpfs, or an
/// msync range with no known shared file mapping), `other` past [`MAX_DEVICES`].
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Device {
    Dev(u32),
    All,
    None,
    Other,
}

impl EncodeLabelValue for Device {
    fn encode(&self, enc: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self {
            Device::Dev(d) => write!(enc, "{}:{}", kdev_major(*d), kdev_minor(*d)),
            Device::All => enc.write_str("all"),
            Device::None => enc.write_str("none"),
            Device::Other => enc.write_str("other"),
        }
    }
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    pub op: &'static str,
    pub device: Device,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    tier: String,
}

/// A label value escaped for the text formats once, when the snapshot is built
/// (prometheus-client writes label values as they are).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escaped(String);

impl Escaped {
    pub fn new(s: &str) -> Self {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        Escaped(out)
    }
}

impl EncodeLabelValue for &Escaped {
    fn encode(&self, enc: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        enc.write_str(&self.0)
    }
}

/// Data at risk now, computed by the event loop at most once a second.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub unsynced_bytes: u64,
    pub unsynced_files: u64,
    pub unsynced_dir_entries: u64,
    /// CLOCK_MONOTONIC ns of the oldest unsynced dirtying, if any (the age is taken at scrape).
    pub oldest_unsynced_ns: Option<u64>,
    /// (comm, unsynced bytes), most first, at most [`MAX_COMMS`] + `other`.
    pub by_comm: Vec<(Escaped, u64)>,
    /// The files with the most unsynced bytes (`--metrics-top-files`).
    pub top_files: Vec<FileRisk>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRisk {
    pub path: Escaped,
    pub device: Device,
    pub bytes: u64,
    pub since_ns: u64,
}

/// Publishes the latest [`Snapshot`] to scrapes: the lock is held for an `Arc` clone or swap.
#[derive(Debug, Default)]
struct SnapshotCell(Mutex<Arc<Snapshot>>);

impl SnapshotCell {
    fn get(&self) -> Arc<Snapshot> {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }
    fn set(&self, s: Snapshot) {
        if let Ok(mut g) = self.0.lock() {
            *g = Arc::new(s);
        }
    }
}

/// Encodes the snapshot gauges at scrape time (help texts end with a period here: unlike
/// `Registry::register`, `encode_descriptor` does not add one).
#[derive(Debug)]
struct SnapshotCollector {
    cell: Arc<SnapshotCell>,
    per_file: bool,
}

fn gauge<N: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: N,
) -> Result<(), std::fmt::Error> {
    let m = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.cell.get();
        let now = monotonic_ns();
        let age = |since: u64| now.saturating_sub(since) as f64 / 1e9;
        gauge(
            &mut encoder,
            "unsynced",
            "Bytes written by traced processes and not yet made durable (fsync/fdatasync/msync(MS_SYNC)/sync/syncfs).",
            Some(&Unit::Bytes),
            snap.unsynced_bytes,
        )?;
        gauge(
            &mut encoder,
            "unsynced_files",
            "Files holding data not yet made durable.",
            None,
            snap.unsynced_files,
        )?;
        gauge(
            &mut encoder,
            "unsynced_dir_entries",
            "Directory entry changes (create, rename, unlink, ...) whose directory was not fsynced since.",
            None,
            snap.unsynced_dir_entries,
        )?;
        gauge(
            &mut encoder,
            "oldest_unsynced_age",
            "Age of the oldest data not yet made durable (0 when there is none).",
            Some(&Unit::Seconds),
            snap.oldest_unsynced_ns.map(age).unwrap_or(0.0),
        )?;
        {
            let mut m = encoder.encode_descriptor(
                "comm_unsynced",
                "Unsynced bytes by the comm of the process that first dirtied them (the most at risk, the rest as comm=\"other\").",
                Some(&Unit::Bytes),
                MetricType::Gauge,
            )?;
            for (comm, bytes) in &snap.by_comm {
                ConstGauge::new(*bytes).encode(m.encode_family(&[("comm", comm)])?)?;
            }
        }
        if self.per_file {
            {
                let mut m = encoder.encode_descriptor(
                    "file_unsynced",
                    "Unsynced bytes of the files most at risk (--metrics-top-files).",
                    Some(&Unit::Bytes),
                    MetricType::Gauge,
                )?;
                for f in &snap.top_files {
                    let labels = ([("path", &f.path)], [("device", f.device)]);
                    ConstGauge::new(f.bytes).encode(m.encode_family(&labels)?)?;
                }
            }
            let mut m = encoder.encode_descriptor(
                "file_unsynced_age",
                "Age of the oldest unsynced data of the files most at risk (--metrics-top-files).",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            for f in &snap.top_files {
                let labels = ([("path", &f.path)], [("device", f.device)]);
                ConstGauge::new(age(f.since_ns)).encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The registry and handles of every metric.
pub struct Metrics {
    registry: Arc<Registry>,
    sync_latency: Family<SyncLabels, Histogram>,
    sync_errors: Family<OpLabel, Counter>,
    dirty_window: Histogram,
    writes_per_sync: Histogram,
    redundant_syncs: Counter,
    writes: Counter,
    written_bytes: Counter,
    findings: Family<KindLabel, Counter>,
    lost: Family<ReasonLabel, Counter>,
    events: Counter,
    snapshot: Arc<SnapshotCell>,
    top_files: usize,
}

impl Metrics {
    /// A registry for tier `tier`; per-file series for the `top_files` files most at risk
    /// (0: none; at most [`MAX_TOP_FILES`]).
    pub fn new(tier: &str, top_files: usize) -> Self {
        let top_files = top_files.min(MAX_TOP_FILES);
        let mut registry = Registry::with_prefix(PREFIX);
        let sync_latency = Family::<SyncLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "sync_latency",
            "Latency of sync-family calls of traced processes, by call and filesystem device (MAJ:MIN)",
            Unit::Seconds,
            sync_latency.clone(),
        );
        let sync_errors = Family::<OpLabel, Counter>::default();
        registry.register(
            "sync_errors",
            "Sync-family calls that failed, by call",
            sync_errors.clone(),
        );
        let dirty_window = Histogram::new(window_buckets());
        registry.register_with_unit(
            "dirty_window",
            "Time from a file's first unsynced write (or mapped store) to the durable point that covered it",
            Unit::Seconds,
            dirty_window.clone(),
        );
        let writes_per_sync = Histogram::new(writes_per_sync_buckets());
        registry.register(
            "writes_per_sync",
            "Writes each fsync/fdatasync of a file covered (since the file's previous sync): many syncs at 1 or 2 are one sync per record, where group commit would pay less",
            writes_per_sync.clone(),
        );
        let redundant_syncs = Counter::default();
        registry.register(
            "redundant_syncs",
            "fsync/fdatasync calls with nothing to make durable (no write, truncation, mapped store or entry change since the file's previous successful sync)",
            redundant_syncs.clone(),
        );
        let writes = Counter::default();
        registry.register("writes", "Writes by traced processes to files on durable filesystems (kernel counters, refreshed at most once a second)", writes.clone());
        let written_bytes = Counter::default();
        registry.register_with_unit(
            "written",
            "Bytes written by traced processes to files on durable filesystems (kernel counters, refreshed at most once a second)",
            Unit::Bytes,
            written_bytes.clone(),
        );
        let findings = Family::<KindLabel, Counter>::default();
        registry.register(
            "findings",
            "Durability findings, by kind; unsynced_write and unsynced_parent_dir are counted when the process that caused them exits",
            findings.clone(),
        );
        let lost = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "lost_events",
            "Events the tracer could not record, by reason (metrics and report undercount)",
            lost.clone(),
        );
        let events = Counter::default();
        registry.register("events", "Records received from the kernel", events.clone());
        registry.register(
            "build",
            "fsync-trace version and attach tier",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                tier: tier.into(),
            }),
        );
        let snapshot = Arc::new(SnapshotCell::default());
        registry.register_collector(Box::new(SnapshotCollector {
            cell: snapshot.clone(),
            per_file: top_files > 0,
        }));
        // Series that exist from the start, so rate() and alerts see zeros instead of nothing.
        for op in SYNC_OPS {
            let _ = sync_errors.get_or_create(&OpLabel { op: op.name() });
        }
        // Durability bugs only: advice is judged at the end of a trace (redundant syncs have
        // their own counter).
        for kind in FindingKind::BUGS {
            let _ = findings.get_or_create(&KindLabel { kind: kind.name() });
        }
        for reason in LostCounts::REASONS {
            let _ = lost.get_or_create(&ReasonLabel { reason });
        }
        Metrics {
            registry: Arc::new(registry),
            sync_latency,
            sync_errors,
            dirty_window,
            writes_per_sync,
            redundant_syncs,
            writes,
            written_bytes,
            findings,
            lost,
            events,
            snapshot,
            top_files,
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The OpenMetrics exposition (ends with `# EOF`).
    #[cfg(test)]
    pub fn encode(&self) -> String {
        encode_openmetrics(&self.registry)
    }
}

pub fn encode_openmetrics(registry: &Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// The classic Prometheus text format (0.0.4) of an OpenMetrics exposition produced by
/// prometheus-client, for clients that do not accept OpenMetrics (curl, promtool 2.x): counter
/// and info families are renamed to their sample names (`x` -> `x_total`, `x` -> `x_info`,
/// info becoming a gauge), `# UNIT` and `# EOF` are dropped. Samples are the same in both.
pub fn to_classic_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, _)) = help.take() {
                // A HELP without TYPE (not produced by prometheus-client): keep it.
                let _ = writeln!(out, "# HELP {name} {}", rest);
            }
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "unknown" => ("", "untyped"),
                k => ("", k),
            };
            if let Some((hname, text)) = help.take() {
                if hname == name {
                    let _ = writeln!(out, "# HELP {name}{suffix} {text}");
                } else {
                    let _ = writeln!(out, "# HELP {hname} {text}");
                }
            }
            let _ = writeln!(out, "# TYPE {name}{suffix} {kind}");
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What the event loop keeps to feed [`Metrics`]: everything here is owned by the loop.
pub struct LiveMetrics {
    m: Metrics,
    devices: HashSet<u32>,
    findings_seen: usize,
    exit_counts: (u64, u64),
    lost: [u64; 5],
}

impl LiveMetrics {
    pub fn new(metrics: Metrics) -> Self {
        LiveMetrics {
            m: metrics,
            devices: HashSet::new(),
            findings_seen: 0,
            exit_counts: (0, 0),
            lost: [0; 5],
        }
    }

    #[cfg(test)]
    pub fn metrics(&self) -> &Metrics {
        &self.m
    }

    /// One event, before the state machine applies it (so msync still finds its mapping).
    pub fn observe<R: Resolver>(&mut self, ev: &Event, state: &DurabilityState<R>) {
        self.m.events.inc();
        let EventKind::Sync {
            op,
            enter_ns,
            ret,
            file,
            addr,
            len,
            ..
        } = &ev.kind
        else {
            return;
        };
        if *op == SyncOp::SyncWrite {
            return;
        }
        let dev = match op {
            SyncOp::Sync => Some(Device::All),
            SyncOp::Msync => state.mapped_dev(ev.actor.pid, *addr, *len).map(Device::Dev),
            _ => file.map(|f| Device::Dev(f.dev)),
        };
        let device = match dev {
            Some(Device::Dev(d)) => device_label(&mut self.devices, d),
            Some(d) => d,
            None => Device::None,
        };
        let secs = ev.ts.saturating_sub(*enter_ns) as f64 / 1e9;
        self.m
            .sync_latency
            .get_or_create(&SyncLabels {
                op: op.name(),
                device,
            })
            .observe(secs);
        if *ret < 0 {
            self.m
                .sync_errors
                .get_or_create(&OpLabel { op: op.name() })
                .inc();
        }
    }

    /// After a batch of events went through the state machine: findings and dirty windows.
    pub fn after_batch<R: Resolver>(&mut self, state: &mut DurabilityState<R>) {
        let found = state.findings_so_far();
        for f in found.get(self.findings_seen..).unwrap_or(&[]) {
            self.m
                .findings
                .get_or_create(&KindLabel {
                    kind: f.kind.name(),
                })
                .inc();
        }
        self.findings_seen = found.len();
        let (writes, entries) = state.unsynced_at_exit();
        let (w0, e0) = self.exit_counts;
        if writes > w0 {
            self.m
                .findings
                .get_or_create(&KindLabel {
                    kind: FindingKind::UnsyncedWrite.name(),
                })
                .inc_by(writes - w0);
        }
        if entries > e0 {
            self.m
                .findings
                .get_or_create(&KindLabel {
                    kind: FindingKind::UnsyncedParentDir.name(),
                })
                .inc_by(entries - e0);
        }
        self.exit_counts = (writes, entries);
        let window = &self.m.dirty_window;
        state.drain_dirty_windows(|ns| window.observe(ns as f64 / 1e9));
        let (per_sync, redundant) = (&self.m.writes_per_sync, &self.m.redundant_syncs);
        state.drain_covered(|writes, was_redundant| {
            per_sync.observe(writes as f64);
            if was_redundant {
                redundant.inc();
            }
        });
    }

    /// The kernel's and decoder's loss counters (cumulative).
    pub fn set_lost(&mut self, lost: LostCounts) {
        let now = lost.by_reason();
        for (i, reason) in LostCounts::REASONS.iter().enumerate() {
            if now[i] > self.lost[i] {
                self.m
                    .lost
                    .get_or_create(&ReasonLabel { reason })
                    .inc_by(now[i] - self.lost[i]);
                self.lost[i] = now[i];
            }
        }
    }

    /// Recomputes the data-at-risk gauges from the state machine and the kernel's per-file
    /// counters (at most once a second: O(files known)).
    pub fn refresh<R: Resolver>(
        &mut self,
        state: &DurabilityState<R>,
        counters: &HashMap<FileKey, FileCounters>,
    ) {
        let devices = &mut self.devices;
        let snap = build_snapshot(state, counters, self.m.top_files, |d| {
            device_label(devices, d)
        });
        self.m.snapshot.set(snap);
    }
}

/// `MAJ:MIN` for the first [`MAX_DEVICES`] devices seen, `other` after that.
fn device_label(seen: &mut HashSet<u32>, dev: u32) -> Device {
    if seen.contains(&dev) || seen.len() < MAX_DEVICES {
        seen.insert(dev);
        Device::Dev(dev)
    } else {
        Device::Other
    }
}

fn build_snapshot<R: Resolver>(
    state: &DurabilityState<R>,
    counters: &HashMap<FileKey, FileCounters>,
    top_files: usize,
    mut device: impl FnMut(u32) -> Device,
) -> Snapshot {
    let mut s = Snapshot::default();
    let mut by_comm: HashMap<&str, u64> = HashMap::new();
    // (bytes, since, file) of every unsynced file, for the top-N.
    let mut files = Vec::new();
    for f in state.files() {
        if f.removed {
            continue;
        }
        if f.is_dir {
            s.unsynced_dir_entries += f.pending_count() as u64;
            continue;
        }
        let Some(first) = f.dirty.first() else {
            continue;
        };
        let c = counters.get(&f.key).copied().unwrap_or_default();
        let (_, bytes, _) = f.unsynced(&c);
        s.unsynced_files += 1;
        s.unsynced_bytes += bytes;
        s.oldest_unsynced_ns = Some(
            s.oldest_unsynced_ns
                .map_or(first.since, |o| o.min(first.since)),
        );
        *by_comm.entry(first.actor.comm.as_str()).or_default() += bytes;
        if top_files > 0 {
            files.push((bytes, first.since, f));
        }
    }
    let mut comms: Vec<(&str, u64)> = by_comm.into_iter().collect();
    comms.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let other: u64 = comms.iter().skip(MAX_COMMS).map(|c| c.1).sum();
    let has_other = comms.len() > MAX_COMMS;
    s.by_comm = comms
        .into_iter()
        .take(MAX_COMMS)
        .map(|(c, b)| (Escaped::new(c), b))
        .collect();
    if has_other {
        s.by_comm.push((Escaped::new("other"), other));
    }
    if top_files > 0 {
        files.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        s.top_files = files
            .into_iter()
            .take(top_files)
            .map(|(bytes, since, f)| {
                let path = f
                    .path
                    .as_deref()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("<unknown path: inode {}>", f.key.ino));
                FileRisk {
                    path: Escaped::new(&path),
                    device: device(f.key.dev),
                    bytes,
                    since_ns: since,
                }
            })
            .collect();
    }
    s
}

pub type CountersSnapshot = Arc<HashMap<FileKey, FileCounters>>;

/// Stops the scanner thread when dropped.
pub struct ScannerHandle {
    _stop: mpsc::Sender<()>,
}

/// Reads the kernel's per-file counters on a thread of its own: at most once a second, and
/// backing off to ten times the duration of a scan (a full FILE_STATS walk is two syscalls per
/// file). Adds the growth of the totals to the writes / written-bytes counters and hands each
/// scan to the event loop through the returned channel (for the unsynced-bytes gauges).
pub fn spawn_file_stats_scanner<F>(
    mut scan: F,
    metrics: &Metrics,
) -> (ScannerHandle, watch::Receiver<Option<CountersSnapshot>>)
where
    F: FnMut() -> Result<HashMap<FileKey, FileCounters>, String> + Send + 'static,
{
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (tx, rx) = watch::channel(None);
    let writes = metrics.writes.clone();
    let bytes = metrics.written_bytes.clone();
    let spawned = std::thread::Builder::new()
        .name("fsync-trace-stats".into())
        .spawn(move || {
            let (mut last_writes, mut last_bytes) = (0u64, 0u64);
            loop {
                let started = Instant::now();
                match scan() {
                    Ok(map) => {
                        let (w, b) = map.values().fold((0u64, 0u64), |(w, b), c| {
                            (
                                w + c.writes + c.sync_writes,
                                b + c.bytes + c.sync_write_bytes,
                            )
                        });
                        // Entries are never removed, so the sums only grow.
                        if w > last_writes {
                            writes.inc_by(w - last_writes);
                            last_writes = w;
                        }
                        if b > last_bytes {
                            bytes.inc_by(b - last_bytes);
                            last_bytes = b;
                        }
                        if tx.send(Some(Arc::new(map))).is_err() {
                            return; // the event loop is gone
                        }
                    }
                    Err(e) => log::warn!("reading FILE_STATS for metrics: {e}"),
                }
                let wait = (started.elapsed() * 10).clamp(REFRESH, Duration::from_secs(60));
                match stop_rx.recv_timeout(wait) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the FILE_STATS scanner: {e}");
    }
    (ScannerHandle { _stop: stop_tx }, rx)
}

/// Everything `--metrics` runs: the server (on the runtime), the counters scanner (a thread)
/// and the live metrics the event loop feeds.
pub struct Exporter {
    pub live: LiveMetrics,
    scans: Option<watch::Receiver<Option<CountersSnapshot>>>,
    _scanner: ScannerHandle,
}

impl Exporter {
    /// Starts serving `listener` on `runtime` (a multi-thread runtime, so scrapes are answered
    /// on a worker while the event loop runs). `read_counters` reads FILE_STATS.
    pub fn start<F>(
        listener: std::net::TcpListener,
        tier: &str,
        top_files: usize,
        read_counters: F,
        runtime: &tokio::runtime::Handle,
    ) -> Self
    where
        F: FnMut() -> Result<HashMap<FileKey, FileCounters>, String> + Send + 'static,
    {
        let metrics = Metrics::new(tier, top_files);
        let (scanner, scans) = spawn_file_stats_scanner(read_counters, &metrics);
        runtime.spawn(server::serve(listener, metrics.registry()));
        Exporter {
            live: LiveMetrics::new(metrics),
            scans: Some(scans),
            _scanner: scanner,
        }
    }
}

/// Waits for the next counters scan; pending forever without metrics or once the scanner is
/// gone (for `select!`).
pub async fn next_scan(exporter: &mut Option<Exporter>) -> Option<CountersSnapshot> {
    let Some(rx) = exporter.as_mut().and_then(|e| e.scans.as_mut()) else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_err() {
        if let Some(e) = exporter.as_mut() {
            e.scans = None;
        }
        return None;
    }
    let scan = rx.borrow_and_update().clone();
    scan
}

#[cfg(test)]
mod tests;
