//! The shape of the scenario table: what a report says about a file ([`Counts`]), what a tier
//! must report ([`Expected`]), a scenario ([`Scenario`]), and the counts of the workloads the
//! benchmark also runs.

use super::TRACER_WAL;

/// What the report says about one file: the counts compared across tiers and checked against
/// the expectations.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// `write`-family calls that reached the file.
    pub writes: u64,
    /// Bytes those calls wrote.
    pub bytes_written: u64,
    /// Successful `fsync`s (and equivalents counted as such).
    pub fsyncs: u64,
    /// Successful `fdatasync`s.
    pub fdatasyncs: u64,
    /// Bytes written since the file's last durable point.
    pub unsynced_bytes: u64,
}

/// As the tuple (writes, bytes_written, fsyncs, fdatasyncs, unsynced_bytes): the failure
/// messages print counts that way, after a header naming the fields once.
impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (
            self.writes,
            self.bytes_written,
            self.fsyncs,
            self.fdatasyncs,
            self.unsynced_bytes,
        )
            .fmt(f)
    }
}

/// What one tier must report for a scenario. Paths are relative to the scenario's directory
/// ("" is the directory itself).
pub struct Expected {
    /// (path, counts) of the files whose counts are checked.
    pub files: &'static [(&'static str, Counts)],
    /// (kind, path, entry): the complete set of findings.
    pub findings: &'static [(&'static str, &'static str, Option<&'static str>)],
    /// (path, `dirty_extent` as (lo, hi), None for null) of the files whose dirty extent at
    /// the end is checked (every tier's extents are compared in any case).
    pub extents: &'static [(&'static str, Option<(u64, u64)>)],
}

/// One workload subcommand with its arguments and what it must report.
pub struct Scenario {
    /// The `fsync-trace-workload` subcommand.
    pub name: &'static str,
    /// Its arguments (the scenario's directory comes first, added by the runner).
    pub args: &'static [&'static str],
    /// Exact expectations for every tier, if any.
    pub expect: Option<Expected>,
    /// Seen only by the function-level tiers: fentry and kprobe must match `expect`, the
    /// tracepoint tier must match this instead (and is left out of the equality check).
    pub tracepoint_expect: Option<Expected>,
}

/// `fsync-bound --records N`'s log: N writes of 4 KiB, each followed by an fdatasync. The
/// benchmark runs it with large N and checks the same counts.
#[must_use]
pub const fn fsync_bound_log(records: u64) -> Counts {
    Counts {
        writes: records,
        bytes_written: 4096 * records,
        fsyncs: 0,
        fdatasyncs: records,
        unsynced_bytes: 0,
    }
}

/// `threads` fsyncs each thread's file after every this many records (and once at the end).
pub const THREADS_FSYNC_EVERY: u64 = 100;

/// `threads --records N`: each thread's file, N writes of 64 B, an fsync every
/// [`THREADS_FSYNC_EVERY`] records and after the last.
#[must_use]
pub const fn thread_file(records: u64) -> Counts {
    Counts {
        writes: records,
        bytes_written: 64 * records,
        fsyncs: records.div_ceil(THREADS_FSYNC_EVERY),
        fdatasyncs: 0,
        unsynced_bytes: 0,
    }
}

impl Counts {
    /// The counts by their JSON report field names.
    #[must_use]
    pub const fn fields(&self) -> [(&'static str, u64); 5] {
        [
            ("writes", self.writes),
            ("bytes_written", self.bytes_written),
            ("fsyncs", self.fsyncs),
            ("fdatasyncs", self.fdatasyncs),
            ("unsynced_bytes", self.unsynced_bytes),
        ]
    }
}

impl Scenario {
    /// The `--wal` glob the tracer runs this scenario with, if any ([`TRACER_WAL`]).
    #[must_use]
    pub fn wal_glob(&self) -> Option<&'static str> {
        TRACER_WAL
            .iter()
            .find(|(name, _)| *name == self.name)
            .map(|(_, glob)| *glob)
    }

    /// What a run on `tier` must report, if anything is expected of it.
    #[must_use]
    pub fn expected_on(&self, tier: &str) -> Option<&Expected> {
        if tier == "tracepoint" {
            self.tracepoint_expect.as_ref().or(self.expect.as_ref())
        } else {
            self.expect.as_ref()
        }
    }
}
