//! The SVG chart next to the page: traced ÷ untraced workload time per workload and tool, on a
//! log scale.
use std::fmt::Write as _;

use super::{
    measure::Tool,
    page::Page,
    workload::{Kind, FSYNC_BOUND_REPS_FACTOR},
};

impl Page<'_> {
    pub(super) fn svg(&self) -> String {
        let traced: Vec<&Tool> = self
            .tools
            .iter()
            .filter(|t| **t != Tool::Untraced)
            .collect();
        let mut groups: Vec<(String, Vec<(&Tool, f64)>)> = self
            .workloads
            .iter()
            .map(|w| {
                (
                    w.name().to_string(),
                    traced
                        .iter()
                        .filter_map(|t| Some((*t, self.ratio(w.kind, t)?)))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        // The lockstep pairs right after the fsync-bound whole runs.
        let lockstep: Vec<(&Tool, f64)> = traced
            .iter()
            .filter_map(|t| Some((*t, self.lockstep_ratio(t)?.0)))
            .collect();
        if let Some(i) = self
            .workloads
            .iter()
            .position(|w| w.kind == Kind::FsyncBound)
        {
            groups.insert(i + 1, ("fsync-bound, lockstep".into(), lockstep));
        }
        groups.retain(|(_, bars)| !bars.is_empty());
        let max_ratio = groups
            .iter()
            .flat_map(|(_, b)| b.iter().map(|x| x.1))
            .fold(1.0f64, f64::max);
        let ticks_all = [
            1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
        ];
        let top = ticks_all
            .iter()
            .copied()
            .find(|&t| t >= max_ratio * 1.05)
            .unwrap_or(max_ratio * 1.2)
            .max(1.5);
        let (left, plot_w, right) = (170.0, 520.0, 90.0);
        // 1, 2, 5, 10, ... always; 1.1, 1.25, 1.5, 3 where they are at least 30 px from every other
        // tick, so labels do not run into each other.
        let primary = |t: f64| {
            [1.0, 2.0, 5.0].iter().any(|m: &f64| {
                let x = (t / m).log10();
                (x - x.round()).abs() < 1e-9
            })
        };
        let mut ticks: Vec<f64> = ticks_all
            .iter()
            .copied()
            .filter(|&t| t <= top && primary(t))
            .collect();
        for t in ticks_all
            .iter()
            .copied()
            .filter(|&t| t <= top && !primary(t))
        {
            if ticks
                .iter()
                .all(|&o| plot_w * (t.ln() - o.ln()).abs() / top.ln() >= 30.0)
            {
                ticks.push(t);
            }
        }
        ticks.sort_by(f64::total_cmp);
        let (bar_h, bar_gap, group_gap, head) = (18.0, 4.0, 18.0, 78.0);
        let x = |r: f64| left + plot_w * (r.max(1.0).ln() / top.ln());
        let colour = |t: &Tool| match t {
            Tool::FsyncTrace(_) => "#1f6fb4",
            Tool::Strace => "#e07b00",
            Tool::Bpftrace => "#2b9a3e",
            Tool::Untraced => "#888888",
        };
        let group_h = |n: usize| n as f64 * (bar_h + bar_gap) - bar_gap;
        let plot_h: f64 = groups
            .iter()
            .map(|(_, b)| group_h(b.len()) + group_gap)
            .sum::<f64>()
            - group_gap;
        let width = left + plot_w + right;
        let height = head + plot_h + 62.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
        let title = if self.quick {
            "Tracing overhead (smoke run: small sizes, 1 run)"
        } else {
            "Tracing overhead: workload time traced ÷ untraced"
        };
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="22" font-size="16" font-weight="bold">{}</text>"#,
            xml(title)
        );
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="40" fill="#555">median of {} runs ({} for fsync-bound, and of the lockstep pairs) · lower is better · log scale</text>"##,
            self.reps,
            self.reps * FSYNC_BOUND_REPS_FACTOR
        );
        // Legend.
        let mut lx = left;
        for t in &traced {
            let label = xml(&self.bench.label(t));
            let _ = writeln!(
                s,
                r#"<rect x="{lx}" y="52" width="12" height="12" fill="{}"/>"#,
                colour(t)
            );
            let _ = writeln!(s, r#"<text x="{}" y="62">{label}</text>"#, lx + 16.0);
            lx += 16.0 + 7.2 * label.chars().count() as f64 + 18.0;
        }
        // Grid and axis.
        let (y0, y1) = (head - 6.0, head + plot_h + 6.0);
        for &t in &ticks {
            let tx = x(t);
            let (stroke, dash) = if t == 1.0 {
                ("#333", "")
            } else {
                ("#ddd", r#" stroke-dasharray="3,3""#)
            };
            let _ = writeln!(
                s,
                r#"<line x1="{tx:.1}" y1="{y0}" x2="{tx:.1}" y2="{y1}" stroke="{stroke}"{dash}/>"#
            );
            let label = if t < 2.0 && t.fract() != 0.0 {
                format!("{t}×")
            } else {
                format!("{t:.0}×")
            };
            let _ = writeln!(
                s,
                r##"<text x="{tx:.1}" y="{}" text-anchor="middle" fill="#333">{label}</text>"##,
                y1 + 16.0
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">workload time ÷ untraced workload time</text>"##,
            left + plot_w / 2.0,
            y1 + 36.0
        );
        // Bars.
        let mut y = head;
        for (w, bars) in &groups {
            let gh = group_h(bars.len());
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{:.1}" text-anchor="end" font-weight="bold">{}</text>"#,
                left - 10.0,
                y + gh / 2.0 + 4.0,
                xml(w)
            );
            for (t, r) in bars {
                let bw = (x(*r) - left).max(1.5);
                let _ = writeln!(
                    s,
                    r#"<rect x="{left}" y="{y:.1}" width="{bw:.1}" height="{bar_h}" fill="{}"><title>{}: {r:.3}×</title></rect>"#,
                    colour(t),
                    xml(&self.bench.label(t))
                );
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                    left + bw + 5.0,
                    y + bar_h - 5.0,
                    ratio_label(*r)
                );
                y += bar_h + bar_gap;
            }
            y += group_gap - bar_gap;
        }
        s.push_str("</svg>\n");
        s
    }
}

fn ratio_label(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.2}×")
    } else {
        format!("{r:.0}×")
    }
}

/// `s` escaped for SVG text.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
