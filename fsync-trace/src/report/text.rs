//! The report for people: a table per file, what durability cost, then the findings, worst
//! first, and the advice.
mod cost;
mod crash;

use std::fmt::Write as _;

use super::{FindingEntry, Report};

/// Numbered findings (or advice) with their message and fix.
fn list_findings(out: &mut String, entries: &[FindingEntry]) {
    for (i, f) in entries.iter().enumerate() {
        let f2 = &f.finding;
        let _ = writeln!(
            out,
            "{:>3}. [{}] {} (pid {} {}, {})",
            i + 1,
            f2.kind.name(),
            f2.path,
            f2.pid,
            f2.comm,
            f.time
        );
        let _ = writeln!(out, "     {}", f2.message);
        if let Some(at) = super::stacks::call_site_text(f) {
            let _ = writeln!(out, "     {at}");
        }
        let _ = writeln!(out, "     fix: {}", f2.fix);
    }
    super::stacks::by_call_site(out, entries);
}

pub(super) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Rows of the file table at most: beyond, the files with the most data at risk (then the
/// most writes) are shown and the rest counted (the JSON report has every file).
const MAX_FILE_ROWS: usize = 100;

/// The first `n` of `rows` in `order` (where a stable sort of them all would put them), and
/// how many rows there were: rows are built one at a time (see `FileRows`), and only a
/// bounded buffer of them is held, not every row.
pub(super) fn top_rows<T>(
    rows: impl Iterator<Item = T>,
    n: usize,
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> (Vec<T>, usize) {
    let mut kept = Vec::new();
    let mut count = 0;
    for row in rows {
        count += 1;
        kept.push(row);
        if kept.len() >= 2 * n.max(1) {
            kept.sort_by(&order);
            kept.truncate(n);
        }
    }
    kept.sort_by(&order);
    kept.truncate(n);
    (kept, count)
}
/// Width of the FILE column; a longer path gets a line of its own.
const PATH_WIDTH: usize = 48;

/// The text report; `show_suppressed` lists suppressed findings (else only their count).
pub fn render_text(r: &Report, show_suppressed: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fsync-trace report ({} tier, {} process(es), {:.1}s)",
        r.tier,
        r.processes.len(),
        r.duration_ms as f64 / 1000.0
    );
    if r.lost_events > 0 {
        let _ = writeln!(
            out,
            "WARNING: {} event(s) were lost (ring buffer full: {}, file table full: {}, other: {}); counts and findings below are INCOMPLETE.",
            r.lost_events,
            r.lost.ring_buffer_full,
            r.lost.file_table_full,
            r.lost.inflight_table_full + r.lost.process_table_full + r.lost.undecodable
        );
    }
    for note in &r.notes {
        let _ = writeln!(out, "NOTE: {note}");
    }
    let _ = writeln!(out);
    if r.files.is_empty() {
        let _ = writeln!(out, "No writes or syncs to durable files were seen.");
    } else {
        let _ = writeln!(
            out,
            "{:<48} {:>7} {:>10} {:>6} {:>6} {:>21} {:>10} {:>10}",
            "FILE",
            "WRITES",
            "BYTES",
            "FSYNC",
            "FDSYNC",
            "SYNC µs p50/p99/max",
            "DIRTY ms",
            "UNSYNCED"
        );
        let shown: Vec<super::FileEntry> = if r.files.len() > MAX_FILE_ROWS {
            let (mut shown, _) = top_rows(r.files.iter(), MAX_FILE_ROWS, |a, b| {
                b.unsynced_bytes
                    .cmp(&a.unsynced_bytes)
                    .then(b.writes.cmp(&a.writes))
                    .then(a.path.cmp(&b.path))
            });
            shown.sort_by(|a, b| a.path.cmp(&b.path));
            shown
        } else {
            r.files.iter().collect()
        };
        for f in &shown {
            let mut path = f.path.clone();
            if f.kind == "dir" {
                path.push('/');
            }
            if f.removed {
                path.push_str(" (deleted)");
            }
            let lat = if f.fsync_latency_us.count > 0 {
                format!(
                    "{}/{}/{}",
                    f.fsync_latency_us.p50, f.fsync_latency_us.p99, f.fsync_latency_us.max
                )
            } else {
                "-".into()
            };
            if path.chars().count() > PATH_WIDTH {
                let _ = writeln!(out, "{path}");
                path.clear();
            }
            let _ = writeln!(
                out,
                "{:<48} {:>7} {:>10} {:>6} {:>6} {:>21} {:>10} {:>10}",
                path,
                f.writes,
                human_bytes(f.bytes_written),
                f.fsyncs,
                f.fdatasyncs,
                lat,
                f.max_dirty_window_ms,
                if f.unsynced_bytes > 0 {
                    human_bytes(f.unsynced_bytes)
                } else if let Some(change) = f.unsynced_changes.first() {
                    // At risk with no data: the change (truncate, fallocate) instead of 0.
                    (*change).to_string()
                } else {
                    "0".into()
                }
            );
        }
    }
    if r.files.len() > MAX_FILE_ROWS {
        let _ = writeln!(
            out,
            "... and {} more file(s), with less data at risk (every file is in --json)",
            r.files.len() - MAX_FILE_ROWS
        );
    }
    if !r.syncs.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>7} {:>21}",
            "SYNC CALL", "CALLS", "ERRORS", "LATENCY µs p50/p99/max"
        );
        for s in &r.syncs {
            let _ = writeln!(
                out,
                "{:<16} {:>7} {:>7} {:>21}",
                s.op,
                s.calls,
                s.errors,
                format!(
                    "{}/{}/{}",
                    s.latency_us.p50, s.latency_us.p99, s.latency_us.max
                )
            );
        }
    }
    cost::render_cost(&mut out, r);
    crash::render_extents(&mut out, r);
    crash::render_crash(&mut out, r);
    cost::render_devices(&mut out, r);
    let _ = writeln!(out);
    if r.findings.is_empty() {
        let _ = writeln!(out, "No durability findings.");
    } else {
        let _ = writeln!(out, "{} finding(s), worst first:", r.findings.len());
        list_findings(&mut out, &r.findings);
    }
    if !r.advice.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} advice item(s) on what durability costs (not durability bugs):",
            r.advice.len()
        );
        list_findings(&mut out, &r.advice);
    }
    if r.suppressed > 0 {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} finding(s) suppressed as by design (--suppress / --profile){}",
            r.suppressed,
            if show_suppressed {
                ":"
            } else {
                "; --show-suppressed lists them"
            }
        );
        if show_suppressed {
            for s in &r.suppressed_findings {
                let f = &s.finding.finding;
                let what = match (&f.entries, &f.entry) {
                    (Some(all), _) => format!(" ({} entries)", all.len()),
                    (None, Some(e)) => format!(" entry {e:?}"),
                    _ => String::new(),
                };
                let _ = writeln!(out, "  - [{}] {}{what}", f.kind.name(), f.path);
                let _ = writeln!(
                    out,
                    "     by design: {} ({})",
                    s.suppressed_by.reason, s.suppressed_by.rule
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::top_rows;

    #[test]
    fn top_rows_keep_what_a_stable_sort_of_every_row_would() {
        // (key, position): many ties on the key, so stability shows.
        let rows: Vec<(u64, usize)> = (0..1000).map(|i| ((i * 7919 % 13) as u64, i)).collect();
        let order = |a: &(u64, usize), b: &(u64, usize)| b.0.cmp(&a.0);
        for n in [0, 1, 5, 100, 999, 1000, 2000] {
            let mut all = rows.clone();
            all.sort_by(order);
            all.truncate(n);
            assert_eq!(
                top_rows(rows.iter().copied(), n, order),
                (all, 1000),
                "n {n}"
            );
        }
        assert_eq!(
            top_rows(std::iter::empty::<(u64, usize)>(), 5, order),
            (vec![], 0)
        );
    }
}
