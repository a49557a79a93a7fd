//! The kernel's per-file counters at the end of a trace, read one file at a time.
use aya::{maps::Array, Ebpf};
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
