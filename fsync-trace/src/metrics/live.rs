//! What the trace feeds the exporter: per-event updates of the counters and histograms, and
//! the data-at-risk snapshot rebuilt from the state machine and the kernel's counters.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use fsync_trace_common::{FileCounters, FileKey};

use super::{workload::LabelSelector, *};

/// What the event loop keeps to feed [`Metrics`]: everything here is owned by the loop.
pub struct LiveMetrics {
    pub(super) m: Metrics,
    devices: HashSet<u32>,
    /// With `--metrics-labels`: which label sets have series of their own.
    selector: Option<LabelSelector>,
    findings_seen: usize,
    exit_counts: (u64, u64),
    lost: [u64; 5],
}

impl LiveMetrics {
    pub fn new(metrics: Metrics) -> Self {
        LiveMetrics {
            selector: metrics.labels.map(|(c, top)| LabelSelector::new(c, top)),
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

    /// True with `--metrics-labels`: the event loop then settles each event as it is applied
    /// ([`LiveMetrics::after_event`]), so what it caused is counted under its process.
    pub fn labeled(&self) -> bool {
        self.selector.is_some()
    }

    /// The label set to count an act of process `pid` under (none without labels). A label
    /// set used for the first time gets its fixed series.
    pub fn workload_of<R: Resolver>(
        &mut self,
        pid: Option<u32>,
        state: &DurabilityState<R>,
    ) -> WorkloadLabels {
        let Some(sel) = self.selector.as_mut() else {
            return WorkloadLabels::default();
        };
        let picked = sel.select(pid.and_then(|p| state.workload_of(p)));
        if picked.new {
            self.m.create_series(&picked.labels);
        }
        picked.labels
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
        let w = self.workload_of(Some(ev.actor.pid), state);
        let secs = ev.ts.saturating_sub(*enter_ns) as f64 / 1e9;
        let labels = SyncLabels {
            op: op.name(),
            device,
        };
        self.m
            .sync_latency
            .get_or_create(&(labels, w.clone()))
            .observe(secs);
        if *ret < 0 {
            self.m
                .sync_errors
                .get_or_create(&(OpLabel { op: op.name() }, w))
                .inc();
        }
    }

    /// With `--metrics-labels`, after each event the state machine applied: what it caused
    /// (exit findings, closed dirty windows, covered writes) is counted under process `pid`.
    pub fn after_event<R: Resolver>(&mut self, pid: u32, state: &mut DurabilityState<R>) {
        self.settle(state, Some(pid));
    }

    /// After a batch of events went through the state machine: findings and dirty windows
    /// (without labels; with them, what [`LiveMetrics::after_event`] left, e.g. from device
    /// flushes, which no process issues).
    pub fn after_batch<R: Resolver>(&mut self, state: &mut DurabilityState<R>) {
        self.settle(state, None);
    }

    fn settle<R: Resolver>(&mut self, state: &mut DurabilityState<R>, actor: Option<u32>) {
        let found = state.findings_so_far();
        let new: Vec<(FindingKind, u32)> = found
            .get(self.findings_seen..)
            .unwrap_or(&[])
            .iter()
            .map(|f| (f.kind, f.pid))
            .collect();
        self.findings_seen = found.len();
        for (kind, pid) in new {
            let w = self.workload_of(Some(pid), state);
            self.m
                .findings
                .get_or_create(&(KindLabel { kind: kind.name() }, w))
                .inc();
        }
        let (writes, entries) = state.unsynced_at_exit();
        let (w0, e0) = self.exit_counts;
        for (kind, n) in [
            (FindingKind::UnsyncedWrite, writes.saturating_sub(w0)),
            (FindingKind::UnsyncedParentDir, entries.saturating_sub(e0)),
        ] {
            if n > 0 {
                let w = self.workload_of(actor, state);
                self.m
                    .findings
                    .get_or_create(&(KindLabel { kind: kind.name() }, w))
                    .inc_by(n);
            }
        }
        self.exit_counts = (writes, entries);
        let mut windows = Vec::new();
        state.drain_dirty_windows(|ns| windows.push(ns));
        let mut covered = Vec::new();
        state.drain_covered(|writes, was_redundant| covered.push((writes, was_redundant)));
        if windows.is_empty() && covered.is_empty() {
            return;
        }
        let w = self.workload_of(actor, state);
        let window = self.m.dirty_window.get(&w);
        for ns in windows {
            window.observe(ns as f64 / 1e9);
        }
        if !covered.is_empty() {
            let per_sync = self.m.writes_per_sync.get(&w);
            let redundant = self.m.redundant_syncs.get(&w);
            for (writes, was_redundant) in covered {
                per_sync.observe(writes as f64);
                if was_redundant {
                    redundant.inc();
                }
            }
        }
    }

    /// With `--wal`: the durability lag of one reply sent before its log data was durable,
    /// counted under `w`.
    pub fn observe_ack_lag(&mut self, ns: u64, w: &WorkloadLabels) {
        self.m.ack_lag.get(w).observe(ns as f64 / 1e9);
    }

    /// With `--wal`: `n` more replies broke the write-ahead-log contract, counted under `w`.
    pub fn add_broken_acks(&mut self, n: u64, w: WorkloadLabels) {
        if n > 0 {
            self.m
                .findings
                .get_or_create(&(
                    KindLabel {
                        kind: FindingKind::AckBeforeDurable.name(),
                    },
                    w,
                ))
                .inc_by(n);
        }
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
        let mut snap = build_snapshot(state, counters, self.m.top_files, |d| {
            device_label(devices, d)
        });
        if let Some(sel) = &self.selector {
            snap.by_workload = by_workload(state, counters, sel);
        }
        self.m.snapshot.set(snap);
    }
}

/// Unsynced bytes by the label set of the process that first dirtied them (gauges: label sets
/// are looked up, never admitted here; the unadmitted in `other`).
fn by_workload<R: Resolver>(
    state: &DurabilityState<R>,
    counters: &HashMap<FileKey, FileCounters>,
    sel: &LabelSelector,
) -> Vec<(WorkloadLabels, u64)> {
    let mut sums: HashMap<WorkloadLabels, u64> = HashMap::new();
    for f in state.files() {
        if f.removed || f.is_dir {
            continue;
        }
        let Some(first) = f.dirty.first() else {
            continue;
        };
        let c = counters.get(&f.key).copied().unwrap_or_default();
        let (_, bytes, _) = f.unsynced(&c);
        let w = sel.lookup(state.workload_of(first.actor.pid));
        *sums.entry(w).or_default() += bytes;
    }
    let mut out: Vec<_> = sums.into_iter().collect();
    out.sort_by_key(|w| std::cmp::Reverse(w.1));
    out
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
                    .path_str()
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
