//! The text report's "cost" section: the files whose syncs took the most time, what each sync
//! covered, and the serial commit ceiling; then the share of time processes spent in syncs.
use std::fmt::Write as _;

use super::{super::Report, human_bytes};

/// Files and processes listed at most (the JSON report has every one).
const MAX_COST_ROWS: usize = 5;
/// Width of the FILE column; a longer path gets a line of its own.
const PATH_WIDTH: usize = 40;

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

pub fn render_cost(out: &mut String, r: &Report) {
    let synced = r
        .files
        .iter()
        .filter(|f| f.sync_time_us > 0 || f.cost.writes_per_sync.syncs > 0);
    let (files, count) = super::top_rows(synced, MAX_COST_ROWS, |a, b| {
        b.sync_time_us
            .cmp(&a.sync_time_us)
            .then(a.path.cmp(&b.path))
    });
    if files.is_empty() {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Cost of durability ({} file(s) synced; where syncs took longest):",
        count
    );
    let _ = writeln!(
        out,
        "{:<40} {:>6} {:>9} {:>8} {:>12} {:>19} {:>9} {:>10}",
        "FILE", "SYNCS", "SYNC ms", "SYNC/s", "WRITES/SYNC", "BYTES/SYNC", "IN FLIGHT", "CEILING/s"
    );
    for f in files.iter().take(MAX_COST_ROWS) {
        let mut path = f.path.clone();
        if f.kind == "dir" {
            path.push('/');
        }
        if path.chars().count() > PATH_WIDTH {
            let _ = writeln!(out, "{path}");
            path.clear();
        }
        let (w, b) = (&f.cost.writes_per_sync, &f.cost.bytes_per_sync);
        let per_sync = |p50: String, max: String| {
            if w.syncs == 0 {
                "-".to_string()
            } else {
                format!("{p50}/{max}")
            }
        };
        let _ = writeln!(
            out,
            "{:<40} {:>6} {:>9} {:>8} {:>12} {:>19} {:>9} {:>10}",
            path,
            f.fsyncs + f.fdatasyncs,
            ms(f.sync_time_us),
            f.cost.syncs_per_sec,
            per_sync(w.p50.to_string(), w.max.to_string()),
            per_sync(human_bytes(b.p50), human_bytes(b.max)),
            f.cost.max_syncs_in_flight,
            f.serial_commit_ceiling_per_sec
                .map_or_else(|| "-".to_string(), |c| format!("{c:.0}")),
        );
    }
    if count > MAX_COST_ROWS {
        let _ = writeln!(
            out,
            "... and {} more synced file(s) (every file is in --json)",
            count - MAX_COST_ROWS
        );
    }
    let _ = writeln!(
        out,
        "WRITES/SYNC, BYTES/SYNC: covered by each fsync/fdatasync, median/max; CEILING/s: 1 / median sync latency, the most commits per second one after another (\"-\" where syncs overlapped)."
    );
    let mut procs: Vec<&super::super::ProcessEntry> =
        r.processes.iter().filter(|p| p.syncs > 0).collect();
    procs.sort_by(|a, b| b.sync_time_us.cmp(&a.sync_time_us).then(a.pid.cmp(&b.pid)));
    for p in procs.iter().take(MAX_COST_ROWS) {
        let _ = writeln!(
            out,
            "  pid {} {}: {:.1}% of its syncing threads' time blocked in {} sync call(s) ({} ms)",
            p.pid,
            p.comm,
            100.0 * p.sync_time_share,
            p.syncs,
            ms(p.sync_time_us)
        );
    }
}

/// One line per block device synced on: did the syncs reach the device (cache flushes)?
pub fn render_devices(out: &mut String, r: &Report) {
    let Some(devices) = r.devices.as_ref().filter(|d| !d.is_empty()) else {
        return;
    };
    let _ = writeln!(out);
    let _ = writeln!(out, "Device cache flushes during syncs:");
    for d in devices {
        let name = d.name.as_deref().unwrap_or("?");
        let _ = writeln!(
            out,
            "  {name} ({}), write cache {}: {} sync(s), {} flush(es) + {} FUA write(s) issued, {} during syncs ({:.2} per sync), {} sync(s) with none",
            d.dev,
            d.write_cache.unwrap_or("unknown"),
            d.syncs,
            d.device_flushes,
            d.fua_writes,
            d.flushes_in_syncs,
            d.flushes_per_sync,
            d.syncs_without_flush,
        );
    }
}
