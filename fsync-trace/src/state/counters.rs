//! The kernel's per-file counters at the end of a trace (or at a `--crash-at` instant).
use std::collections::HashMap;

use fsync_trace_common::{FileCounters, FileKey};

/// The kernel's per-file counters at the end of a trace, sorted by file: a flat array (with
/// 100,000 files, a hash table and its growth would be the peak of the tracer's memory).
#[derive(Clone, Debug, Default)]
pub struct FinalCounters(pub(super) Vec<(FileKey, FileCounters)>);

impl FinalCounters {
    pub fn new(mut counters: Vec<(FileKey, FileCounters)>) -> Self {
        counters.sort_unstable_by_key(|(k, _)| *k);
        counters.dedup_by_key(|(k, _)| *k);
        FinalCounters(counters)
    }

    pub fn get(&self, key: &FileKey) -> Option<&FileCounters> {
        self.0
            .binary_search_by_key(key, |(k, _)| *k)
            .ok()
            .map(|i| &self.0[i].1)
    }
}

impl From<HashMap<FileKey, FileCounters>> for FinalCounters {
    fn from(m: HashMap<FileKey, FileCounters>) -> Self {
        FinalCounters::new(m.into_iter().collect())
    }
}
