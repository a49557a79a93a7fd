//! Kernel struct member offsets the eBPF programs need, derived at run time from the running
//! kernel's BTF (/sys/kernel/btf/vmlinux) and written into a global before load, so one binary
//! works across kernels without CO-RE support in the Rust toolchain.

/// Byte offsets of the members the programs read with `bpf_probe_read_kernel`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.pid` (thread id): tells a forked process from a new thread.
    pub task_pid: u32,
    /// `task_struct.tgid` (process id) of a forked child.
    pub task_tgid: u32,
    /// `task_struct.files`: the descriptor table, to resolve an fd to its `struct file`.
    pub task_files: u32,
    /// `task_struct.fs`: the cwd a name given with AT_FDCWD resolves against.
    pub task_fs: u32,
    /// `task_struct.signal`: to tell when the whole process has exited.
    pub task_signal: u32,
    /// `signal_struct.live`: threads of the process still alive (0: the process is gone).
    pub signal_live: u32,
    /// `files_struct.fdt`: the current fd table.
    pub files_fdt: u32,
    /// `fdtable.max_fds`: bound of the fd array.
    pub fdt_max_fds: u32,
    /// `fdtable.fd`: the array of `struct file *`, by descriptor.
    pub fdt_fd: u32,
    /// `file.f_mode` (FMODE_WRITE, FMODE_CREATED).
    pub file_f_mode: u32,
    /// `file.f_flags`: the open flags (O_SYNC, O_DSYNC, O_APPEND...).
    pub file_f_flags: u32,
    /// `file.f_inode`: the open file's inode.
    pub file_f_inode: u32,
    /// `file.f_path`: mount and dentry of the open file, where the path walk starts.
    pub file_f_path: u32,
    /// `path.mnt` (`struct vfsmount *`).
    pub path_mnt: u32,
    /// `path.dentry`.
    pub path_dentry: u32,
    /// `inode.i_mode`: file type and permission bits.
    pub inode_i_mode: u32,
    /// `inode.i_ino`: the inode number (`FileKey::ino`).
    pub inode_i_ino: u32,
    /// `inode.i_sb`: the inode's superblock.
    pub inode_i_sb: u32,
    /// `super_block.s_dev`: the filesystem's device (`FileKey::dev`).
    pub sb_s_dev: u32,
    /// `super_block.s_magic`: the filesystem type (files on non-durable ones are ignored).
    pub sb_s_magic: u32,
    /// `dentry.d_parent`: the walk up to the root.
    pub dentry_d_parent: u32,
    /// `dentry.d_name` (`struct qstr`: hash, length, name pointer).
    pub dentry_d_name: u32,
    /// `dentry.d_inode`: the inode a dentry names.
    pub dentry_d_inode: u32,
    /// `fs_struct.pwd`: the current working directory.
    pub fs_pwd: u32,
    /// Offset of `struct vfsmount mnt` inside `struct mount` (for container_of).
    pub mount_mnt: u32,
    /// `mount.mnt_parent`: the mount this one is mounted on.
    pub mount_mnt_parent: u32,
    /// `mount.mnt_mountpoint`: the dentry this mount covers in its parent.
    pub mount_mnt_mountpoint: u32,
    /// `vfsmount.mnt_root`: a mount's root dentry (where the walk crosses to the parent mount).
    pub vfsmount_mnt_root: u32,
    /// `address_space.host`: the inode of a dirtied page's mapping.
    pub mapping_host: u32,
    /// `task_struct.flags` (PF_IO_WORKER / PF_KTHREAD: no syscall of the thread's own).
    pub task_flags: u32,
    /// `inode.i_generation`: with dev and number, the file's identity (`FileKey::gen`).
    pub inode_i_generation: u32,
    /// `inode.__i_nlink` (the link count; `i_nlink` is its read-only alias in a union).
    pub inode_i_nlink: u32,
    /// Set to 1 by userspace when the offsets come from BTF (0 in the object as built).
    pub ready: u32,
    /// `request.cmd_flags` (`blk_opf_t`: op in the low 8 bits, then `req_flag_bits`).
    pub request_cmd_flags: u32,
    /// `request.q` (`struct request_queue *`).
    pub request_q: u32,
    /// `request_queue.disk` (`struct gendisk *`).
    pub queue_disk: u32,
    /// `gendisk.part0` (`struct block_device *`: the whole disk; a flush request has no
    /// partition).
    pub gendisk_part0: u32,
    /// `block_device.bd_dev`.
    pub bdev_bd_dev: u32,
    /// `1 << __REQ_FUA` in `cmd_flags` (the bit moves between kernels: read from BTF).
    pub req_fua: u32,
    /// 1 when the block offsets above were found (the block hook does nothing otherwise).
    pub block_ready: u32,
    /// `io_kiocb.opcode` (`IORING_OP_*`). The io_uring offsets below are 0 with
    /// `uring_ready` 0 on kernels without io_uring (its programs are then not attached).
    pub req_opcode: u32,
    /// `io_kiocb.flags` (`REQ_F_*`; the low bits are the SQE's `IOSQE_*` flags).
    pub req_flags: u32,
    /// `io_kiocb.file`: the request's file, at the start of the per-opcode command union
    /// (`io_kiocb.cmd`, where `struct io_sync`/`io_rw`... live).
    pub req_file: u32,
    /// `io_kiocb.ctx`: the ring the request was submitted to (link chains are per ring).
    pub req_ctx: u32,
    /// Offset of the result in a request: `io_kiocb.cqe` + `io_cqe.res`.
    pub req_res: u32,
    /// Offset of the SQE's fd in a request until it completes: `io_kiocb.cqe` + `io_cqe.fd`.
    pub req_fd: u32,
    /// `io_sync.flags` (IORING_FSYNC_DATASYNC, sync_file_range flags) in the command union.
    pub sync_flags: u32,
    /// `io_sync.off` and `io_sync.len` (IORING_OP_SYNC_FILE_RANGE's range).
    pub sync_off: u32,
    /// See `sync_off`.
    pub sync_len: u32,
    /// `io_open.file_slot`: nonzero when an IORING_OP_OPENAT installs a fixed file (no fd).
    pub open_file_slot: u32,
    /// `io_open.how` (`struct open_how`, whose first field is the u64 open flags).
    pub open_how: u32,
    /// Entry-changing requests' prepared arguments in the command union (RENAMEAT, UNLINKAT,
    /// MKDIRAT, LINKAT/SYMLINKAT): `io_rename.old_dfd`.
    pub ren_old_dfd: u32,
    /// `io_rename.new_dfd`.
    pub ren_new_dfd: u32,
    /// `io_rename.oldpath`.
    pub ren_oldpath: u32,
    /// `io_rename.newpath`.
    pub ren_newpath: u32,
    /// `io_rename.flags`.
    pub ren_flags: u32,
    /// `io_unlink.dfd`.
    pub unlink_dfd: u32,
    /// `io_unlink.flags`.
    pub unlink_flags: u32,
    /// `io_unlink.filename`.
    pub unlink_filename: u32,
    /// `io_mkdir.dfd`.
    pub mkdir_dfd: u32,
    /// `io_mkdir.filename`.
    pub mkdir_filename: u32,
    /// `io_link.old_dfd`.
    pub link_old_dfd: u32,
    /// `io_link.new_dfd`.
    pub link_new_dfd: u32,
    /// `io_link.oldpath`.
    pub link_oldpath: u32,
    /// `io_link.newpath`.
    pub link_newpath: u32,
    /// `io_link.flags`.
    pub link_flags: u32,
    /// 1 when the io_uring offsets above come from BTF.
    pub uring_ready: u32,
    /// `file.f_pos`: where a write(2)/writev(2) ended (read at the syscall's exit), for the
    /// dirty extent.
    pub file_f_pos: u32,
    /// `inode.i_size`: where an appending pwrite ended (O_APPEND ignores pwrite's offset).
    pub inode_i_size: u32,
    /// `io_kiocb` -> `io_rw.kiocb.ki_pos` (the request's position, its end once it completed);
    /// 0 if this kernel's BTF does not describe it (the extent of ring writes is then unknown).
    pub req_ki_pos: u32,
}
