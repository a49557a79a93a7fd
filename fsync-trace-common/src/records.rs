//! Records sent from the kernel to userspace through the `EVENTS` ring buffer, and the values of
//! the per-file map. Events are sent on state changes only (a file became dirty, a sync finished,
//! a namespace change...), never once per write: per-write counting happens in `FILE_STATS`.

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

/// Return addresses kept per user stack (innermost first).
pub const STACK_FRAMES: usize = 24;
/// Words read at the user stack pointer: a libc syscall wrapper keeps no frame pointer, so
/// the frame-pointer walk skips its caller; that caller's return address is among these.
pub const STACK_SP_WORDS: usize = 32;

/// The user stack of a thread at an act that can become a finding (a file's first dirtying,
/// a directory entry change, a failing sync), sent just before the record of that act, which
/// has `RecordHeader::stack` set. Never sent per write: only with those records.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StackRecord {
    /// Header: the thread (`stack` is 0 here).
    pub hdr: RecordHeader,
    /// Valid entries in `ips` (0 if the kernel could not walk the stack).
    pub frames: u32,
    /// Valid entries in `sp_words` (0 if the user stack could not be read).
    pub sp_words_read: u32,
    /// Valid entries in `build_ids` (the same walk again, so entry `i` is frame `i`).
    pub build_id_frames: u32,
    /// [`STACK_BUILD_IDS_SENT`] or 0. Was padding: 0 in records that carry their build ids.
    pub flags: u32,
    /// `bpf_get_stack(BPF_F_USER_STACK)`: the user instruction pointer, then the return
    /// addresses found by following frame pointers.
    pub ips: [u64; STACK_FRAMES],
    /// The first words at the user stack pointer (see [`STACK_SP_WORDS`]).
    pub sp_words: [u64; STACK_SP_WORDS],
    /// `bpf_get_stack(BPF_F_USER_STACK | BPF_F_USER_BUILD_ID)`: each frame as the build id of
    /// the file it is in and its offset there, which the kernel resolves from the process's
    /// mappings at once. A short-lived process is often gone before userspace reads its
    /// `/proc/PID/maps`; its frames are still placed through these.
    pub build_ids: [BuildIdFrame; STACK_FRAMES],
}

/// [`StackRecord::flags`]: this process sent a stack with these very frames (`ips`) and their
/// build ids before, so the kernel skipped the build-id walk and cut the record before
/// `build_ids` ([`STACK_WITHOUT_BUILD_IDS_LEN`]): the reader takes them from that earlier stack.
pub const STACK_BUILD_IDS_SENT: u32 = 1;

/// Bytes of a [`StackRecord`] sent with [`STACK_BUILD_IDS_SENT`]: the record cut before
/// `build_ids` (512 of 1,280 bytes). The reader zero-fills the rest.
pub const STACK_WITHOUT_BUILD_IDS_LEN: usize = core::mem::offset_of!(StackRecord, build_ids);

/// Key of `STACKS_SENT`: a stack (hash of its frames) a process sent with its build ids. The
/// process is named by its tgid and its incarnation (`STACK_PROCS`), so a reused pid never
/// finds the stacks of the process that had it before.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackSentKey {
    /// The process (tgid).
    pub tgid: u32,
    /// Frames in the stack.
    pub frames: u32,
    /// `STACK_PROCS[tgid]`: when the process's first stack was taken (`bpf_ktime_get_ns`).
    pub incarnation: u64,
    /// A 64-bit hash of the frames' addresses.
    pub hash: u64,
}

/// The kernel's `struct bpf_stack_build_id`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BuildIdFrame {
    /// [`BUILD_ID_VALID`]: `build_id` and `offset_or_ip` (an offset in that file) are set;
    /// else `offset_or_ip` is the raw address, or the entry is empty.
    pub status: i32,
    /// The ELF build id (GNU note), padded with zeros.
    pub build_id: [u8; 20],
    /// The file offset (if valid) or the instruction pointer.
    pub offset_or_ip: u64,
}

/// [`BuildIdFrame::status`]: build id and file offset are valid.
pub const BUILD_ID_VALID: i32 = 1;

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

/// Which namespace operation a [`NamespaceRecord`] describes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceOp {
    /// rename, renameat, renameat2: "old" moved to "new" (replacing it if it existed).
    Rename = 0,
    /// link, linkat: "new" made a second name of "old".
    Link = 1,
    /// unlink, unlinkat: a name removed.
    Unlink = 2,
    /// mkdir, mkdirat: a directory created.
    Mkdir = 3,
    /// rmdir, or unlinkat with AT_REMOVEDIR: a directory removed.
    Rmdir = 4,
    /// symlink, symlinkat: a symbolic link created (its target text is not recorded).
    Symlink = 5,
}

impl NamespaceOp {
    /// The op with this `NamespaceRecord::op` value, or None if unknown.
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
    /// The op's lower-case name ("rename", "link", "unlink"...).
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
    /// Identity of the base directory; zero if it could not be resolved.
    pub dir: FileKey,
    /// Superblock magic of the directory's filesystem (tells whether it can be durable); 0 if
    /// unresolved.
    pub fs_magic: u64,
    /// Where the directory's path starts in `path` (assembled backwards from `PATH_BUF`).
    pub path_start: u32,
    /// Non-zero if the walk stopped before reaching the root, or the directory could not be
    /// resolved.
    pub path_truncated: u32,
    /// The directory's absolute path: bytes `path_start..PATH_BUF`.
    pub path: [u8; PATH_BUF + PATH_SLACK],
}

/// A successful rename/link/unlink/mkdir/rmdir/symlink. "old" is the source for rename and
/// link, and the only name for the others; symlink's target text is not recorded.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NamespaceRecord {
    /// Header: the task; `ts_ns` is when the call returned.
    pub hdr: RecordHeader,
    /// The operation: a [`NamespaceOp`], as u32.
    pub op: u32,
    /// The call's flags argument (renameat2's RENAME_*, linkat's AT_*, unlinkat's); 0 if it has
    /// none.
    pub flags: u32,
    /// The directory `old_name` is resolved against (its dirfd, or the cwd).
    pub old_base: BaseDir,
    /// The first name as the process passed it (relative or absolute), NUL-terminated, truncated to
    /// `NAME_BUF`.
    pub old_name: [u8; NAME_BUF],
    /// The directory `new_name` is resolved against (rename and link only; zeroed otherwise).
    /// From here on the record is sent only for rename and link: see
    /// [`NAMESPACE_ONE_NAME_LEN`].
    pub new_base: BaseDir,
    /// The second name (rename, link), as `old_name`; empty for the other operations.
    pub new_name: [u8; NAME_BUF],
}

/// Bytes of a [`NamespaceRecord`] sent for the operations with one name (unlink, mkdir, rmdir,
/// symlink): the record cut before `new_base`, about half its size, so a storm of removals in
/// one directory fills the ring buffer half as fast. The reader zero-fills the rest.
pub const NAMESPACE_ONE_NAME_LEN: usize = core::mem::offset_of!(NamespaceRecord, new_base);

/// A successful truncate(2), or metadata change by path (`change`): a file named by path,
/// which the kernel cannot resolve to an inode at the syscall's exit; userspace finds it
/// among the names it knows.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TruncatePathRecord {
    /// Header: the task; `ts_ns` is when the call returned.
    pub hdr: RecordHeader,
    /// The length the call set (truncate only).
    pub length: u64,
    /// The directory `name` is resolved against (the cwd, or the call's dirfd).
    pub base: BaseDir,
    /// The path as the process passed it (relative or absolute), NUL-terminated, truncated to
    /// `NAME_BUF`.
    pub name: [u8; NAME_BUF],
    /// Which change: [`PATH_CHANGE_TRUNCATE`] or [`PATH_CHANGE_METADATA`].
    pub change: u32,
    /// Padding (zero).
    pub _pad: u32,
}

/// [`TruncatePathRecord::change`]: truncate(2).
pub const PATH_CHANGE_TRUNCATE: u32 = 0;
/// [`TruncatePathRecord::change`]: chmod, chown, utimes or an xattr change by path.
pub const PATH_CHANGE_METADATA: u32 = 1;

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

/// A traced process forked a new process (followed: it is traced too).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkRecord {
    /// Header: the forking task (in the parent process).
    pub hdr: RecordHeader,
    /// Process id (tgid) of the new process, now in `TRACED_TGIDS`.
    pub child_tgid: u32,
    /// Padding (zero).
    pub _pad: u32,
}

/// The last thread of a traced process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    /// Header: the process's last exiting thread.
    pub hdr: RecordHeader,
}

/// A sync call in flight (sys_enter to sys_exit), keyed by thread id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InflightSync {
    /// `bpf_ktime_get_ns` at the syscall's entry.
    pub enter_ns: u64,
    /// The syscall number (`syscalls::*`).
    pub nr: u64,
}

/// A hooked kernel function between entry and return on one thread (function-level tiers),
/// keyed by `inflight_call_key(tid, hook)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InflightCall {
    /// `bpf_ktime_get_ns` at the function's entry.
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
    /// Write hooks: the `loff_t *pos` argument (after the call it holds the end of the write).
    pub pos: u64,
}

/// `hook` values of [`inflight_call_key`].
///
/// This value: vfs_write and the vectored write path (never nested, so they share a slot).
pub const CALL_WRITE: u64 = 0;
/// `hook` of vfs_fsync_range calls.
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
/// [`UringRecord::what`]: an `IORING_OP_FSYNC` was submitted while writes to the same file,
/// submitted before it, were still in flight and not ordered before it (no `IOSQE_IO_LINK`
/// chain holding both, no `IOSQE_IO_DRAIN`): io_uring may run the fsync first.
pub const URING_FSYNC_UNORDERED: u32 = 1;

/// An io_uring request broke an ordering rule (seen at its submission).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UringRecord {
    /// Header: the submitting task (the process, or its SQPOLL thread); `ts_ns`: submission.
    pub hdr: RecordHeader,
    /// The file the request is about.
    pub file: FileKey,
    /// Which rule (`URING_*`).
    pub what: u32,
    /// `IORING_FSYNC_DATASYNC` was set (an fdatasync).
    pub datasync: u32,
    /// Writes to the file in flight and not ordered before the request.
    pub unordered_writes: u32,
    /// Padding (zero).
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<FileKey>() == 16);
const _: () = assert!(core::mem::size_of::<FileCounters>() == 128);
const _: () = assert!(core::mem::size_of::<RecordHeader>() == 48);
/// Every record starts with its header: the size checks below count from there.
pub(crate) const HEADER_BYTES: usize = core::mem::size_of::<RecordHeader>();
const _: () = assert!(core::mem::size_of::<DirtyRecord>() == HEADER_BYTES + 16 + 24 + 16 + 16);
const _: () = assert!(core::mem::size_of::<NameRecord>().is_multiple_of(8));
const _: () = assert!(NAMESPACE_ONE_NAME_LEN.is_multiple_of(8));
const _: () =
    assert!(core::mem::size_of::<SyncRecord>() == HEADER_BYTES + 8 + 8 + 8 + 16 + 8 + 24 + 32);
const _: () = assert!(core::mem::size_of::<OpenRecord>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<NamespaceRecord>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<TruncatePathRecord>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<MmapRecord>() == HEADER_BYTES + 16 + 40 + 8);
const _: () = assert!(core::mem::size_of::<InflightCall>() == 40);

/// [`DeviceFlushRecord::what`]: a cache flush request (`REQ_OP_FLUSH`).
pub const DEVICE_FLUSH: u32 = 0;
/// [`DeviceFlushRecord::what`]: a write with `REQ_FUA` (forced to stable media).
pub const DEVICE_FUA_WRITE: u32 = 1;

/// A block request that makes data durable on the device (`block_rq_issue`): a cache flush
/// or a FUA write. Sent for every such request on the system (they are rare: a few per
/// journal commit); userspace counts the ones on devices of traced files.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DeviceFlushRecord {
    /// Header: the task issuing the request (often a kernel thread: jbd2, a kworker).
    pub hdr: RecordHeader,
    /// Kernel `dev_t` of the request's whole disk (a file on a partition has its own).
    pub dev: u32,
    /// [`DEVICE_FLUSH`] or [`DEVICE_FUA_WRITE`].
    pub what: u32,
}
const _: () = assert!(core::mem::size_of::<UringRecord>() == HEADER_BYTES + 16 + 16);
const _: () = assert!(
    core::mem::size_of::<StackRecord>()
        == HEADER_BYTES + 16 + 8 * (STACK_FRAMES + STACK_SP_WORDS) + 32 * STACK_FRAMES
);
const _: () = assert!(core::mem::size_of::<BuildIdFrame>() == 32);
const _: () =
    assert!(STACK_WITHOUT_BUILD_IDS_LEN == core::mem::size_of::<StackRecord>() - 32 * STACK_FRAMES);
const _: () = assert!(core::mem::size_of::<StackSentKey>() == 24);
