//! Reading kernel structures with offsets taken from BTF at load time (see `maps::OFFSETS`).
use aya_ebpf::helpers::{
    bpf_get_current_task, bpf_probe_read_kernel, bpf_probe_read_user_str_bytes, generated,
};
use fsync_trace_common::{
    is_durable_fs, syscalls as nr, FileKey, AT_FDCWD, MAX_PATH_DEPTH, PATH_BUF, PATH_SLACK,
    S_IFDIR, S_IFMT, S_IFREG,
};

use crate::maps::off;

pub type KPtr = *const u8;

/// Reads a `T` at `base + offset` from kernel memory.
#[inline(always)]
pub fn read<T>(base: KPtr, offset: usize) -> Option<T> {
    if base.is_null() {
        return None;
    }
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset) as *const T).ok() }
}

/// Loads a `T` at `base + offset` through a BTF-typed kernel pointer (from
/// `bpf_get_current_task_btf`, `bpf_task_pt_regs`, or a pointer field loaded this way): the
/// verifier checks the field against the kernel's BTF and emits a fault-tolerant load (a bad
/// pointer reads as 0), so no helper call. `offset` must be known at load time (`off!` values
/// are: `.rodata`).
///
/// # Safety
/// `base` must be such a BTF-typed pointer and `offset` a field of `T`'s size in its struct.
#[inline(always)]
pub unsafe fn load_btf<T>(base: KPtr, offset: usize) -> T {
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset) as *const T) }
}

/// Reads a `T` at `base + offset` from user memory or kernel memory holding pt_regs.
#[inline(always)]
pub fn reg(regs: KPtr, offset: usize) -> u64 {
    read::<u64>(regs, offset).unwrap_or(0)
}

/// `task_struct.flags` bits (include/linux/sched.h, stable since 5.12).
const PF_IO_WORKER: u32 = 0x0000_0010;
const PF_KTHREAD: u32 = 0x0020_0000;

/// The current thread is an io_uring worker (`iou-wrk`) or SQPOLL thread (`iou-sqp`).
#[inline(always)]
pub fn current_is_io_worker() -> bool {
    let task = unsafe { bpf_get_current_task() } as KPtr;
    read::<u32>(task, off!(task_flags)).is_some_and(|f| f & PF_IO_WORKER != 0)
}

/// The syscall the current thread is in (`orig_ax`) and its saved user registers (read them with
/// `reg` and `syscalls::REGS_*`), or None for threads with no syscall of their own: io_uring
/// workers and kernel threads hold a copy of whatever their creator's registers were, which can
/// be any syscall.
///
/// Function hooks use this to learn the fd of a write(2) (the tracepoint tier has it from the
/// syscall arguments) and to tell the fsync an O_SYNC write runs inside vfs_write from an
/// io_uring fsync.
#[inline(always)]
pub fn current_syscall() -> Option<(u64, KPtr)> {
    let task = unsafe { bpf_get_current_task() } as KPtr;
    let flags: u32 = read(task, off!(task_flags))?;
    if flags & (PF_IO_WORKER | PF_KTHREAD) != 0 {
        return None;
    }
    // bpf_task_pt_regs (5.15+) needs the BTF-typed task pointer.
    let regs =
        unsafe { generated::bpf_task_pt_regs(generated::bpf_get_current_task_btf()) } as KPtr;
    let nr: u64 = read(regs, nr::REGS_ORIG_AX)?;
    Some((nr, regs))
}

/// What the programs need to know about an inode.
#[derive(Clone, Copy)]
pub struct InodeInfo {
    pub key: FileKey,
    pub mode: u32,
    pub magic: u64,
    pub inode: KPtr,
}

impl InodeInfo {
    #[inline(always)]
    pub fn is_reg(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
    #[inline(always)]
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
    /// A regular file or directory on a filesystem that can be durable.
    #[inline(always)]
    pub fn tracked(&self) -> bool {
        (self.is_reg() || self.is_dir()) && is_durable_fs(self.magic)
    }
}

#[inline(always)]
pub fn inode_info(inode: KPtr) -> Option<InodeInfo> {
    let ino: u64 = read(inode, off!(inode_i_ino))?;
    let mode: u16 = read(inode, off!(inode_i_mode))?;
    let sb: KPtr = read(inode, off!(inode_i_sb))?;
    let dev: u32 = read(sb, off!(sb_s_dev))?;
    let magic: u64 = read(sb, off!(sb_s_magic))?;
    let gen: u32 = read(inode, off!(inode_i_generation)).unwrap_or(0);
    Some(InodeInfo {
        key: FileKey { dev, gen, ino },
        mode: mode as u32,
        magic,
        inode,
    })
}

/// The link count of `inode` now (0: no name left).
#[inline(always)]
pub fn inode_nlink(inode: KPtr) -> u32 {
    read(inode, off!(inode_i_nlink)).unwrap_or(0)
}

/// The `struct file *` behind `fd` of `task` (a BTF-typed task pointer, from
/// `bpf_get_current_task_btf`): task -> files -> fdtable are BTF-typed loads; the fd array entry
/// is one `bpf_probe_read_kernel`.
#[inline(always)]
pub fn task_file(task: KPtr, fd: i64) -> Option<KPtr> {
    if fd < 0 {
        return None;
    }
    let files: KPtr = unsafe { load_btf(task, off!(task_files)) };
    if files.is_null() {
        return None;
    }
    let fdt: KPtr = unsafe { load_btf(files, off!(files_fdt)) };
    if fdt.is_null() {
        return None;
    }
    let max_fds: u32 = unsafe { load_btf(fdt, off!(fdt_max_fds)) };
    if fd as u64 >= max_fds as u64 {
        return None;
    }
    let fd_array: KPtr = unsafe { load_btf(fdt, off!(fdt_fd)) };
    let file: KPtr = read(fd_array, (fd as usize) * 8)?;
    if file.is_null() {
        None
    } else {
        Some(file)
    }
}

/// The `struct file *` behind `fd` in the current task, if any.
#[inline(always)]
pub fn current_file(fd: i64) -> Option<KPtr> {
    task_file(current_task_btf(), fd)
}

/// The current task as a BTF-typed pointer (fields are plain loads, see [`load_btf`]).
#[inline(always)]
pub fn current_task_btf() -> KPtr {
    (unsafe { generated::bpf_get_current_task_btf() }) as KPtr
}

#[inline(always)]
pub fn file_inode(file: KPtr) -> Option<InodeInfo> {
    let inode: KPtr = read(file, off!(file_f_inode))?;
    inode_info(inode)
}

/// `(vfsmount, dentry)` of a `struct path` at `base + offset`.
#[inline(always)]
pub fn path_at(base: KPtr, offset: usize) -> Option<(KPtr, KPtr)> {
    let mnt: KPtr = read(base, offset + off!(path_mnt))?;
    let dentry: KPtr = read(base, offset + off!(path_dentry))?;
    Some((mnt, dentry))
}

/// The directory a `*at()` call resolves relative names against: `dirfd`, or the cwd.
#[inline(always)]
pub fn base_dir_path(dirfd: i64) -> Option<(KPtr, KPtr)> {
    if dirfd as i32 == AT_FDCWD {
        let task = unsafe { bpf_get_current_task() } as KPtr;
        let fs: KPtr = read(task, off!(task_fs))?;
        path_at(fs, off!(fs_pwd))
    } else {
        let file = current_file(dirfd)?;
        path_at(file, off!(file_f_path))
    }
}

#[inline(always)]
pub fn dentry_inode(dentry: KPtr) -> Option<InodeInfo> {
    let inode: KPtr = read(dentry, off!(dentry_d_inode))?;
    inode_info(inode)
}

const PATH_MASK: usize = PATH_BUF - 1;
const _: () = assert!(PATH_BUF.is_power_of_two() && PATH_SLACK >= 256);

/// Writes the absolute path of `dentry` (as seen from the task's mount namespace root) into
/// `buf`, backwards from `PATH_BUF`, crossing mount points. Returns (start, truncated).
///
/// Why backwards: names are only known walking up from the leaf; writing from the end avoids
/// a second pass. Offsets are masked so the verifier can bound every copy.
///
/// # Safety
/// `buf` points to at least `PATH_BUF + PATH_SLACK` writable bytes (a record's path field).
#[inline(always)]
pub unsafe fn walk_path(mnt: KPtr, dentry: KPtr, buf: *mut u8) -> (u32, u32) {
    let mut pos: usize = PATH_BUF;
    let mut d = dentry;
    // container_of(vfsmount, struct mount, mnt)
    let mut mount: KPtr = mnt.wrapping_sub(off!(mount_mnt));
    let mut complete = false;
    let name_len_off = off!(dentry_d_name) + 4; // struct qstr { u32 hash; u32 len; const char *name }
    let name_ptr_off = off!(dentry_d_name) + 8;
    for _ in 0..MAX_PATH_DEPTH {
        // Widen `pos` to [0, 1023] (a no-op: it is always <= PATH_BUF) so the verifier sees the
        // same state after a mount crossing and after a name, and prunes instead of exploring
        // 2^depth paths. `opaque_zero` keeps LLVM from deleting the mask.
        pos &= (2 * PATH_BUF - 1) | crate::maps::opaque_zero();
        let parent: KPtr = match read(d, off!(dentry_d_parent)) {
            Some(p) => p,
            None => break,
        };
        let mnt_root: KPtr = match read(mount, off!(mount_mnt) + off!(vfsmount_mnt_root)) {
            Some(r) => r,
            None => break,
        };
        if d == mnt_root || d == parent {
            let mnt_parent: KPtr = match read(mount, off!(mount_mnt_parent)) {
                Some(p) => p,
                None => break,
            };
            if mnt_parent == mount || mnt_parent.is_null() {
                complete = true;
                break;
            }
            d = match read(mount, off!(mount_mnt_mountpoint)) {
                Some(mp) => mp,
                None => break,
            };
            mount = mnt_parent;
            continue;
        }
        let len: u32 = match read(d, name_len_off) {
            Some(l) => l,
            None => break,
        };
        let name: KPtr = match read(d, name_ptr_off) {
            Some(n) => n,
            None => break,
        };
        let len = (len as usize) & 0xff;
        if len + 1 > pos {
            break;
        }
        pos -= len;
        unsafe {
            generated::bpf_probe_read_kernel(
                buf.wrapping_add(pos & PATH_MASK) as *mut _,
                len as u32,
                name as *const _,
            );
        }
        pos -= 1;
        unsafe { *buf.wrapping_add(pos & PATH_MASK) = b'/' };
        d = parent;
    }
    if pos == PATH_BUF {
        // The root directory itself.
        pos -= 1;
        unsafe { *buf.wrapping_add(pos & PATH_MASK) = b'/' };
    }
    (pos as u32, u32::from(!complete))
}

/// Copies a NUL-terminated user string into `dst` (truncating), returns bytes copied.
#[inline(always)]
pub fn read_user_str(src: u64, dst: &mut [u8]) -> usize {
    if src == 0 {
        return 0;
    }
    match unsafe { bpf_probe_read_user_str_bytes(src as *const u8, dst) } {
        Ok(s) => s.len(),
        Err(_) => 0,
    }
}
