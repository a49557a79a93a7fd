//! io_uring ABI values (include/uapi/linux/io_uring.h), shared by the eBPF
//! probes that decode requests and the workload that submits them, so the
//! two can never disagree on an opcode.

/// `IORING_OP_WRITEV`.
pub const OP_WRITEV: u8 = 2;
/// `IORING_OP_FSYNC`.
pub const OP_FSYNC: u8 = 3;
/// `IORING_OP_WRITE_FIXED`.
pub const OP_WRITE_FIXED: u8 = 5;
/// `IORING_OP_SYNC_FILE_RANGE`.
pub const OP_SYNC_FILE_RANGE: u8 = 8;
/// `IORING_OP_OPENAT`.
pub const OP_OPENAT: u8 = 18;
/// `IORING_OP_CLOSE`.
pub const OP_CLOSE: u8 = 19;
/// `IORING_OP_WRITE`.
pub const OP_WRITE: u8 = 23;
/// `IORING_OP_OPENAT2`.
pub const OP_OPENAT2: u8 = 28;
/// `IORING_OP_RENAMEAT`.
pub const OP_RENAMEAT: u8 = 35;
/// `IORING_OP_UNLINKAT`.
pub const OP_UNLINKAT: u8 = 36;
/// `IORING_OP_MKDIRAT`.
pub const OP_MKDIRAT: u8 = 37;
/// `IORING_OP_SYMLINKAT`.
pub const OP_SYMLINKAT: u8 = 38;
/// `IORING_OP_LINKAT`.
pub const OP_LINKAT: u8 = 39;
/// `IORING_OP_WRITEV_FIXED` (6.15+).
pub const OP_WRITEV_FIXED: u8 = 61;
/// `IORING_FSYNC_DATASYNC`: the `fsync_flags` bit that makes a ring fsync an fdatasync.
pub const FSYNC_DATASYNC: u32 = 1;
