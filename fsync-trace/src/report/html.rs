//! `--html FILE`: the report's timeline as one self-contained page (no network): a lane per
//! file and directory, the crash control, the worst moment, Play/Step. The page's HTML, CSS and
//! JavaScript are the files in `html/`, built into the binary; the data is the report's own
//! JSON (`timeline`, `exposure_peak`, findings placed in time), inlined.
use std::time::SystemTime;

use serde::Serialize;

use super::{CrashPoint, Report, TimelineEntry};

const PAGE: &str = include_str!("html/page.html");
const STYLE: &str = include_str!("html/page.css");
const SCRIPT: &str = include_str!("html/page.js");

#[derive(Serialize)]
struct PageData<'a> {
    started: &'a str,
    tier: &'a str,
    duration_s: f64,
    timeline: Option<&'a TimelineEntry>,
    exposure_peak: Option<&'a CrashPoint>,
    findings: Vec<PageFinding<'a>>,
}

#[derive(Serialize)]
struct PageFinding<'a> {
    kind: &'static str,
    path: &'a str,
    entry: Option<&'a str>,
    at_s: Option<f64>,
    message: &'a str,
}

/// Seconds from `started` to `time` (both RFC 3339), if both parse.
fn offset(started: Option<SystemTime>, time: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339(time).ok()?;
    let d = t.duration_since(started?).ok()?;
    Some(d.as_secs_f64())
}

/// The page for `r`.
pub fn render_html(r: &Report) -> String {
    let started = humantime::parse_rfc3339(&r.started).ok();
    let data = PageData {
        started: &r.started,
        tier: &r.tier,
        duration_s: r.duration_ms as f64 / 1000.0,
        timeline: r.timeline.as_ref(),
        exposure_peak: r.exposure_peak.as_ref(),
        findings: r
            .findings
            .iter()
            .map(|f| PageFinding {
                kind: f.finding.kind.name(),
                path: &f.finding.path,
                entry: f.finding.entry.as_deref(),
                at_s: offset(started, &f.time),
                message: &f.finding.message,
            })
            .collect(),
    };
    // Serializing plain data cannot fail; "</" must not end the script element early.
    let json = serde_json::to_string(&data)
        .unwrap_or_else(|_| "{}".into())
        .replace("</", "<\\/");
    // Fill the data last: it may contain anything, the assets are ours.
    PAGE.replacen("/*STYLE*/", STYLE, 1)
        .replacen("/*SCRIPT*/", SCRIPT, 1)
        .replacen("/*DATA*/", &json, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_cannot_close_the_script_element() {
        let r = Report {
            version: 1,
            tier: "</script><script>alert(1)</script>".into(),
            lost_events: 0,
            complete: true,
            lost: crate::tracer::LostCounts::default(),
            duration_ms: 1000,
            processes: Vec::new(),
            files: crate::report::FileRows::default(),
            syncs: Vec::new(),
            findings: Vec::new(),
            advice: Vec::new(),
            suppressed: 0,
            suppressed_findings: Vec::new(),
            released_files: 0,
            released_processes: 0,
            reclaimed_slots: 0,
            notes: Vec::new(),
            started: "2026-01-01T00:00:00.000000Z".into(),
            timeline: None,
            exposure_peak: None,
            crash_at: Vec::new(),
            dirty_extents: true,
            devices: None,
            stacks: Default::default(),
        };
        let page = render_html(&r);
        assert_eq!(page.matches("</script>").count(), 2, "only the page's own");
        assert!(page.contains("<\\/script>"));
        assert!(!page.contains("/*DATA*/") && !page.contains("/*SCRIPT*/"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing fetched"
        );
    }
}
