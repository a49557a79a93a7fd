//! Advice at the end of a trace: what durability costs a file, where the cost buys nothing
//! (`redundant_sync`) or could buy the same for less (`sync_per_write`). Advice is not a
//! durability bug: it is reported apart and never fails `--fail-on any`.
use super::{
    cost::{is_sync_per_write, serial_ceiling, share, SyncCost},
    display_path, FileState, Finding, FindingKind,
};

/// Records per sync the `sync_per_write` fix quotes as an example of batching.
const EXAMPLE_BATCH: u64 = 16;

/// The advice findings for file `f` (none if it was never synced); `trace_ns`
/// is the trace's wall time (the share of time in sync is taken of it).
pub fn advice(f: &FileState, trace_ns: u64) -> Vec<Finding> {
    let Some(c) = f.cost.get() else {
        return Vec::new();
    };
    let c = &*c;
    let mut out = Vec::new();
    if is_sync_per_write(c) {
        out.push(sync_per_write(f, c, trace_ns));
    }
    if c.redundant > 0 {
        if let Some(r) = redundant_sync(f, c) {
            out.push(r);
        }
    }
    out
}

/// `n` per second, readably.
fn per_sec(n: f64) -> String {
    if n >= 100.0 {
        format!("{:.0}", n)
    } else {
        format!("{:.1}", n)
    }
}

/// `ns` readably: µs below 10 ms, ms below 1 s, else s.
pub fn duration(ns: u64) -> String {
    match ns {
        n if n < 10_000_000 => format!("{} µs", n / 1000),
        n if n < 1_000_000_000 => format!("{:.1} ms", n as f64 / 1e6),
        n => format!("{:.1} s", n as f64 / 1e9),
    }
}

fn sync_per_write(f: &FileState, c: &SyncCost, trace_ns: u64) -> Finding {
    let path = display_path(f);
    let syncs = c.writes_per_sync.count();
    let p50 = f.sync_latency.percentile(50.0);
    let ceiling = match serial_ceiling(p50) {
        Some(ceil) if c.in_flight.max() <= 1 => format!(
            "; syncs never overlapped, so at a median sync latency of {} this caps commits at about {}/s",
            duration(p50),
            per_sec(ceil)
        ),
        Some(_) => format!(
            "; up to {} syncs ran at once (median latency {})",
            c.in_flight.max(),
            duration(p50)
        ),
        None => String::new(),
    };
    let batched = match serial_ceiling(p50) {
        Some(ceil) => format!(
            " (batching {EXAMPLE_BATCH} records per sync would raise the ceiling to about {} records/s)",
            per_sec(ceil * EXAMPLE_BATCH as f64)
        ),
        None => String::new(),
    };
    Finding {
        kind: FindingKind::SyncPerWrite,
        path: path.clone(),
        // Who made the file's first counted sync, and when.
        pid: c.first_sync.as_ref().map_or(0, |(_, a)| a.pid),
        comm: c
            .first_sync
            .as_ref()
            .map_or_else(String::new, |(_, a)| a.comm.to_string()),
        ts: c.first_sync.as_ref().map_or(0, |(t, _)| *t),
        message: format!(
            "{path} was synced after nearly every write: {syncs} syncs, a median of {} write(s) and {} bytes each (max {} writes, {} bytes); sync calls on it took {}, {:.1}% of the trace's {}{ceiling}",
            c.writes_per_sync.median(),
            c.bytes_per_sync.median(),
            c.writes_per_sync.max(),
            c.bytes_per_sync.max(),
            duration(c.sync_ns),
            100.0 * share(c.sync_ns, trace_ns),
            duration(trace_ns),
        ),
        fix: format!(
            "group commit: let records that arrive while a sync runs wait for the next one and make them durable together with one fsync/fdatasync{batched}; for a database, put many changes in one transaction"
        ),
        syncs: Some(syncs),
        sync_time_us: Some(c.sync_ns / 1000),
        count: syncs,
        ..Finding::blank()
    }
}

fn redundant_sync(f: &FileState, c: &SyncCost) -> Option<Finding> {
    let (ts, actor) = c.first_redundant.as_deref().cloned()?;
    let path = display_path(f);
    let what = if f.is_dir {
        "no entry created, renamed, linked or removed"
    } else {
        "no write, truncation or store through a mapping"
    };
    Some(Finding {
        kind: FindingKind::RedundantSync,
        path: path.clone(),
        pid: actor.pid,
        comm: actor.comm.to_string(),
        ts,
        message: format!(
            "{} of {} sync call(s) on {path} had nothing to make durable ({what} since its previous successful sync) and took {} in all",
            c.redundant,
            c.calls,
            duration(c.redundant_ns)
        ),
        fix: "skip the sync when nothing changed since the last one (keep a dirty flag per file), or drop the duplicate call".into(),
        syncs: Some(c.redundant),
        sync_time_us: Some(c.redundant_ns / 1000),
        count: c.redundant,
        ..Finding::blank()
    })
}
