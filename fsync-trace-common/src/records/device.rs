//! Device cache flushes and FUA writes (block layer), and io_uring ordering breaks.

use super::{FileKey, RecordHeader, HEADER_BYTES};

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
    /// Header: `kind` and `ts_ns` (when the request was issued) only. The issuing task (often
    /// a kernel thread: jbd2, a kworker) is not recorded: `tgid`, `tid`, `comm` and `cgroup_id`
    /// are 0.
    pub hdr: RecordHeader,
    /// Kernel `dev_t` of the request's whole disk (a file on a partition has its own).
    pub dev: u32,
    /// [`DEVICE_FLUSH`] or [`DEVICE_FUA_WRITE`].
    pub what: u32,
}

// Layout checks: read from raw bytes on the other side of the boundary.
const _: () = assert!(core::mem::size_of::<UringRecord>() == HEADER_BYTES + 16 + 16);
