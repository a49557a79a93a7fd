//! Durability rule violations found by the state machine.
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Durability bugs, ordered by severity, worst first.
    FsyncRetryAfterError,
    FsyncError,
    RenameBeforeFsync,
    UnsyncedWrite,
    UnsyncedParentDir,
    /// `--wal`: a reply sent while the sender's write-ahead-log data was not durable.
    AckBeforeDurable,
    /// Syncs completed with no cache flush on a device with a volatile write cache.
    SyncWithoutFlush,
    /// An io_uring fsync not ordered after the writes it was meant to cover.
    UringFsyncUnordered,
    /// Advice, after every bug: what durability costs, never a durability bug (reported apart,
    /// and matched by `--fail-on` only when named).
    SyncPerWrite,
    RedundantSync,
}

impl FindingKind {
    /// Every kind, bugs then advice.
    pub const ALL: [FindingKind; 10] = [
        Self::FsyncRetryAfterError,
        Self::FsyncError,
        Self::RenameBeforeFsync,
        Self::UnsyncedWrite,
        Self::UnsyncedParentDir,
        Self::AckBeforeDurable,
        Self::SyncWithoutFlush,
        Self::UringFsyncUnordered,
        Self::SyncPerWrite,
        Self::RedundantSync,
    ];

    /// The durability bugs (what `--fail-on any` means).
    pub const BUGS: [FindingKind; 8] = [
        Self::FsyncRetryAfterError,
        Self::FsyncError,
        Self::RenameBeforeFsync,
        Self::UnsyncedWrite,
        Self::UnsyncedParentDir,
        Self::AckBeforeDurable,
        Self::SyncWithoutFlush,
        Self::UringFsyncUnordered,
    ];

    /// Advice on what durability costs, not a durability bug.
    pub fn is_advice(self) -> bool {
        !Self::BUGS.contains(&self)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::FsyncRetryAfterError => "fsync_retry_after_error",
            Self::FsyncError => "fsync_error",
            Self::RenameBeforeFsync => "rename_before_fsync",
            Self::UnsyncedWrite => "unsynced_write",
            Self::UnsyncedParentDir => "unsynced_parent_dir",
            Self::AckBeforeDurable => "ack_before_durable",
            Self::SyncWithoutFlush => "sync_without_flush",
            Self::UringFsyncUnordered => "uring_fsync_unordered",
            Self::SyncPerWrite => "sync_per_write",
            Self::RedundantSync => "redundant_sync",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// One finding. Optional fields are present only for the kinds they apply to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub path: String,
    pub pid: u32,
    pub comm: String,
    /// CLOCK_MONOTONIC ns of the act that broke the rule (serialized as wall time by reports).
    #[serde(skip)]
    pub ts: u64,
    pub message: String,
    pub fix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsynced_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsynced_writes: Option<u64>,
    /// How many times the same thing happened (e.g. an entry changed in several transactions;
    /// for a grouped finding, the sum over its members).
    pub count: u64,
    /// A grouped finding (many of one kind in one directory): every member's name, first one
    /// first (`entry` is that first name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<String>>,
    /// Advice: the sync calls it is about (all syncs of the file for `sync_per_write`, the
    /// redundant ones for `redundant_sync`) and the time they took, in µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syncs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_time_us: Option<u64>,
    /// `ack_before_durable`: the durability lag of those acks (send to the sync that covered
    /// the WAL data), median and max in µs over the acks whose data became durable, and how many
    /// acks' data never did before the trace ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability_lag_median_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability_lag_max_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acks_never_durable: Option<u64>,
    /// The user stack of the act that broke the rule, when the kernel took one (the report
    /// shows it symbolized as `stack`).
    #[serde(skip)]
    pub stack_id: Option<crate::event::StackId>,
}

impl Finding {
    /// The optional fields empty and `count` 1: findings are written as
    /// `Finding { kind, path, .., ..Finding::blank() }`.
    pub fn blank() -> Self {
        Finding {
            kind: FindingKind::UnsyncedWrite,
            path: String::new(),
            pid: 0,
            comm: String::new(),
            ts: 0,
            message: String::new(),
            fix: String::new(),
            entry: None,
            source: None,
            errno: None,
            op: None,
            unsynced_bytes: None,
            unsynced_writes: None,
            count: 1,
            entries: None,
            syncs: None,
            sync_time_us: None,
            durability_lag_median_us: None,
            durability_lag_max_us: None,
            acks_never_durable: None,
            stack_id: None,
        }
    }

    /// The report's order: worst kind first, then most data at risk, then earliest.
    pub fn report_order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
        a.kind
            .cmp(&b.kind)
            .then(b.unsynced_bytes.cmp(&a.unsynced_bytes))
            .then(a.ts.cmp(&b.ts))
            .then(a.path.cmp(&b.path))
            .then(a.entry.cmp(&b.entry))
    }
}

/// The symbolic name of `errno` (`EIO`), or "error" for a number the C library does not know.
pub fn errno_name(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => "error".into(),
        e => format!("{e:?}"),
    }
}
