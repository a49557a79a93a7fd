//! A file's life in the kernel: dirtied, synced, opened, first seen through a descriptor, mapped.

use super::{FileCounters, FileKey, RecordHeader, HEADER_BYTES, PATH_BUF, PATH_SLACK};

/// How a file got dirty.
///
/// This value: a write call through a descriptor.
pub const DIRTY_BY_WRITE: u32 = 0;
/// How a file got dirty: a store through a shared writable mapping dirtied one of its pages.
pub const DIRTY_BY_MAPPED_STORE: u32 = 1;
/// How a file got dirty: ftruncate(2) changed its size (no data written).
pub const DIRTY_BY_TRUNCATE: u32 = 2;
/// How a file got dirty: fallocate(2) allocated, punched, zeroed or shifted a range.
pub const DIRTY_BY_FALLOCATE: u32 = 3;
/// How a file got dirty: its mode, owner, times or extended attributes changed (no data).
pub const DIRTY_BY_METADATA: u32 = 4;

/// A file got dirty for the first time since the durability epoch last changed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DirtyRecord {
    /// Header: the task whose write or store made the file dirty.
    pub hdr: RecordHeader,
    /// The file that became dirty.
    pub file: FileKey,
    /// Counter values before the write that sent this record, so userspace can compute what
    /// is unsynced from the final counters.
    pub writes_before: u64,
    /// Bytes written (non-O_SYNC) before that write: see `writes_before`.
    pub bytes_before: u64,
    /// Mapped dirty pages counted before that write or store: see `writes_before`.
    pub mapped_pages_before: u64,
    /// How the file got dirty: [`DIRTY_BY_WRITE`] or [`DIRTY_BY_MAPPED_STORE`].
    pub source: u32,
    /// The descriptor written through, or -1 (a mapped store, or a write whose fd a hook did not
    /// see).
    pub fd: i32,
    /// The `FILE_STATS` slot the `*_before` counters are from (slots are reclaimed and reused).
    pub slot: u32,
    /// Padding (zero).
    pub _pad: u32,
    /// The dirty extent of the segment this record closes (the writes since the file's
    /// previous `Dirty` record, up to the write that sent this one): its lowest offset; see
    /// `FileCounters::extent_lo`.
    pub prev_extent_lo: u64,
    /// One past its highest offset; 0: empty, [`EXTENT_UNKNOWN`]: unknown.
    pub prev_extent_hi: u64,
}

/// Which call a [`SyncRecord`] describes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncOp {
    /// fsync(2), or vfs_fsync_range with `datasync` 0 from inside the kernel (io_uring...).
    Fsync = 0,
    /// fdatasync(2), or vfs_fsync_range with `datasync` set from inside the kernel.
    Fdatasync = 1,
    /// msync(2): a durable point for the mapped file only with MS_SYNC.
    Msync = 2,
    /// sync(2): every filesystem.
    Sync = 3,
    /// syncfs(2): the filesystem of the descriptor's file.
    Syncfs = 4,
    /// sync_file_range(2): never a durable point.
    SyncFileRange = 5,
    /// A write through an O_SYNC/O_DSYNC descriptor to a file that was dirty.
    SyncWrite = 6,
}

impl SyncOp {
    /// Every op, in discriminant order (`ALL[v]` is the op of value `v`).
    pub const ALL: [SyncOp; 7] = [
        Self::Fsync,
        Self::Fdatasync,
        Self::Msync,
        Self::Sync,
        Self::Syncfs,
        Self::SyncFileRange,
        Self::SyncWrite,
    ];
    /// The op with this `SyncRecord::op` value, or None if unknown.
    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }
    /// The op's name in reports, findings and the metrics' `op` label.
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
    /// Header: the syncing task; `ts_ns` is when the call returned.
    pub hdr: RecordHeader,
    /// The call: a [`SyncOp`], as u32.
    pub op: u32,
    /// The call's descriptor (the O_SYNC write's for `SyncWrite`); -1 for msync, sync, and syncs
    /// from inside the kernel.
    pub fd: i32,
    /// The call's return value: 0, or a negative errno.
    pub ret: i64,
    /// `bpf_ktime_get_ns` when the call was entered (latency: `hdr.ts_ns - enter_ns`); `hdr.ts_ns`
    /// for an O_SYNC write.
    pub enter_ns: u64,
    /// The file synced (fsync, fdatasync, sync_file_range, O_SYNC write) or any file on the
    /// filesystem synced (syncfs); zero when not applicable or not durable-capable.
    pub file: FileKey,
    /// `i_mode` of `file` (its type bits tell a directory); 0 without a file.
    pub file_mode: u32,
    /// Whether `file` is on a filesystem that can be durable (0/1).
    pub durable_fs: u32,
    /// msync: address, length, flags. sync_file_range: offset, nbytes, flags.
    pub addr: u64,
    /// msync: length of the range; sync_file_range: nbytes; 0 otherwise.
    pub len: u64,
    /// msync: its MS_* flags; sync_file_range: its SYNC_FILE_RANGE_* flags; 0 otherwise.
    pub flags: u64,
    /// `file`'s `FILE_STATS` counters (writes, bytes, mapped pages) read in the kernel when the
    /// call returned: per sync, never per write. What a sync covered is the difference from
    /// the previous sync's reading (userspace). Valid only if `counters_slot` is not `NO_SLOT`
    /// (the slot they are from, as for `DirtyRecord::slot`: slots are reclaimed and reused).
    pub writes: u64,
    /// `file`'s bytes written (non-O_SYNC) when the call returned: see `writes`.
    pub bytes: u64,
    /// `file`'s mapped dirty pages when the call returned: see `writes`.
    pub mapped_pages: u64,
    /// The `FILE_STATS` slot `writes`, `bytes` and `mapped_pages` were read from, or `NO_SLOT`.
    pub counters_slot: u32,
    /// Padding (zero).
    pub _pad: u32,
}

/// A successful open of a regular file or directory on a durable filesystem.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OpenRecord {
    /// Header: the opening task; `ts_ns` is when the open returned.
    pub hdr: RecordHeader,
    /// The opened file or directory.
    pub file: FileKey,
    /// Directory holding the opened entry (for the created-entry rule).
    pub parent: FileKey,
    /// `i_mode` of the opened inode (type and permission bits).
    pub mode: u32,
    /// The open file's `f_flags`, plus `O_TRUNC` if the call asked to truncate (the kernel
    /// clears that bit from `f_flags`).
    pub open_flags: u32,
    /// The open file's `f_mode` (`FMODE_CREATED` if this open created the file).
    pub f_mode: u32,
    /// The descriptor the open returned.
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
    /// The previous file's final counters, read from `prior_slot` (zero if it is `NO_SLOT`).
    pub prior: FileCounters,
    /// The absolute path, assembled backwards: bytes `path_start..PATH_BUF` (the slack is never
    /// used).
    pub path: [u8; PATH_BUF + PATH_SLACK],
}

/// The first sight of a file in the kernel through a descriptor (a write, sync or shared
/// mapping): its path walked from the descriptor's dentry, so files opened before tracing
/// started (inherited, or opened before `-p` attached) have their real name.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NameRecord {
    /// Header: the task through whose descriptor the file was first seen.
    pub hdr: RecordHeader,
    /// The file seen.
    pub file: FileKey,
    /// `i_nlink` now: 0 means the file has no name left (deleted, or an unlinked O_TMPFILE).
    pub nlink: u32,
    /// `f_flags` of the descriptor it was seen through (O_SYNC, O_APPEND, O_TMPFILE...).
    pub open_flags: u32,
    /// Where the path starts in `path` (assembled backwards from `PATH_BUF`).
    pub path_start: u32,
    /// Non-zero if the walk stopped before reaching the root.
    pub path_truncated: u32,
    /// The absolute path: bytes `path_start..PATH_BUF`.
    pub path: [u8; PATH_BUF + PATH_SLACK],
}

/// A successful shared, writable mapping of a file.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MmapRecord {
    /// Header: the mapping task; `ts_ns` is when mmap returned.
    pub hdr: RecordHeader,
    /// The mapped file.
    pub file: FileKey,
    /// Start address of the mapping (mmap's return value).
    pub addr: u64,
    /// Length of the mapping in bytes (mmap's `len` argument).
    pub len: u64,
    /// mmap's `prot` argument (`PROT_*` bits; PROT_WRITE is set).
    pub prot: u64,
    /// mmap's `flags` argument (`MAP_*` bits; MAP_SHARED or MAP_SHARED_VALIDATE).
    pub flags: u64,
    /// mmap's offset argument: bytes into the file (x86_64 mmap(2) takes bytes, not pages).
    pub pgoff: u64,
    /// The descriptor mapped.
    pub fd: i32,
    /// Padding (zero).
    pub _pad: u32,
}

// Layout checks: read from raw bytes on the other side of the boundary.
const _: () = assert!(core::mem::size_of::<DirtyRecord>() == HEADER_BYTES + 16 + 24 + 16 + 16);
const _: () = assert!(core::mem::size_of::<NameRecord>().is_multiple_of(8));
const _: () =
    assert!(core::mem::size_of::<SyncRecord>() == HEADER_BYTES + 8 + 8 + 8 + 16 + 8 + 24 + 32);
const _: () = assert!(core::mem::size_of::<OpenRecord>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<MmapRecord>() == HEADER_BYTES + 16 + 40 + 8);
