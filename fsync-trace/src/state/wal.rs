//! The write-ahead-log contract (`--wal GLOB`): a database appends a commit to its log, makes the
//! log durable, and only then tells the client. An `Ack` event (the first data a process sent to
//! a socket after writing a WAL file) breaks the contract if no successful sync that covers that
//! write (one that *entered* after it: data written while a sync runs is not covered) had
//! returned by then. Pure: events in, findings and durability lags out.
use std::collections::HashMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::{Finding, FindingKind, Latency};
use crate::event::{Event, EventKind, FileKey, SyncOp};

/// Acks waiting for a covering sync, per file (bounded memory): further acks are counted, but
/// their lag is not measured (the finding says how many).
const MAX_WAITING: usize = 100_000;

/// A `--wal` pattern that is not a valid glob.
#[derive(Debug, thiserror::Error)]
#[error("--wal {pattern:?} is not a valid glob: {source}")]
pub struct WalGlobError {
    pattern: String,
    #[source]
    source: globset::Error,
}

/// Which paths are write-ahead logs: `*` and `?` stay within one path component, `**` spans
/// components (`globset` with `literal_separator`).
#[derive(Clone, Debug)]
pub struct WalGlobs {
    set: GlobSet,
}

impl WalGlobs {
    pub fn new(patterns: &[String]) -> Result<Self, WalGlobError> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|source| WalGlobError {
                    pattern: p.clone(),
                    source,
                })?;
            b.add(glob);
        }
        let set = b.build().map_err(|source| WalGlobError {
            pattern: patterns.join(" "),
            source,
        })?;
        Ok(Self { set })
    }

    pub fn matches(&self, path: &str) -> bool {
        self.set.is_match(path)
    }
}

/// One WAL file's judgement so far.
#[derive(Debug)]
struct WalFile {
    path: String,
    /// Latest entry time of a successful fsync/fdatasync of this file that has returned: it
    /// covers every write made before it.
    synced_enter_ns: u64,
    /// Acks that broke the contract, waiting for their data to become durable: (ack time, time
    /// of the WAL write it needs).
    waiting: Vec<(u64, u64)>,
    broken: Option<Broken>,
}

#[derive(Debug)]
struct Broken {
    acks: u64,
    first_ts: u64,
    pid: u32,
    comm: String,
    fd: i32,
    lags: Latency,
    lag_unmeasured: u64,
}

/// The WAL contract over a trace.
#[derive(Debug)]
pub struct WalContract {
    globs: WalGlobs,
    files: HashMap<FileKey, WalFile>,
    /// Latest entry of a successful sync(2), and of a successful syncfs(2) per device.
    sync_all_enter_ns: u64,
    syncfs_enter_ns: HashMap<u32, u64>,
    /// Durability lags (ns) measured since the last [`WalContract::drain_lags`].
    new_lags: Vec<u64>,
    /// Acks judged (broken or not).
    acks: u64,
    /// Acks that broke the contract since the last [`WalContract::drain_lags`].
    new_broken: u64,
}

impl WalContract {
    pub fn new(globs: WalGlobs) -> Self {
        Self {
            globs,
            files: HashMap::new(),
            sync_all_enter_ns: 0,
            syncfs_enter_ns: HashMap::new(),
            new_lags: Vec::new(),
            acks: 0,
            new_broken: 0,
        }
    }

    /// Acks seen so far (the kernel sends only the first after each WAL write).
    pub fn acks(&self) -> u64 {
        self.acks
    }

    /// Takes `ev` into account. Returns a file the kernel must now treat as a WAL (its path
    /// matched a `--wal` pattern when it was first seen).
    pub fn observe(&mut self, ev: &Event) -> Option<FileKey> {
        match &ev.kind {
            EventKind::Name { file, path, .. } => {
                if !self.globs.matches(path) {
                    return None;
                }
                let f = self.files.entry(*file).or_insert_with(|| WalFile {
                    path: path.clone(),
                    synced_enter_ns: 0,
                    waiting: Vec::new(),
                    broken: None,
                });
                f.path.clone_from(path);
                Some(*file)
            }
            EventKind::Sync {
                op,
                enter_ns,
                ret: 0,
                file,
                ..
            } => {
                self.on_sync(*op, *enter_ns, *file, ev.ts);
                None
            }
            EventKind::Ack { file, write_ns, fd } => {
                self.on_ack(ev, *file, *write_ns, *fd);
                None
            }
            _ => None,
        }
    }

    fn on_sync(&mut self, op: SyncOp, enter_ns: u64, file: Option<FileKey>, exit_ns: u64) {
        let lags = &mut self.new_lags;
        match (op, file) {
            (SyncOp::Fsync | SyncOp::Fdatasync, Some(key)) => {
                if let Some(f) = self.files.get_mut(&key) {
                    cover(f, enter_ns, exit_ns, lags);
                }
            }
            (SyncOp::Sync, _) => {
                self.sync_all_enter_ns = self.sync_all_enter_ns.max(enter_ns);
                for f in self.files.values_mut() {
                    cover(f, enter_ns, exit_ns, lags);
                }
            }
            (SyncOp::Syncfs, Some(key)) => {
                let e = self.syncfs_enter_ns.entry(key.dev).or_default();
                *e = (*e).max(enter_ns);
                for (k, f) in &mut self.files {
                    if k.dev == key.dev {
                        cover(f, enter_ns, exit_ns, lags);
                    }
                }
            }
            // msync, sync_file_range and O_SYNC writes make no earlier write of the log durable.
            _ => {}
        }
    }

    fn on_ack(&mut self, ev: &Event, file: FileKey, write_ns: u64, fd: i32) {
        self.acks += 1;
        let covered_ns = self
            .sync_all_enter_ns
            .max(self.syncfs_enter_ns.get(&file.dev).copied().unwrap_or(0));
        let Some(f) = self.files.get_mut(&file) else {
            return;
        };
        if f.synced_enter_ns.max(covered_ns) >= write_ns {
            return;
        }
        let b = f.broken.get_or_insert_with(|| Broken {
            acks: 0,
            first_ts: ev.ts,
            pid: ev.actor.pid,
            comm: ev.actor.comm.to_string(),
            fd,
            lags: Latency::per_op(),
            lag_unmeasured: 0,
        });
        b.acks += 1;
        self.new_broken += 1;
        if f.waiting.len() < MAX_WAITING {
            f.waiting.push((ev.ts, write_ns));
        } else {
            b.lag_unmeasured += 1;
        }
    }

    /// Hands over the durability lags (ns) measured since the last call (for metrics); returns
    /// the acks that broke the contract since then.
    pub fn drain_lags(&mut self, mut sink: impl FnMut(u64)) -> u64 {
        for lag in self.new_lags.drain(..) {
            sink(lag);
        }
        std::mem::take(&mut self.new_broken)
    }

    /// The findings at the end of the trace: one per WAL file whose contract was broken. Acks
    /// still waiting count as never durable. `current_path` gives a file's name at the end
    /// (logs are renamed: PostgreSQL recycles segments), else the name it matched under.
    pub fn finish(self, current_path: impl Fn(&FileKey) -> Option<String>) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .files
            .into_iter()
            .filter_map(|(key, f)| {
                let b = f.broken?;
                let never = f.waiting.len() as u64;
                let path = current_path(&key).unwrap_or(f.path);
                Some(finding(&path, &b, never))
            })
            .collect();
        out.sort_by(Finding::report_order);
        out
    }
}

/// A successful sync that entered at `enter_ns` and returned at `exit_ns` made `f` durable up
/// to its entry: acks waiting for writes before it get their lag.
fn cover(f: &mut WalFile, enter_ns: u64, exit_ns: u64, lags: &mut Vec<u64>) {
    f.synced_enter_ns = f.synced_enter_ns.max(enter_ns);
    let Some(b) = &mut f.broken else {
        return;
    };
    f.waiting.retain(|&(ack_ns, write_ns)| {
        if write_ns > enter_ns {
            return true;
        }
        let lag = exit_ns.saturating_sub(ack_ns);
        b.lags.record(lag);
        lags.push(lag);
        false
    });
}

fn finding(path: &str, b: &Broken, never: u64) -> Finding {
    let measured = b.lags.count();
    let (median_us, max_us) = if measured > 0 {
        (
            Some(b.lags.percentile(50.0) / 1000),
            Some(b.lags.max() / 1000),
        )
    } else {
        (None, None)
    };
    let lag = match (median_us, max_us) {
        (Some(med), Some(max)) => format!(
            "the log became durable {} (median) to {} (max) after the reply",
            human_us(med),
            human_us(max)
        ),
        _ => String::from("the log never became durable while traced"),
    };
    let mut never_note = if never > 0 && measured > 0 {
        format!("; {never} of them never while traced")
    } else {
        String::new()
    };
    if b.lag_unmeasured > 0 {
        never_note += &format!(
            "; the lag of {} of them was not measured (too many waiting at once)",
            b.lag_unmeasured
        );
    }
    Finding {
        kind: FindingKind::AckBeforeDurable,
        path: path.to_string(),
        pid: b.pid,
        comm: b.comm.clone(),
        ts: b.first_ts,
        message: format!(
            "{} sent {} repl{} (socket data, first on fd {}) while data it had written to this write-ahead log was not durable: {lag}{never_note}. A power cut in that window loses transactions the client was told were committed",
            b.comm,
            b.acks,
            if b.acks == 1 { "y" } else { "ies" },
            b.fd
        ),
        fix: "sync the log (fsync/fdatasync) before replying; if syncs are too slow, commit clients' transactions in groups with one sync per group instead of replying early".into(),
        count: b.acks,
        durability_lag_median_us: median_us,
        durability_lag_max_us: max_us,
        acks_never_durable: Some(never),
        ..Finding::blank()
    }
}

fn human_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Actor;

    const LOG: FileKey = FileKey {
        dev: 8,
        gen: 1,
        ino: 12,
    };
    const DATA: FileKey = FileKey {
        dev: 8,
        gen: 1,
        ino: 13,
    };

    fn ev(ts: u64, pid: u32, kind: EventKind) -> Event {
        Event {
            ts,
            actor: Actor {
                pid,
                tid: pid,
                comm: "server".into(),
                stack: None,
                cgroup_id: 0,
            },
            kind,
        }
    }

    fn name(file: FileKey, path: &str) -> Event {
        ev(
            1,
            7,
            EventKind::Name {
                file,
                path: path.into(),
                nlink: 1,
                open_flags: 0,
            },
        )
    }

    fn sync(op: SyncOp, file: Option<FileKey>, enter_ns: u64, exit_ns: u64, ret: i64) -> Event {
        ev(
            exit_ns,
            7,
            EventKind::Sync {
                op,
                enter_ns,
                ret,
                file,
                is_dir: false,
                fd: 3,
                addr: 0,
                len: 0,
                flags: 0,
                counters: None,
            },
        )
    }

    fn ack(ts: u64, file: FileKey, write_ns: u64) -> Event {
        ev(
            ts,
            7,
            EventKind::Ack {
                file,
                write_ns,
                fd: 4,
            },
        )
    }

    fn contract(globs: &[&str]) -> WalContract {
        let globs: Vec<String> = globs.iter().map(|g| (*g).to_string()).collect();
        WalContract::new(WalGlobs::new(&globs).unwrap())
    }

    #[test]
    fn globs_keep_star_within_a_component() {
        let g = WalGlobs::new(&["**/pg_wal/*".into(), "/var/lib/redis/aof/*".into()]).unwrap();
        assert!(g.matches("/var/lib/postgresql/15/main/pg_wal/000000010000000000000001"));
        assert!(g.matches("/pg_wal/x"));
        assert!(!g.matches("/var/lib/postgresql/pg_wal/archive_status/x.done"));
        assert!(g.matches("/var/lib/redis/aof/appendonly.aof.1.incr.aof"));
        assert!(!g.matches("/var/lib/redis/aof/sub/file"));
        assert!(!g.matches("/var/lib/redis/dump.rdb"));
        let e = WalGlobs::new(&["a/[".into()]).unwrap_err().to_string();
        assert!(e.starts_with("--wal \"a/[\" is not a valid glob"), "{e}");
    }

    #[test]
    fn only_matching_names_are_marked() {
        let mut w = contract(&["/db/wal/*"]);
        assert_eq!(w.observe(&name(LOG, "/db/wal/log.1")), Some(LOG));
        assert_eq!(w.observe(&name(DATA, "/db/data/t.1")), None);
    }

    #[test]
    fn sync_before_reply_keeps_the_contract() {
        let mut w = contract(&["/db/wal/*"]);
        w.observe(&name(LOG, "/db/wal/log"));
        for i in 0..5 {
            let t = 1000 * (i + 1);
            w.observe(&sync(SyncOp::Fdatasync, Some(LOG), t + 10, t + 50, 0));
            w.observe(&ack(t + 60, LOG, t));
        }
        assert_eq!(w.acks(), 5);
        assert!(w.finish(|_| None).is_empty());
    }

    #[test]
    fn reply_before_sync_is_flagged_with_its_lag() {
        let mut w = contract(&["/db/wal/*"]);
        w.observe(&name(LOG, "/db/wal/log"));
        // Three requests: write at t, reply at t+10 µs, fdatasync entered at t+20 µs, returned
        // t+(120 + 100 i) µs: lags 110, 210, 310 µs.
        for i in 0..3u64 {
            let t = 1_000_000 * (i + 1);
            w.observe(&ack(t + 10_000, LOG, t));
            w.observe(&sync(
                SyncOp::Fdatasync,
                Some(LOG),
                t + 20_000,
                t + 120_000 + 100_000 * i,
                0,
            ));
        }
        // A fourth reply whose data is never synced.
        w.observe(&ack(9_000_000, LOG, 8_000_000));
        let mut lags = Vec::new();
        w.drain_lags(|l| lags.push(l));
        assert_eq!(lags, [110_000, 210_000, 310_000]);
        let f = w.finish(|_| None);
        assert_eq!(f.len(), 1);
        let f = &f[0];
        assert_eq!(f.kind, FindingKind::AckBeforeDurable);
        assert_eq!(f.path, "/db/wal/log");
        assert_eq!(f.count, 4);
        assert_eq!(f.ts, 1_010_000);
        assert_eq!(f.durability_lag_median_us, Some(210));
        assert_eq!(f.durability_lag_max_us, Some(310));
        assert_eq!(f.acks_never_durable, Some(1));
        assert!(f.message.contains("power cut"), "{}", f.message);
    }

    #[test]
    fn a_sync_that_started_before_the_write_does_not_cover_it() {
        let mut w = contract(&["/db/wal/*"]);
        w.observe(&name(LOG, "/db/wal/log"));
        // The sync entered at 100, the write came at 150 (while it ran), the sync returned at
        // 200, the reply at 300: not covered.
        w.observe(&sync(SyncOp::Fsync, Some(LOG), 100, 200, 0));
        w.observe(&ack(300, LOG, 150));
        // A failed sync covers nothing; another file's sync neither.
        w.observe(&sync(SyncOp::Fsync, Some(LOG), 400, 500, -5));
        w.observe(&sync(SyncOp::Fsync, Some(DATA), 400, 500, 0));
        // syncfs of the same device does.
        w.observe(&sync(SyncOp::Syncfs, Some(DATA), 600, 700, 0));
        let f = w.finish(|_| None);
        assert_eq!(f[0].count, 1);
        assert_eq!(f[0].durability_lag_max_us, Some(0));
        assert_eq!(f[0].acks_never_durable, Some(0));
    }

    #[test]
    fn sync_of_everything_covers_earlier_writes() {
        let mut w = contract(&["/db/wal/*"]);
        w.observe(&name(LOG, "/db/wal/log"));
        w.observe(&sync(SyncOp::Sync, None, 100, 200, 0));
        w.observe(&ack(300, LOG, 50));
        // Acks about files that are not WALs (marked in an earlier run...) are not judged.
        w.observe(&ack(300, DATA, 250));
        assert!(w.finish(|_| None).is_empty());
    }
}
