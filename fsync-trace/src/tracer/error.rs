use thiserror::Error;

/// Errors of the kernel side: loading, attaching and reading the eBPF programs.
#[derive(Debug, Error)]
pub enum TracerError {
    #[error("kernel BTF not found at {0}: this kernel was built without CONFIG_DEBUG_INFO_BTF, which fsync-trace needs to read kernel structures")]
    NoBtf(String),
    #[error("cannot read kernel BTF {path}: {source}")]
    BtfRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse kernel BTF: {0}")]
    Btf(String),
    #[error("kernel BTF lacks {0}: this kernel's layout is not supported")]
    BtfMember(String),
    #[error("BPF is not permitted here (need root or CAP_BPF+CAP_PERFMON, and kernel.unprivileged_bpf_disabled / lockdown allowing tracing): {what}: {source}")]
    NotPermitted {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] aya::EbpfError),
    #[error("eBPF program {name} failed to load or attach: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("eBPF map {0} missing from the object")]
    MissingMap(&'static str),
    #[error("eBPF program {0} missing from the object")]
    MissingProgram(&'static str),
    #[error("cannot duplicate the descriptor of {name}: {source}")]
    FdClone {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("tier {tier} is not available on this kernel: {reason}")]
    TierUnavailable { tier: &'static str, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
