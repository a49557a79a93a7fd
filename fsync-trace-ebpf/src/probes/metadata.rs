//! sys_exit of the metadata calls: chmod, chown, utimes and extended attributes, in every form
//! (through a descriptor, a path, or a dirfd and a path). Such a change writes no data but
//! needs a sync to be durable, like a truncate (see `truncate.rs`, whose shape this follows):
//! successful calls only; through a descriptor (fchmod, fchown, fsetxattr, fremovexattr,
//! futimens, futimesat with a NULL path, and the at-calls with `AT_EMPTY_PATH`), a regular
//! file on a tracked filesystem is counted in its `FILE_STATS` counters and announced once per
//! durability epoch (`state::mark_changed`); by path, one small `TruncatePathRecord`
//! ([`PATH_CHANGE_METADATA`]) with the path and its base (dirfd or cwd), resolved by userspace
//! among the names it knows. Directories are ignored (the state machine does not track a
//! directory's own metadata as something a sync makes durable).
use aya_ebpf::EbpfContext;
use aya_ebpf::{
    helpers::{bpf_probe_read_user, generated},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use fsync_trace_common::{
    names, syscalls as nr, AT_FDCWD, DIRTY_BY_METADATA, FILE_FLAG_NAMED, PATH_CHANGE_METADATA,
};

use super::truncate::change_path;
use crate::{
    kernel::{current_task_btf, load_btf, KPtr},
    maps::SYS_EXIT_TAILS,
    slots::tracked_file_at_fd,
    state::{atomic_add, mark_changed},
};

const CWD: u64 = AT_FDCWD as i64 as u64;

#[raw_tracepoint]
pub fn sys_exit_metadata(ctx: RawTracePointContext) -> i32 {
    let ret: i64 = ctx.arg(1);
    if ret != 0 {
        return 0;
    }
    let task = current_task_btf();
    let regs = unsafe { generated::bpf_task_pt_regs(task as *mut _) } as KPtr;
    let arg = |at: usize| -> u64 { unsafe { load_btf(regs, at) } };
    let id = arg(nr::REGS_ORIG_AX);
    // (fd or dirfd, path: 0 for none, at-flags) of each call.
    let (fd, path, flags) = match id {
        nr::FCHMOD | nr::FCHOWN | nr::FSETXATTR | nr::FREMOVEXATTR => (arg(nr::REGS_DI), 0, 0),
        nr::FCHMODAT | nr::FUTIMESAT => (arg(nr::REGS_DI), arg(nr::REGS_SI), 0),
        nr::FCHMODAT2 | nr::UTIMENSAT => (arg(nr::REGS_DI), arg(nr::REGS_SI), arg(nr::REGS_R10)),
        nr::FCHOWNAT => (arg(nr::REGS_DI), arg(nr::REGS_SI), arg(nr::REGS_R8)),
        nr::SETXATTRAT | nr::REMOVEXATTRAT => {
            (arg(nr::REGS_DI), arg(nr::REGS_SI), arg(nr::REGS_DX))
        }
        // chmod, chown, lchown, utime, utimes, (l)setxattr, (l)removexattr: a path.
        _ => (CWD, arg(nr::REGS_DI), 0),
    };
    if path != 0 && !(flags & nr::AT_EMPTY_PATH != 0 && empty_user_str(path)) {
        change_path(ctx.as_ptr(), fd, path, 0, PATH_CHANGE_METADATA);
        return 0;
    }
    if through_fd(&ctx, task, fd as i32) {
        // A file opened before tracing and never written: its name, walked from the
        // descriptor in the first argument (every call above has its fd there).
        unsafe { SYS_EXIT_TAILS.tail_call(&ctx, names::TAIL_NAME) };
    }
    0
}

/// True if the user string at `p` is empty (its first byte is NUL).
#[inline(always)]
fn empty_user_str(p: u64) -> bool {
    matches!(unsafe { bpf_probe_read_user(p as *const u8) }, Ok(0))
}

/// A metadata change of the file behind `fd`: counted and announced if it is a regular file on
/// a tracked filesystem. True if the file's name has not been sent yet.
#[inline(always)]
fn through_fd(ctx: &RawTracePointContext, task: KPtr, fd: i32) -> bool {
    let Some((key, slot, c)) = tracked_file_at_fd(task, fd) else {
        return false;
    };
    // SAFETY: `c` is the FILE_STATS value of `slot`.
    unsafe {
        atomic_add(&raw mut (*c).metadata_changes, 1);
        mark_changed(&key, c, slot, DIRTY_BY_METADATA, fd, ctx.as_ptr());
        (*c).flags & FILE_FLAG_NAMED == 0
    }
}
