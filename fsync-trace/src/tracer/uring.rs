//! Attaching the io_uring programs (`fsync-trace-ebpf/src/probes/uring.rs`): the same three
//! raw tracepoints on every tier, so io_uring writes and syncs are judged alike whichever tier
//! runs the rest.
use aya::{maps::ProgramArray, Ebpf};
use fsync_trace_common::names;

use super::{attach_raw, load_raw, program_error, TracerError};

/// The submission tracepoint's names, newest first (`io_uring_submit_sqe` until 6.1).
const SUBMIT_TRACEPOINTS: [&str; 2] = ["io_uring_submit_req", "io_uring_submit_sqe"];

/// Tail calls of the completion program, by slot (`TAIL_*` in the eBPF module).
const TAILS: [(u32, &str); 5] = [
    (0, names::PROG_URING_COMPLETE_SYNC),
    (1, names::PROG_URING_COMPLETE_OPEN),
    (2, names::PROG_URING_COMPLETE_NAMESPACE),
    (3, names::PROG_URING_SUBMIT_NAMESPACE),
    (4, names::PROG_URING_COMPLETE_NAME),
];

/// How io_uring requests are seen (for `--verbose`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UringHook {
    /// Attached to these submission / queue / completion tracepoints.
    Tracepoints(&'static str),
    /// This kernel's BTF has no io_uring request (built without io_uring): nothing to see.
    NoIoUring,
}

impl std::fmt::Display for UringHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UringHook::Tracepoints(submit) => write!(
                f,
                "io_uring: raw tracepoints {submit}, io_uring_queue_async_work, io_uring_complete"
            ),
            UringHook::NoIoUring => write!(f, "io_uring: not in this kernel's BTF (not traced)"),
        }
    }
}

/// Loads and attaches the io_uring programs if the kernel has io_uring (`uring_ready`: its
/// request layout was found in BTF).
pub(super) fn attach(ebpf: &mut Ebpf, uring_ready: bool) -> Result<UringHook, TracerError> {
    if !uring_ready {
        return Ok(UringHook::NoIoUring);
    }
    for (slot, name) in TAILS {
        let fd = load_raw(ebpf, name)?
            .fd()
            .map_err(|source| program_error(name, source))?
            .try_clone()
            .map_err(|source| TracerError::FdClone { name, source })?;
        let map_err = |source| TracerError::Map {
            name: names::URING_TAILS,
            source,
        };
        let map = ebpf
            .map_mut(names::URING_TAILS)
            .ok_or(TracerError::MissingMap(names::URING_TAILS))?;
        ProgramArray::try_from(map)
            .map_err(map_err)?
            .set(slot, &fd, 0)
            .map_err(map_err)?;
    }
    // Completion and queueing first: a request seen at submission is then always seen to its end.
    attach_raw(ebpf, names::PROG_URING_COMPLETE, "io_uring_complete")?;
    attach_raw(ebpf, names::PROG_URING_ASYNC, "io_uring_queue_async_work")?;
    let prog = load_raw(ebpf, names::PROG_URING_SUBMIT)?;
    let mut last = None;
    for tp in SUBMIT_TRACEPOINTS {
        match prog.attach(tp) {
            Ok(_) => {
                log::debug!(
                    "attached {} to raw tracepoint {tp}",
                    names::PROG_URING_SUBMIT
                );
                return Ok(UringHook::Tracepoints(tp));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(source) => program_error(names::PROG_URING_SUBMIT, source),
        None => TracerError::MissingProgram(names::PROG_URING_SUBMIT),
    })
}
