//! sys_exit of ftruncate, fallocate and truncate: changes that write no data but still need a
//! sync (the size, freed or allocated blocks). Successful calls only. Through a descriptor,
//! the change is counted in the file's `FILE_STATS` counters and announced once per
//! durability epoch (`state::mark_changed`): no record per call. truncate(2) names a path,
//! which the kernel cannot resolve to an inode here: one small record with the path as
//! passed and the cwd, resolved by userspace among the names it knows.
//!
//! Every tier delivers these facts through this syscall exit (the tracepoint tier is attached
//! on all of them), so the tiers cannot disagree.
use aya_ebpf::EbpfContext;
use aya_ebpf::{helpers::generated, macros::raw_tracepoint, programs::RawTracePointContext};
use fsync_trace_common::{
    names, syscalls as nr, RecordKind, TruncatePathRecord, AT_FDCWD, DIRTY_BY_FALLOCATE,
    DIRTY_BY_TRUNCATE, FILE_FLAG_NAMED, PATH_CHANGE_TRUNCATE,
};

use super::namespace::fill_base;
use crate::{
    kernel::{current_task_btf, load_btf, read_user_str, KPtr},
    maps::{count_lost, EVENTS, SYS_EXIT_TAILS},
    slots::tracked_file_at_fd,
    state::{atomic_add, emit_stack, fill_header, mark_changed, wakeup_flags},
};

#[raw_tracepoint]
pub fn sys_exit_truncate(ctx: RawTracePointContext) -> i32 {
    let ret: i64 = ctx.arg(1);
    if ret != 0 {
        return 0;
    }
    let task = current_task_btf();
    let regs = unsafe { generated::bpf_task_pt_regs(task as *mut _) } as KPtr;
    let (id, arg0, arg1): (u64, u64, u64) = unsafe {
        (
            load_btf(regs, nr::REGS_ORIG_AX),
            load_btf(regs, nr::REGS_DI),
            load_btf(regs, nr::REGS_SI),
        )
    };
    if id == nr::TRUNCATE {
        change_path(
            ctx.as_ptr(),
            AT_FDCWD as i64 as u64,
            arg0,
            arg1,
            PATH_CHANGE_TRUNCATE,
        );
        return 0;
    }
    let truncate = id == nr::FTRUNCATE;
    let fd = arg0 as i32;
    let Some((key, slot, c)) = tracked_file_at_fd(task, fd) else {
        return 0;
    };
    // SAFETY: `c` is the FILE_STATS value of `slot`.
    let unnamed = unsafe {
        if truncate {
            atomic_add(&raw mut (*c).truncates, 1);
            core::ptr::write_volatile(&raw mut (*c).truncate_len, arg1);
        } else {
            atomic_add(&raw mut (*c).fallocates, 1);
        }
        let source = if truncate {
            DIRTY_BY_TRUNCATE
        } else {
            DIRTY_BY_FALLOCATE
        };
        mark_changed(&key, c, slot, source, fd, ctx.as_ptr());
        (*c).flags & FILE_FLAG_NAMED == 0
    };
    if unnamed {
        // A file opened before tracing and never written: its name, walked from the
        // descriptor in the first argument (as for a write).
        unsafe { SYS_EXIT_TAILS.tail_call(&ctx, names::TAIL_NAME) };
    }
    0
}

/// A change of the file at path `name` succeeded (truncate(`name`, `length`), or a metadata
/// change: `change`): sends the path as passed and the directory it is relative to (`dirfd`,
/// or the cwd).
#[inline(always)]
pub(super) fn change_path(ctx: crate::state::Ctx, dirfd: u64, name: u64, length: u64, change: u32) {
    // The act that can become an `unsynced_write` finding: its user stack, sent before the
    // reservation below is held (a metadata change alone is never a finding: no stack).
    let stack = if change == PATH_CHANGE_TRUNCATE {
        emit_stack(ctx)
    } else {
        0
    };
    let Some(mut entry) = EVENTS.reserve::<TruncatePathRecord>(0) else {
        count_lost(names::LOST_RINGBUF_FULL);
        return;
    };
    let r = entry.as_mut_ptr();
    // SAFETY: `r` is a reserved, not yet submitted record.
    unsafe {
        fill_header(&raw mut (*r).hdr, RecordKind::TruncatePath);
        (*r).hdr.stack = stack;
        (*r).length = length;
        (*r).change = change;
        (*r)._pad = 0;
        read_user_str(name, &mut (*r).name);
        fill_base(&raw mut (*r).base, dirfd);
    }
    entry.submit(wakeup_flags());
}
