//! The kernel's per-file counters: all at once (live views, metrics), or at the end of a
//! trace one file at a time.
use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData},
    Ebpf,
};
use fsync_trace_common::{names, FileCounters, FileKey};

use super::TracerError;

/// The files the kernel kept counters for at the end of a trace, with their slots (see
/// [`Tracer::into_file_counters`]).
pub struct KernelCounters {
    /// Still loaded (every program attached) until the counters are read.
    pub(super) ebpf: Ebpf,
    pub(super) keys: Vec<(FileKey, u32)>,
}

impl KernelCounters {
    /// Files with counters.
    pub fn files(&self) -> usize {
        self.keys.len()
    }

    /// Hands each file's final counters to `sink`, in key order, one at a time: 100,000
    /// files' counters (128 bytes each) are never all in memory at once. Detaches everything.
    pub fn for_each(self, mut sink: impl FnMut(FileKey, FileCounters)) -> Result<(), TracerError> {
        let KernelCounters { ebpf, keys } = self;
        let map_err = |source| TracerError::Map {
            name: names::FILE_STATS,
            source,
        };
        let stats: Array<_, FileCounters> = Array::try_from(
            ebpf.map(names::FILE_STATS)
                .ok_or(TracerError::MissingMap(names::FILE_STATS))?,
        )
        .map_err(map_err)?;
        for (key, slot) in keys {
            sink(key, stats.get(&slot, 0).map_err(map_err)?);
        }
        Ok(())
    }
}

/// Every file's counters: its slot from `FILE_SLOTS`, then that slot of `FILE_STATS`.
pub(super) fn read_counters<S, C>(
    slots: &BpfHashMap<S, FileKey, u32>,
    stats: &Array<C, FileCounters>,
) -> Result<Vec<(FileKey, FileCounters)>, TracerError>
where
    S: std::borrow::Borrow<MapData>,
    C: std::borrow::Borrow<MapData>,
{
    let slots = read_slots(slots)?;
    let mut out = Vec::with_capacity(slots.len());
    for (key, slot) in slots {
        let c = stats.get(&slot, 0).map_err(|source| TracerError::Map {
            name: names::FILE_STATS,
            source,
        })?;
        out.push((key, c));
    }
    Ok(out)
}

/// Every file's slot, from `FILE_SLOTS` (a walk of a hash map can meet a key twice).
pub(super) fn read_slots<S>(
    slots: &BpfHashMap<S, FileKey, u32>,
) -> Result<Vec<(FileKey, u32)>, TracerError>
where
    S: std::borrow::Borrow<MapData>,
{
    // Sized first (a pass over the keys only): grown by doubling, the array of 100,000 files
    // left its earlier copies (half its size, a quarter...) resident in the heap.
    let mut out = Vec::with_capacity(slots.keys().flatten().count());
    for item in slots.iter() {
        out.push(item.map_err(|source| TracerError::Map {
            name: names::FILE_SLOTS,
            source,
        })?);
    }
    Ok(out)
}
