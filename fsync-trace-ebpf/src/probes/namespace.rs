//! sys_exit of rename*, link*, unlink*, mkdir*, rmdir, symlink*: which directory entries changed,
//! with both base directories (dirfd or cwd) resolved to identity and absolute path.
use core::ptr::read_volatile;

use aya_ebpf::{
    helpers::bpf_probe_read_kernel_str_bytes, macros::raw_tracepoint,
    programs::RawTracePointContext, EbpfContext,
};
use fsync_trace_common::{
    names, syscalls as nr, BaseDir, NamespaceOp, NamespaceRecord, RecordKind, AT_FDCWD,
    NAMESPACE_ONE_NAME_LEN,
};

use crate::{
    kernel::{base_dir_path, dentry_inode, read, read_user_str, reg, walk_path, KPtr},
    maps::{count_lost, EVENTS, NAMESPACE_RECORD},
    state::{emit_stack, fill_header, wakeup_flags},
};

const AT_REMOVEDIR: u64 = 0x200;
const CWD: u64 = AT_FDCWD as i64 as u64;

#[raw_tracepoint]
pub fn sys_exit_namespace(ctx: RawTracePointContext) -> i32 {
    let ret: i64 = ctx.arg(1);
    if ret != 0 {
        return 0;
    }
    // The act that can become an `unsynced_parent_dir` or `rename_before_fsync` finding: its
    // user stack, sent before the record.
    let stack = emit_stack(ctx.as_ptr());
    // Built in a per-CPU scratch value, not reserved: it is sent cut to its used part, and no
    // reservation is held across the 13-way match (pre-6.3 verifiers never prune states holding
    // different reservations). The decoded arguments pass through the record (values read back
    // are unknown to the verifier), so the path walks are verified once for all the syscalls.
    let Some(r) = NAMESPACE_RECORD.get_ptr_mut(0) else {
        return 0;
    };
    let regs: KPtr = ctx.arg(0);
    let id = reg(regs, nr::REGS_ORIG_AX);
    let a = [
        reg(regs, nr::REGS_DI),
        reg(regs, nr::REGS_SI),
        reg(regs, nr::REGS_DX),
        reg(regs, nr::REGS_R10),
        reg(regs, nr::REGS_R8),
    ];
    // (op, old dirfd, old name, new dirfd, new name, flags); single-name ops use "old".
    let (op, odfd, oname, ndfd, nname, flags) = match id {
        nr::RENAME => (NamespaceOp::Rename, CWD, a[0], CWD, a[1], 0),
        nr::RENAMEAT => (NamespaceOp::Rename, a[0], a[1], a[2], a[3], 0),
        nr::RENAMEAT2 => (NamespaceOp::Rename, a[0], a[1], a[2], a[3], a[4]),
        nr::LINK => (NamespaceOp::Link, CWD, a[0], CWD, a[1], 0),
        nr::LINKAT => (NamespaceOp::Link, a[0], a[1], a[2], a[3], a[4]),
        nr::UNLINK => (NamespaceOp::Unlink, CWD, a[0], CWD, 0, 0),
        nr::UNLINKAT if a[2] & AT_REMOVEDIR != 0 => (NamespaceOp::Rmdir, a[0], a[1], CWD, 0, a[2]),
        nr::UNLINKAT => (NamespaceOp::Unlink, a[0], a[1], CWD, 0, a[2]),
        nr::MKDIR => (NamespaceOp::Mkdir, CWD, a[0], CWD, 0, 0),
        nr::MKDIRAT => (NamespaceOp::Mkdir, a[0], a[1], CWD, 0, 0),
        nr::RMDIR => (NamespaceOp::Rmdir, CWD, a[0], CWD, 0, 0),
        nr::SYMLINK => (NamespaceOp::Symlink, CWD, a[1], CWD, 0, 0),
        nr::SYMLINKAT => (NamespaceOp::Symlink, a[1], a[2], CWD, 0, 0),
        _ => return 0,
    };
    // SAFETY: `r` is this CPU's scratch record, not shared with another program while this runs.
    unsafe {
        fill_namespace(r, op, odfd, oname, ndfd, nname, flags, false);
        // After the header was filled: this act's user stack went out just before.
        (*r).hdr.stack = stack;
        send_namespace(r);
    }
    0
}

/// Sends namespace record `r` to userspace, cut before `new_base` for the operations with one
/// name ([`NAMESPACE_ONE_NAME_LEN`]); counts it lost if the ring buffer is full.
///
/// # Safety
/// `r` points to a complete record in map memory.
#[inline(always)]
pub unsafe fn send_namespace(r: *const NamespaceRecord) {
    let op = unsafe { read_volatile(&raw const (*r).op) };
    let len = if op == NamespaceOp::Rename as u32 || op == NamespaceOp::Link as u32 {
        size_of::<NamespaceRecord>()
    } else {
        NAMESPACE_ONE_NAME_LEN
    };
    // SAFETY: `len` is at most the record's size.
    let bytes = unsafe { core::slice::from_raw_parts(r.cast::<u8>(), len) };
    if EVENTS.output::<[u8]>(bytes, wakeup_flags()).is_err() {
        count_lost(names::LOST_RINGBUF_FULL);
    }
}

/// Fills namespace record `r` (header included): the operation, both names (`oname`, `nname`:
/// user pointers, or with `kernel` kernel `struct filename *`s, as io_uring's prepared requests
/// hold them) and both base directories (`odfd`, `ndfd`: dirfds or AT_FDCWD) resolved to
/// identity and path. Shared by the syscall exit and io_uring (`uring.rs`).
///
/// # Safety
/// `r` points to a record being built (reserved ring buffer memory or a map value).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn fill_namespace(
    r: *mut NamespaceRecord,
    op: NamespaceOp,
    odfd: u64,
    oname: u64,
    ndfd: u64,
    nname: u64,
    flags: u64,
    kernel: bool,
) {
    let two_names = matches!(op, NamespaceOp::Rename | NamespaceOp::Link);
    unsafe {
        fill_header(&raw mut (*r).hdr, RecordKind::Namespace);
        (*r).op = op as u32;
        (*r).flags = flags as u32;
        // Staged in fields that are filled in below (after being read back).
        (*r).old_base.dir.ino = oname;
        (*r).old_base.fs_magic = odfd;
        (*r).new_base.dir.ino = nname;
        (*r).new_base.fs_magic = ndfd;
        (*r).new_base.path_start = two_names as u32;
        read_name(
            read_volatile(&raw const (*r).old_base.dir.ino),
            &mut (*r).old_name,
            kernel,
        );
        (*r).new_name[0] = 0;
        if read_volatile(&raw const (*r).new_base.path_start) != 0 {
            read_name(
                read_volatile(&raw const (*r).new_base.dir.ino),
                &mut (*r).new_name,
                kernel,
            );
        }
        fill_base(
            &raw mut (*r).old_base,
            read_volatile(&raw const (*r).old_base.fs_magic),
        );
        if read_volatile(&raw const (*r).new_base.path_start) != 0 {
            fill_base(
                &raw mut (*r).new_base,
                read_volatile(&raw const (*r).new_base.fs_magic),
            );
        } else {
            (*r).new_base.dir = Default::default();
            (*r).new_base.fs_magic = 0;
            (*r).new_base.path_start = 0;
            (*r).new_base.path_truncated = 0;
        }
    }
}

/// Reads a name into `dst`: from user memory, or with `kernel` from a kernel `struct filename`
/// (whose first field is the name's kernel pointer).
#[inline(always)]
fn read_name(src: u64, dst: &mut [u8], kernel: bool) {
    if !kernel {
        read_user_str(src, dst);
        return;
    }
    let name: KPtr = read(src as KPtr, 0).unwrap_or(core::ptr::null());
    if name.is_null() {
        dst[0] = 0;
        return;
    }
    if unsafe { bpf_probe_read_kernel_str_bytes(name, dst) }.is_err() {
        dst[0] = 0;
    }
}

/// Resolves `dirfd` (or the cwd) into base directory `b`: identity and path.
///
/// # Safety
/// `b` points into a reserved, not yet submitted ring buffer record.
#[inline(always)]
pub(super) unsafe fn fill_base(b: *mut BaseDir, dirfd: u64) {
    unsafe {
        (*b).dir = Default::default();
        (*b).fs_magic = 0;
        (*b).path_start = 0;
        (*b).path_truncated = 1;
        let Some((mnt, dentry)) = base_dir_path(dirfd as i64) else {
            return;
        };
        if let Some(inode) = dentry_inode(dentry) {
            (*b).dir = inode.key;
            (*b).fs_magic = inode.magic;
        }
        let (start, truncated) = walk_path(mnt, dentry, (*b).path.as_mut_ptr());
        (*b).path_start = start;
        (*b).path_truncated = truncated;
    }
}
