//! The timeline and the crash what-if in the report (public JSON shape): every instant is an
//! offset in seconds from `started`.
use serde::Serialize;

use crate::extent::Extent;
use crate::state::{
    timeline::{Interval, Lane},
    whatif::AtRisk,
    Timeline,
};

/// Seconds since `start` (ns), to the microsecond.
pub fn offset_s(start: u64, ns: u64) -> f64 {
    let us = i128::from(ns) / 1000 - i128::from(start) / 1000;
    us as f64 / 1e6
}

/// The timeline: per file its dirty intervals and syncs, per directory its entry changes
/// (`files`, `dirs`). The lanes stay the recorded [`Timeline`] until they are written: each
/// [`FileLane`] / [`DirLane`] is built when serialized (100,000 items: no second copy).
#[derive(Clone, Debug)]
pub struct TimelineEntry {
    /// The bound (`--timeline-limit`): intervals, counter readings, syncs, entry changes and
    /// lanes recorded at most.
    pub limit: usize,
    /// Items recorded.
    pub items: usize,
    /// Items left out once the bound was reached (0: nothing was cut), and from when.
    pub cut_items: u64,
    pub cut_from_s: Option<f64>,
    timeline: Box<Timeline>,
    /// When the trace started (ns): every offset counts from it.
    start: u64,
}

impl Serialize for TimelineEntry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let lanes = self.sorted_lanes();
        let files = lanes
            .iter()
            .filter(|l| !is_dir_lane(l))
            .map(|l| file_lane(l, self.start));
        let dirs = lanes
            .iter()
            .filter(|l| is_dir_lane(l))
            .map(|l| dir_lane(l, self.start));
        let mut st = serializer.serialize_struct("TimelineEntry", 6)?;
        st.serialize_field("limit", &self.limit)?;
        st.serialize_field("items", &self.items)?;
        st.serialize_field("cut_items", &self.cut_items)?;
        st.serialize_field("cut_from_s", &self.cut_from_s)?;
        st.serialize_field("files", &Rows(std::cell::Cell::new(Some(files))))?;
        st.serialize_field("dirs", &Rows(std::cell::Cell::new(Some(dirs))))?;
        st.end()
    }
}

/// A sequence serialized from an iterator, once.
struct Rows<I>(std::cell::Cell<Option<I>>);

impl<I: Iterator<Item = T>, T: Serialize> Serialize for Rows<I> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(rows) => serializer.collect_seq(rows),
            None => serializer.collect_seq(std::iter::empty::<T>()),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FileLane {
    pub path: String,
    pub dev: String,
    pub ino: u64,
    pub dirty: Vec<DirtyInterval>,
    pub syncs: Vec<SyncMarkEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DirLane {
    pub path: String,
    pub dev: String,
    pub ino: u64,
    pub entries: Vec<EntryChangeEntry>,
    pub syncs: Vec<SyncMarkEntry>,
}

/// Data at risk from `from_s` until `durable_s` (null: never made durable).
#[derive(Clone, Debug, Serialize)]
pub struct DirtyInterval {
    pub from_s: f64,
    pub durable_s: Option<f64>,
    /// When the sync that made it durable was entered: from then on `bytes` were at risk.
    pub covered_from_s: Option<f64>,
    /// The file lost its last name while dirty (its data no longer matters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_s: Option<f64>,
    /// Writes and bytes (mapped pages as 4 KiB) of the interval; null if not known (the file
    /// was released before the end).
    pub writes: Option<u64>,
    pub bytes: Option<u64>,
    /// The process whose write made the file dirty.
    pub by: u32,
    /// Counter readings on the way: [offset_s, bytes written since `from_s`].
    pub readings: Vec<(f64, u64)>,
    /// Changes in the interval that wrote no data ("truncate", "fallocate").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<&'static str>,
    /// The lowest and highest offset the interval wrote; null if not known (a store through a
    /// shared mapping, or the file was released before the end).
    pub dirty_extent: Option<DirtyExtent>,
    /// The dirty extent of each reading (same order as `readings`; null: unknown or empty).
    pub reading_extents: Vec<Option<DirtyExtent>>,
}

/// The dirty extent in the JSON report: bytes `lo..hi` (hi exclusive) hold every byte written
/// since the last durable point (holes are not tracked).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DirtyExtent {
    pub lo: u64,
    pub hi: u64,
}

impl DirtyExtent {
    /// The JSON value of `e`: null when unknown or empty.
    pub fn of(e: Extent) -> Option<Self> {
        e.range().map(|(lo, hi)| DirtyExtent { lo, hi })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SyncMarkEntry {
    /// When the call was entered; it returned `latency_us` later.
    pub at_s: f64,
    pub op: &'static str,
    pub latency_us: u64,
    pub errno: Option<i32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EntryChangeEntry {
    pub at_s: f64,
    pub entry: String,
    pub op: &'static str,
    /// When a directory sync made it durable (null: never).
    pub durable_s: Option<f64>,
    /// A later change undid it before any directory sync (created then removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_s: Option<f64>,
}

/// What a power cut at `offset_s` loses.
#[derive(Clone, Debug, Serialize)]
pub struct CrashPoint {
    pub offset_s: f64,
    /// `--crash-at`: when the kernel's counters were read (just after `offset_s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_s: Option<f64>,
    /// Bytes at risk in all.
    pub lost_bytes: u64,
    /// The bytes are exact (`--crash-at`: read from the kernel at that moment) or a lower
    /// bound (the exposure peak: exact for files whose covering sync had begun).
    pub exact_bytes: bool,
    pub files: Vec<CrashFile>,
    pub entries: Vec<CrashEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CrashFile {
    pub path: String,
    pub unsynced_bytes: u64,
    pub writes: u64,
    pub dirty_since_s: f64,
    /// Changes at risk that wrote no data ("truncate", "fallocate"): a file can be at risk
    /// with 0 unsynced bytes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<&'static str>,
    /// The lowest and highest offset written and not durable; null if unknown.
    pub dirty_extent: Option<DirtyExtent>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CrashEntry {
    pub dir: String,
    pub entry: String,
    pub op: &'static str,
}

fn lane_path(l: &Lane) -> String {
    l.path.as_deref().map_or_else(
        || {
            format!(
                "<unknown path: dev {}:{} inode {}>",
                l.key.dev >> 20,
                l.key.dev & 0xfffff,
                l.key.ino
            )
        },
        str::to_string,
    )
}

fn interval(start: u64, d: &Interval) -> DirtyInterval {
    let off = |ns| offset_s(start, ns);
    DirtyInterval {
        from_s: off(d.from),
        durable_s: d.durable.get().map(off),
        covered_from_s: d.covered_from.get().map(off),
        removed_s: d.removed.get().map(off),
        writes: d.total.map(|c| c.writes),
        bytes: d.total.map(|c| c.bytes),
        by: d.by,
        changes: super::change_names(d.changes),
        readings: d
            .readings
            .iter()
            .map(|(ts, c, _)| (off(*ts), c.bytes))
            .collect(),
        dirty_extent: d.extent.and_then(DirtyExtent::of),
        reading_extents: d
            .readings
            .iter()
            .map(|(_, _, e)| DirtyExtent::of(*e))
            .collect(),
    }
}

/// Lanes with entry changes are directory lanes (a directory's own data is not traced).
fn is_dir_lane(l: &Lane) -> bool {
    l.is_dir || !l.entries.is_empty()
}

fn sync_marks(l: &Lane, start: u64) -> Vec<SyncMarkEntry> {
    l.syncs
        .iter()
        .map(|s| SyncMarkEntry {
            at_s: offset_s(start, s.enter),
            op: s.op.name(),
            latency_us: s.exit.saturating_sub(s.enter) / 1000,
            errno: s.errno.map(i32::from),
        })
        .collect()
}

fn file_lane(l: &Lane, start: u64) -> FileLane {
    FileLane {
        path: lane_path(l),
        dev: super::dev_string(l.key.dev),
        ino: l.key.ino,
        dirty: l.dirty.iter().map(|d| interval(start, d)).collect(),
        syncs: sync_marks(l, start),
    }
}

fn dir_lane(l: &Lane, start: u64) -> DirLane {
    let off = |ns| offset_s(start, ns);
    DirLane {
        path: lane_path(l),
        dev: super::dev_string(l.key.dev),
        ino: l.key.ino,
        entries: l
            .entries
            .iter()
            .map(|c| EntryChangeEntry {
                at_s: off(c.at),
                entry: c.entry.to_string(),
                op: c.op.name(),
                durable_s: c.durable.get().map(off),
                cancelled_s: c.cancelled.get().map(off),
            })
            .collect(),
        syncs: sync_marks(l, start),
    }
}

impl TimelineEntry {
    pub fn build(t: Box<Timeline>, start: u64) -> Self {
        TimelineEntry {
            limit: t.max_items(),
            items: t.items(),
            cut_items: t.cut.items,
            cut_from_s: t.cut.first_ns.map(|ns| offset_s(start, ns)),
            timeline: t,
            start,
        }
    }

    /// The lanes in report order: by path, then by file.
    fn sorted_lanes(&self) -> Vec<&Lane> {
        let mut lanes: Vec<&Lane> = self.timeline.lanes().collect();
        lanes.sort_by(|a, b| a.path.cmp(&b.path).then(a.key.cmp(&b.key)));
        lanes
    }
}

impl CrashPoint {
    /// `r` as seen from `start` (ns); `offset` (ns) is the instant asked for.
    pub fn build(r: &AtRisk, start: u64, offset: u64, exact_bytes: bool) -> Self {
        let unknown = || "<unknown path>".to_string();
        CrashPoint {
            offset_s: offset_s(start, offset),
            taken_s: None,
            lost_bytes: r.bytes(),
            exact_bytes,
            files: r
                .files
                .iter()
                .map(|f| CrashFile {
                    path: f.path.as_deref().map_or_else(unknown, str::to_string),
                    unsynced_bytes: f.written.bytes,
                    writes: f.written.writes,
                    dirty_since_s: offset_s(start, f.since),
                    changes: super::change_names(f.changes),
                    dirty_extent: DirtyExtent::of(f.extent),
                })
                .collect(),
            entries: r
                .entries
                .iter()
                .map(|e| CrashEntry {
                    dir: e.dir_path.as_deref().map_or_else(unknown, str::to_string),
                    entry: e.entry.to_string(),
                    op: e.op.name(),
                })
                .collect(),
        }
    }

    /// One line: "3 files, 4.1 KiB, 1 directory entry".
    pub fn summary(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "{}, {}{}, {}",
            plural(self.files.len(), "file", "files"),
            super::text::human_bytes(self.lost_bytes),
            if self.exact_bytes { "" } else { " or more" },
            plural(self.entries.len(), "directory entry", "directory entries")
        )
    }
}
