//! x86_64 syscall numbers of the calls the tracepoint tier decodes, and where arguments live in
//! `struct pt_regs` (a stable user ABI on x86_64, `arch/x86/include/uapi/asm/ptrace.h`).

/// write(2): a write through a descriptor.
pub const WRITE: u64 = 1;
/// open(2): an open (`Open` record).
pub const OPEN: u64 = 2;
/// mmap(2): may map a file shared and writable.
pub const MMAP: u64 = 9;
/// pwrite64(2): a write at an offset.
pub const PWRITE64: u64 = 18;
/// writev(2): a vectored write.
pub const WRITEV: u64 = 20;
/// msync(2): sync of a mapped range (a durable point with MS_SYNC).
pub const MSYNC: u64 = 26;
/// fsync(2): a durable point for one file (for a directory: its entries).
pub const FSYNC: u64 = 74;
/// fdatasync(2): a durable point for one file's data.
pub const FDATASYNC: u64 = 75;
/// truncate(2): a file's size set through its path.
pub const TRUNCATE: u64 = 76;
/// ftruncate(2): a file's size set through a descriptor.
pub const FTRUNCATE: u64 = 77;
/// rename(2): a directory entry moved or replaced.
pub const RENAME: u64 = 82;
/// mkdir(2): a directory created.
pub const MKDIR: u64 = 83;
/// rmdir(2): a directory removed.
pub const RMDIR: u64 = 84;
/// creat(2): an open that creates and truncates.
pub const CREAT: u64 = 85;
/// link(2): a new name for an existing file.
pub const LINK: u64 = 86;
/// unlink(2): a name removed.
pub const UNLINK: u64 = 87;
/// symlink(2): a symbolic link created.
pub const SYMLINK: u64 = 88;
/// sync(2): a durable point for every filesystem.
pub const SYNC: u64 = 162;
/// openat(2): an open relative to a directory fd.
pub const OPENAT: u64 = 257;
/// mkdirat(2): mkdir relative to a directory fd.
pub const MKDIRAT: u64 = 258;
/// unlinkat(2): unlink relative to a directory fd (rmdir with AT_REMOVEDIR).
pub const UNLINKAT: u64 = 263;
/// renameat(2): rename relative to directory fds.
pub const RENAMEAT: u64 = 264;
/// linkat(2): link relative to directory fds.
pub const LINKAT: u64 = 265;
/// symlinkat(2): symlink relative to a directory fd.
pub const SYMLINKAT: u64 = 266;
/// sync_file_range(2): starts or waits for writeback; never a durable point.
pub const SYNC_FILE_RANGE: u64 = 277;
/// fallocate(2): allocate, punch, zero, collapse or insert a range of a file.
pub const FALLOCATE: u64 = 285;
/// pwritev(2): a vectored write at an offset.
pub const PWRITEV: u64 = 296;
/// syncfs(2): a durable point for the filesystem of a descriptor's file.
pub const SYNCFS: u64 = 306;
/// renameat2(2): renameat with flags (RENAME_EXCHANGE, RENAME_NOREPLACE...).
pub const RENAMEAT2: u64 = 316;
/// pwritev2(2): pwritev with per-call flags.
pub const PWRITEV2: u64 = 328;
/// openat2(2): openat with its flags in `struct open_how`.
pub const OPENAT2: u64 = 437;
// Calls that can drop the last reference to an open file (see `may_free_files`).
/// close(2).
pub const CLOSE: u64 = 3;
/// dup2(2): closes the descriptor it replaces.
pub const DUP2: u64 = 33;
/// execve(2): closes close-on-exec descriptors.
pub const EXECVE: u64 = 59;
/// unshare(2): may drop a shared descriptor table (CLONE_FILES).
pub const UNSHARE: u64 = 272;
/// dup3(2): closes the descriptor it replaces.
pub const DUP3: u64 = 292;
/// execveat(2): closes close-on-exec descriptors.
pub const EXECVEAT: u64 = 322;
/// io_uring_enter(2): submitted requests may close files (IORING_OP_CLOSE).
pub const IO_URING_ENTER: u64 = 426;
/// close_range(2): closes a range of descriptors.
pub const CLOSE_RANGE: u64 = 436;

/// Syscalls after which a `struct file` may be freed (and its memory reused for another open
/// file): closing descriptors, replacing them (dup2/dup3), exec (close-on-exec), dropping a
/// shared descriptor table, and io_uring (IORING_OP_CLOSE). The write path caches "this
/// `struct file` is that inode" until the next of these (see the eBPF `WRITE_CACHE`).
#[inline(always)]
pub fn may_free_files(nr: u64) -> bool {
    matches!(
        nr,
        CLOSE | DUP2 | EXECVE | UNSHARE | DUP3 | EXECVEAT | IO_URING_ENTER | CLOSE_RANGE
    )
}

/// Offsets in `struct pt_regs` of the six syscall argument registers, the return value and the
/// syscall number.
///
/// This one: `di`, the first argument.
pub const REGS_DI: usize = 112;
/// `si`: the second argument.
pub const REGS_SI: usize = 104;
/// `dx`: the third argument.
pub const REGS_DX: usize = 96;
/// `r10`: the fourth argument.
pub const REGS_R10: usize = 56;
/// `r8`: the fifth argument.
pub const REGS_R8: usize = 72;
/// `r9`: the sixth argument.
pub const REGS_R9: usize = 64;
/// `ax`: the return value (at sys_exit).
pub const REGS_AX: usize = 80;
/// `orig_ax`: the syscall number.
pub const REGS_ORIG_AX: usize = 120;
/// `pt_regs.sp` (x86_64): the user stack pointer.
pub const REGS_SP: usize = 152;
/// `pt_regs.bp` (x86_64): the user frame pointer, where the kernel's frame walk starts.
pub const REGS_BP: usize = 32;
/// `pt_regs.ip` (x86_64): the user instruction pointer (a stack's first frame).
pub const REGS_IP: usize = 128;
/// `pt_regs.cs` (x86_64): the user code segment ([`USER64_CS`] for a 64-bit task).
pub const REGS_CS: usize = 136;
/// `__USER_CS`: the code segment of 64-bit user code (a compat task runs in `__USER32_CS`).
pub const USER64_CS: u64 = 0x33;
/// The six argument registers' offsets, in argument order.
pub const ARG_REGS: [usize; 6] = [REGS_DI, REGS_SI, REGS_DX, REGS_R10, REGS_R8, REGS_R9];

/// True for the write syscalls: write, pwrite64, writev, pwritev, pwritev2.
#[inline(always)]
pub fn is_write(nr: u64) -> bool {
    matches!(nr, WRITE | PWRITE64 | WRITEV | PWRITEV | PWRITEV2)
}

/// The `names::FN_*` bit of the function hook that sees write syscall `nr` inside the kernel
/// (vfs_write for write/pwrite64, the vectored path for the others); 0 if `nr` is not a write.
#[inline(always)]
pub fn write_hook_bit(nr: u64) -> u64 {
    match nr {
        WRITE | PWRITE64 => crate::names::FN_WRITE,
        WRITEV | PWRITEV | PWRITEV2 => crate::names::FN_VECTORED_WRITE,
        _ => 0,
    }
}

/// True for the sync-family syscalls: fsync, fdatasync, msync, sync, syncfs, sync_file_range.
#[inline(always)]
pub fn is_sync(nr: u64) -> bool {
    matches!(
        nr,
        FSYNC | FDATASYNC | MSYNC | SYNC | SYNCFS | SYNC_FILE_RANGE
    )
}

/// Syncs that can be durable points; their entry bumps the durability epoch.
#[inline(always)]
pub fn may_be_durable_point(nr: u64) -> bool {
    matches!(nr, FSYNC | FDATASYNC | MSYNC | SYNC | SYNCFS)
}

/// True for the syscalls that open a file: open, openat, openat2, creat.
#[inline(always)]
pub fn is_open(nr: u64) -> bool {
    matches!(nr, OPEN | OPENAT | OPENAT2 | CREAT)
}

/// True for the syscalls that change directory entries: rename, renameat, renameat2, link, linkat,
/// unlink, unlinkat, mkdir, mkdirat, rmdir, symlink, symlinkat.
#[inline(always)]
pub fn is_namespace(nr: u64) -> bool {
    matches!(
        nr,
        RENAME
            | RENAMEAT
            | RENAMEAT2
            | LINK
            | LINKAT
            | UNLINK
            | UNLINKAT
            | MKDIR
            | MKDIRAT
            | RMDIR
            | SYMLINK
            | SYMLINKAT
    )
}

/// True for the calls that change a file's size or allocation without writing data: truncate,
/// ftruncate, fallocate (a sync after one has something to make durable).
#[inline(always)]
pub fn is_truncate(nr: u64) -> bool {
    matches!(nr, TRUNCATE | FTRUNCATE | FALLOCATE)
}

/// chmod(2): a file's mode set through its path.
pub const CHMOD: u64 = 90;
/// fchmod(2): a file's mode set through a descriptor.
pub const FCHMOD: u64 = 91;
/// chown(2): a file's owner set through its path.
pub const CHOWN: u64 = 92;
/// fchown(2): a file's owner set through a descriptor.
pub const FCHOWN: u64 = 93;
/// lchown(2): chown of a symbolic link itself.
pub const LCHOWN: u64 = 94;
/// utime(2): a file's times set through its path.
pub const UTIME: u64 = 132;
/// setxattr(2): an extended attribute set through a path.
pub const SETXATTR: u64 = 188;
/// lsetxattr(2): setxattr of a symbolic link itself.
pub const LSETXATTR: u64 = 189;
/// fsetxattr(2): an extended attribute set through a descriptor.
pub const FSETXATTR: u64 = 190;
/// removexattr(2): an extended attribute removed through a path.
pub const REMOVEXATTR: u64 = 197;
/// lremovexattr(2): removexattr of a symbolic link itself.
pub const LREMOVEXATTR: u64 = 198;
/// fremovexattr(2): an extended attribute removed through a descriptor.
pub const FREMOVEXATTR: u64 = 199;
/// utimes(2): a file's times set through its path.
pub const UTIMES: u64 = 235;
/// fchownat(2): chown relative to a directory fd (AT_EMPTY_PATH: the fd's file).
pub const FCHOWNAT: u64 = 260;
/// futimesat(2): utimes relative to a directory fd (a NULL path: the fd's file).
pub const FUTIMESAT: u64 = 261;
/// fchmodat(2): chmod relative to a directory fd (no flags argument).
pub const FCHMODAT: u64 = 268;
/// utimensat(2): times set relative to a directory fd (a NULL path, futimens(3), or
/// AT_EMPTY_PATH: the fd's file).
pub const UTIMENSAT: u64 = 280;
/// fchmodat2(2) (Linux 6.6+): fchmodat with flags (AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW).
pub const FCHMODAT2: u64 = 452;
/// setxattrat(2) (Linux 6.13+): setxattr relative to a directory fd, with at-flags.
pub const SETXATTRAT: u64 = 463;
/// removexattrat(2) (Linux 6.13+): removexattr relative to a directory fd, with at-flags.
pub const REMOVEXATTRAT: u64 = 466;

/// True for the calls that change a file's metadata (mode, owner, times, extended
/// attributes) without writing data: a sync after one has something to make durable.
#[inline(always)]
pub fn is_metadata(nr: u64) -> bool {
    matches!(
        nr,
        CHMOD
            | FCHMOD
            | CHOWN
            | FCHOWN
            | LCHOWN
            | UTIME
            | SETXATTR
            | LSETXATTR
            | FSETXATTR
            | REMOVEXATTR
            | LREMOVEXATTR
            | FREMOVEXATTR
            | UTIMES
            | FCHOWNAT
            | FUTIMESAT
            | FCHMODAT
            | UTIMENSAT
            | FCHMODAT2
            | SETXATTRAT
            | REMOVEXATTRAT
    )
}

/// `AT_EMPTY_PATH`: an at-call with an empty path acts on its dirfd's own file.
pub const AT_EMPTY_PATH: u64 = 0x1000;
