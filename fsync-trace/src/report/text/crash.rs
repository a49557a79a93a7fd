//! The crash what-if in the text report: the worst moment to lose power, and each
//! `--crash-at` instant with what it would lose.
use std::fmt::Write as _;

use super::super::{timeline::DirtyExtent, CrashPoint, Report};
use super::human_bytes;

/// "extent 4.0 KiB at 0..4096": where the unsynced bytes lie (a hull: holes not tracked).
pub fn extent_text(e: Option<DirtyExtent>) -> String {
    match e {
        Some(DirtyExtent { lo, hi }) => {
            format!(
                "extent {} at {lo}..{hi}",
                human_bytes(hi.saturating_sub(lo))
            )
        }
        None => "extent unknown".into(),
    }
}

/// The files with unsynced data at the end, each with its dirty extent: bytes written say
/// nothing of how much of the file is at risk (1,000 overwrites of one page are one page).
pub fn render_extents(out: &mut String, r: &Report) {
    if !r.dirty_extents {
        // Not traced: "extent unknown" on every row would say nothing.
        return;
    }
    let mut at_risk: Vec<_> = r
        .files
        .iter()
        .filter(|f| f.unsynced_bytes > 0 && !f.removed)
        .collect();
    if at_risk.is_empty() {
        return;
    }
    at_risk.sort_by(|a, b| {
        b.unsynced_bytes
            .cmp(&a.unsynced_bytes)
            .then(a.path.cmp(&b.path))
    });
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Unsynced data at the end (dirty extent: where it lies):"
    );
    for f in at_risk.iter().take(MAX_ROWS) {
        let _ = writeln!(
            out,
            "  {}: {} written, {}",
            f.path,
            human_bytes(f.unsynced_bytes),
            extent_text(f.dirty_extent)
        );
    }
    if at_risk.len() > MAX_ROWS {
        let _ = writeln!(
            out,
            "  ... and {} more file(s) (every file is in --json)",
            at_risk.len() - MAX_ROWS
        );
    }
}

/// Files and entries listed per crash point at most (the JSON report has all).
const MAX_ROWS: usize = 10;

fn list(out: &mut String, p: &CrashPoint, extents: bool) {
    for f in p.files.iter().take(MAX_ROWS) {
        let extent = if extents {
            format!(", {}", extent_text(f.dirty_extent))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "    {:>10}  {} ({} write(s), {} written{extent}, dirty since {:.3} s)",
            human_bytes(f.unsynced_bytes),
            f.path,
            f.writes,
            human_bytes(f.unsynced_bytes),
            f.dirty_since_s
        );
    }
    if p.files.len() > MAX_ROWS {
        let _ = writeln!(out, "    ... and {} more file(s)", p.files.len() - MAX_ROWS);
    }
    for e in p.entries.iter().take(MAX_ROWS) {
        let _ = writeln!(out, "    {:>10}  {}/{} ({})", "entry", e.dir, e.entry, e.op);
    }
    if p.entries.len() > MAX_ROWS {
        let _ = writeln!(
            out,
            "    ... and {} more directory entr(ies)",
            p.entries.len() - MAX_ROWS
        );
    }
}

pub fn render_crash(out: &mut String, r: &Report) {
    if r.exposure_peak.is_none() && r.crash_at.is_empty() {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "What a power cut would lose (offsets from {}):",
        r.started
    );
    if let Some(p) = &r.exposure_peak {
        let _ = writeln!(
            out,
            "  the worst moment to lose power was {:.3} s in: {}",
            p.offset_s,
            p.summary()
        );
        list(out, p, r.dirty_extents);
    }
    for p in &r.crash_at {
        let _ = writeln!(out, "  a power cut {:.3} s in: {}", p.offset_s, p.summary());
        list(out, p, r.dirty_extents);
    }
    if let Some(t) = r.timeline.as_ref().filter(|t| t.cut_items > 0) {
        let _ = writeln!(
            out,
            "  NOTE: the timeline was cut at {} items (--timeline-limit): {} later item(s) from {:.3} s on were not recorded; the worst moment is over what was kept",
            t.limit,
            t.cut_items,
            t.cut_from_s.unwrap_or(0.0)
        );
    }
}
