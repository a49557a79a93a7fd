//! "What would a power cut at instant T have lost?", over the recorded [`Timeline`]: the files
//! whose data was still at risk and the directory entries not yet durable at T (exact: from
//! the recorded intervals and durable points), with the bytes each had at risk (exact from the
//! entry of the sync that covered them, a lower bound before: the last counter reading), and
//! the instant with the most bytes at risk (the exposure peak).
//!
//! A sync call makes data durable when it *returns*: at an instant inside a sync call the data
//! it covers is still at risk. Data written while it runs is not covered (it started a new
//! interval). A directory entry changed while a directory fsync runs is not covered either.
use std::{collections::BTreeMap, sync::Arc};

use fsync_trace_common::FileKey;

use super::{
    timeline::{Count, Timeline},
    EntryOp,
};
use crate::extent::Extent;

/// A file with data at risk at an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAtRisk {
    pub key: FileKey,
    pub path: Option<Arc<str>>,
    /// Written since `since` and not durable (see the module doc on exactness).
    pub written: Count,
    /// When its oldest data at risk was written (ns).
    pub since: u64,
    /// `written` is exact (else a lower bound).
    pub exact: bool,
    /// Changes at risk that wrote no data (`Change::bit`s: truncate, fallocate).
    pub changes: u8,
    /// The dirty extent of `written` (exact when `written` is, else that of the same reading).
    pub extent: Extent,
}

/// A directory entry whose change is not durable at an instant (its last change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryAtRisk {
    pub dir: FileKey,
    pub dir_path: Option<Arc<str>>,
    pub entry: Box<str>,
    pub op: EntryOp,
}

/// What a power cut at `at` (ns) loses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AtRisk {
    pub at: u64,
    /// Most bytes first, then by path.
    pub files: Vec<FileAtRisk>,
    /// By directory, then entry name.
    pub entries: Vec<EntryAtRisk>,
}

impl AtRisk {
    /// `files` by most bytes first (then path), `entries` by directory and name.
    pub fn sorted(at: u64, mut files: Vec<FileAtRisk>, mut entries: Vec<EntryAtRisk>) -> Self {
        files.sort_by(|a, b| {
            b.written
                .bytes
                .cmp(&a.written.bytes)
                .then_with(|| a.path.cmp(&b.path))
                .then(a.key.cmp(&b.key))
        });
        entries.sort_by(|a, b| {
            a.dir_path
                .cmp(&b.dir_path)
                .then(a.dir.cmp(&b.dir))
                .then_with(|| a.entry.cmp(&b.entry))
        });
        AtRisk { at, files, entries }
    }

    /// Every file's bytes are exact.
    pub fn exact(&self) -> bool {
        self.files.iter().all(|f| f.exact)
    }

    /// Bytes at risk in all.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.written.bytes).sum()
    }
}

impl Timeline {
    /// What was at risk at `t` (ns).
    pub fn at_risk(&self, t: u64) -> AtRisk {
        let mut files = Vec::new();
        let mut entries = Vec::new();
        for lane in self.lanes() {
            let mut since = None;
            let mut written = Count::default();
            let mut exact = true;
            let mut changes = 0;
            let mut extent = Extent::Empty;
            for d in lane.dirty.iter().filter(|d| d.at_risk(t)) {
                changes |= d.changes;
                since = Some(since.map_or(d.from, |s: u64| s.min(d.from)));
                let (w, x, e) = d.written_at(t);
                written.writes += w.writes;
                written.bytes += w.bytes;
                extent = extent.union(x);
                exact &= e;
            }
            if let Some(since) = since {
                files.push(FileAtRisk {
                    key: lane.key,
                    path: lane.path.clone(),
                    written,
                    since,
                    exact,
                    changes,
                    extent,
                });
            }
            // Per name, its last change at risk.
            let mut last: BTreeMap<&str, EntryOp> = BTreeMap::new();
            for c in lane.entries.iter().filter(|c| c.at_risk(t)) {
                last.insert(&c.entry, c.op);
            }
            entries.extend(last.into_iter().map(|(entry, op)| EntryAtRisk {
                dir: lane.key,
                dir_path: lane.path.clone(),
                entry: entry.into(),
                op,
            }));
        }
        AtRisk::sorted(t, files, entries)
    }

    /// The instant with the most bytes at risk (ties: the most files and entries, then the
    /// earliest); None if nothing was ever at risk.
    pub fn exposure_peak(&self) -> Option<AtRisk> {
        // (time, change of bytes at risk, change of items at risk); at one instant what stops
        // being at risk goes first (a durable point at t: not at risk at t).
        // Sized once (a doubling Vec of 100,000 items' steps was the report's memory peak), and
        // 24 bytes a step: a byte delta fits an i64 (a single interval never writes 8 EiB).
        let bound = self
            .lanes()
            .map(|l| {
                l.dirty.iter().map(|d| 3 + d.readings.len()).sum::<usize>() + 2 * l.entries.len()
            })
            .sum();
        let mut steps: Vec<(u64, i64, i64)> = Vec::with_capacity(bound);
        let delta = |to: u64, from: u64| {
            i64::try_from(i128::from(to) - i128::from(from)).unwrap_or(if to > from {
                i64::MAX
            } else {
                i64::MIN
            })
        };
        for lane in self.lanes() {
            for d in &lane.dirty {
                steps.push((d.from, 0, 1));
                let mut at = 0u64;
                for &(ts, r, _) in d.readings.iter() {
                    steps.push((ts, delta(r.bytes, at), 0));
                    at = r.bytes;
                }
                if let (Some(c), Some(total)) = (d.covered_from.get(), d.total) {
                    steps.push((c, delta(total.bytes, at), 0));
                    at = total.bytes;
                }
                let until = d.until();
                if until != u64::MAX {
                    steps.push((until, delta(0, at), -1));
                }
            }
            for c in &lane.entries {
                steps.push((c.at, 0, 1));
                if let Some(until) = c.durable.get().or(c.cancelled.get()) {
                    steps.push((until, 0, -1));
                }
            }
        }
        steps.sort_unstable_by_key(|s| (s.0, s.2, s.1));
        let (mut bytes, mut items) = (0i128, 0i64);
        let mut best: Option<(i128, i64, u64)> = None;
        let mut i = 0;
        while i < steps.len() {
            let t = steps[i].0;
            while i < steps.len() && steps[i].0 == t {
                bytes += i128::from(steps[i].1);
                items += steps[i].2;
                i += 1;
            }
            if items > 0 && best.is_none_or(|(b, n, _)| (bytes, items) > (b, n)) {
                best = Some((bytes, items, t));
            }
        }
        best.map(|(_, _, t)| self.at_risk(t))
    }
}
