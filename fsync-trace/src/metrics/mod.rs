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
//! Workload labels (`--metrics-labels`) exist on at most `--metrics-top` label sets plus
//! `other`, admitted for good (workload.rs says why: counters must never go back).
//!
//! Findings are final only at the end of a trace (`DurabilityState::finish`); live, they are
//! counted as follows: `rename_before_fsync`, `fsync_error` and `fsync_retry_after_error` when the
//! state machine records them (as the event happens); `unsynced_write` and `unsynced_parent_dir`
//! when a traced process exits leaving data it dirtied unsynced (one per file) or directory
//! entries it changed unsynced (one per entry name). Processes still running when tracing stops
//! are not counted there (the final report has them).
mod exporter;
mod live;
pub mod server;
pub mod workload;

pub use exporter::{next_scan, Exporter};
pub use live::{CountersSnapshot, LiveMetrics};
use workload::MaybeLabeled;
pub use workload::{LabelChoice, WorkloadLabels};

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use fsync_trace_common::{kdev_major, kdev_minor, SyncOp};
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

fn window_histogram() -> Histogram {
    Histogram::new(window_buckets())
}

fn writes_per_sync_histogram() -> Histogram {
    Histogram::new(writes_per_sync_buckets())
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
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
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
    /// With `--metrics-labels`: unsynced bytes by the workload of the process that first
    /// dirtied them (admitted label sets, the rest in `other`).
    pub by_workload: Vec<(WorkloadLabels, u64)>,
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
    per_workload: bool,
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
        if self.per_workload {
            let mut m = encoder.encode_descriptor(
                "workload_unsynced",
                "Unsynced bytes by the workload (--metrics-labels) of the process that first dirtied them since the file's last sync (the label sets admitted by --metrics-top, the rest as \"other\").",
                Some(&Unit::Bytes),
                MetricType::Gauge,
            )?;
            for (labels, bytes) in &snap.by_workload {
                ConstGauge::new(*bytes).encode(m.encode_family(labels)?)?;
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
    sync_latency: Family<(SyncLabels, WorkloadLabels), Histogram>,
    sync_errors: Family<(OpLabel, WorkloadLabels), Counter>,
    dirty_window: MaybeLabeled<Histogram>,
    ack_lag: MaybeLabeled<Histogram>,
    writes_per_sync: MaybeLabeled<Histogram>,
    redundant_syncs: MaybeLabeled<Counter>,
    writes: Counter,
    written_bytes: Counter,
    findings: Family<(KindLabel, WorkloadLabels), Counter>,
    lost: Family<ReasonLabel, Counter>,
    events: Counter,
    snapshot: Arc<SnapshotCell>,
    top_files: usize,
    /// `--metrics-labels` and `--metrics-top`.
    labels: Option<(LabelChoice, usize)>,
}

impl Metrics {
    /// A registry for tier `tier`; per-file series for the `top_files` files most at risk
    /// (0: none; at most [`MAX_TOP_FILES`]).
    #[cfg(test)]
    pub fn new(tier: &str, top_files: usize) -> Self {
        Self::with_labels(tier, top_files, None)
    }

    /// [`Metrics::new`], with the workload labels `labels` (`--metrics-labels`) on at most
    /// `top` label sets besides `other` (`--metrics-top`).
    pub fn with_labels(tier: &str, top_files: usize, labels: Option<(LabelChoice, usize)>) -> Self {
        let top_files = top_files.min(MAX_TOP_FILES);
        let labels = labels.filter(|(c, _)| c.any());
        // What each labeled family's workload labels mean (empty without --metrics-labels).
        let by = |whose: &str| {
            if labels.is_some() {
                format!("; workload labels (--metrics-labels) of {whose}")
            } else {
                String::new()
            }
        };
        let mut registry = Registry::with_prefix(PREFIX);
        let sync_latency = Family::<(SyncLabels, WorkloadLabels), Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "sync_latency",
            format!("Latency of sync-family calls of traced processes, by call and filesystem device (MAJ:MIN){}", by("the calling process")),
            Unit::Seconds,
            sync_latency.clone(),
        );
        let sync_errors = Family::<(OpLabel, WorkloadLabels), Counter>::default();
        registry.register(
            "sync_errors",
            format!(
                "Sync-family calls that failed, by call{}",
                by("the calling process")
            ),
            sync_errors.clone(),
        );
        let dirty_window = MaybeLabeled::register(
            &mut registry,
            "dirty_window",
            format!("Time from a file's first unsynced write (or mapped store) to the durable point that covered it{}", by("the process whose sync closed the window (a sync(2) or syncfs(2) closes other processes' windows too)")),
            Some(Unit::Seconds),
            labels.is_some(),
            window_histogram,
        );
        let ack_lag = MaybeLabeled::register(
            &mut registry,
            "ack_durability_lag",
            format!("With --wal: time from a reply sent before the sender's write-ahead-log data was durable to the sync that made it durable{}", by("the process whose sync ended the lag")),
            Some(Unit::Seconds),
            labels.is_some(),
            window_histogram,
        );
        let writes_per_sync = MaybeLabeled::register(
            &mut registry,
            "writes_per_sync",
            format!("Writes each fsync/fdatasync of a file covered (since the file's previous sync): many syncs at 1 or 2 are one sync per record, where group commit would pay less{}", by("the syncing process; the writes may be other processes'")),
            None,
            labels.is_some(),
            writes_per_sync_histogram,
        );
        let redundant_syncs = MaybeLabeled::register(
            &mut registry,
            "redundant_syncs",
            format!("fsync/fdatasync calls with nothing to make durable (no write, truncation, mapped store or entry change since the file's previous successful sync){}", by("the syncing process")),
            None,
            labels.is_some(),
            Counter::default,
        );
        let writes = Counter::default();
        registry.register("writes", "Writes by traced processes to files on durable filesystems (kernel counters, refreshed at most once a second; per file, not per process, so never workload-labeled)", writes.clone());
        let written_bytes = Counter::default();
        registry.register_with_unit(
            "written",
            "Bytes written by traced processes to files on durable filesystems (kernel counters, refreshed at most once a second; per file, not per process, so never workload-labeled)",
            Unit::Bytes,
            written_bytes.clone(),
        );
        let findings = Family::<(KindLabel, WorkloadLabels), Counter>::default();
        registry.register(
            "findings",
            format!("Durability findings, by kind; unsynced_write and unsynced_parent_dir are counted when the process that caused them exits{}", by("the process the finding names (for ack_before_durable, the replying process)")),
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
            per_workload: labels.is_some(),
        }));
        for reason in LostCounts::REASONS {
            let _ = lost.get_or_create(&ReasonLabel { reason });
        }
        let m = Metrics {
            registry: Arc::new(registry),
            sync_latency,
            sync_errors,
            dirty_window,
            ack_lag,
            writes_per_sync,
            redundant_syncs,
            writes,
            written_bytes,
            findings,
            lost,
            events,
            snapshot,
            top_files,
            labels,
        };
        if labels.is_none() {
            // Without workload labels every family has its one unlabeled series from the start.
            let none = WorkloadLabels::default();
            m.create_series(&none);
        }
        m
    }

    /// The counter series of label set `w` that exist from its first use, so rate() and alerts
    /// see zeros instead of nothing.
    fn create_series(&self, w: &WorkloadLabels) {
        for op in SYNC_OPS {
            let _ = self
                .sync_errors
                .get_or_create(&(OpLabel { op: op.name() }, w.clone()));
        }
        // Durability bugs only: advice is judged at the end of a trace (redundant syncs have
        // their own counter).
        for kind in FindingKind::BUGS {
            let _ = self
                .findings
                .get_or_create(&(KindLabel { kind: kind.name() }, w.clone()));
        }
        let _ = self.redundant_syncs.get(w);
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

#[cfg(test)]
mod tests;
