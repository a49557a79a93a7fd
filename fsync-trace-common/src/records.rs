//! Records sent from the kernel to userspace through the `EVENTS` ring buffer, and the values of
//! the per-file map. Events are sent on state changes only (a file became dirty, a sync finished,
//! a namespace change...), never once per write: per-write counting happens in `FILE_STATS`.

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
    pub dev: u32,
    pub gen: u32,
    pub ino: u64,
}

/// `FILE_STATS` value: exact per-file counters kept in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCounters {
    /// Non-O_SYNC write calls and the bytes they wrote (successful calls only).
    pub writes: u64,
    pub bytes: u64,
    /// Writes through O_SYNC/O_DSYNC descriptors (each one is its own durable point).
    pub sync_writes: u64,
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
}

/// No slot (`OpenRecord::prior_slot`).
pub const NO_SLOT: u32 = u32::MAX;

/// The file is mapped shared and writable by a traced process: dirtied pages count.
pub const FILE_FLAG_MAPPED: u64 = 1;
/// A `Name` record (the file's path walked from its dentry) was sent for this slot.
pub const FILE_FLAG_NAMED: u64 = 2;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Dirty = 1,
    Sync = 2,
    Open = 3,
    Namespace = 4,
    Mmap = 5,
    Fork = 6,
    Exit = 7,
    Name = 8,
}

impl RecordKind {
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
            _ => return None,
        })
    }
}

/// Common start of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordHeader {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when the record was made.
    pub ts_ns: u64,
    pub comm: [u8; TASK_COMM_LEN],
}

/// How a file got dirty.
pub const DIRTY_BY_WRITE: u32 = 0;
pub const DIRTY_BY_MAPPED_STORE: u32 = 1;

/// A file got dirty for the first time since the durability epoch last changed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DirtyRecord {
    pub hdr: RecordHeader,
    pub file: FileKey,
    /// Counter values before the write that sent this record, so userspace can compute what
    /// is unsynced from the final counters.
    pub writes_before: u64,
    pub bytes_before: u64,
    pub mapped_pages_before: u64,
    pub source: u32,
    pub fd: i32,
    /// The `FILE_STATS` slot the `*_before` counters are from (slots are reclaimed and reused).
    pub slot: u32,
    pub _pad: u32,
}

/// Which call a [`SyncRecord`] describes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncOp {
    Fsync = 0,
    Fdatasync = 1,
    Msync = 2,
    Sync = 3,
    Syncfs = 4,
    SyncFileRange = 5,
    /// A write through an O_SYNC/O_DSYNC descriptor to a file that was dirty.
    SyncWrite = 6,
}

impl SyncOp {
    pub const ALL: [SyncOp; 7] = [
        Self::Fsync,
        Self::Fdatasync,
        Self::Msync,
        Self::Sync,
        Self::Syncfs,
        Self::SyncFileRange,
        Self::SyncWrite,
    ];
    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Fsync => "fsync",
            Self::Fdatasync => "fdatasync",
            Self::Msync => "msync",
            Self::Sync => "sync",
            Self::Syncfs => "syncfs",
            Self::SyncFileRange => "sync_file_range",
            Self::SyncWrite => "o_sync_write",
        }
    }
}

/// A sync-family call finished (or an O_SYNC write made a dirty file durable).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyncRecord {
    pub hdr: RecordHeader,
    pub op: u32,
    pub fd: i32,
    pub ret: i64,
    pub enter_ns: u64,
    /// The file synced (fsync, fdatasync, sync_file_range, O_SYNC write) or any file on the
    /// filesystem synced (syncfs); zero when not applicable or not durable-capable.
    pub file: FileKey,
    pub file_mode: u32,
    /// Whether `file` is on a filesystem that can be durable (0/1).
    pub durable_fs: u32,
    /// msync: address, length, flags. sync_file_range: offset, nbytes, flags.
    pub addr: u64,
    pub len: u64,
    pub flags: u64,
    /// `file`'s `FILE_STATS` counters (writes, bytes, mapped pages) read in the kernel when the
    /// call returned: per sync, never per write. What a sync covered is the difference from
    /// the previous sync's reading (userspace). Valid only if `counters_slot` is not `NO_SLOT`
    /// (the slot they are from, as for `DirtyRecord::slot`: slots are reclaimed and reused).
    pub writes: u64,
    pub bytes: u64,
    pub mapped_pages: u64,
    pub counters_slot: u32,
    pub _pad: u32,
}

/// A successful open of a regular file or directory on a durable filesystem.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OpenRecord {
    pub hdr: RecordHeader,
    pub file: FileKey,
    /// Directory holding the opened entry (for the created-entry rule).
    pub parent: FileKey,
    pub mode: u32,
    /// The open file's `f_flags`, plus `O_TRUNC` if the call asked to truncate (the kernel
    /// clears that bit from `f_flags`).
    pub open_flags: u32,
    pub f_mode: u32,
    pub fd: i32,
    /// Where the path starts in `path` (it is assembled backwards from the end of the usable area).
    pub path_start: u32,
    /// Non-zero if the walk stopped before reaching the root.
    pub path_truncated: u32,
    /// `i_nlink` of the opened inode at the end of the open.
    pub nlink: u32,
    /// `NO_SLOT`, or the slot `prior` was read from: the open created the file, yet its key
    /// already had counters, so the inode number was reused without a new generation. Those
    /// counters are the previous file's final ones; the kernel dropped the key's slot (userspace
    /// frees it) and the new file starts from zero in a fresh one.
    pub prior_slot: u32,
    pub prior: FileCounters,
    pub path: [u8; PATH_BUF + PATH_SLACK],
}

/// The first sight of a file in the kernel through a descriptor (a write, sync or shared
/// mapping): its path walked from the descriptor's dentry, so files opened before tracing
/// started (inherited, or opened before `-p` attached) have their real name.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NameRecord {
    pub hdr: RecordHeader,
    pub file: FileKey,
    /// `i_nlink` now: 0 means the file has no name left (deleted, or an unlinked O_TMPFILE).
    pub nlink: u32,
    pub open_flags: u32,
    pub path_start: u32,
    pub path_truncated: u32,
    pub path: [u8; PATH_BUF + PATH_SLACK],
}

/// Which namespace operation a [`NamespaceRecord`] describes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceOp {
    Rename = 0,
    Link = 1,
    Unlink = 2,
    Mkdir = 3,
    Rmdir = 4,
    Symlink = 5,
}

impl NamespaceOp {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Rename,
            1 => Self::Link,
            2 => Self::Unlink,
            3 => Self::Mkdir,
            4 => Self::Rmdir,
            5 => Self::Symlink,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Rename => "rename",
            Self::Link => "link",
            Self::Unlink => "unlink",
            Self::Mkdir => "mkdir",
            Self::Rmdir => "rmdir",
            Self::Symlink => "symlink",
        }
    }
}

/// A directory the namespace operation resolved a name against (its dirfd, or the cwd).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BaseDir {
    pub dir: FileKey,
    pub fs_magic: u64,
    pub path_start: u32,
    pub path_truncated: u32,
    pub path: [u8; PATH_BUF + PATH_SLACK],
}

/// A successful rename/link/unlink/mkdir/rmdir/symlink. "old" is the source for rename and
/// link, and the only name for the others; symlink's target text is not recorded.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NamespaceRecord {
    pub hdr: RecordHeader,
    pub op: u32,
    pub flags: u32,
    pub old_base: BaseDir,
    pub new_base: BaseDir,
    pub old_name: [u8; NAME_BUF],
    pub new_name: [u8; NAME_BUF],
}

/// A successful shared, writable mapping of a file.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MmapRecord {
    pub hdr: RecordHeader,
    pub file: FileKey,
    pub addr: u64,
    pub len: u64,
    pub prot: u64,
    pub flags: u64,
    pub pgoff: u64,
    pub fd: i32,
    pub _pad: u32,
}

/// A traced process forked a new process (followed: it is traced too).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkRecord {
    pub hdr: RecordHeader,
    pub child_tgid: u32,
    pub _pad: u32,
}

/// The last thread of a traced process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    pub hdr: RecordHeader,
}

/// A sync call in flight (sys_enter to sys_exit), keyed by thread id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InflightSync {
    pub enter_ns: u64,
    pub nr: u64,
}

/// A hooked kernel function between entry and return on one thread (function-level tiers),
/// keyed by `inflight_call_key(tid, hook)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InflightCall {
    pub enter_ns: u64,
    /// The `struct file *` argument.
    pub file: u64,
    /// vfs_fsync_range's `datasync` argument.
    pub datasync: u32,
    /// Nested calls of the same hook on the same thread (e.g. overlayfs calling vfs_fsync_range
    /// on the real file inside the outer one): the outermost call owns the entry.
    pub depth: u32,
    /// kprobe tier: the stack pointer at entry, to tell a nested call (deeper) from a slot a
    /// missed kretprobe left behind; 0 for fentry.
    pub sp: u64,
}

/// `hook` values of [`inflight_call_key`].
pub const CALL_WRITE: u64 = 0;
pub const CALL_FSYNC_RANGE: u64 = 1;

/// One in-flight slot per (thread, hook): an inner call of another hook (the fsync an O_SYNC
/// write runs inside vfs_write) never overwrites the outer call's state.
#[inline(always)]
pub fn inflight_call_key(tid: u32, hook: u64) -> u64 {
    ((tid as u64) << 8) | hook
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
    unsafe impl aya::Pod for NamespaceRecord {}
    unsafe impl aya::Pod for MmapRecord {}
    unsafe impl aya::Pod for ForkRecord {}
    unsafe impl aya::Pod for ExitRecord {}
}

// Layout checks: these types are read from raw bytes on the other side of the boundary.
const _: () = assert!(core::mem::size_of::<FileKey>() == 16);
const _: () = assert!(core::mem::size_of::<FileCounters>() == 64);
const _: () = assert!(core::mem::size_of::<RecordHeader>() == 40);
const _: () = assert!(core::mem::size_of::<DirtyRecord>() == 40 + 16 + 24 + 16);
const _: () = assert!(core::mem::size_of::<NameRecord>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<SyncRecord>() == 40 + 8 + 8 + 8 + 16 + 8 + 24 + 32);
const _: () = assert!(core::mem::size_of::<OpenRecord>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<NamespaceRecord>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<MmapRecord>() == 40 + 16 + 40 + 8);
const _: () = assert!(core::mem::size_of::<InflightCall>() == 32);
