//! Handing kernel per-file slots back for reuse, so a long run never fills the table for good.
//!
//! A slot is detached first (its `FILE_SLOTS` entry deleted: the file's next write takes a new
//! slot, and every CPU's write cache is invalidated), its counters read; only after a grace
//! period (in which any write that had found the slot before has finished counting into it) is
//! it read again, zeroed and pushed onto `FREE_SLOTS` for the kernel to hand out again.
use aya::maps::{Array, HashMap as BpfHashMap, Queue};
use fsync_trace_common::{names, FileCounters, FileKey};

use super::{Tracer, TracerError};

/// Added to `CONFIG_CLOSE_EPOCH` to invalidate every write cache: far beyond any value the
/// kernel's own increments (racing with this read-modify-write) can reach, so the new value
/// differs from every cached one even if a kernel increment is lost.
const EPOCH_JUMP: u64 = 1 << 32;

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> TracerError {
    move |source| TracerError::Map { name, source }
}

impl Tracer {
    fn config_get(&self, slot: u32) -> Result<u64, TracerError> {
        let map = self
            .ebpf
            .map(names::CONFIG)
            .ok_or(TracerError::MissingMap(names::CONFIG))?;
        let config: Array<_, u64> = Array::try_from(map).map_err(map_err(names::CONFIG))?;
        config.get(&slot, 0).map_err(map_err(names::CONFIG))
    }

    fn stats(&mut self) -> Result<Array<&mut aya::maps::MapData, FileCounters>, TracerError> {
        let map = self
            .ebpf
            .map_mut(names::FILE_STATS)
            .ok_or(TracerError::MissingMap(names::FILE_STATS))?;
        Array::try_from(map).map_err(map_err(names::FILE_STATS))
    }

    /// Detaches the slot of `key`: None if it has none. Returns the slot and its counters now.
    pub fn detach_slot(
        &mut self,
        key: FileKey,
    ) -> Result<Option<(u32, FileCounters)>, TracerError> {
        let map = self
            .ebpf
            .map_mut(names::FILE_SLOTS)
            .ok_or(TracerError::MissingMap(names::FILE_SLOTS))?;
        let mut slots: BpfHashMap<_, FileKey, u32> =
            BpfHashMap::try_from(map).map_err(map_err(names::FILE_SLOTS))?;
        let Ok(slot) = slots.get(&key, 0) else {
            return Ok(None);
        };
        if slots.remove(&key).is_err() {
            return Ok(None); // removed meanwhile (by the kernel: an inode number reused)
        }
        let epoch = self.config_get(names::CONFIG_CLOSE_EPOCH)?;
        super::set_config(
            &mut self.ebpf,
            &[(names::CONFIG_CLOSE_EPOCH, epoch.wrapping_add(EPOCH_JUMP))],
        )?;
        let counters = self
            .stats()?
            .get(&slot, 0)
            .map_err(map_err(names::FILE_STATS))?;
        Ok(Some((slot, counters)))
    }

    /// Frees a detached slot after its grace period: returns its final counters, zeroes it and
    /// hands it back to the kernel.
    pub fn free_slot(&mut self, slot: u32) -> Result<FileCounters, TracerError> {
        let mut stats = self.stats()?;
        let last = stats.get(&slot, 0).map_err(map_err(names::FILE_STATS))?;
        stats
            .set(slot, FileCounters::default(), 0)
            .map_err(map_err(names::FILE_STATS))?;
        let map = self
            .ebpf
            .map_mut(names::FREE_SLOTS)
            .ok_or(TracerError::MissingMap(names::FREE_SLOTS))?;
        let mut free: Queue<_, u32> = Queue::try_from(map).map_err(map_err(names::FREE_SLOTS))?;
        free.push(slot, 0).map_err(map_err(names::FREE_SLOTS))?;
        self.freed_slots += 1;
        Ok(last)
    }

    /// Slots in use now (handed out by the kernel and not freed by this tracer).
    pub fn slots_in_use(&self) -> Result<u64, TracerError> {
        let allocated = self.config_get(names::CONFIG_SLOTS_ALLOCATED)?;
        Ok(allocated.saturating_sub(self.freed_slots))
    }
}
