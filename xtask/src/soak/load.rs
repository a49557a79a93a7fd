//! The load generators, run in the child process (`cargo xtask soak --load PHASE`): they print
//! `progress k=v ...` lines every second and a `done k=v ...` line on stdout.
use std::{
    collections::VecDeque,
    fmt::Write as _,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

/// Log files the steady phase appends to.
pub(super) const LOG_FILES: usize = 4;
/// Bytes per log append.
pub(super) const LOG_RECORD: usize = 100;
/// Bytes written to each new file of the steady phase.
const NEW_FILE_BYTES: usize = 1024;
/// New files of the steady phase are unlinked once older than this.
pub(super) const NEW_FILE_LIFETIME: Duration = Duration::from_secs(10);
/// Churn: subdirectories, files per batch, bytes per file.
pub(super) const CHURN_DIRS: u64 = 4;
pub(super) const CHURN_BATCH: u64 = 10_000;
pub(super) const CHURN_BYTES: usize = 100;

/// One `kind k=v ...` line on stdout, flushed at once (the parent reads it as it comes).
fn kv_line(kind: &str, kv: &[(&str, u64)]) {
    let mut s = kind.to_string();
    for (k, v) in kv {
        let _ = write!(s, " {k}={v}");
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// Sleeps until `due` (no-op if it has passed); returns how late we are, in µs.
fn sleep_until(due: Instant) -> u64 {
    let now = Instant::now();
    match due.checked_duration_since(now) {
        Some(d) => {
            std::thread::sleep(d);
            0
        }
        None => now.duration_since(due).as_micros() as u64,
    }
}

#[derive(Default)]
struct SteadyCounters {
    appends: AtomicU64,
    created: AtomicU64,
    removed: AtomicU64,
    dir_fsyncs: AtomicU64,
    max_lag_us: AtomicU64,
}

impl SteadyCounters {
    fn snapshot(&self, elapsed: Duration) -> Vec<(&'static str, u64)> {
        vec![
            ("elapsed_ms", elapsed.as_millis() as u64),
            ("appends", self.appends.load(Ordering::Relaxed)),
            ("files_created", self.created.load(Ordering::Relaxed)),
            ("files_removed", self.removed.load(Ordering::Relaxed)),
            ("dir_fsyncs", self.dir_fsyncs.load(Ordering::Relaxed)),
            ("max_lag_ms", self.max_lag_us.load(Ordering::Relaxed) / 1000),
        ]
    }
}

/// About `fsync_rate` appends (100 B) + fdatasync per second over 4 log files, and `file_rate`
/// new files per second (create, 1 KiB, fsync, close; unlinked after 10 s; the directory
/// fsynced each second), each on a sleep-based schedule in its own thread (a late operation
/// runs at once: the schedule catches up, it does not drift).
pub(super) fn steady_load(
    dir: &Path,
    length: Duration,
    fsync_rate: u64,
    file_rate: u64,
) -> Result<()> {
    let logs_dir = dir.join("logs");
    let new_dir = dir.join("new");
    fs::create_dir_all(&logs_dir)?;
    fs::create_dir_all(&new_dir)?;
    let c = SteadyCounters::default();
    let finished = AtomicBool::new(false);
    let start = Instant::now();
    let end = start + length;
    std::thread::scope(|s| -> Result<()> {
        let logs = s.spawn(|| -> Result<()> {
            let mut files = (0..LOG_FILES)
                .map(|i| {
                    fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(logs_dir.join(format!("log{i}.log")))
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            let period = Duration::from_secs(1) / fsync_rate as u32;
            let record = [b'l'; LOG_RECORD];
            for i in 0u64.. {
                let due = start + period * i as u32;
                if due >= end {
                    break;
                }
                c.max_lag_us.fetch_max(sleep_until(due), Ordering::Relaxed);
                let f = &mut files[i as usize % LOG_FILES];
                f.write_all(&record)?;
                f.sync_data()?;
                c.appends.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        let new_files = s.spawn(|| -> Result<()> {
            let dirf = fs::File::open(&new_dir)?;
            let period = Duration::from_secs(1) / file_rate as u32;
            let data = [b'n'; NEW_FILE_BYTES];
            let mut live: VecDeque<(Instant, PathBuf)> = VecDeque::new();
            let mut next_dir_sync = start + Duration::from_secs(1);
            for i in 0u64.. {
                let due = start + period * i as u32;
                if due >= end {
                    break;
                }
                c.max_lag_us.fetch_max(sleep_until(due), Ordering::Relaxed);
                let path = new_dir.join(format!("f{i:08}"));
                let mut f = fs::File::create(&path)?;
                f.write_all(&data)?;
                f.sync_all()?;
                drop(f);
                c.created.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                live.push_back((now, path));
                while live
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > NEW_FILE_LIFETIME)
                {
                    let (_, p) = live.pop_front().unwrap();
                    fs::remove_file(&p)?;
                    c.removed.fetch_add(1, Ordering::Relaxed);
                }
                if now >= next_dir_sync {
                    dirf.sync_all()?;
                    c.dir_fsyncs.fetch_add(1, Ordering::Relaxed);
                    next_dir_sync += Duration::from_secs(1);
                }
            }
            dirf.sync_all()?;
            c.dir_fsyncs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        s.spawn(|| {
            let mut tick = 1;
            while !finished.load(Ordering::Relaxed) {
                sleep_until(start + Duration::from_secs(1) * tick);
                tick += 1;
                kv_line("progress", &c.snapshot(start.elapsed()));
            }
        });
        let r1 = logs
            .join()
            .map_err(|_| anyhow::anyhow!("log thread panicked"))?;
        let r2 = new_files
            .join()
            .map_err(|_| anyhow::anyhow!("new-file thread panicked"))?;
        finished.store(true, Ordering::Relaxed);
        r1.context("log appends")?;
        r2.context("new files")?;
        Ok(())
    })?;
    kv_line("done", &c.snapshot(start.elapsed()));
    Ok(())
}

/// `n` files created, written (100 B) and closed in 4 subdirectories, then unlinked, in batches
/// of 10,000, as fast as it goes; nothing is synced.
pub(super) fn churn_load(dir: &Path, n: u64) -> Result<()> {
    let dirs: Vec<PathBuf> = (0..CHURN_DIRS).map(|i| dir.join(format!("d{i}"))).collect();
    for d in &dirs {
        fs::create_dir_all(d)?;
    }
    let created = AtomicU64::new(0);
    let removed = AtomicU64::new(0);
    let create_us = AtomicU64::new(0);
    let remove_us = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let start = Instant::now();
    let snapshot = || {
        vec![
            ("elapsed_ms", start.elapsed().as_millis() as u64),
            ("created", created.load(Ordering::Relaxed)),
            ("removed", removed.load(Ordering::Relaxed)),
            ("create_ms", create_us.load(Ordering::Relaxed) / 1000),
            ("remove_ms", remove_us.load(Ordering::Relaxed) / 1000),
        ]
    };
    std::thread::scope(|s| -> Result<()> {
        s.spawn(|| {
            let mut tick = 1;
            while !finished.load(Ordering::Relaxed) {
                sleep_until(start + Duration::from_secs(1) * tick);
                tick += 1;
                kv_line("progress", &snapshot());
            }
        });
        let r = (|| -> Result<()> {
            let data = [b'c'; CHURN_BYTES];
            let path = |j: u64| dirs[(j % CHURN_DIRS) as usize].join(format!("f{j:08}"));
            let mut i = 0;
            while i < n {
                let b = CHURN_BATCH.min(n - i);
                let t = Instant::now();
                for j in i..i + b {
                    fs::File::create(path(j))?.write_all(&data)?;
                    created.fetch_add(1, Ordering::Relaxed);
                }
                create_us.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                let t = Instant::now();
                for j in i..i + b {
                    fs::remove_file(path(j))?;
                    removed.fetch_add(1, Ordering::Relaxed);
                }
                remove_us.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                i += b;
            }
            Ok(())
        })();
        finished.store(true, Ordering::Relaxed);
        r
    })?;
    kv_line("done", &snapshot());
    Ok(())
}
