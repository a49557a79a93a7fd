//! Errors of the run layer (what the user did or the system refused), shown as one sentence.
use thiserror::Error;

use crate::tracer::TracerError;

#[derive(Debug, Error)]
pub enum RunError {
    #[error("{0}")]
    Usage(String),
    #[error("fsync-trace must run as root (it loads eBPF programs into the kernel): try `sudo fsync-trace ...`")]
    NotRoot,
    #[error("no such process: {0}")]
    NoSuchProcess(u32),
    #[error("process {0} is a kernel thread: it makes no system calls of its own to trace")]
    KernelThread(u32),
    #[error("cannot write the report to {path}: {source}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Tracer(#[from] TracerError),
    #[error("cannot start the command: {0}")]
    Spawn(std::io::Error),
    #[error("{command}: command not found")]
    CommandNotFound { command: String },
    #[error("{command} is a directory, not a command to run")]
    CommandIsDirectory { command: String },
    #[error("{command}: {source}")]
    Exec {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Suppress(#[from] crate::analysis::SuppressError),
    #[error("{0}")]
    Live(#[from] crate::live::LiveError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl RunError {
    /// Exit status for this error (127 for a missing command, as shells do).
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::CommandNotFound { .. } => 127,
            RunError::Exec { .. } | RunError::CommandIsDirectory { .. } => 126,
            RunError::Usage(_)
            | RunError::Suppress(_)
            | RunError::Live(crate::live::LiveError::NotATerminal) => 2,
            _ => 1,
        }
    }
}
