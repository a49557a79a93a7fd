//! What live metrics (`--metrics`) need beyond the final analysis: which files each process
//! left unsynced when it exits, the dirty windows closed and what each sync covered.
use std::collections::{HashMap, HashSet};

use fsync_trace_common::FileKey;

use super::{DurabilityState, Resolver};

/// What live metrics need beyond the final analysis (see `metrics`).
#[derive(Debug, Default)]
pub(super) struct Live {
    /// Files and directories each live process left unsynced (dirtied, or changed an entry of),
    /// checked when it exits.
    pub(super) touched: HashMap<u32, HashSet<FileKey>>,
    /// Dirty windows (first dirtying to durable point, ns) closed since the last drain.
    pub(super) windows_ns: Vec<u64>,
    /// Writes covered by each fsync/fdatasync with a reading, and whether it was redundant,
    /// since the last drain.
    pub(super) covered: Vec<(u64, bool)>,
    /// Files with unsynced data / directory entry names left unsynced by exited processes.
    pub(super) exit_unsynced_files: u64,
    pub(super) exit_unsynced_entries: u64,
}

impl<R: Resolver> DurabilityState<R> {
    /// Keeps what live metrics need: which files each process left unsynced (checked at its
    /// exit) and every closed dirty window. Costs a set insert per dirtying and entry change.
    pub fn track_live(&mut self) {
        self.live.get_or_insert_with(Live::default);
    }

    /// (files with unsynced data, unsynced directory entry names) left behind by traced
    /// processes when they exited, since the start (with [`Self::track_live`]). A file counts
    /// for the process whose write first made it dirty, an entry for the process that changed
    /// it last, so nothing is counted twice.
    pub fn unsynced_at_exit(&self) -> (u64, u64) {
        self.live
            .as_ref()
            .map_or((0, 0), |l| (l.exit_unsynced_files, l.exit_unsynced_entries))
    }

    /// Hands over the dirty windows (ns) closed since the last call (with [`Self::track_live`]).
    pub fn drain_dirty_windows(&mut self, mut sink: impl FnMut(u64)) {
        if let Some(l) = &mut self.live {
            for w in l.windows_ns.drain(..) {
                sink(w);
            }
        }
    }

    /// Hands over, per fsync/fdatasync since the last call, the writes it covered and whether
    /// it was redundant (with [`Self::track_live`]).
    pub fn drain_covered(&mut self, mut sink: impl FnMut(u64, bool)) {
        if let Some(l) = &mut self.live {
            for (w, r) in l.covered.drain(..) {
                sink(w, r);
            }
        }
    }

    pub(super) fn touched(&mut self, pid: u32, key: FileKey) {
        if let Some(l) = &mut self.live {
            l.touched.entry(pid).or_default().insert(key);
        }
    }

    /// Live accounting of what an exiting process leaves unsynced.
    pub(super) fn on_exit_live(&mut self, pid: u32) {
        let Some(keys) = self.live.as_mut().and_then(|l| l.touched.remove(&pid)) else {
            return;
        };
        let (mut files, mut entries) = (0, 0);
        for key in keys {
            let Some(f) = self.files.get(&key) else {
                continue;
            };
            if f.removed {
                continue;
            }
            if !f.is_dir && f.dirty.first().is_some_and(|d| d.actor.pid == pid) {
                files += 1;
            }
            if f.is_dir {
                // Entry names whose last unsynced change is this process's.
                entries += f
                    .rare
                    .pending
                    .values()
                    .filter(|v| v.last().is_some_and(|e| e.actor.pid == pid))
                    .count() as u64;
            }
        }
        if let Some(l) = &mut self.live {
            l.exit_unsynced_files += files;
            l.exit_unsynced_entries += entries;
        }
    }
}
