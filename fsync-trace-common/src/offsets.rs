//! Kernel struct member offsets the eBPF programs need, derived at run time from the running
//! kernel's BTF (/sys/kernel/btf/vmlinux) and written into a global before load, so one binary
//! works across kernels without CO-RE support in the Rust toolchain.

/// Byte offsets of the members the programs read with `bpf_probe_read_kernel`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_files: u32,
    pub task_fs: u32,
    pub task_signal: u32,
    pub signal_live: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_f_mode: u32,
    pub file_f_flags: u32,
    pub file_f_inode: u32,
    pub file_f_path: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub inode_i_mode: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    pub sb_s_dev: u32,
    pub sb_s_magic: u32,
    pub dentry_d_parent: u32,
    pub dentry_d_name: u32,
    pub dentry_d_inode: u32,
    pub fs_pwd: u32,
    /// Offset of `struct vfsmount mnt` inside `struct mount` (for container_of).
    pub mount_mnt: u32,
    pub mount_mnt_parent: u32,
    pub mount_mnt_mountpoint: u32,
    pub vfsmount_mnt_root: u32,
    pub mapping_host: u32,
    /// `task_struct.flags` (PF_IO_WORKER / PF_KTHREAD: no syscall of the thread's own).
    pub task_flags: u32,
    /// `inode.i_generation`: with dev and number, the file's identity (`FileKey::gen`).
    pub inode_i_generation: u32,
    /// `inode.__i_nlink` (the link count; `i_nlink` is its read-only alias in a union).
    pub inode_i_nlink: u32,
    /// Set to 1 by userspace when the offsets come from BTF (0 in the object as built).
    pub ready: u32,
}
