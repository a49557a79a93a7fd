//! Bounded memory for long runs (`--all` as a daemon): kernel per-file slots of files that no
//! longer need them are handed back, file states of durable idle files are released beyond a
//! bound, and exited processes beyond a bound are forgotten. Everything released is counted
//! and reported, never silently dropped.
//!
//! Kernel slots: a removed file's slot is freed at once (its data no longer matters), and when
//! the kernel table fills, the slots of durable idle files too (their counters are carried in
//! userspace, see [`super::Carried`]). The tracer does the map work ([`SlotWork`]).
use fsync_trace_common::{FileCounters, FileKey};
use serde::Serialize;

use super::{add_counters, Carried, DurabilityState, Resolver};

/// Exited processes kept for the report; older ones are released (counted).
pub const MAX_EXITED_PROCESSES: usize = 4096;

/// Kernel slot work the state machine asks the tracer for.
#[derive(Debug, Default)]
pub struct SlotWork {
    /// Files whose slot is to be detached (the key's slot map entry deleted, counters handed
    /// back with [`DurabilityState::absorb_slot`]).
    pub detach: Vec<FileKey>,
    /// Slots the kernel already detached (an inode number reused): only to be freed.
    pub free: Vec<u32>,
}

impl SlotWork {
    pub(super) fn detach(&mut self, key: FileKey) {
        self.detach.push(key);
    }
    pub(super) fn free(&mut self, slot: u32) {
        self.free.push(slot);
    }
}

/// What was released from memory before the end of the trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Released {
    /// Durable, idle files whose state was dropped (beyond `--max-files`).
    pub files: u64,
    /// Exited processes forgotten (beyond [`MAX_EXITED_PROCESSES`]).
    pub processes: u64,
    /// Kernel per-file slots handed back for reuse.
    pub reclaimed_slots: u64,
}

impl<R: Resolver> DurabilityState<R> {
    /// Takes the kernel slot work asked for since the last call.
    pub fn take_slot_work(&mut self) -> SlotWork {
        std::mem::take(&mut self.slot_work)
    }

    /// The kernel slot `slot` of `key` was detached holding `counters` (or, for a slot already
    /// detached, what it gained in the grace period after). They are carried for the file's
    /// life; a `Dirty` record still to come from that slot is placed on the right base.
    pub fn absorb_slot(&mut self, key: FileKey, slot: u32, counters: FileCounters, first: bool) {
        if first {
            self.released.reclaimed_slots += 1;
        }
        let Some(f) = self.files.get_mut(&key) else {
            return; // released: its counters no longer matter
        };
        let carried = f
            .rare
            .carried
            .get_or_insert_with(|| Box::new(Carried::default()));
        if first {
            carried.last_slot = Some((slot, carried.counters));
        }
        carried.counters = add_counters(&carried.counters, &counters);
    }

    /// The kernel holds no slot for `key`.
    pub fn slot_gone(&mut self, key: FileKey) {
        if let Some(f) = self.files.get_mut(&key) {
            f.has_slot = false;
        }
    }

    /// Asks for the slots of up to `n` durable files, least recently active first, to be
    /// detached (the kernel table is filling). Their states stay.
    pub fn detach_idle_slots(&mut self, n: usize) {
        let mut idle: Vec<(u64, FileKey)> = self
            .files
            .values()
            .filter(|f| f.has_slot && releasable(f) && !f.removed)
            .map(|f| (f.last_active, f.key))
            .collect();
        idle.sort_unstable();
        for (_, key) in idle.into_iter().take(n) {
            self.slot_work.detach(key);
        }
    }

    /// Beyond `max_files` file states, releases durable idle ones (least recently active
    /// first) down to 90% of the bound, with their kernel slots. Files holding unsynced data or
    /// entries, or a failed sync, are never released: they are findings.
    pub fn release_idle_files(&mut self, max_files: usize) {
        if self.files.len() <= max_files {
            return;
        }
        let target = max_files - max_files / 10;
        let mut idle: Vec<(u64, FileKey)> = self
            .files
            .values()
            .filter(|f| releasable(f))
            .map(|f| (f.last_active, f.key))
            .collect();
        idle.sort_unstable();
        let excess = self.files.len() - target;
        let mut gone = std::collections::HashSet::new();
        for (_, key) in idle.into_iter().take(excess) {
            let Some(f) = self.files.remove(&key) else {
                continue;
            };
            for n in f.names() {
                if self.paths.get(n) == Some(&key) {
                    self.paths.remove(n);
                }
            }
            self.slot_work.detach(key);
            self.released.files += 1;
            gone.insert(key);
        }
        // One pass over what still refers to them, not one per released file.
        self.mappings
            .values_mut()
            .for_each(|m| m.retain(|m| !gone.contains(&m.file)));
        if let Some(l) = &mut self.live {
            l.touched
                .values_mut()
                .for_each(|t| t.retain(|k| !gone.contains(k)));
        }
    }

    /// Forgets the oldest exited processes beyond [`MAX_EXITED_PROCESSES`].
    pub(super) fn release_exited_processes(&mut self) {
        while self.exited.len() > MAX_EXITED_PROCESSES {
            if let Some(pid) = self.exited.pop_front() {
                if self.processes.get(&pid).is_some_and(|p| p.exited) {
                    self.processes.remove(&pid);
                    self.released.processes += 1;
                }
            }
        }
    }
}

/// Nothing to report about the file but its totals: removed, or no unsynced data or entries
/// and no failed sync awaiting a retry.
fn releasable(f: &super::FileState) -> bool {
    // A removed file's unsynced data no longer matters: it is no finding either.
    (f.removed && !f.is_dir)
        || (!f.is_dirty() && f.rare.pending.is_empty() && f.rare.failed_sync.is_none())
}
