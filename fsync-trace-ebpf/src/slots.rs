//! The per-file counter slots (`FILE_STATS`): the slot of a file, given on its first sight (a
//! slot userspace freed, else a never-used one), and its counters.
use fsync_trace_common::{names, FileCounters, FileKey};

use crate::{
    kernel::{file_inode, task_file, KPtr},
    maps::{config, count_lost, CONFIG, FILE_SLOTS, FILE_STATS, FREE_SLOTS, SLOT_OWNERS},
    state::atomic_add,
};

/// The `FILE_STATS` slot of `key`, given on first sight: a slot userspace freed
/// (`FREE_SLOTS`), else a never-used one.
#[inline(always)]
pub fn file_slot(key: &FileKey) -> Option<u32> {
    if let Some(slot) = unsafe { FILE_SLOTS.get(key) } {
        return Some(*slot);
    }
    let (slot, reused) = match FREE_SLOTS.pop() {
        Ok(Some(slot)) => (slot, true),
        _ => (fresh_slot(key)?, false),
    };
    // BPF_NOEXIST: if another CPU gave this file a slot meanwhile, use that one (a reused slot
    // goes back to the free list; a fresh one stays unused).
    if FILE_SLOTS.insert(key, slot, 1).is_ok() {
        if let Some(p) = CONFIG.get_ptr_mut(names::CONFIG_SLOTS_ALLOCATED) {
            // SAFETY: a CONFIG slot.
            unsafe { atomic_add(p, 1) };
        }
        return Some(slot);
    }
    if reused {
        let _ = FREE_SLOTS.push(slot, 0);
    }
    if let Some(s) = unsafe { FILE_SLOTS.get(key) } {
        Some(*s)
    } else {
        count_lost(names::LOST_FILE_MAP_FULL);
        None
    }
}

/// A slot never handed out before, or None (counted as lost) when the table is full.
#[inline(always)]
fn fresh_slot(key: &FileKey) -> Option<u32> {
    let next = CONFIG.get_ptr_mut(names::CONFIG_NEXT_FILE_SLOT)?;
    let max = config(names::CONFIG_FILE_SLOTS);
    // Claim a new slot. Without a fetch-and-add (BPF CPU v3, which aya-build does not select),
    // two CPUs can read the same counter value: `SLOT_OWNERS` (BPF_NOEXIST) lets only one of
    // them have it, and the other bumps the counter and tries again. Slots skipped this way
    // stay unused.
    for _ in 0..4 {
        // SAFETY: a CONFIG slot.
        unsafe { atomic_add(next, 1) };
        let candidate = unsafe { core::ptr::read_volatile(next) }.saturating_sub(1);
        if candidate >= max {
            break;
        }
        let candidate = candidate as u32;
        if SLOT_OWNERS.insert(candidate, key, 1).is_ok() {
            return Some(candidate);
        }
    }
    count_lost(names::LOST_FILE_MAP_FULL);
    None
}

/// The regular file on a tracked filesystem behind descriptor `fd` of `task`: its key, slot
/// (taken on first sight) and counters. None for anything else (no such descriptor, a
/// directory, a socket, a file on tmpfs...). The changes made through a descriptor
/// (`probes/truncate.rs`, `probes/metadata.rs`) start here, count themselves in the counters and
/// announce the file with `mark_changed`.
#[inline(always)]
pub fn tracked_file_at_fd(task: KPtr, fd: i32) -> Option<(FileKey, u32, *mut FileCounters)> {
    let file = task_file(task, i64::from(fd))?;
    let inode = file_inode(file)?;
    if !inode.is_reg() || !inode.tracked() {
        return None;
    }
    let key = inode.key;
    let slot = file_slot(&key)?;
    Some((key, slot, counters_at(slot)?))
}

/// The counters in `slot`.
#[inline(always)]
pub fn counters_at(slot: u32) -> Option<*mut FileCounters> {
    FILE_STATS.get_ptr_mut(slot)
}

/// The counters of `key`, created on first sight.
#[inline(always)]
pub fn file_counters(key: &FileKey) -> Option<*mut FileCounters> {
    counters_at(file_slot(key)?)
}

/// The counters of `key` if it has any (never creates them).
#[inline(always)]
pub fn existing_counters(key: &FileKey) -> Option<*mut FileCounters> {
    existing_slot(key).map(|(_, c)| c)
}

/// The slot and counters of `key` if it has any (never creates them).
#[inline(always)]
pub fn existing_slot(key: &FileKey) -> Option<(u32, *mut FileCounters)> {
    let slot = *unsafe { FILE_SLOTS.get(key) }?;
    Some((slot, counters_at(slot)?))
}
