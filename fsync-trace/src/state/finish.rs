//! The end of a trace: every file with its final counters, and the findings that are only
//! known then (data never made durable, entries whose directory was never synced).
use std::collections::BTreeMap;

use fsync_trace_common::{FileCounters, FileKey, SyncOp};

use crate::event::Change;

use super::{
    advice::advice,
    device::{sync_without_flush, DeviceState},
    display_path,
    names::pending_by_name,
    DurabilityState, FileState, FinalCount, Finding, FindingKind, OpStats, ProcessInfo, Released,
    Resolver,
};

/// The final state: every file with its counters (this life's, across reclaimed slots), and
/// all findings, worst first.
#[derive(Clone, Debug)]
pub struct Analysis {
    #[allow(clippy::vec_box)]
    pub files: Vec<(Box<FileState>, FinalCount)>,
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
    /// Ends the trace at `end_ns` with the kernel's final per-file counters (all at once).
    #[cfg(test)]
    pub fn finish(self, end_ns: u64, counters: super::FinalCounters) -> Analysis {
        let mut closing = self.closing(end_ns, counters.0.len());
        for (key, slot) in counters.0 {
            closing.add(key, slot);
        }
        closing.finish()
    }

    /// Starts ending the trace at `end_ns`: the kernel's final counters of about
    /// `with_counters` files follow, one file at a time ([`Closing::add`]), so that they are
    /// never all held at once beside the file states (with 100,000 files: the memory peak).
    pub fn closing(mut self, end_ns: u64, with_counters: usize) -> Closing<R> {
        // Not needed any more, and this is the trace's memory peak: the name index (the names
        // themselves stay, shared with the file states).
        drop(std::mem::take(&mut self.paths));
        drop(std::mem::take(&mut self.mappings));
        let findings = std::mem::take(&mut self.findings);
        let start_ns = self.start_ns.unwrap_or(end_ns);
        Closing {
            device_findings_at: findings.len(),
            findings,
            files: Vec::with_capacity(with_counters),
            start_ns,
            end_ns,
            state: self,
        }
    }
}

/// A trace being ended (see [`DurabilityState::closing`]).
pub struct Closing<R: Resolver> {
    state: DurabilityState<R>,
    findings: Vec<Finding>,
    /// Where the devices' findings go: after those found while tracing, before the files'
    /// (they name a file, known once every file is closed).
    device_findings_at: usize,
    /// The files closed so far, with their final counters.
    #[allow(clippy::vec_box)]
    files: Vec<(Box<FileState>, FinalCount)>,
    start_ns: u64,
    end_ns: u64,
}

impl<R: Resolver> Closing<R> {
    /// The kernel's final counters of file `key` (`slot`: its current slot's), each key once,
    /// in key order (the order findings are made in).
    pub fn add(&mut self, key: FileKey, slot: FileCounters) {
        let f = self
            .state
            .files
            .remove(&key)
            .unwrap_or_else(|| Box::new(FileState::new(key)));
        if f.path().is_none() {
            log::debug!("no path known for dev {} inode {}", key.dev, key.ino);
        }
        let closed = self.close(f, slot);
        self.files.push(closed);
    }

    /// Every file with its counters (this life's) and its last findings: what the kernel kept
    /// no counters for (directories, files only opened) is closed here.
    pub fn finish(mut self) -> Analysis {
        let rest: Vec<Box<FileState>> = self.state.files.drain().collect();
        self.files.reserve_exact(rest.len());
        for f in rest {
            let closed = self.close(f, FileCounters::default());
            self.files.push(closed);
        }
        let Closing {
            state,
            mut findings,
            device_findings_at,
            mut files,
            start_ns,
            end_ns,
        } = self;
        let mut by_device = Vec::new();
        for (dev, d) in state.devices.with_syncs() {
            // A scan per device (few), rather than an index of every file at the peak.
            let path = d
                .first_without
                .as_ref()
                .and_then(|w| files.iter().find(|(f, _)| f.key == w.2))
                .map(|(f, _)| display_path(f))
                .unwrap_or_default();
            by_device.extend(sync_without_flush(dev, d, &path));
        }
        findings.splice(device_findings_at..device_findings_at, by_device);
        let devices = state.devices.counting.then(|| {
            state
                .devices
                .with_syncs()
                .map(|(k, d)| (k, d.clone()))
                .collect()
        });
        let past = state.past_lives.len();
        if past > 0 {
            // Earlier lives first (see the stable sort below).
            let mut all: Vec<_> = state
                .past_lives
                .into_iter()
                .map(|(f, c)| (f, FinalCount::new(c)))
                .collect();
            all.append(&mut files);
            files = all;
        }
        findings.sort_by(Finding::report_order);
        let order = |a: &(Box<FileState>, FinalCount), b: &(Box<FileState>, FinalCount)| {
            a.0.path().cmp(&b.0.path()).then(a.0.key.cmp(&b.0.key))
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
            processes: state.processes.into_values().collect(),
            ops: state.ops,
            released: state.released,
            start_ns,
            end_ns,
            timeline: state.timeline,
            devices,
        }
    }

    /// Closes file `f` with its current slot's counters: its timeline lane completed, its
    /// findings made; returns it with its counters (this life's).
    fn close(&mut self, mut f: Box<FileState>, slot: FileCounters) -> (Box<FileState>, FinalCount) {
        let end_ns = self.end_ns;
        let c = f.absolute(&slot);
        if let Some(t) = &mut self.state.timeline {
            let abs = super::timeline::Count {
                writes: c.writes,
                bytes: c.bytes + c.mapped_dirty_pages * fsync_trace_common::PAGE_SIZE,
            };
            let current = crate::extent::Extent::of(&slot);
            let at_risk = (!f.removed).then(|| f.unsynced_extent(&slot)).flatten();
            t.finish_file(f.key, end_ns, abs, current, at_risk);
            t.name_lane(f.key, f.path());
        }
        let findings = &mut self.findings;
        if let Some(first) = f.dirty.first().cloned() {
            f.max_dirty_window_ns = f
                .max_dirty_window_ns
                .max(end_ns.saturating_sub(first.since));
            if !f.removed && !f.is_dir && !only_metadata(&f, &slot) {
                findings.push(unsynced_write(&f, &slot, &first));
            }
        }
        if f.is_dir && !f.removed && !f.rare.pending.is_empty() {
            unsynced_entries(&f, findings);
        }
        // Removed files too: SQLite deletes its WAL at close, and its syncs cost the same.
        let trace_ns = end_ns.saturating_sub(self.start_ns);
        findings.extend(advice(&f, trace_ns));
        (f, FinalCount::new(c))
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
        f.path_truncate_len()
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
    for (name, e, count) in pending_by_name(&f.rare.pending) {
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
