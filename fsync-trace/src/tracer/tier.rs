//! Attach tiers: the same facts from different kernel hooks.
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Raw syscall, scheduler and writeback tracepoints: works wherever BPF tracing does.
    Tracepoint,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Tracepoint => "tracepoint",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
