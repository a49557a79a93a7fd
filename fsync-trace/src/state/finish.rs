//! The end of a trace: every file with its final counters, and the findings that are only
//! known then (data never made durable, entries whose directory was never synced).
use std::collections::BTreeMap;

use fsync_trace_common::{FileCounters, SyncOp};

use crate::event::Change;

use super::{
    advice::advice,
    device::{sync_without_flush, DeviceState},
    display_path,
    names::pending_by_name,
    DurabilityState, FileState, FinalCounters, Finding, FindingKind, OpStats, ProcessInfo,
    Released, Resolver,
};

/// The final state: every file with its counters (this life's, across reclaimed slots), and
/// all findings, worst first.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub files: Vec<(Box<FileState>, FileCounters)>,
    pub findings: Vec<Finding>,
    pub processes: Vec<ProcessInfo>,
    pub ops: BTreeMap<SyncOp, OpStats>,
    /// What long-run bounds released from memory before the end.
    pub released: Released,
    /// When the trace started and ended (CLOCK_MONOTONIC ns).
    pub start_ns: u64,
    pub end_ns: u64,
    /// The timeline, if recorded (its open intervals completed with the final counters).
    pub timeline: Option<Box<super::Timeline>>,
    /// Block devices traced files were synced on, with the flushes seen (None: flushes were
    /// not counted).
    pub devices: Option<Vec<(u32, DeviceState)>>,
}

impl<R: Resolver> DurabilityState<R> {
    /// Ends the trace at `end_ns` with the kernel's final per-file counters.
    pub fn finish(mut self, end_ns: u64, counters: FinalCounters) -> Analysis {
        // Not needed any more, and this is the trace's memory peak: the name index (the names
        // themselves stay, shared with the file states).
        drop(std::mem::take(&mut self.paths));
        drop(std::mem::take(&mut self.mappings));
        for &(key, _) in counters.0.iter() {
            let missing_path = self.files.get(&key).is_none_or(|f| f.path.is_none());
            self.file(key);
            if missing_path {
                log::debug!("no path known for dev {} inode {}", key.dev, key.ino);
            }
        }
        let mut findings = std::mem::take(&mut self.findings);
        let start_ns = self.start_ns.unwrap_or(end_ns);
        let trace_ns = end_ns.saturating_sub(start_ns);
        for (dev, d) in self.devices.with_syncs() {
            let path = d
                .first_without
                .as_ref()
                .and_then(|w| self.files.get(&w.2))
                .map(|f| display_path(f))
                .unwrap_or_default();
            findings.extend(sync_without_flush(dev, d, &path));
        }
        let devices = self.devices.counting.then(|| {
            self.devices
                .with_syncs()
                .map(|(k, d)| (k, d.clone()))
                .collect()
        });
        let past_lives = std::mem::take(&mut self.past_lives);
        let timeline = &mut self.timeline;
        let mut close = |mut f: Box<FileState>, slot: FileCounters| {
            let c = f.absolute(&slot);
            if let Some(t) = timeline {
                let abs = super::timeline::Count {
                    writes: c.writes,
                    bytes: c.bytes + c.mapped_dirty_pages * fsync_trace_common::PAGE_SIZE,
                };
                let current = crate::extent::Extent::of(&slot);
                let at_risk = (!f.removed).then(|| f.unsynced_extent(&slot)).flatten();
                t.finish_file(f.key, end_ns, abs, current, at_risk);
                t.name_lane(f.key, f.path.as_ref());
            }
            if let Some(first) = f.dirty.first().cloned() {
                f.max_dirty_window_ns = f
                    .max_dirty_window_ns
                    .max(end_ns.saturating_sub(first.since));
                if !f.removed && !f.is_dir && !only_metadata(&f, &slot) {
                    findings.push(unsynced_write(&f, &slot, &first));
                }
            }
            if f.is_dir && !f.removed && !f.pending.is_empty() {
                unsynced_entries(&f, &mut findings);
            }
            // Removed files too: SQLite deletes its WAL at close, and its syncs cost the same.
            findings.extend(advice(&f, trace_ns));
            (f, c)
        };
        // Every file with counters, built in the counters' own array (a map over a consumed
        // Vec collects in place): 100,000 files need no second array at the peak.
        let files_map = &mut self.files;
        let mut files: Vec<(Box<FileState>, FileCounters)> = counters
            .0
            .into_iter()
            .filter_map(|(key, slot)| Some(close(files_map.remove(&key)?, slot)))
            .collect();
        // Then the files the kernel kept no counters for (directories, files only opened).
        files.reserve_exact(self.files.len());
        for (_, f) in self.files.drain() {
            files.push(close(f, FileCounters::default()));
        }
        let past = past_lives.len();
        if past > 0 {
            // Earlier lives first (see the stable sort below).
            let mut all = past_lives;
            all.append(&mut files);
            files = all;
        }
        findings.sort_by(Finding::report_order);
        let order = |a: &(Box<FileState>, FileCounters), b: &(Box<FileState>, FileCounters)| {
            a.0.path.cmp(&b.0.path).then(a.0.key.cmp(&b.0.key))
        };
        if past == 0 {
            // Keys are unique, so the order is total: an unstable sort gives the same order
            // without a stable sort's buffer of half the array (megabytes with 100,000 files).
            files.sort_unstable_by(order);
        } else {
            // An earlier life can share its key (and path) with the current one: it stays first.
            files.sort_by(order);
        }
        Analysis {
            files,
            findings,
            processes: self.processes.into_values().collect(),
            ops: self.ops,
            released: self.released,
            start_ns,
            end_ns,
            timeline: self.timeline,
            devices,
        }
    }
}

/// True if all `f` left unsynced is metadata changes (no data, no size or allocation change):
/// listed in the file's `unsynced_changes`, but not a finding by itself (chmod after create is
/// common, and rarely what a crash could hurt).
fn only_metadata(f: &FileState, slot: &FileCounters) -> bool {
    let (writes, _, pages) = f.unsynced(slot);
    writes == 0 && pages == 0 && f.unsynced_changes() == Change::Metadata.bit()
}

/// The finding for a file whose data (or size, or allocation) was never made durable (`slot`:
/// the kernel's counters).
fn unsynced_write(f: &FileState, slot: &FileCounters, first: &super::DirtySpan) -> Finding {
    let (writes, bytes, pages) = f.unsynced(slot);
    let path = display_path(f);
    let changes = f.unsynced_changes();
    let data = match (writes, pages) {
        (0, 0) => None,
        (w, 0) => Some(format!("{w} write(s), {bytes} bytes")),
        (0, p) => Some(format!("{p} page(s) stored through a shared mapping")),
        (w, p) => Some(format!(
            "{w} write(s) and {p} mapped page(s), {bytes} bytes"
        )),
    };
    let change = unsynced_change(f, slot, changes);
    let after = "(no fsync/fdatasync/msync(MS_SYNC) after them)";
    let message = match (data, change) {
        (Some(d), Some(c)) => {
            format!("{d} to {path} were never made durable, and it was {c} and never synced {after}")
        }
        (None, Some(c)) => format!(
            "{path} was {c} and never synced (no fsync/fdatasync after it): a crash can bring back its old size or blocks"
        ),
        (Some(d), None) => format!("{d} to {path} were never made durable {after}"),
        // A span with no counted change (a lost record): still unsynced.
        (None, None) => format!("{writes} write(s), {bytes} bytes to {path} were never made durable {after}"),
    };
    Finding {
        kind: FindingKind::UnsyncedWrite,
        path: path.clone(),
        pid: first.actor.pid,
        comm: first.actor.comm.to_string(),
        ts: first.since,
        message,
        fix: "fsync or fdatasync the file (or msync(MS_SYNC) the mapping) before relying on the data; closing it is not enough".into(),
        unsynced_bytes: Some(bytes),
        unsynced_writes: Some(writes),
        op: change_op(changes),
        stack_id: first.actor.stack,
        ..Finding::blank()
    }
}

/// The unsynced truncate/fallocate of `f` in words ("truncated to 0 bytes", "changed by
/// fallocate"), or None if its unsynced spans hold none.
fn unsynced_change(f: &FileState, slot: &FileCounters, changes: u8) -> Option<String> {
    let truncated = changes & Change::Truncate.bit() != 0;
    let fallocated = changes & Change::Fallocate.bit() != 0;
    // The last length set: ftruncate's (kernel counters) unless only truncate(2) was seen.
    let c = f.absolute(slot);
    let len = if c.truncates > 0 {
        Some(c.truncate_len)
    } else {
        f.path_truncate_len
    };
    let truncation = match len {
        Some(n) => format!("truncated to {n} bytes"),
        None => "truncated".to_string(),
    };
    match (truncated, fallocated) {
        (true, true) => Some(format!("{truncation} and changed by fallocate")),
        (true, false) => Some(truncation),
        (false, true) => {
            Some("changed by fallocate (a range allocated, punched, zeroed or shifted)".into())
        }
        (false, false) => None,
    }
}

/// The finding's `op` for unsynced changes that wrote no data: "truncate", "fallocate" or both.
fn change_op(changes: u8) -> Option<String> {
    let t = changes & Change::Truncate.bit() != 0;
    let a = changes & Change::Fallocate.bit() != 0;
    match (t, a) {
        (true, true) => Some("truncate+fallocate".into()),
        (true, false) => Some("truncate".into()),
        (false, true) => Some("fallocate".into()),
        (false, false) => None,
    }
}

/// One finding per entry name of directory `f` left unsynced: the last change and how many.
fn unsynced_entries(f: &FileState, findings: &mut Vec<Finding>) {
    let dir = display_path(f);
    for (name, e, count) in pending_by_name(&f.pending) {
        findings.push(Finding {
            kind: FindingKind::UnsyncedParentDir,
            path: dir.clone(),
            pid: e.actor.pid,
            comm: e.actor.comm.to_string(),
            ts: e.ts,
            message: format!(
                "directory entry {name:?} in {dir} changed ({}{}) and the directory was never fsynced afterwards: the change can vanish after a crash",
                e.op,
                if count > 1 { format!(", {count} changes") } else { String::new() }
            ),
            fix: format!("open {dir} with O_RDONLY|O_DIRECTORY and fsync it after creating, renaming or removing entries"),
            entry: Some(name.to_string()),
            op: Some(e.op.name().to_string()),
            count,
            stack_id: e.actor.stack,
            ..Finding::blank()
        });
    }
}
