//! Findings' call sites: the symbolized user stacks put on the report's findings.
use std::sync::Arc;

use super::Report;
use crate::symbolize::{Frame, StackStats};

impl Report {
    /// Gives every finding (bugs, advice, suppressed) the frames of its stack (`resolved`:
    /// every stack of the trace, by id).
    pub fn attach_stacks(&mut self, resolved: &[Arc<[Frame]>], stats: StackStats) {
        let entries = self
            .findings
            .iter_mut()
            .chain(self.advice.iter_mut())
            .chain(self.suppressed_findings.iter_mut().map(|s| &mut s.finding));
        for e in entries {
            e.stack = e
                .finding
                .stack_id
                .and_then(|id| resolved.get(id.0 as usize))
                .map(|s| s.to_vec());
        }
        self.stacks = stats;
    }
}
