//! Decoded kernel facts: the input of the durability state machine. Plain owned data, so the
//! state machine can be fed by tests without a kernel, and never knows which tier produced it.
pub use crate::extent::Extent;
pub use fsync_trace_common::{FileKey, NamespaceOp, SyncOp};

/// Who did something.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    pub pid: u32,
    pub tid: u32,
    pub comm: Comm,
    /// The user stack at this act, if the kernel took one (acts that can become findings).
    pub stack: Option<StackId>,
}

/// A user stack kept by `symbolize::Stacks` (an index into it): actors carry this small copy
/// type, the frames are symbolized once, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackId(pub u32);

impl StackId {
    /// Set by the decoder on a record whose stack came in the thread's previous `Stack`
    /// record; the event loop replaces it with the stored stack's id (or None).
    pub const PENDING: StackId = StackId(u32::MAX);
}

/// A task's command name (at most 15 bytes in the kernel), stored inline: every record carries
/// one and state keeps one per dirty span and pending directory entry, so a heap string each
/// would mean an allocation per event and tens of bytes per tracked file.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Comm {
    len: u8,
    bytes: [u8; 15],
}

impl Comm {
    /// From the kernel's NUL-padded `comm` (or any name; longer ones are cut at a character
    /// boundary, as the kernel cuts at 15 bytes).
    pub fn new(name: &str) -> Self {
        let mut end = name.len().min(15);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0; 15];
        bytes[..end].copy_from_slice(&name.as_bytes()[..end]);
        Comm {
            len: end as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        // Always valid UTF-8: built from a `&str` cut at a character boundary.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl From<&str> for Comm {
    fn from(s: &str) -> Self {
        Comm::new(s)
    }
}

impl std::fmt::Display for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A name a namespace operation used: resolved against `base` (dirfd or cwd) unless absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRef {
    pub base_dir: FileKey,
    pub base_path: String,
    /// The base directory is on a filesystem that can be durable.
    pub base_durable: bool,
    pub name: String,
}

/// A file's kernel counters read when a sync returned, from kernel slot `slot` (slot-relative,
/// like a `Dirty` event's `*_before`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncCounters {
    pub slot: u32,
    pub writes: u64,
    pub bytes: u64,
    pub mapped_pages: u64,
}

/// A change to a file that writes no data but needs a sync to be durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// truncate(2) or ftruncate(2): the size changed.
    Truncate,
    /// fallocate(2), any mode: blocks allocated, punched, zeroed or shifted.
    Fallocate,
    /// chmod, chown, utimes or an extended attribute set or removed (any form): the inode's
    /// metadata changed. Makes the next sync not redundant; left unsynced alone, it is listed
    /// but is not a finding (see `state::change`).
    Metadata,
}

impl Change {
    /// The change's bit in a set of changes (`DirtySpan::changes`).
    pub fn bit(self) -> u8 {
        match self {
            Change::Truncate => 1,
            Change::Fallocate => 2,
            Change::Metadata => 4,
        }
    }
}

/// What made a file dirty (a `Dirty` event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirtyCause {
    /// A write call through a descriptor.
    Write,
    /// A store through a shared writable mapping.
    MappedStore,
    /// A change that writes no data.
    Change(Change),
}

impl DirtyCause {
    /// The `Change::bit` of a change that wrote no data; 0 for a write or a mapped store.
    pub fn change_bits(self) -> u8 {
        match self {
            DirtyCause::Change(c) => c.bit(),
            DirtyCause::Write | DirtyCause::MappedStore => 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The file got dirty: its first write or mapped store since the durability epoch changed,
    /// or a change that writes no data (ftruncate, fallocate, a metadata change through a
    /// descriptor), which the kernel announces once per durability epoch even when a write
    /// already did (the calls themselves are counted in the kernel's per-file counters).
    Dirty {
        file: FileKey,
        writes_before: u64,
        bytes_before: u64,
        pages_before: u64,
        /// What made the file dirty.
        cause: DirtyCause,
        fd: i32,
        /// The kernel slot the `*_before` counters are from.
        slot: u32,
        /// The dirty extent of the segment this record closes: the writes since the file's
        /// previous `Dirty` record (see `crate::extent`).
        prev_extent: Extent,
    },
    /// A successful truncate(2) of `path` to `length` bytes (the kernel could not tell which
    /// file: the state machine looks the name up among those it knows).
    TruncatePath {
        path: NameRef,
        length: u64,
    },
    /// A successful metadata change (chmod, chown, utimes, xattrs) of `path` (as for
    /// `TruncatePath`, the state machine looks the name up among those it knows).
    MetadataPath {
        path: NameRef,
    },
    /// A sync-family call finished. `ts` of the event is its exit time.
    Sync {
        op: SyncOp,
        enter_ns: u64,
        ret: i64,
        /// The file synced, if the call names one on a durable filesystem.
        file: Option<FileKey>,
        is_dir: bool,
        fd: i32,
        addr: u64,
        len: u64,
        flags: u64,
        /// The synced file's counters when the call returned (None: no tracked file, or msync).
        counters: Option<SyncCounters>,
    },
    Open {
        file: FileKey,
        parent: FileKey,
        is_dir: bool,
        path: String,
        open_flags: u32,
        created: bool,
        fd: i32,
        /// The inode's link count after the open.
        nlink: u32,
        /// The open created the file under a key that had counters (an inode number reused
        /// without a new generation): the old slot and the earlier file's final counters.
        prior: Option<(u32, fsync_trace_common::FileCounters)>,
    },
    /// The first sight of a file through a descriptor: its path walked in the kernel and its
    /// link count (0: deleted).
    Name {
        file: FileKey,
        path: String,
        nlink: u32,
        open_flags: u32,
    },
    Namespace {
        op: NamespaceOp,
        old: NameRef,
        /// Rename and link only.
        new: Option<NameRef>,
        flags: u32,
    },
    Mmap {
        file: FileKey,
        addr: u64,
        len: u64,
    },
    Fork {
        child: u32,
    },
    Exit,
    /// An io_uring fsync was submitted while `writes` writes to the same descriptor, submitted
    /// before it, were in flight and not ordered before it (no link chain, no IO_DRAIN).
    UringFsyncUnordered {
        file: FileKey,
        datasync: bool,
        writes: u32,
    },
    /// With `--wal`: the process sent data to a socket (an ack), the first time since it wrote
    /// WAL file `file` (last at `write_ns`). `ts` of the event is the send's return.
    Ack {
        file: FileKey,
        write_ns: u64,
        fd: i32,
    },
    /// A cache flush (or, `fua`, a FUA write) was issued on block device `dev` (kernel
    /// `dev_t`, as `FileKey::dev`), by any task.
    DeviceFlush {
        dev: u32,
        fua: bool,
    },
    /// The user stack of the thread's next record (the event loop keeps it; the state machine
    /// never sees it): the instruction pointer and return addresses, innermost first, and the
    /// words at the user stack pointer (see `StackRecord`).
    Stack {
        ips: Vec<u64>,
        sp_words: Vec<u64>,
        /// Frame `i` as (build id, offset in that file), where the kernel could tell.
        build_ids: Vec<Option<([u8; 20], u64)>>,
        /// The process sent these frames with their build ids before, so the kernel left them
        /// off (`build_ids` is empty): they are the earlier stack's.
        build_ids_sent: bool,
        /// The kernel skipped the frame-pointer walk (it could give only the first frame):
        /// `ips` is that frame.
        walk_skipped: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts: u64,
    pub actor: Actor,
    pub kind: EventKind,
}
