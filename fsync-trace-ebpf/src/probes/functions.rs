//! What the function-level tiers (fentry/fexit and kprobe/kretprobe) do with a hooked call. The
//! tier files only decode their context's arguments and call these, and these call the same
//! `state` helpers as the tracepoint tier, so userspace cannot tell the tiers apart.
//!
//! Writes: vfs_write (write, pwrite64) and the vectored path (writev, pwritev, pwritev2) count a
//! successful write exactly as `sys_exit` does for the syscall; `sys_exit` skips the syscalls a
//! hook covers (`CONFIG_FN_HOOKS`), so nothing is counted twice.
//!
//! Syncs: fsync/fdatasync/msync/sync/syncfs keep their syscall-level records (latency, errno),
//! because a function hook alone misses some: on Debian's 6.1 kernel fdatasync(2) never reaches
//! vfs_fsync_range's entry (the fsync path is inlined into the syscall). vfs_fsync_range adds
//! the syncs no syscall record covers (in-kernel callers); io_uring's IORING_OP_FSYNC runs in
//! an io worker and is left to `uring.rs` (every tier). Calls inside a traced sync syscall (INFLIGHT_SYNCS) or inside a write
//! syscall (the fsync an O_SYNC write runs: `on_write` made it a durable point already) are
//! skipped, so each sync is counted exactly once.
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns};
use fsync_trace_common::{
    inflight_call_key, names, open_flags, syscalls as nr, wal::S_IFSOCK, InflightCall, SyncOp,
    CALL_FSYNC_RANGE, CALL_WRITE, EXTENT_UNKNOWN, S_IFMT,
};

use super::wal::{on_ack, wal_enabled};
use crate::{
    extent::extent_enabled,
    kernel::{current_is_io_worker, current_syscall, file_inode, read, reg, KPtr},
    maps::{config, count_lost, off, INFLIGHT_CALLS, INFLIGHT_SYNCS},
    state::{bump_epoch, current_traced, emit_file_sync, name_on_first_sight, on_write},
};

#[inline(always)]
fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

/// Entry of a hooked call whose return needs its arguments or start time; `sp` is the stack
/// pointer at entry for kprobes, 0 for fentry. Returns true if this call owns the slot.
///
/// Writes never nest (vfs_write and vfs_writev do not call each other), so a write slot is
/// simply replaced; that also clears a slot left behind when a kretprobe missed a return
/// (kretprobes drop returns when their instance pool is exhausted, e.g. by many threads blocked
/// in pipe writes). vfs_fsync_range does nest (overlayfs calls it again on the real file): an
/// inner call only deepens the outer call's slot, so it cannot overwrite it. With kprobes, a
/// call no deeper on the stack than the slot's owner cannot be nested in it: that slot is stale.
#[inline(always)]
pub fn call_enter(hook: u64, file: KPtr, datasync: u32, sp: u64, pos: u64) -> bool {
    let key = inflight_call_key(current_tid(), hook);
    if hook != CALL_WRITE {
        if let Some(c) = INFLIGHT_CALLS.get_ptr_mut(key) {
            unsafe {
                if sp == 0 || sp < (*c).sp {
                    (*c).depth += 1;
                    return false;
                }
            }
        }
    }
    let call = InflightCall {
        enter_ns: unsafe { bpf_ktime_get_ns() },
        file: file as u64,
        datasync,
        depth: 0,
        sp,
        pos,
    };
    if INFLIGHT_CALLS.insert(key, call, 0).is_err() {
        count_lost(names::LOST_INFLIGHT_MAP_FULL);
        return false;
    }
    true
}

/// Return of a hooked call: the outermost call's entry state, or None for a nested call or one
/// that was not entered while traced. Looks only at this thread's slot, so untraced threads pay
/// one failed lookup.
#[inline(always)]
pub fn call_exit(hook: u64) -> Option<InflightCall> {
    let key = inflight_call_key(current_tid(), hook);
    let c = INFLIGHT_CALLS.get_ptr_mut(key)?;
    unsafe {
        if (*c).depth > 0 {
            (*c).depth -= 1;
            return None;
        }
        let call = *c;
        let _ = INFLIGHT_CALLS.remove(key);
        Some(call)
    }
}

/// Where a write ended: the `loff_t` a write hook's `pos` argument points at after the call
/// (vfs_write and the vectored path advance it; for an O_APPEND file it is where the append
/// landed), or [`EXTENT_UNKNOWN`] without one.
#[inline(always)]
pub fn end_at(pos: u64) -> u64 {
    if pos == 0 || !extent_enabled() {
        return EXTENT_UNKNOWN;
    }
    match read::<i64>(pos as KPtr, 0) {
        Some(end) if end >= 0 => end as u64,
        _ => EXTENT_UNKNOWN,
    }
}

/// The vectored write hook's `loff_t *pos` argument index: 3 for vfs_writev, 2 for
/// do_iter_write (`FN_VECTORED_POS_ARG2`).
#[inline(always)]
pub fn vectored_pos_index() -> usize {
    if config(names::CONFIG_FN_HOOKS) & names::FN_VECTORED_POS_ARG2 != 0 {
        2
    } else {
        3
    }
}

/// A hooked write function returned `ret` for `file`, ending at file offset `end`
/// ([`EXTENT_UNKNOWN`]: not known): the accounting `sys_exit` does for a write syscall, with
/// the fd the syscall was given (userspace resolves paths of files opened before tracing
/// through it).
#[inline(always)]
pub fn write_done(file: KPtr, ret: i64, end: u64, ctx: crate::state::Ctx) {
    if ret <= 0 {
        return;
    }
    let Some(inode) = file_inode(file) else {
        return;
    };
    if !inode.is_reg() || !inode.tracked() {
        // With `--wal`, data sent to a socket is an ack (`probes/wal.rs`).
        if wal_enabled() && inode.mode & S_IFMT == S_IFSOCK {
            on_ack(syscall_fd() as i64, nr::WRITE);
        }
        return;
    }
    let f_flags: u32 = read(file, off!(file_f_flags)).unwrap_or(0);
    let fd = syscall_fd();
    on_write(
        file,
        &inode.key,
        ret as u64,
        f_flags & open_flags::O_DSYNC != 0,
        fd,
        end,
        ctx,
    );
}

/// The descriptor the current write syscall was given, or -1 (not in a write syscall).
#[inline(always)]
fn syscall_fd() -> i32 {
    match current_syscall() {
        Some((id, regs)) if nr::is_write(id) => reg(regs, nr::REGS_DI) as i32,
        _ => -1,
    }
}

/// True if a vfs_fsync_range call on this thread is already recorded elsewhere.
#[inline(always)]
fn sync_covered() -> bool {
    if unsafe { INFLIGHT_SYNCS.get(current_tid()) }.is_some() {
        return true; // the sync syscall's own record
    }
    // io_uring's fsyncs run in its workers and are recorded by `uring.rs` on every tier.
    if off!(uring_ready) != 0 && current_is_io_worker() {
        return true;
    }
    matches!(current_syscall(), Some((id, _)) if nr::is_write(id))
}

/// Entry of vfs_fsync_range(file, start, end, datasync); `sp` as for `call_enter`.
#[inline(always)]
pub fn fsync_range_enter(file: KPtr, datasync: i32, sp: u64) {
    if !current_traced() || sync_covered() {
        return;
    }
    if call_enter(CALL_FSYNC_RANGE, file, datasync as u32, sp, 0) {
        // As sys_enter does for sync syscalls: data written from now on is not covered.
        bump_epoch();
    }
}

/// Return of vfs_fsync_range with its result.
#[inline(always)]
pub fn fsync_range_exit(ret: i64) {
    let Some(call) = call_exit(CALL_FSYNC_RANGE) else {
        return;
    };
    let op = if call.datasync != 0 {
        SyncOp::Fdatasync
    } else {
        SyncOp::Fsync
    };
    let file = call.file as KPtr;
    let inode = file_inode(file);
    if let Some(i) = inode.filter(|i| i.tracked()) {
        name_on_first_sight(file, &i.key);
    }
    emit_file_sync(op, ret, call.enter_ns, inode);
}
