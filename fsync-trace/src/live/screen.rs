//! Draws a [`View`]: a header with the totals, a table of files, a footer with the keys.
use ratatui::{
    layout::{Constraint, Layout},
    style::{Modifier, Style, Stylize},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row as TableRow, Table},
    Frame,
};

use super::model::View;

/// Lines the header and footer take: rows fit in the rest.
pub const CHROME_LINES: u16 = 7;

/// `12.3 KiB`-style sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Durations as `850 µs`, `12.3 ms`, `4.2 s`.
pub fn duration(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 1e6 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.1} s", ns / 1e9)
    }
}

fn or_dash(v: Option<u64>, f: fn(u64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

pub fn draw(frame: &mut Frame, v: &View) {
    let [header, table, footer] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let risk_style = if v.bytes_at_risk > 0 {
        Style::new().yellow().add_modifier(Modifier::BOLD)
    } else {
        Style::new().green()
    };
    let lost = if v.lost_events > 0 {
        Span::styled(
            format!("   {} events lost", v.lost_events),
            Style::new().red().add_modifier(Modifier::BOLD),
        )
    } else {
        Span::raw("")
    };
    let head = Paragraph::new(vec![
        Line::from(vec![
            Span::styled("fsync-trace --live", Style::new().bold()),
            Span::raw(format!(
                "   {} tier   traced for {}",
                v.tier,
                duration(v.elapsed_ns)
            )),
            lost,
        ]),
        Line::from(vec![
            Span::raw("at risk: "),
            Span::styled(
                format!("{} in {} file(s)", bytes(v.bytes_at_risk), v.files_at_risk),
                risk_style,
            ),
            Span::raw(format!(
                ", {} directory entr{} not synced   oldest unsynced: {}",
                v.pending_entries,
                if v.pending_entries == 1 { "y" } else { "ies" },
                or_dash(v.oldest_unsynced_ns, duration)
            )),
        ]),
        Line::from(format!(
            "syncs/s: {:.1}   last sync latency: {}",
            v.syncs_per_s,
            or_dash(v.last_sync_ns, duration)
        )),
    ])
    .block(Block::new().borders(Borders::BOTTOM));
    frame.render_widget(head, header);
    let rows = v.rows.iter().map(|r| {
        let risk = if r.at_risk_bytes > 0 {
            Cell::from(bytes(r.at_risk_bytes)).style(Style::new().yellow())
        } else {
            Cell::from("durable").style(Style::new().green())
        };
        TableRow::new(vec![
            risk,
            Cell::from(r.unsynced_writes.to_string()),
            Cell::from(or_dash(r.oldest_unsynced_ns, duration)),
            Cell::from(or_dash(r.last_sync_ns, duration)),
            Cell::from(format!("{:.1}", r.syncs_per_s)),
            Cell::from(r.path.clone()),
        ])
    });
    let title = if v.more_rows > 0 {
        format!(" files ({} more not shown) ", v.more_rows)
    } else {
        " files ".to_string()
    };
    let widths = [
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Min(10),
    ];
    let t = Table::new(rows, widths)
        .header(
            TableRow::new(vec![
                "at risk",
                "writes",
                "oldest",
                "last sync",
                "syncs/s",
                "file",
            ])
            .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)),
        )
        .block(Block::new().title(title));
    frame.render_widget(t, table);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("q", Style::new().bold()),
            Span::raw(" end the trace and print the report"),
        ])),
        footer,
    );
}

#[cfg(test)]
mod tests {
    use ratatui::{backend::TestBackend, Terminal};

    use super::*;
    use crate::live::model::Row;

    fn screen_text(v: &View, w: u16, h: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, v)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn totals_rows_in_order_and_the_key() {
        let row = |path: &str, bytes: u64, age: Option<u64>, sync: Option<u64>, rate| Row {
            path: path.into(),
            at_risk_bytes: bytes,
            unsynced_writes: u64::from(bytes > 0),
            oldest_unsynced_ns: age,
            last_sync_ns: sync,
            syncs_per_s: rate,
        };
        let v = View {
            tier: "tracepoint",
            elapsed_ns: 4_200_000_000,
            files_at_risk: 2,
            bytes_at_risk: 8292,
            oldest_unsynced_ns: Some(3_000_000_000),
            pending_entries: 1,
            syncs_per_s: 9.5,
            last_sync_ns: Some(850_000),
            lost_events: 0,
            rows: vec![
                row("/d/big.dat", 8192, Some(3_000_000_000), None, 0.0),
                row("/d/small.dat", 100, Some(2_000_000_000), None, 0.0),
                row("/d/log.dat", 0, None, Some(850_000), 9.5),
            ],
            more_rows: 4,
        };
        let lines = screen_text(&v, 100, 14);
        let all = lines.join("\n");
        assert!(
            lines[0].contains("tracepoint tier   traced for 4.2 s"),
            "{all}"
        );
        assert!(
            lines[1].contains("at risk: 8.1 KiB in 2 file(s), 1 directory entry not synced"),
            "{all}"
        );
        assert!(
            lines[2].contains("syncs/s: 9.5   last sync latency: 850 µs"),
            "{all}"
        );
        assert!(all.contains("files (4 more not shown)"), "{all}");
        let at = |p: &str| lines.iter().position(|l| l.ends_with(p)).unwrap();
        assert!(at("/d/big.dat") < at("/d/small.dat") && at("/d/small.dat") < at("/d/log.dat"));
        assert!(lines[at("/d/big.dat")].starts_with("8.0 KiB"), "{all}");
        assert!(lines[at("/d/log.dat")].starts_with("durable"), "{all}");
        assert!(
            lines[13].contains("q end the trace and print the report"),
            "{all}"
        );
    }

    #[test]
    fn units() {
        assert_eq!(bytes(100), "100 B");
        assert_eq!(bytes(8192), "8.0 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(duration(850_000), "850 µs");
        assert_eq!(duration(12_300_000), "12.3 ms");
        assert_eq!(duration(4_200_000_000), "4.2 s");
    }
}
