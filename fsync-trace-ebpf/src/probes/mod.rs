//! Programs, one file per hook family. The tracepoint tier (syscall, scheduler and writeback
//! tracepoints) is always attached; a function-level tier (`fentry` or `kprobe`) adds hooks on
//! kernel functions for writes and in-kernel syncs (`functions`), and `sys_exit` then leaves
//! the write syscalls those hooks cover to them.
mod block;
mod fentry;
mod functions;
mod kprobe;
mod metadata;
mod mmap;
mod namespace;
mod opens;
mod process;
mod syncs;
mod syscalls;
mod truncate;
mod uring;
pub(crate) mod wal;
mod writeback;
