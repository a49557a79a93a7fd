//! fentry/fexit tier: BTF-typed arguments, and the return value through bpf_get_func_ret
//! (5.17+). Userspace picks the kernel function at load time (`FEntry::load(fn, btf)`), after
//! checking in BTF that the arguments read here are where these programs expect them.
use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
    EbpfContext,
};

use super::functions::{
    end_at, fsync_range_enter, fsync_range_exit, vectored_pos_index, write_done,
};
use crate::{kernel::KPtr, state::current_traced};

/// vfs_write(struct file *file, const char __user *buf, size_t count, loff_t *pos) -> ssize_t
#[fexit(function = "vfs_write")]
pub fn fexit_vfs_write(ctx: FExitContext) -> i32 {
    if current_traced() {
        let file: KPtr = ctx.arg(0);
        if let Ok(ret) = ctx.ret::<i64>() {
            let pos: u64 = ctx.arg(3);
            write_done(file, ret, end_at(pos), ctx.as_ptr());
        }
    }
    0
}

/// vfs_writev(struct file *file, .., loff_t *pos, ..) or do_iter_write(struct file *file, ..,
/// loff_t *pos, ..) -> ssize_t
#[fexit(function = "vfs_writev")]
pub fn fexit_vectored_write(ctx: FExitContext) -> i32 {
    if current_traced() {
        let file: KPtr = ctx.arg(0);
        if let Ok(ret) = ctx.ret::<i64>() {
            // Constant indices only: the verifier checks each context access.
            let pos: u64 = if vectored_pos_index() == 2 {
                ctx.arg(2)
            } else {
                ctx.arg(3)
            };
            write_done(file, ret, end_at(pos), ctx.as_ptr());
        }
    }
    0
}

/// vfs_fsync_range(struct file *file, loff_t start, loff_t end, int datasync) -> int
#[fentry(function = "vfs_fsync_range")]
pub fn fentry_vfs_fsync_range(ctx: FEntryContext) -> i32 {
    let file: KPtr = ctx.arg(0);
    let datasync: i32 = ctx.arg(3);
    // Trampolines never miss a return: nesting is tracked by depth alone (sp 0).
    fsync_range_enter(file, datasync, 0);
    0
}

#[fexit(function = "vfs_fsync_range")]
pub fn fexit_vfs_fsync_range(ctx: FExitContext) -> i32 {
    if let Ok(ret) = ctx.ret::<i32>() {
        fsync_range_exit(ret as i64);
    }
    0
}
