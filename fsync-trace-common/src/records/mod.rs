//! Records sent from the kernel to userspace through the `EVENTS` ring buffer, and the values of
//! the per-file map. Events are sent on state changes only (a file became dirty, a sync finished,
//! a namespace change...), never once per write: per-write counting happens in `FILE_STATS`.
//!
//! One module per subject, all re-exported here (and from the crate root): `file` (dirty, sync,
//! open, name and mmap records), `namespace` (entry changes and changes by path), `stack` (user
//! stacks), `device` (device flushes, io_uring ordering), `process` (fork, exit, in-flight calls).

mod device;
mod file;
mod namespace;
mod process;
mod stack;

pub use device::*;
pub use file::*;
pub use namespace::*;
pub use process::*;
pub use stack::*;

/// Bytes of a task's command name (`comm`, NUL included): the kernel's TASK_COMM_LEN.
pub const TASK_COMM_LEN: usize = 16;
/// Usable bytes of a path assembled in the kernel (walked from a dentry up to the root).
pub const PATH_BUF: usize = 512;
/// Slack after the usable area so the verifier can prove a bounded copy stays in the buffer.
pub const PATH_SLACK: usize = 256;
/// A user-supplied name (second argument of rename, unlink...).
pub const NAME_BUF: usize = 256;
/// Maximum directory levels walked; deeper paths are reported truncated.
pub const MAX_PATH_DEPTH: u32 = 48;

/// A file's identity: kernel `dev_t` of its superblock, inode number and the inode's
/// generation (`i_generation`). The number alone is not an identity: ext4 hands a freed number
/// to the next new file at once, but gives every new inode a fresh random generation (as xfs,
/// btrfs and f2fs do), so a reused number with a new generation is a new file with a fresh
/// history. Filesystems that leave the generation 0 are covered by the create seen at open
/// (`OpenRecord::prior`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    /// Kernel-internal `dev_t` of the file's filesystem (`super_block.s_dev`; see `kdev_major`).
    pub dev: u32,
    /// The inode's generation (`i_generation`); 0 on filesystems that do not set it.
    pub gen: u32,
    /// The inode number (`i_ino`).
    pub ino: u64,
}

/// `FILE_STATS` value: exact per-file counters kept in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCounters {
    /// Non-O_SYNC write calls and the bytes they wrote (successful calls only).
    pub writes: u64,
    /// Bytes those non-O_SYNC writes wrote.
    pub bytes: u64,
    /// Writes through O_SYNC/O_DSYNC descriptors (each one is its own durable point).
    pub sync_writes: u64,
    /// Bytes those O_SYNC/O_DSYNC writes wrote.
    pub sync_write_bytes: u64,
    /// Clean pages of a shared writable mapping dirtied by stores of a traced process.
    pub mapped_dirty_pages: u64,
    /// Times the kernel's flusher wrote this inode back (not a durable point).
    pub kernel_writebacks: u64,
    /// Durability epoch at which userspace was last told this file is dirty. When it differs
    /// from the current epoch, the next write sends a `Dirty` record.
    pub dirty_gen: u64,
    /// `FILE_FLAG_*` bits.
    pub flags: u64,
    /// Successful ftruncate(2) calls on the file (truncate(2) by path is counted in userspace).
    pub truncates: u64,
    /// Successful fallocate(2) calls on the file (every mode).
    pub fallocates: u64,
    /// The length the last ftruncate(2) set.
    pub truncate_len: u64,
    /// Durability epoch at which userspace was last told of a truncate or fallocate of this
    /// file (a `Dirty` record with [`DIRTY_BY_TRUNCATE`] or [`DIRTY_BY_FALLOCATE`]): once per
    /// epoch, even when a write already announced the file dirty in it.
    pub change_gen: u64,
    /// Dirty extent of the writes since this file's last `Dirty` record (the current
    /// durability segment): the lowest file offset written. Meaningful only when
    /// `extent_hi` is neither 0 nor [`EXTENT_UNKNOWN`].
    pub extent_lo: u64,
    /// One past the highest file offset written in the current segment; 0: nothing written in
    /// it yet; [`EXTENT_UNKNOWN`]: some data of the segment has no known offset (a store
    /// through a shared mapping, a write whose position could not be read).
    pub extent_hi: u64,
    /// Successful metadata changes through a descriptor (fchmod, fchown, fsetxattr,
    /// fremovexattr, futimens and the at-calls with AT_EMPTY_PATH; by path: counted in
    /// userspace).
    pub metadata_changes: u64,
    /// Durability epoch at which userspace was last told of a metadata change of this file
    /// (a `Dirty` record with [`DIRTY_BY_METADATA`]): apart from `change_gen`, so a metadata
    /// change cannot hide a truncate of the same epoch, nor the reverse.
    pub metadata_gen: u64,
}

/// `FileCounters::extent_hi` (and `DirtyRecord::prev_extent_hi`) when the range is unknown.
/// `u64::MAX` so that widening (a max) keeps it.
pub const EXTENT_UNKNOWN: u64 = u64::MAX;

/// No slot (`OpenRecord::prior_slot`).
pub const NO_SLOT: u32 = u32::MAX;

/// The file is mapped shared and writable by a traced process: dirtied pages count.
pub const FILE_FLAG_MAPPED: u64 = 1;
/// A `Name` record (the file's path walked from its dentry) was sent for this slot.
pub const FILE_FLAG_NAMED: u64 = 2;

/// Kind of a ring buffer record (`RecordHeader::kind`): which record struct the bytes hold.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A file became dirty: [`DirtyRecord`].
    Dirty = 1,
    /// A sync call finished, or an O_SYNC write made a dirty file durable: [`SyncRecord`].
    Sync = 2,
    /// A tracked file or directory was opened: [`OpenRecord`].
    Open = 3,
    /// A directory entry changed: [`NamespaceRecord`].
    Namespace = 4,
    /// A file was mapped shared and writable: [`MmapRecord`].
    Mmap = 5,
    /// A traced process forked a process now traced too: [`ForkRecord`].
    Fork = 6,
    /// A traced process exited: [`ExitRecord`].
    Exit = 7,
    /// The first sight of a file through a descriptor, with its path: [`NameRecord`].
    Name = 8,
    /// A traced process sent data to a socket after writing a WAL file:
    /// [`AckRecord`](crate::wal::AckRecord).
    Ack = 9,
    /// A device cache flush or FUA write was issued on a block device, by any task:
    /// [`DeviceFlushRecord`]. (16: leaves room for other kinds.)
    DeviceFlush = 16,
    /// An io_uring request broke an ordering rule: [`UringRecord`].
    Uring = 10,
    /// The user stack of the act the next record of the same thread describes: [`StackRecord`].
    Stack = 11,
    /// A successful truncate(2), or metadata change, of a path: [`TruncatePathRecord`].
    TruncatePath = 12,
}

impl RecordKind {
    /// The kind with this `RecordHeader::kind` value, or None if unknown.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Dirty,
            2 => Self::Sync,
            3 => Self::Open,
            4 => Self::Namespace,
            5 => Self::Mmap,
            6 => Self::Fork,
            7 => Self::Exit,
            8 => Self::Name,
            9 => Self::Ack,
            16 => Self::DeviceFlush,
            10 => Self::Uring,
            11 => Self::Stack,
            12 => Self::TruncatePath,
            _ => return None,
        })
    }
}

/// Common start of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordHeader {
    /// The record's [`RecordKind`], as u32.
    pub kind: u32,
    /// Process id (tgid) of the task the record comes from.
    pub tgid: u32,
    /// Thread id of that task.
    pub tid: u32,
    /// 1: a [`StackRecord`] from the same thread came just before this record (its user stack
    /// at the act); 0: no stack was taken (stacks are taken only at acts that can become
    /// findings). Was padding: 0 in every record that has no stack.
    pub stack: u32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when the record was made.
    pub ts_ns: u64,
    /// That task's command name (`comm`), NUL-padded.
    pub comm: [u8; TASK_COMM_LEN],
    /// That task's cgroup v2 id (`bpf_get_current_cgroup_id`: the inode number of its cgroup
    /// directory), read when the record was made: a process gone before userspace could read
    /// `/proc/<pid>/cgroup` keeps the cgroup it acted in (metric labels).
    pub cgroup_id: u64,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for FileKey {}
    unsafe impl aya::Pod for FileCounters {}
    unsafe impl aya::Pod for InflightSync {}
    unsafe impl aya::Pod for InflightCall {}
    unsafe impl aya::Pod for crate::offsets::KernelOffsets {}
    // Ring buffer records: #[repr(C)], explicit padding fields, sizes asserted below.
    unsafe impl aya::Pod for RecordHeader {}
    unsafe impl aya::Pod for DirtyRecord {}
    unsafe impl aya::Pod for SyncRecord {}
    unsafe impl aya::Pod for OpenRecord {}
    unsafe impl aya::Pod for NameRecord {}
    unsafe impl aya::Pod for DeviceFlushRecord {}
    unsafe impl aya::Pod for UringRecord {}
    unsafe impl aya::Pod for NamespaceRecord {}
    unsafe impl aya::Pod for TruncatePathRecord {}
    unsafe impl aya::Pod for MmapRecord {}
    unsafe impl aya::Pod for ForkRecord {}
    unsafe impl aya::Pod for ExitRecord {}
    unsafe impl aya::Pod for StackRecord {}
    unsafe impl aya::Pod for BuildIdFrame {}
}

// Layout checks: these types are read from raw bytes on the other side of the boundary.
const _: () = assert!(core::mem::size_of::<FileKey>() == 16);
const _: () = assert!(core::mem::size_of::<FileCounters>() == 128);
const _: () = assert!(core::mem::size_of::<RecordHeader>() == 48);
/// Every record starts with its header: the size checks below count from there.
pub(crate) const HEADER_BYTES: usize = core::mem::size_of::<RecordHeader>();
