//! Directory entry changes, and changes of a file named by path (truncate(2), metadata).

use super::{FileKey, RecordHeader, NAME_BUF, PATH_BUF, PATH_SLACK};

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

// Layout checks: read from raw bytes on the other side of the boundary.
const _: () = assert!(NAMESPACE_ONE_NAME_LEN.is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<NamespaceRecord>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<TruncatePathRecord>().is_multiple_of(8));
