//! Raw `sys_enter` / `sys_exit` dispatchers. Writes (the hot path) are handled inline in
//! sys_exit; other families are tail calls so each program stays small for the verifier.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use fsync_trace_common::{names, open_flags, syscalls as nr, InflightSync};

use crate::{
    kernel::{current_file, file_inode, read, reg, KPtr},
    maps::{count_lost, off, INFLIGHT_SYNCS, SYS_EXIT_TAILS},
    state::{bump_epoch, current_traced, on_write},
};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    let id: u64 = ctx.arg(1);
    if !nr::is_sync(id) || !current_traced() {
        return 0;
    }
    // Bump before the sync starts: a write after this point is re-announced as dirty, so the
    // sync can only be credited with data written before it began.
    if nr::may_be_durable_point(id) {
        bump_epoch();
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    let inflight = InflightSync { enter_ns: unsafe { bpf_ktime_get_ns() }, nr: id };
    if INFLIGHT_SYNCS.insert(&tid, &inflight, 0).is_err() {
        count_lost(names::LOST_INFLIGHT_MAP_FULL);
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    if !current_traced() {
        return 0;
    }
    let regs: KPtr = ctx.arg(0);
    let id = reg(regs, nr::REGS_ORIG_AX);
    if nr::is_write(id) {
        let ret: i64 = ctx.arg(1);
        if ret > 0 {
            handle_write(regs, ret as u64);
        }
        return 0;
    }
    let slot = if nr::is_sync(id) {
        names::TAIL_SYNC
    } else if nr::is_open(id) {
        names::TAIL_OPEN
    } else if nr::is_namespace(id) {
        names::TAIL_NAMESPACE
    } else if id == nr::MMAP {
        names::TAIL_MMAP
    } else {
        return 0;
    };
    unsafe { SYS_EXIT_TAILS.tail_call(&ctx, slot) };
    0
}

#[inline(always)]
fn handle_write(regs: KPtr, bytes: u64) {
    let fd = reg(regs, nr::REGS_DI) as i64;
    let Some(file) = current_file(fd) else { return };
    let Some(inode) = file_inode(file) else { return };
    if !inode.is_reg() || !inode.tracked() {
        return;
    }
    let f_flags: u32 = read(file, off!(file_f_flags)).unwrap_or(0);
    on_write(&inode.key, bytes, f_flags & open_flags::O_DSYNC != 0, fd as i32);
}
