//! Processes (fork, exit) and calls in flight between a hook's entry and exit.

use super::RecordHeader;

/// A traced process forked a new process (followed: it is traced too).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkRecord {
    /// Header: the forking task (in the parent process).
    pub hdr: RecordHeader,
    /// Process id (tgid) of the new process, now in `TRACED_TGIDS`.
    pub child_tgid: u32,
    /// Padding (zero).
    pub _pad: u32,
}

/// The last thread of a traced process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    /// Header: the process's last exiting thread.
    pub hdr: RecordHeader,
}

/// A sync call in flight (sys_enter to sys_exit), keyed by thread id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InflightSync {
    /// `bpf_ktime_get_ns` at the syscall's entry.
    pub enter_ns: u64,
    /// The syscall number (`syscalls::*`).
    pub nr: u64,
}

/// A hooked kernel function between entry and return on one thread (function-level tiers),
/// keyed by `inflight_call_key(tid, hook)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InflightCall {
    /// `bpf_ktime_get_ns` at the function's entry.
    pub enter_ns: u64,
    /// The `struct file *` argument.
    pub file: u64,
    /// vfs_fsync_range's `datasync` argument.
    pub datasync: u32,
    /// Nested calls of the same hook on the same thread (e.g. overlayfs calling vfs_fsync_range
    /// on the real file inside the outer one): the outermost call owns the entry.
    pub depth: u32,
    /// kprobe tier: the stack pointer at entry, to tell a nested call (deeper) from a slot a
    /// missed kretprobe left behind; 0 for fentry.
    pub sp: u64,
    /// Write hooks: the `loff_t *pos` argument (after the call it holds the end of the write).
    pub pos: u64,
}

/// `hook` values of [`inflight_call_key`].
///
/// This value: vfs_write and the vectored write path (never nested, so they share a slot).
pub const CALL_WRITE: u64 = 0;
/// `hook` of vfs_fsync_range calls.
pub const CALL_FSYNC_RANGE: u64 = 1;

/// One in-flight slot per (thread, hook): an inner call of another hook (the fsync an O_SYNC
/// write runs inside vfs_write) never overwrites the outer call's state.
#[inline(always)]
pub fn inflight_call_key(tid: u32, hook: u64) -> u64 {
    ((tid as u64) << 8) | hook
}

// Layout checks: read from raw bytes on the other side of the boundary.
const _: () = assert!(core::mem::size_of::<InflightCall>() == 40);
