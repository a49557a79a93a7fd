//! Types and pure logic shared by the eBPF programs and the userspace tracer.
//!
//! Everything crossing the kernel/user boundary is `#[repr(C)]` and defined here once; names of
//! maps and programs are constants so userspace never repeats a string. With the `user` feature
//! the types implement `aya::Pod` so they can be used as map keys and values; with `host`, the
//! few std helpers the tracer and xtask both need (`host`).
#![no_std]

#[cfg(feature = "host")]
pub mod host;
pub mod names;
pub mod offsets;
pub mod records;
pub mod syscalls;
pub mod uring;
pub mod wal;

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
///
/// This constant is the mask of the type bits in `i_mode`.
pub const S_IFMT: u32 = 0o170000;
/// Inode type: regular file (its writes and syncs are tracked).
pub const S_IFREG: u32 = 0o100000;
/// Inode type: directory (its entry changes and syncs are tracked).
pub const S_IFDIR: u32 = 0o040000;

/// Open flags (x86_64 / asm-generic values) that change durability.
pub mod open_flags {
    /// Mask of the access mode bits (O_RDONLY, O_WRONLY, O_RDWR).
    pub const O_ACCMODE: u32 = 0o3;
    /// Create the file if it does not exist.
    pub const O_CREAT: u32 = 0o100;
    /// Truncate the file at open (the kernel clears it from `f_flags`;
    /// `OpenRecord::open_flags` sets it back).
    pub const O_TRUNC: u32 = 0o1000;
    /// Every write appends at the end of the file.
    pub const O_APPEND: u32 = 0o2000;
    /// Every write is a durable point for its data, as if followed by fdatasync.
    pub const O_DSYNC: u32 = 0o10000;
    /// Bypass the page cache; not a durable point by itself (the disk's cache may still
    /// hold the data).
    pub const O_DIRECT: u32 = 0o40000;
    /// Fail unless the path names a directory.
    pub const O_DIRECTORY: u32 = 0o200000;
    /// Every write is a durable point for data and metadata, as if followed by fsync
    /// (includes O_DSYNC).
    pub const O_SYNC: u32 = 0o4010000; // includes O_DSYNC
    /// Create an unnamed file in the given directory, no entry until linked (includes O_DIRECTORY).
    pub const O_TMPFILE: u32 = 0o20200000; // includes O_DIRECTORY
}

/// `file->f_mode` bit set by the VFS when an open created the file (stable since 4.19).
pub const FMODE_CREATED: u32 = 1 << 20;

/// mmap / msync constants.
pub mod mman {
    /// mmap `prot` bit: the mapping is writable.
    pub const PROT_WRITE: u64 = 0x2;
    /// mmap mapping type: shared (stores reach the file's page cache and dirty it).
    pub const MAP_SHARED: u64 = 0x01;
    /// mmap mapping type: shared, with unknown flags rejected (as MAP_SHARED for durability).
    pub const MAP_SHARED_VALIDATE: u64 = 0x03;
    /// Mask of the mapping type bits in mmap's `flags`.
    pub const MAP_TYPE: u64 = 0x0f;
    /// msync flag: start writeback and return at once (not a durable point).
    pub const MS_ASYNC: u64 = 1;
    /// msync flag: invalidate other cached copies of the range (no effect on durability).
    pub const MS_INVALIDATE: u64 = 2;
    /// msync flag: write the range back and wait for it (a durable point for the mapped file).
    pub const MS_SYNC: u64 = 4;
}

/// `AT_FDCWD` as the kernel sees it in a syscall argument register.
pub const AT_FDCWD: i32 = -100;
/// Bytes in a page (x86_64); a mapped dirty page counts as this many unsynced bytes.
pub const PAGE_SIZE: u64 = 4096;

/// Kernel-internal `dev_t` (12-bit major, 20-bit minor) split into major and minor.
#[inline(always)]
pub fn kdev_major(dev: u32) -> u32 {
    dev >> 20
}
/// Minor number of a kernel-internal `dev_t` (its low 20 bits).
#[inline(always)]
pub fn kdev_minor(dev: u32) -> u32 {
    dev & ((1 << 20) - 1)
}
