//! Decoded kernel facts: the input of the durability state machine. Plain owned data, so the
//! state machine can be fed by tests without a kernel, and never knows which tier produced it.
pub use fsync_trace_common::{FileKey, NamespaceOp, SyncOp};

/// Who did something.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The file got dirty (first write or mapped store since the durability epoch changed).
    Dirty {
        file: FileKey,
        writes_before: u64,
        bytes_before: u64,
        pages_before: u64,
        by_mapping: bool,
        fd: i32,
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
    },
    Open {
        file: FileKey,
        parent: FileKey,
        is_dir: bool,
        path: String,
        open_flags: u32,
        created: bool,
        fd: i32,
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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts: u64,
    pub actor: Actor,
    pub kind: EventKind,
}
