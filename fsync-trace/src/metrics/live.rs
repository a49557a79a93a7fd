//! What the trace feeds the exporter: per-event updates of the counters and histograms, and
//! the data-at-risk snapshot rebuilt from the state machine and the kernel's counters.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use fsync_trace_common::{FileCounters, FileKey};

use super::*;

/// What the event loop keeps to feed [`Metrics`]: everything here is owned by the loop.
pub struct LiveMetrics {
    pub(super) m: Metrics,
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

    /// With `--wal`: the durability lag of one reply sent before its log data was durable.
    pub fn observe_ack_lag(&mut self, ns: u64) {
        self.m.ack_lag.observe(ns as f64 / 1e9);
    }

    /// With `--wal`: `n` more replies broke the write-ahead-log contract.
    pub fn add_broken_acks(&mut self, n: u64) {
        if n > 0 {
            self.m
                .findings
                .get_or_create(&KindLabel {
                    kind: FindingKind::AckBeforeDurable.name(),
                })
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
