//! Reports built from the final [`Analysis`]: the JSON shape (a public interface, `version` 1)
//! and the text rendering of the same data.
mod html;
mod rows;
pub mod sarif;
mod stacks;
mod text;
mod timeline;

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::{
    analysis::{Judged, SuppressedBy},
    state::{
        cost::{share, SyncCost},
        Analysis, Finding, Latency,
    },
    tracer::LostCounts,
};
pub use html::render_html;
pub use rows::FileRows;
pub use text::render_text;
pub use timeline::{offset_s, CrashPoint, TimelineEntry};

pub const REPORT_VERSION: u32 = 1;

/// Maps CLOCK_MONOTONIC kernel timestamps to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub mono_ns: u64,
    pub wall: SystemTime,
}

impl Clock {
    pub fn now() -> Self {
        Self {
            mono_ns: monotonic_ns(),
            wall: SystemTime::now(),
        }
    }
    pub fn wall_of(&self, mono_ns: u64) -> SystemTime {
        if mono_ns >= self.mono_ns {
            self.wall + Duration::from_nanos(mono_ns - self.mono_ns)
        } else {
            self.wall - Duration::from_nanos(self.mono_ns - mono_ns)
        }
    }
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// Nearest-rank percentiles of `l`, in microseconds (exact up to
/// [`crate::state::latency::EXACT_SAMPLES`] calls, then within the histogram's precision).
pub fn latency_summary_us(l: &Latency) -> LatencySummary {
    LatencySummary {
        count: l.count(),
        p50: l.percentile(50.0) / 1000,
        p99: l.percentile(99.0) / 1000,
        max: l.max() / 1000,
    }
}

/// Writes or bytes covered per sync: over the successful fsync/fdatasync calls whose record
/// read the file's counters (`syncs`), the median and the largest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PerSync {
    pub syncs: u64,
    pub p50: u64,
    pub max: u64,
}

/// What durability cost a file or a process (fields flattened into its row).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CostEntry {
    /// Writes and bytes (mapped pages as 4 KiB each) each sync covered, since the previous one.
    pub writes_per_sync: PerSync,
    pub bytes_per_sync: PerSync,
    /// Sync calls per second of wall time (the trace's for a file, the process's own for a
    /// process).
    pub syncs_per_sec: f64,
    /// Most sync calls running at the same time.
    pub max_syncs_in_flight: u32,
    /// Sync calls that had nothing to make durable (`redundant_sync`).
    pub redundant_syncs: u64,
    /// Device cache flushes and FUA writes issued on the file's block device while its
    /// successful syncs ran (a flush counts for every sync it fell in; absent when flushes
    /// were not counted), and the syncs that saw none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_flushes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syncs_without_flush: Option<u64>,
}

/// A block device traced files were synced on: did the syncs reach it?
#[derive(Clone, Debug, Serialize)]
pub struct DeviceEntry {
    /// `major:minor`.
    pub dev: String,
    /// Its name in /sys/block (`loop0`), if known.
    pub name: Option<String>,
    /// `write back` (volatile cache: durability needs flushes), `write through`, or null.
    pub write_cache: Option<&'static str>,
    /// Successful durable-point syncs of traced files on it.
    pub syncs: u64,
    /// Cache flush requests and FUA writes issued on it during the trace (by any task).
    pub device_flushes: u64,
    pub fua_writes: u64,
    /// Flushes and FUA writes issued while at least one of those syncs ran, each once, per
    /// sync: below 1 where the filesystem batched several syncs into one commit.
    pub flushes_in_syncs: u64,
    pub flushes_per_sync: f64,
    /// Syncs that returned with no flush or FUA write issued on it while they ran.
    pub syncs_without_flush: u64,
}

fn device_entry(dev: u32, d: &crate::state::device::DeviceState) -> DeviceEntry {
    DeviceEntry {
        dev: dev_string(dev),
        name: d.name.clone(),
        write_cache: d.write_cache.map(|w| w.name()),
        syncs: d.syncs,
        device_flushes: d.flushes,
        fua_writes: d.fua_writes,
        flushes_in_syncs: d.flushes_in_syncs,
        flushes_per_sync: round(share(d.flushes_in_syncs, d.syncs), 3),
        syncs_without_flush: d.syncs_without_flush,
    }
}

fn round(v: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (v * m).round() / m
}

fn cost_entry(c: Option<&SyncCost>, calls: u64, wall_ns: u64, flushes: bool) -> CostEntry {
    let per_sec = if wall_ns == 0 {
        0.0
    } else {
        round(calls as f64 * 1e9 / wall_ns as f64, 2)
    };
    let Some(c) = c else {
        return CostEntry {
            syncs_per_sec: per_sec,
            ..Default::default()
        };
    };
    let per_sync = |d: &crate::state::cost::Counts| PerSync {
        syncs: d.count(),
        p50: d.median(),
        max: d.max(),
    };
    CostEntry {
        writes_per_sync: per_sync(&c.writes_per_sync),
        bytes_per_sync: per_sync(&c.bytes_per_sync),
        syncs_per_sec: per_sec,
        max_syncs_in_flight: c.in_flight.max(),
        redundant_syncs: c.redundant,
        device_flushes: flushes.then_some(c.device_flushes),
        syncs_without_flush: flushes.then_some(c.syncs_without_flush),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ProcessEntry {
    pub pid: u32,
    /// The process's name (its main thread's).
    pub comm: String,
    /// From the command line where it says more than the name (`postgres: checkpointer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
    /// Sync calls of the process and the time its threads spent in them.
    pub syncs: u64,
    pub sync_time_us: u64,
    /// Wall time the process was traced: from the start of the trace (or its fork, or its
    /// first event) to its exit (or the end).
    pub wall_time_us: u64,
    /// Share of its threads' wall time spent blocked in sync calls: sync time over wall time
    /// times the threads that made sync calls (threads that never synced are not seen).
    pub sync_time_share: f64,
    #[serde(flatten)]
    pub cost: CostEntry,
    /// Threads that made sync calls.
    pub threads: Vec<ThreadEntry>,
    /// Its cgroup v2 path, and the container id and Kubernetes pod UID the path shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ThreadEntry {
    pub tid: u32,
    pub comm: String,
    pub syncs: u64,
    pub sync_time_us: u64,
    /// Share of the process's wall time this thread spent in sync calls.
    pub sync_time_share: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileEntry {
    pub path: String,
    /// Every live name the trace knows for the file (hard links); empty once removed.
    pub names: Vec<String>,
    pub dev: String,
    pub ino: u64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub writes: u64,
    pub bytes_written: u64,
    pub fsyncs: u64,
    pub fdatasyncs: u64,
    pub fsync_latency_us: LatencySummary,
    pub max_dirty_window_ms: u64,
    pub unsynced_bytes: u64,
    /// The lowest and highest offset written and not durable at the end; null if nothing is
    /// at risk or it is unknown (a store through a shared mapping).
    pub dirty_extent: Option<timeline::DirtyExtent>,
    /// Writes through O_SYNC / O_DSYNC descriptors (durable by themselves).
    pub sync_writes: u64,
    pub mapped_dirty_pages: u64,
    /// Times the kernel's flusher wrote the file back (not a durable point).
    pub kernel_writebacks: u64,
    /// No name left (link count zero): its data no longer matters.
    pub removed: bool,
    /// Durability-relevant flags the file was opened with (O_SYNC, O_DSYNC, O_DIRECT, O_APPEND, O_TMPFILE).
    pub open_flags: Vec<&'static str>,
    /// Time spent in sync calls on the file (every sync op naming it but O_SYNC writes).
    pub sync_time_us: u64,
    #[serde(flatten)]
    pub cost: CostEntry,
    /// One commit after another, each waiting for its sync: 1 / median fsync latency, per
    /// second; null if the file's syncs ever overlapped (the ceiling is then higher) or it has
    /// no fsync/fdatasync.
    pub serial_commit_ceiling_per_sec: Option<f64>,
    /// Successful truncate(2)/ftruncate(2) calls on the file (a size change needs a sync too).
    pub truncates: u64,
    /// Successful fallocate(2) calls on the file, every mode.
    pub fallocates: u64,
    /// Changes that wrote no data left unsynced at the end ("truncate", "fallocate",
    /// "metadata"): at risk with 0 unsynced bytes. An unsynced "metadata" change alone is
    /// listed here but is not a finding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsynced_changes: Vec<&'static str>,
    /// Successful metadata changes of the file (chmod, chown, utimes, extended attributes;
    /// through a descriptor or by path): each makes the next sync not redundant.
    pub metadata_changes: u64,
}

/// Names of the changes in `changes` (`Change::bit`s).
pub fn change_names(changes: u8) -> Vec<&'static str> {
    use crate::event::Change;
    [
        (Change::Truncate, "truncate"),
        (Change::Fallocate, "fallocate"),
        (Change::Metadata, "metadata"),
    ]
    .into_iter()
    .filter(|(c, _)| changes & c.bit() != 0)
    .map(|(_, n)| n)
    .collect()
}

/// Names of the durability-relevant open flags in `flags`.
pub fn open_flag_names(flags: u32) -> Vec<&'static str> {
    use fsync_trace_common::open_flags as o;
    let mut v = Vec::new();
    if flags & o::O_SYNC == o::O_SYNC {
        v.push("O_SYNC");
    } else if flags & o::O_DSYNC != 0 {
        v.push("O_DSYNC");
    }
    if flags & o::O_DIRECT != 0 {
        v.push("O_DIRECT");
    }
    if flags & o::O_APPEND != 0 {
        v.push("O_APPEND");
    }
    if flags & (o::O_TMPFILE & !o::O_DIRECTORY) != 0 {
        v.push("O_TMPFILE");
    }
    v
}

#[derive(Clone, Debug, Serialize)]
pub struct OpEntry {
    pub op: &'static str,
    pub calls: u64,
    pub errors: u64,
    pub latency_us: LatencySummary,
}

#[derive(Clone, Debug, Serialize)]
pub struct FindingEntry {
    #[serde(flatten)]
    pub finding: Finding,
    /// RFC 3339 wall-clock time.
    pub time: String,
    /// The user stack of the act, innermost frame first, when the kernel took one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<Vec<crate::symbolize::Frame>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SuppressedEntry {
    #[serde(flatten)]
    pub finding: FindingEntry,
    pub suppressed_by: SuppressedBy,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub version: u32,
    pub tier: String,
    pub lost_events: u64,
    /// False if anything was lost: the report then undercounts.
    pub complete: bool,
    pub lost: LostCounts,
    pub duration_ms: u64,
    pub processes: Vec<ProcessEntry>,
    /// Built row by row as they are written (see [`FileRows`]).
    pub files: FileRows,
    pub syncs: Vec<OpEntry>,
    /// Durability bugs, worst first.
    pub findings: Vec<FindingEntry>,
    /// Advice on what durability costs (`sync_per_write`, `redundant_sync`): the same shape
    /// as `findings`, kept apart because these are not durability bugs.
    pub advice: Vec<FindingEntry>,
    /// Findings that `--suppress` / `--profile` rules mark as by design, counted one by one
    /// (before grouping) and listed apart (grouped like `findings`).
    pub suppressed: u64,
    pub suppressed_findings: Vec<SuppressedEntry>,
    /// Durable, idle files whose state long-run bounds released (`--max-files`): they are in
    /// no row above.
    pub released_files: u64,
    /// Exited processes forgotten beyond the bound (not in `processes`).
    pub released_processes: u64,
    /// Kernel per-file slots handed back for reuse (removed files, idle files when the table
    /// fills): nothing is lost by it.
    pub reclaimed_slots: u64,
    /// What the reader should know about how the trace ran (a command still running when it
    /// ended, child processes not followed...), one sentence each.
    pub notes: Vec<String>,
    /// When the trace started (RFC 3339 UTC, microseconds): every `*_s` offset counts from it.
    pub started: String,
    /// Per file its dirty intervals and syncs, per directory its entry changes (null with
    /// `--timeline-limit 0`).
    pub timeline: Option<TimelineEntry>,
    /// The instant with the most bytes at risk (null if nothing was ever at risk).
    pub exposure_peak: Option<CrashPoint>,
    /// `--crash-at`: what a power cut at each instant would have lost.
    pub crash_at: Vec<CrashPoint>,
    /// Block devices traced files were synced on, with the device cache flushes seen during
    /// the syncs (absent when the block hook could not be attached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<DeviceEntry>>,
    /// What became of the user stacks taken at findings' acts (see `stack` in findings).
    pub stacks: crate::symbolize::StackStats,
    /// Dirty extents were traced (`--dirty-extent`, or an output about a power cut): when
    /// false every `dirty_extent` is null because nobody asked, not because it was unknown.
    pub dirty_extents: bool,
}

fn dev_string(dev: u32) -> String {
    format!(
        "{}:{}",
        fsync_trace_common::kdev_major(dev),
        fsync_trace_common::kdev_minor(dev)
    )
}

impl Report {
    pub fn build(
        a: Analysis,
        judged: Judged,
        tier: &str,
        lost: LostCounts,
        clock: Clock,
        end_ns: u64,
    ) -> Self {
        let released = a.released;
        let started = humantime::format_rfc3339_micros(clock.wall_of(a.start_ns)).to_string();
        let exposure_peak = a.timeline.as_deref().and_then(|t| {
            let p = t.exposure_peak()?;
            Some(CrashPoint::build(&p, a.start_ns, p.at, p.exact()))
        });
        let timeline = a.timeline.map(|t| TimelineEntry::build(t, a.start_ns));
        let flushes_counted = a.devices.is_some();
        let devices = a
            .devices
            .as_ref()
            .map(|v| v.iter().map(|(k, d)| device_entry(*k, d)).collect());
        let trace_ns = a.end_ns.saturating_sub(a.start_ns);
        let files = FileRows::new(a.files, trace_ns, flushes_counted);
        let syncs = a
            .ops
            .iter()
            .map(|(op, s)| OpEntry {
                op: op.name(),
                calls: s.calls,
                errors: s.errors,
                latency_us: latency_summary_us(&s.latency),
            })
            .collect();
        let entry = |finding: Finding| FindingEntry {
            time: humantime::format_rfc3339_millis(clock.wall_of(finding.ts)).to_string(),
            finding,
            stack: None,
        };
        let (advice, findings): (Vec<Finding>, Vec<Finding>) = judged
            .findings
            .into_iter()
            .partition(|f| f.kind.is_advice());
        let findings = findings.into_iter().map(entry).collect();
        let advice = advice.into_iter().map(entry).collect();
        let suppressed_findings = judged
            .suppressed
            .into_iter()
            .map(|s| SuppressedEntry {
                finding: entry(s.finding),
                suppressed_by: s.suppressed_by,
            })
            .collect();
        let total = lost.total();
        Report {
            version: REPORT_VERSION,
            tier: tier.to_string(),
            lost_events: total,
            complete: total == 0,
            lost,
            duration_ms: end_ns.saturating_sub(clock.mono_ns) / 1_000_000,
            processes: a
                .processes
                .iter()
                .map(|p| {
                    let wall = p
                        .exit_ns
                        .unwrap_or(a.end_ns)
                        .saturating_sub(p.since_ns.unwrap_or(a.start_ns));
                    let threads = p.threads.len().max(1) as u64;
                    ProcessEntry {
                        pid: p.pid,
                        comm: p.comm.clone(),
                        role: p.role.clone(),
                        parent: p.parent,
                        syncs: p.syncs,
                        sync_time_us: p.sync_ns / 1000,
                        wall_time_us: wall / 1000,
                        sync_time_share: round(share(p.sync_ns, wall.saturating_mul(threads)), 4),
                        cost: cost_entry(p.cost.as_deref(), p.syncs, wall, flushes_counted),
                        threads: p
                            .threads
                            .iter()
                            .map(|(&tid, t)| ThreadEntry {
                                tid,
                                comm: t.comm.clone(),
                                syncs: t.syncs,
                                sync_time_us: t.sync_ns / 1000,
                                sync_time_share: round(share(t.sync_ns, wall), 4),
                            })
                            .collect(),
                        cgroup: p.workload.as_ref().map(|w| w.cgroup.clone()),
                        container: p.workload.as_ref().and_then(|w| w.container.clone()),
                        pod: p.workload.as_ref().and_then(|w| w.pod.clone()),
                    }
                })
                .collect(),
            files,
            syncs,
            findings,
            advice,
            suppressed: judged.suppressed_count,
            suppressed_findings,
            released_files: released.files,
            released_processes: released.processes,
            reclaimed_slots: released.reclaimed_slots,
            notes: Vec::new(),
            started,
            timeline,
            exposure_peak,
            crash_at: Vec::new(),
            dirty_extents: false,
            devices,
            stacks: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flag_names_distinguish_sync_from_dsync() {
        use fsync_trace_common::open_flags as o;
        assert_eq!(
            open_flag_names(o::O_SYNC | o::O_APPEND),
            vec!["O_SYNC", "O_APPEND"]
        );
        assert_eq!(
            open_flag_names(o::O_DSYNC | o::O_DIRECT),
            vec!["O_DSYNC", "O_DIRECT"]
        );
        assert_eq!(open_flag_names(o::O_TMPFILE), vec!["O_TMPFILE"]);
        assert!(open_flag_names(0o2 | o::O_DIRECTORY).is_empty());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let of = |samples: &[u64]| {
            let mut l = Latency::per_file();
            for &s in samples {
                l.record(s);
            }
            latency_summary_us(&l)
        };
        let s: Vec<u64> = (1..=64).map(|i| i * 1000).collect();
        assert_eq!(
            of(&s),
            LatencySummary {
                count: 64,
                p50: 32,
                p99: 64,
                max: 64
            }
        );
        assert_eq!(of(&[]), LatencySummary::default());
        assert_eq!(
            of(&[7000]),
            LatencySummary {
                count: 1,
                p50: 7,
                p99: 7,
                max: 7
            }
        );
        let two = [1000, 9000];
        assert_eq!(
            of(&two),
            LatencySummary {
                count: 2,
                p50: 1,
                p99: 9,
                max: 9
            }
        );
    }
}
