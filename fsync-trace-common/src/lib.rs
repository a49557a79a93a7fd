//! Types and pure logic shared by the eBPF programs and the userspace tracer.
//!
//! Everything crossing the kernel/user boundary is `#[repr(C)]` and defined here once; names of
//! maps and programs are constants so userspace never repeats a string. With the `user` feature
//! the types implement `aya::Pod` so they can be used as map keys and values.
#![no_std]

pub mod names;
pub mod offsets;
pub mod records;
pub mod syscalls;

pub use offsets::KernelOffsets;
pub use records::*;

/// Filesystems whose files cannot be made durable (or are not files at all). Writes there are
/// ignored in the kernel, before anything reaches userspace.
pub const NON_DURABLE_FS_MAGIC: [u64; 16] = [
    0x0102_1994, // tmpfs / shmem
    0x8584_58f6, // ramfs
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0x0027_e0eb, // cgroup (v1)
    0x6367_7270, // cgroup2
    0x1cd1,      // devpts
    0xcafe_4a11, // bpffs
    0x7363_6673, // securityfs
    0x5049_5045, // pipefs
    0x534f_434b, // sockfs
    0x0904_1934, // anon_inode_fs
    0x6e73_6673, // nsfs
    0x4249_4e4d, // binfmt_misc
];

/// True if files on a filesystem with this superblock magic can be made durable.
#[inline(always)]
pub fn is_durable_fs(magic: u64) -> bool {
    let mut i = 0;
    while i < NON_DURABLE_FS_MAGIC.len() {
        if NON_DURABLE_FS_MAGIC[i] == magic {
            return false;
        }
        i += 1;
    }
    true
}

/// Inode type bits (`S_IFMT`) and the two types whose durability we track.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;

/// Open flags (x86_64 / asm-generic values) that change durability.
pub mod open_flags {
    pub const O_ACCMODE: u32 = 0o3;
    pub const O_CREAT: u32 = 0o100;
    pub const O_TRUNC: u32 = 0o1000;
    pub const O_APPEND: u32 = 0o2000;
    pub const O_DSYNC: u32 = 0o10000;
    pub const O_DIRECT: u32 = 0o40000;
    pub const O_DIRECTORY: u32 = 0o200000;
    pub const O_SYNC: u32 = 0o4010000; // includes O_DSYNC
    pub const O_TMPFILE: u32 = 0o20200000; // includes O_DIRECTORY
}

/// `file->f_mode` bit set by the VFS when an open created the file (stable since 4.19).
pub const FMODE_CREATED: u32 = 1 << 20;

/// mmap / msync constants.
pub mod mman {
    pub const PROT_WRITE: u64 = 0x2;
    pub const MAP_SHARED: u64 = 0x01;
    pub const MAP_SHARED_VALIDATE: u64 = 0x03;
    pub const MAP_TYPE: u64 = 0x0f;
    pub const MS_ASYNC: u64 = 1;
    pub const MS_INVALIDATE: u64 = 2;
    pub const MS_SYNC: u64 = 4;
}

/// `AT_FDCWD` as the kernel sees it in a syscall argument register.
pub const AT_FDCWD: i32 = -100;
pub const PAGE_SIZE: u64 = 4096;

/// Kernel-internal `dev_t` (12-bit major, 20-bit minor) split into major and minor.
#[inline(always)]
pub fn kdev_major(dev: u32) -> u32 {
    dev >> 20
}
#[inline(always)]
pub fn kdev_minor(dev: u32) -> u32 {
    dev & ((1 << 20) - 1)
}
