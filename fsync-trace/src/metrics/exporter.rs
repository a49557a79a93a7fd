//! The exporter's threads: the kernel-counter scanner and the HTTP endpoint, started and
//! stopped together.
use std::{
    collections::HashMap,
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use fsync_trace_common::{FileCounters, FileKey};

use super::*;

/// Stops the scanner thread when dropped.
pub struct ScannerHandle {
    _stop: mpsc::Sender<()>,
}

/// Reads the kernel's per-file counters on a thread of its own: at most once a second, and
/// backing off to ten times the duration of a scan (a full FILE_STATS walk is two syscalls per
/// file). Adds the growth of the totals to the writes / written-bytes counters and hands each
/// scan to the event loop through the returned channel (for the unsynced-bytes gauges).
pub fn spawn_file_stats_scanner<F>(
    mut scan: F,
    metrics: &Metrics,
) -> (ScannerHandle, watch::Receiver<Option<CountersSnapshot>>)
where
    F: FnMut() -> Result<HashMap<FileKey, FileCounters>, String> + Send + 'static,
{
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (tx, rx) = watch::channel(None);
    let writes = metrics.writes.clone();
    let bytes = metrics.written_bytes.clone();
    let spawned = std::thread::Builder::new()
        .name("fsync-trace-stats".into())
        .spawn(move || {
            let (mut last_writes, mut last_bytes) = (0u64, 0u64);
            loop {
                let started = Instant::now();
                match scan() {
                    Ok(map) => {
                        let (w, b) = map.values().fold((0u64, 0u64), |(w, b), c| {
                            (
                                w + c.writes + c.sync_writes,
                                b + c.bytes + c.sync_write_bytes,
                            )
                        });
                        // Entries are never removed, so the sums only grow.
                        if w > last_writes {
                            writes.inc_by(w - last_writes);
                            last_writes = w;
                        }
                        if b > last_bytes {
                            bytes.inc_by(b - last_bytes);
                            last_bytes = b;
                        }
                        if tx.send(Some(Arc::new(map))).is_err() {
                            return; // the event loop is gone
                        }
                    }
                    Err(e) => log::warn!("reading FILE_STATS for metrics: {e}"),
                }
                let wait = (started.elapsed() * 10).clamp(REFRESH, Duration::from_secs(60));
                match stop_rx.recv_timeout(wait) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the FILE_STATS scanner: {e}");
    }
    (ScannerHandle { _stop: stop_tx }, rx)
}

/// Everything `--metrics` runs: the server (on the runtime), the counters scanner (a thread)
/// and the live metrics the event loop feeds.
pub struct Exporter {
    pub live: LiveMetrics,
    scans: Option<watch::Receiver<Option<CountersSnapshot>>>,
    _scanner: ScannerHandle,
}

impl Exporter {
    /// Starts serving `listener` on `runtime` (a multi-thread runtime, so scrapes are answered
    /// on a worker while the event loop runs). `read_counters` reads FILE_STATS.
    pub fn start<F>(
        listener: std::net::TcpListener,
        tier: &str,
        top_files: usize,
        labels: Option<(LabelChoice, usize)>,
        read_counters: F,
        runtime: &tokio::runtime::Handle,
    ) -> Self
    where
        F: FnMut() -> Result<HashMap<FileKey, FileCounters>, String> + Send + 'static,
    {
        let metrics = Metrics::with_labels(tier, top_files, labels);
        let (scanner, scans) = spawn_file_stats_scanner(read_counters, &metrics);
        runtime.spawn(server::serve(listener, metrics.registry()));
        Exporter {
            live: LiveMetrics::new(metrics),
            scans: Some(scans),
            _scanner: scanner,
        }
    }
}

/// Waits for the next counters scan; pending forever without metrics or once the scanner is
/// gone (for `select!`).
pub async fn next_scan(exporter: &mut Option<Exporter>) -> Option<CountersSnapshot> {
    let Some(rx) = exporter.as_mut().and_then(|e| e.scans.as_mut()) else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_err() {
        if let Some(e) = exporter.as_mut() {
            e.scans = None;
        }
        return None;
    }
    let scan = rx.borrow_and_update().clone();
    scan
}
