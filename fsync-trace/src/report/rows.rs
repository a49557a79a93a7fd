//! The report's file rows. They stay the file states the analysis left until they are written:
//! each [`FileEntry`] is built when it is serialized or listed, one at a time, so a trace of
//! 100,000 files never holds a second copy of every file (the rows were the memory peak).
use fsync_trace_common::FileCounters;
use serde::{Serialize, Serializer};

use super::{
    change_names, cost_entry, dev_string, latency_summary_us, open_flag_names, round,
    timeline::DirtyExtent, FileEntry,
};
use crate::state::{cost::serial_ceiling, display_path, FileState, FinalCount};

/// Every file the trace saw changed or synced, in report order (by path).
#[derive(Clone, Debug, Default)]
pub struct FileRows {
    #[allow(clippy::vec_box)]
    rows: Vec<(Box<FileState>, FinalCount)>,
    /// Length of the trace (ns): syncs per second.
    trace_ns: u64,
    /// Device flushes were counted (the rows then have `device_flushes`).
    flushes_counted: bool,
}

impl FileRows {
    /// The rows of `files` (in their order) that were written, mapped, truncated, allocated,
    /// synced or had their metadata changed.
    #[allow(clippy::vec_box)]
    pub fn new(
        mut files: Vec<(Box<FileState>, FinalCount)>,
        trace_ns: u64,
        flushes_counted: bool,
    ) -> Self {
        files.retain(|(f, c)| {
            let c = c.get();
            c.writes + c.sync_writes + c.mapped_dirty_pages > 0
                || f.fsyncs + f.fdatasyncs + f.rare.other_syncs > 0
                || c.truncates + c.fallocates + u64::from(f.rare.path_truncates) > 0
                || c.metadata_changes + u64::from(f.rare.path_metadata_changes) > 0
        });
        files.shrink_to_fit();
        FileRows {
            rows: files,
            trace_ns,
            flushes_counted,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows as report entries, built one at a time.
    pub fn iter(&self) -> impl Iterator<Item = FileEntry> + '_ {
        self.rows
            .iter()
            .map(|(f, c)| entry(f, &c.get(), self.trace_ns, self.flushes_counted))
    }
}

impl Serialize for FileRows {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// The report row of file `f` with its final counters `c`.
fn entry(f: &FileState, c: &FileCounters, trace_ns: u64, flushes_counted: bool) -> FileEntry {
    let unsynced = match f.dirty.first() {
        Some(d) if !f.removed && !f.is_dir => {
            c.bytes.saturating_sub(d.bytes_before)
                + c.mapped_dirty_pages.saturating_sub(d.pages_before)
                    * fsync_trace_common::PAGE_SIZE
        }
        _ => 0,
    };
    let dirty_extent = if f.removed || f.is_dir {
        None
    } else {
        f.unsynced_extent(c).and_then(DirtyExtent::of)
    };
    let full = f.cost.get();
    let cost = full.as_deref();
    let calls = cost.map_or(0, |c| c.calls);
    let ceiling = serial_ceiling(f.sync_latency.percentile(50.0))
        .filter(|_| cost.is_some_and(|c| c.in_flight.max() <= 1))
        .map(|v| round(v, 1));
    FileEntry {
        path: display_path(f),
        names: f.names().iter().map(|n| n.to_string()).collect(),
        dev: dev_string(f.key.dev),
        ino: f.key.ino,
        kind: if f.is_dir { "dir" } else { "file" },
        writes: c.writes + c.sync_writes,
        bytes_written: c.bytes + c.sync_write_bytes,
        fsyncs: f.fsyncs,
        fdatasyncs: f.fdatasyncs,
        fsync_latency_us: latency_summary_us(&f.sync_latency),
        max_dirty_window_ms: f.max_dirty_window_ns / 1_000_000,
        unsynced_bytes: unsynced,
        dirty_extent,
        sync_writes: c.sync_writes,
        mapped_dirty_pages: c.mapped_dirty_pages,
        kernel_writebacks: c.kernel_writebacks,
        removed: f.removed,
        open_flags: open_flag_names(f.open_flags),
        sync_time_us: cost.map_or(0, |c| c.sync_ns / 1000),
        cost: cost_entry(cost, calls, trace_ns, flushes_counted),
        serial_commit_ceiling_per_sec: ceiling,
        truncates: c.truncates + u64::from(f.rare.path_truncates),
        fallocates: c.fallocates,
        unsynced_changes: if f.removed || f.is_dir {
            Vec::new()
        } else {
            change_names(f.unsynced_changes())
        },
        metadata_changes: c.metadata_changes + u64::from(f.rare.path_metadata_changes),
    }
}
