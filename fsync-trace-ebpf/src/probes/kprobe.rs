//! kprobe/kretprobe tier: arguments from registers by the x86_64 calling convention (rdi, rsi,
//! rdx, rcx, ...; positions checked against the function's BTF prototype by userspace), the
//! return value from rax. A return probe sees no arguments, so the entry probe keeps them per
//! thread in INFLIGHT_CALLS.
use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
    EbpfContext,
};
use fsync_trace_common::CALL_WRITE;

use super::functions::{
    call_enter, call_exit, end_at, fsync_range_enter, fsync_range_exit, vectored_pos_index,
    write_done,
};
use crate::{kernel::KPtr, state::current_traced};

/// rsp at the probed function's entry (it points at the return address).
#[inline(always)]
fn stack_pointer(ctx: &ProbeContext) -> u64 {
    unsafe { (*ctx.regs).rsp }
}

/// `pos`: the `loff_t *pos` argument (kept for the return, where it holds the write's end).
#[inline(always)]
fn write_enter(ctx: &ProbeContext, pos: Option<u64>) {
    if !current_traced() {
        return;
    }
    if let Some(file) = ctx.arg::<KPtr>(0) {
        call_enter(CALL_WRITE, file, 0, stack_pointer(ctx), pos.unwrap_or(0));
    }
}

#[inline(always)]
fn write_exit(ctx: &RetProbeContext) {
    if let Some(call) = call_exit(CALL_WRITE) {
        write_done(
            call.file as KPtr,
            ctx.ret::<i64>(),
            end_at(call.pos),
            ctx.as_ptr(),
        );
    }
}

/// vfs_write(struct file *file, const char __user *buf, size_t count, loff_t *pos) -> ssize_t
#[kprobe]
pub fn kprobe_vfs_write(ctx: ProbeContext) -> u32 {
    write_enter(&ctx, ctx.arg::<u64>(3));
    0
}

#[kretprobe]
pub fn kretprobe_vfs_write(ctx: RetProbeContext) -> u32 {
    write_exit(&ctx);
    0
}

/// vfs_writev(struct file *file, ...) or do_iter_write(struct file *file, ...) -> ssize_t.
/// Never nested with vfs_write, so both share the CALL_WRITE slot.
#[kprobe]
pub fn kprobe_vectored_write(ctx: ProbeContext) -> u32 {
    let pos = if vectored_pos_index() == 2 {
        ctx.arg::<u64>(2)
    } else {
        ctx.arg::<u64>(3)
    };
    write_enter(&ctx, pos);
    0
}

#[kretprobe]
pub fn kretprobe_vectored_write(ctx: RetProbeContext) -> u32 {
    write_exit(&ctx);
    0
}

/// vfs_fsync_range(struct file *file, loff_t start, loff_t end, int datasync) -> int
#[kprobe]
pub fn kprobe_vfs_fsync_range(ctx: ProbeContext) -> u32 {
    if let (Some(file), Some(datasync)) = (ctx.arg::<KPtr>(0), ctx.arg::<i32>(3)) {
        fsync_range_enter(file, datasync, stack_pointer(&ctx));
    }
    0
}

#[kretprobe]
pub fn kretprobe_vfs_fsync_range(ctx: RetProbeContext) -> u32 {
    // int: the upper half of rax is not part of the value.
    fsync_range_exit(ctx.ret::<i32>() as i64);
    0
}
