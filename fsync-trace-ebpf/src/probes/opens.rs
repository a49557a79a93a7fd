//! sys_exit of open, openat, openat2, creat: identity, path and durability flags of files a
//! traced process can change (opened for writing, created, or a directory).
use aya_ebpf::{
    helpers::{bpf_probe_read_user, generated},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
    EbpfContext,
};
use fsync_trace_common::{
    names, open_flags::O_TRUNC, syscalls as nr, FileCounters, OpenRecord, RecordKind,
    FMODE_CREATED, NO_SLOT,
};

use crate::{
    kernel::{
        current_file, current_task_btf, dentry_inode, file_inode, inode_nlink, load_btf, path_at,
        read, walk_path, KPtr,
    },
    maps::{count_lost, off, EVENTS, FILE_SLOTS},
    slots::existing_slot,
    state::{emit_stack, fill_header, wakeup_flags, Ctx},
};

/// f_mode bit: the file was opened for writing.
const FMODE_WRITE: u32 = 0x2;

/// `O_TRUNC` if the open asked for truncation: the kernel clears it from `f_flags` once the
/// file is open, so it is read from the syscall's own flags (creat always truncates; openat2
/// passes them in `struct open_how`, whose first field is the u64 `flags`).
#[inline(always)]
fn truncating() -> u32 {
    let task = current_task_btf();
    let regs = unsafe { generated::bpf_task_pt_regs(task as *mut _) } as KPtr;
    let (id, flags): (u64, u64) = unsafe {
        match load_btf::<u64>(regs, nr::REGS_ORIG_AX) {
            nr::OPEN => (nr::OPEN, load_btf(regs, nr::REGS_SI)),
            nr::OPENAT => (nr::OPENAT, load_btf(regs, nr::REGS_DX)),
            nr::OPENAT2 => {
                let how: u64 = load_btf(regs, nr::REGS_DX);
                (
                    nr::OPENAT2,
                    bpf_probe_read_user(how as *const u64).unwrap_or(0),
                )
            }
            other => (other, 0),
        }
    };
    if id == nr::CREAT || flags & O_TRUNC as u64 != 0 {
        O_TRUNC
    } else {
        0
    }
}

#[raw_tracepoint]
pub fn sys_exit_open(ctx: RawTracePointContext) -> i32 {
    emit_open(ctx.arg(1), truncating, ctx.as_ptr())
}

/// An open returned `ret` (a descriptor of the current task, or an error): sends its `Open`
/// record if it can dirty anything. `truncating` says whether it asked for O_TRUNC (read only
/// then). Shared with io_uring's IORING_OP_OPENAT/OPENAT2 (`uring.rs`). `ctx`: the program's
/// context, for the user stack of a create (null: none, as for io_uring's kernel workers).
#[inline(always)]
pub fn emit_open(ret: i64, truncating: impl FnOnce() -> u32, ctx: Ctx) -> i32 {
    if ret < 0 {
        return 0;
    }
    let Some(file) = current_file(ret) else {
        return 0;
    };
    let Some(inode) = file_inode(file) else {
        return 0;
    };
    if !inode.tracked() {
        return 0;
    }
    let f_mode: u32 = read(file, off!(file_f_mode)).unwrap_or(0);
    if inode.is_reg() && f_mode & (FMODE_WRITE | FMODE_CREATED) == 0 {
        return 0; // read-only open of an existing file: cannot dirty anything
    }
    let f_flags: u32 = read(file, off!(file_f_flags)).unwrap_or(0);
    let Some((mnt, dentry)) = path_at(file, off!(file_f_path)) else {
        return 0;
    };
    // A created entry can become an `unsynced_parent_dir` finding: its user stack.
    let stack = if f_mode & FMODE_CREATED != 0 {
        emit_stack(ctx)
    } else {
        0
    };
    let Some(mut entry) = EVENTS.reserve::<OpenRecord>(0) else {
        count_lost(names::LOST_RINGBUF_FULL);
        return 0;
    };
    let r = entry.as_mut_ptr();
    unsafe {
        fill_header(&raw mut (*r).hdr, RecordKind::Open);
        (*r).hdr.stack = stack;
        (*r).file = inode.key;
        (*r).mode = inode.mode;
        // f_flags never holds O_TRUNC (cleared at open): set, it says this open truncated.
        (*r).open_flags = f_flags | truncating();
        (*r).f_mode = f_mode;
        (*r).fd = ret as i32;
        (*r).parent = Default::default();
        let parent: KPtr = read(dentry, off!(dentry_d_parent)).unwrap_or(core::ptr::null());
        if let Some(p) = dentry_inode(parent) {
            (*r).parent = p.key;
        }
        let (start, truncated) = walk_path(mnt, dentry, (*r).path.as_mut_ptr());
        (*r).path_start = start;
        (*r).path_truncated = truncated;
        (*r).nlink = inode_nlink(inode.inode);
        (*r).prior_slot = NO_SLOT;
        (*r).prior = FileCounters::default();
        if f_mode & FMODE_CREATED != 0 {
            // A new inode under a key that has counters: the number was reused and the
            // generation did not change (a filesystem without generations). The old file's
            // counters go to userspace with this record; the new file gets a fresh slot.
            if let Some((slot, c)) = existing_slot(&inode.key) {
                (*r).prior_slot = slot;
                (*r).prior = *c;
                let _ = FILE_SLOTS.remove(inode.key);
            }
        }
    }
    entry.submit(wakeup_flags());
    0
}
