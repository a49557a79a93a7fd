//! What the live view shows, computed from the state machine (files, their dirty spans and
//! sync counts), the kernel's per-file counters at the refresh, and the sync events seen.
use std::collections::{HashMap, HashSet};

use fsync_trace_common::{FileCounters, FileKey, SyncOp};

use crate::{
    event::{Event, EventKind},
    state::{DurabilityState, Resolver},
};

/// One row: a file with data at risk, or one synced since the last refresh.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub path: String,
    /// Bytes written (or stored through a mapping) since its last durable point.
    pub at_risk_bytes: u64,
    pub unsynced_writes: u64,
    /// How long its oldest unsynced data has waited (ns), if it has any.
    pub oldest_unsynced_ns: Option<u64>,
    /// Latency of its last successful sync (ns).
    pub last_sync_ns: Option<u64>,
    pub syncs_per_s: f64,
}

/// One frame of the view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    pub tier: &'static str,
    pub elapsed_ns: u64,
    pub files_at_risk: u64,
    pub bytes_at_risk: u64,
    pub oldest_unsynced_ns: Option<u64>,
    /// Directory entries changed and not yet made durable by a directory sync.
    pub pending_entries: u64,
    pub syncs_per_s: f64,
    /// Latency of the last successful sync of any file (ns).
    pub last_sync_ns: Option<u64>,
    pub lost_events: u64,
    /// Rows: files at risk (most bytes first), then files synced since the last refresh.
    pub rows: Vec<Row>,
    /// Rows that did not fit.
    pub more_rows: usize,
}

/// What the view remembers between refreshes (bounded by the files the state machine keeps).
pub struct LiveModel {
    tier: &'static str,
    started_ns: u64,
    last_sync_ns: HashMap<FileKey, u64>,
    last_any_sync_ns: Option<u64>,
    syncs_seen: HashMap<FileKey, u64>,
    total_syncs: u64,
    previous: Option<(u64, u64)>,
    lost_events: u64,
}

impl LiveModel {
    pub fn new(tier: &'static str, started_ns: u64) -> Self {
        LiveModel {
            tier,
            started_ns,
            last_sync_ns: HashMap::new(),
            last_any_sync_ns: None,
            syncs_seen: HashMap::new(),
            total_syncs: 0,
            previous: None,
            lost_events: 0,
        }
    }

    /// One event, as the event loop reads it.
    pub fn observe(&mut self, ev: &Event) {
        let EventKind::Sync {
            op,
            enter_ns,
            ret,
            file,
            ..
        } = &ev.kind
        else {
            return;
        };
        if *op == SyncOp::SyncWrite {
            return;
        }
        self.total_syncs += 1;
        if *ret >= 0 {
            let latency = ev.ts.saturating_sub(*enter_ns);
            self.last_any_sync_ns = Some(latency);
            if let Some(f) = file {
                self.last_sync_ns.insert(*f, latency);
            }
        }
    }

    /// Events the kernel or the reader dropped so far.
    pub fn set_lost(&mut self, lost: u64) {
        self.lost_events = lost;
    }

    /// The view at `now_ns`, with at most `max_rows` rows.
    pub fn view<R: Resolver>(
        &mut self,
        state: &DurabilityState<R>,
        counters: &HashMap<FileKey, FileCounters>,
        now_ns: u64,
        max_rows: usize,
    ) -> View {
        let secs = self
            .previous
            .map_or(0.0, |(at, _)| now_ns.saturating_sub(at) as f64 / 1e9);
        let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let mut v = View {
            tier: self.tier,
            elapsed_ns: now_ns.saturating_sub(self.started_ns),
            last_sync_ns: self.last_any_sync_ns,
            lost_events: self.lost_events,
            syncs_per_s: rate(
                self.total_syncs
                    .saturating_sub(self.previous.map_or(self.total_syncs, |p| p.1)),
            ),
            ..View::default()
        };
        let (mut at_risk, mut synced) = (Vec::new(), Vec::new());
        let mut known = HashSet::new();
        for f in state.files() {
            known.insert(f.key);
            if f.removed {
                continue;
            }
            if f.is_dir {
                v.pending_entries += f.pending_count() as u64;
                continue;
            }
            let syncs = f.fsyncs + f.fdatasyncs + f.rare.other_syncs;
            let before = self.syncs_seen.insert(f.key, syncs);
            let new_syncs = before.map_or(0, |b| syncs.saturating_sub(b));
            let path = || {
                f.path_str()
                    .map_or_else(|| format!("<inode {}>", f.key.ino), str::to_string)
            };
            let mut row = Row {
                path: String::new(),
                at_risk_bytes: 0,
                unsynced_writes: 0,
                oldest_unsynced_ns: None,
                last_sync_ns: self.last_sync_ns.get(&f.key).copied(),
                syncs_per_s: rate(new_syncs),
            };
            if let Some(first) = f.dirty.first() {
                let c = counters.get(&f.key).copied().unwrap_or_default();
                let (writes, bytes, _) = f.unsynced(&c);
                let age = now_ns.saturating_sub(first.since);
                v.files_at_risk += 1;
                v.bytes_at_risk += bytes;
                v.oldest_unsynced_ns = Some(v.oldest_unsynced_ns.map_or(age, |o| o.max(age)));
                row.at_risk_bytes = bytes;
                row.unsynced_writes = writes;
                row.oldest_unsynced_ns = Some(age);
                row.path = path();
                at_risk.push(row);
            } else if new_syncs > 0 {
                row.path = path();
                synced.push(row);
            }
        }
        // Files the state machine let go of are forgotten here too.
        self.last_sync_ns.retain(|k, _| known.contains(k));
        self.syncs_seen.retain(|k, _| known.contains(k));
        self.previous = Some((now_ns, self.total_syncs));
        at_risk.sort_by(|a, b| {
            b.at_risk_bytes
                .cmp(&a.at_risk_bytes)
                .then(b.oldest_unsynced_ns.cmp(&a.oldest_unsynced_ns))
                .then(a.path.cmp(&b.path))
        });
        synced.sort_by(|a, b| {
            b.syncs_per_s
                .total_cmp(&a.syncs_per_s)
                .then(a.path.cmp(&b.path))
        });
        let total = at_risk.len() + synced.len();
        v.rows = at_risk.into_iter().chain(synced).take(max_rows).collect();
        v.more_rows = total - v.rows.len();
        v
    }
}

#[cfg(test)]
mod tests {
    use fsync_trace_common::SyncOp;

    use super::*;
    use crate::{
        event_fixtures::{actor, by, counters, dirty_kind, open_kind, sync_kind},
        state::NoResolver,
    };

    const DIR: FileKey = FileKey {
        dev: 8,
        gen: 0,
        ino: 100,
    };
    const fn key(ino: u64) -> FileKey {
        FileKey {
            dev: 8,
            gen: 0,
            ino,
        }
    }
    const S: u64 = 1_000_000_000;

    fn feed(m: &mut LiveModel, s: &mut DurabilityState<NoResolver>, evs: Vec<Event>) {
        for e in evs {
            m.observe(&e);
            s.apply(e);
        }
    }

    #[test]
    fn files_sort_by_bytes_at_risk_then_synced_files_follow() {
        let a = actor(7, "db");
        let ev = |ts, kind| by(a.clone(), ts, kind);
        let (big, small, log) = (key(1), key(2), key(3));
        let mut s = DurabilityState::new(NoResolver);
        let mut m = LiveModel::new("tracepoint", 0);
        feed(
            &mut m,
            &mut s,
            vec![
                ev(1, open_kind(small, DIR, "/d/small", true)),
                ev(2, dirty_kind(small, 0, 0)),
                ev(3, open_kind(big, DIR, "/d/big", true)),
                ev(4, dirty_kind(big, 0, 0)),
                ev(5, open_kind(log, DIR, "/d/log", true)),
            ],
        );
        let c = counters(&[(small, 1, 100), (big, 2, 8192), (log, 0, 0)]);
        let first = m.view(&s, &c, 2 * S, 10);
        let paths: Vec<&str> = first.rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/d/big", "/d/small"]);
        assert_eq!((first.files_at_risk, first.bytes_at_risk), (2, 8292));
        assert_eq!(first.rows[0].unsynced_writes, 2);
        assert_eq!(first.rows[0].oldest_unsynced_ns, Some(2 * S - 4));
        assert_eq!(first.oldest_unsynced_ns, Some(2 * S - 2));
        // log is written and synced twice in the next second: a synced row, 2 syncs/s, its
        // last latency; the at-risk files stay first.
        feed(
            &mut m,
            &mut s,
            vec![
                ev(2 * S + 10, dirty_kind(log, 0, 0)),
                ev(
                    2 * S + 30,
                    sync_kind(2 * S + 20, SyncOp::Fdatasync, Some(log), false, 0),
                ),
                ev(2 * S + 40, dirty_kind(log, 1, 100)),
                ev(
                    2 * S + 90,
                    sync_kind(2 * S + 50, SyncOp::Fdatasync, Some(log), false, 0),
                ),
            ],
        );
        let c = counters(&[(small, 1, 100), (big, 2, 8192), (log, 2, 200)]);
        let second = m.view(&s, &c, 3 * S, 10);
        let paths: Vec<&str> = second.rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/d/big", "/d/small", "/d/log"]);
        let log_row = &second.rows[2];
        assert_eq!(log_row.at_risk_bytes, 0);
        assert_eq!(log_row.last_sync_ns, Some(40));
        assert!((log_row.syncs_per_s - 2.0).abs() < 1e-9, "{log_row:?}");
        assert!((second.syncs_per_s - 2.0).abs() < 1e-9);
        assert_eq!(second.last_sync_ns, Some(40));
        // Nothing synced in the next second: the log row goes, the rate drops to 0.
        let third = m.view(&s, &c, 4 * S, 10);
        assert_eq!(third.rows.len(), 2);
        assert!(third.syncs_per_s.abs() < 1e-9);
        // Rows that do not fit are counted.
        let tight = m.view(&s, &c, 5 * S, 1);
        assert_eq!((tight.rows.len(), tight.more_rows), (1, 1));
    }

    #[test]
    fn failed_syncs_count_but_keep_the_last_good_latency() {
        let a = actor(7, "db");
        let f = key(1);
        let mut s = DurabilityState::new(NoResolver);
        let mut m = LiveModel::new("tracepoint", 0);
        feed(
            &mut m,
            &mut s,
            vec![
                by(a.clone(), 1, open_kind(f, DIR, "/d/f", true)),
                by(a.clone(), 2, dirty_kind(f, 0, 0)),
                by(
                    a.clone(),
                    10,
                    sync_kind(5, SyncOp::Fsync, Some(f), false, 0),
                ),
                by(a.clone(), 11, dirty_kind(f, 1, 10)),
                by(a, 100, sync_kind(20, SyncOp::Fsync, Some(f), false, -5)),
            ],
        );
        let v = m.view(&s, &counters(&[(f, 2, 20)]), S, 10);
        assert_eq!(v.rows[0].last_sync_ns, Some(5));
        assert_eq!(v.rows[0].at_risk_bytes, 10);
    }
}
