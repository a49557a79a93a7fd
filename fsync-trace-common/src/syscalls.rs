//! x86_64 syscall numbers of the calls the tracepoint tier decodes, and where arguments live in
//! `struct pt_regs` (a stable user ABI on x86_64, `arch/x86/include/uapi/asm/ptrace.h`).

pub const WRITE: u64 = 1;
pub const OPEN: u64 = 2;
pub const MMAP: u64 = 9;
pub const PWRITE64: u64 = 18;
pub const WRITEV: u64 = 20;
pub const MSYNC: u64 = 26;
pub const FSYNC: u64 = 74;
pub const FDATASYNC: u64 = 75;
pub const RENAME: u64 = 82;
pub const MKDIR: u64 = 83;
pub const RMDIR: u64 = 84;
pub const CREAT: u64 = 85;
pub const LINK: u64 = 86;
pub const UNLINK: u64 = 87;
pub const SYMLINK: u64 = 88;
pub const SYNC: u64 = 162;
pub const OPENAT: u64 = 257;
pub const MKDIRAT: u64 = 258;
pub const UNLINKAT: u64 = 263;
pub const RENAMEAT: u64 = 264;
pub const LINKAT: u64 = 265;
pub const SYMLINKAT: u64 = 266;
pub const SYNC_FILE_RANGE: u64 = 277;
pub const PWRITEV: u64 = 296;
pub const SYNCFS: u64 = 306;
pub const RENAMEAT2: u64 = 316;
pub const PWRITEV2: u64 = 328;
pub const OPENAT2: u64 = 437;
// Calls that can drop the last reference to an open file (see `may_free_files`).
pub const CLOSE: u64 = 3;
pub const DUP2: u64 = 33;
pub const EXECVE: u64 = 59;
pub const UNSHARE: u64 = 272;
pub const DUP3: u64 = 292;
pub const EXECVEAT: u64 = 322;
pub const IO_URING_ENTER: u64 = 426;
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
pub const REGS_DI: usize = 112;
pub const REGS_SI: usize = 104;
pub const REGS_DX: usize = 96;
pub const REGS_R10: usize = 56;
pub const REGS_R8: usize = 72;
pub const REGS_R9: usize = 64;
pub const REGS_AX: usize = 80;
pub const REGS_ORIG_AX: usize = 120;
pub const ARG_REGS: [usize; 6] = [REGS_DI, REGS_SI, REGS_DX, REGS_R10, REGS_R8, REGS_R9];

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

#[inline(always)]
pub fn is_open(nr: u64) -> bool {
    matches!(nr, OPEN | OPENAT | OPENAT2 | CREAT)
}

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
