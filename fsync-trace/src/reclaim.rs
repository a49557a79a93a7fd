//! Long runs in bounded memory: carries out the kernel slot work the state machine asks for
//! (detach, grace period, free) and releases idle file states beyond `--max-files`. Runs
//! between drains of the ring buffer, so no record is applied while a slot is half-moved.
use std::collections::VecDeque;

use fsync_trace_common::{FileCounters, FileKey};

use crate::{
    report::monotonic_ns,
    state::{DurabilityState, Resolver},
    tracer::{Tracer, TracerError},
};

/// How long a detached slot waits before it is freed: far longer than any eBPF program runs,
/// so a write that found the slot before it was detached has finished counting into it.
const GRACE_NS: u64 = 50_000_000;

/// Above this share of the kernel table in use, durable idle files give their slots back, down
/// to `LOW_WATER`.
const HIGH_WATER: f64 = 0.5;
const LOW_WATER: f64 = 0.25;

/// A detached slot in its grace period: when, which file (None: the kernel detached it), and
/// the counters read when it was detached.
struct Quarantined {
    at: u64,
    slot: u32,
    key: Option<FileKey>,
    seen: FileCounters,
}

pub struct Reclaimer {
    quarantine: VecDeque<Quarantined>,
    /// File states beyond which durable idle ones are released.
    max_files: usize,
}

impl Reclaimer {
    pub fn new(max_files: usize) -> Self {
        Reclaimer {
            quarantine: VecDeque::new(),
            max_files,
        }
    }

    /// One round: bounds, then the slot work asked for, then frees slots past their grace.
    pub fn tick<R: Resolver>(
        &mut self,
        tracer: &mut Tracer,
        state: &mut DurabilityState<R>,
    ) -> Result<(), TracerError> {
        state.release_idle_files(self.max_files);
        let total = tracer.file_slots() as f64;
        // Slots in their grace period are on their way back: not counted again.
        let in_use = tracer
            .slots_in_use()?
            .saturating_sub(self.quarantine.len() as u64) as f64;
        if in_use > total * HIGH_WATER {
            state.detach_idle_slots((in_use - total * LOW_WATER) as usize);
        }
        let now = monotonic_ns();
        let work = state.take_slot_work();
        if !work.detach.is_empty() {
            log::debug!(
                "slots: {in_use} in use of {total}, detaching {}, {} in grace",
                work.detach.len(),
                self.quarantine.len()
            );
        }
        for key in work.detach {
            let Some((slot, counters)) = tracer.detach_slot(key)? else {
                // None to give back (never had one: the table was full; or detached already).
                state.slot_gone(key);
                continue;
            };
            {
                state.absorb_slot(key, slot, counters, true);
                self.quarantine.push_back(Quarantined {
                    at: now,
                    slot,
                    key: Some(key),
                    seen: counters,
                });
            }
        }
        for slot in work.free {
            self.quarantine.push_back(Quarantined {
                at: now,
                slot,
                key: None,
                seen: FileCounters::default(),
            });
        }
        while self
            .quarantine
            .front()
            .is_some_and(|q| now.saturating_sub(q.at) >= GRACE_NS)
        {
            let Some(q) = self.quarantine.pop_front() else {
                break;
            };
            let last = tracer.free_slot(q.slot)?;
            if let Some(key) = q.key {
                // What writes already under way added after the slot was detached.
                let late = sub_counters(&last, &q.seen);
                if late != FileCounters::default() {
                    state.absorb_slot(key, q.slot, late, false);
                }
            }
        }
        Ok(())
    }
}

/// `a - b` counter by counter (never below zero).
fn sub_counters(a: &FileCounters, b: &FileCounters) -> FileCounters {
    let d = |x: u64, y: u64| x.saturating_sub(y);
    FileCounters {
        writes: d(a.writes, b.writes),
        bytes: d(a.bytes, b.bytes),
        sync_writes: d(a.sync_writes, b.sync_writes),
        sync_write_bytes: d(a.sync_write_bytes, b.sync_write_bytes),
        mapped_dirty_pages: d(a.mapped_dirty_pages, b.mapped_dirty_pages),
        kernel_writebacks: d(a.kernel_writebacks, b.kernel_writebacks),
        dirty_gen: 0,
        flags: 0,
        truncates: d(a.truncates, b.truncates),
        fallocates: d(a.fallocates, b.fallocates),
        truncate_len: a.truncate_len,
        change_gen: 0,
        extent_lo: 0,
        extent_hi: 0,
        metadata_changes: d(a.metadata_changes, b.metadata_changes),
        metadata_gen: 0,
    }
}
