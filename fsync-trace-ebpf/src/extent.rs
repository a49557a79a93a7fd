//! The dirty extent kept per file in the kernel (`FileCounters::extent_lo/hi`): the range of
//! file offsets the current durability segment wrote. The write path widens it; `mark_dirty`
//! (state.rs) closes a segment into the `Dirty` record that starts the next one. All of it is
//! dropped by the verifier with `--no-dirty-extent` (`EXTENT_ENABLED` 0).
use fsync_trace_common::FileCounters;

/// Nonzero unless `--no-dirty-extent` (set at load: `names::EXTENT_ENABLED_GLOBAL`).
#[unsafe(no_mangle)]
static EXTENT_ENABLED: u32 = 0;

/// True if dirty extents are kept. Volatile so the compiler cannot fold the initialiser; the
/// verifier sees the loaded value as a constant (frozen read-only map) and drops the dead
/// branches: without them, a write reads and stores nothing more than before the feature.
#[inline(always)]
pub fn extent_enabled() -> bool {
    unsafe { core::ptr::read_volatile(&EXTENT_ENABLED) != 0 }
}

/// Widens the current segment's dirty extent of `c` by `[lo, hi)` (`hi` `EXTENT_UNKNOWN`:
/// unknown, which stays so). Plain loads and stores: BPF has no atomic min/max, so two CPUs
/// widening the same file's extent at the same instant can lose one widening (a compare and
/// swap loop would need a newer BPF CPU than aya-build selects).
///
/// # Safety
/// `c` is a `FILE_STATS` value.
#[inline(always)]
pub unsafe fn widen_extent(c: *mut FileCounters, lo: u64, hi: u64) {
    unsafe {
        let cur_hi = (*c).extent_hi;
        if cur_hi == 0 {
            (*c).extent_lo = lo;
            (*c).extent_hi = hi;
            return;
        }
        if lo < (*c).extent_lo {
            (*c).extent_lo = lo;
        }
        if hi > cur_hi {
            (*c).extent_hi = hi;
        }
    }
}
