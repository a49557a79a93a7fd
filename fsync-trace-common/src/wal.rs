//! The write-ahead-log contract (`--wal GLOB`): the kernel remembers, per process, the last write
//! to a file userspace marked as a WAL, and sends an [`AckRecord`] for the first data the process
//! then sends to a socket (an "ack"). Nothing here runs unless `--wal` is given
//! ([`WAL_ENABLED_GLOBAL`]).
use crate::{names, records::RecordHeader, FileKey};

/// Map: `Array<FileKey>` by `FILE_STATS` slot: the key of the WAL file holding that slot, set by
/// userspace when a file's path matches `--wal` (a reused slot holds another key, so it never
/// needs clearing).
pub const WAL_SLOTS: &str = "WAL_SLOTS";
/// Map: `HashMap<u32, WalPending>` by tgid: the process wrote a WAL file and sent no ack since.
pub const WAL_PENDING: &str = "WAL_PENDING";
/// Global (u32, set at load): nonzero with `--wal`. Read-only data, so the verifier drops the
/// WAL branches of every program when it is 0.
pub const WAL_ENABLED_GLOBAL: &str = "WAL_ENABLED";
/// Tail call ([`TAIL_ACK`]): exit of sendto, sendmsg, sendmmsg, sendfile and splice; sends an
/// `Ack` record when the process has a pending WAL write.
pub const PROG_SYS_EXIT_ACK: &str = "sys_exit_ack";
/// `SYS_EXIT_TAILS` slot of [`PROG_SYS_EXIT_ACK`] (after the slots of `names`).
pub const TAIL_ACK: u32 = names::TAIL_NAME + 1;
/// Entries of [`WAL_PENDING`] (processes with a WAL write not yet followed by an ack).
pub const WAL_PENDING_MAX: u32 = 16384;

/// sendfile(2) (x86_64): its output descriptor may be a socket.
pub const SENDFILE: u64 = 40;
/// sendto(2) / send(3).
pub const SENDTO: u64 = 44;
/// sendmsg(2).
pub const SENDMSG: u64 = 46;
/// splice(2): its output descriptor (fourth argument) may be a socket.
pub const SPLICE: u64 = 275;
/// sendmmsg(2).
pub const SENDMMSG: u64 = 307;

/// Syscalls that send data to a socket only (write and writev to a socket are found on the
/// write path).
#[inline(always)]
pub fn is_socket_send(nr: u64) -> bool {
    matches!(nr, SENDTO | SENDMSG | SENDMMSG)
}

/// Syscalls that may send to a socket, handled by [`PROG_SYS_EXIT_ACK`].
#[inline(always)]
pub fn is_send(nr: u64) -> bool {
    matches!(nr, SENDTO | SENDMSG | SENDMMSG | SENDFILE | SPLICE)
}

/// `WAL_PENDING` value: the WAL file a process wrote last and when (`bpf_ktime_get_ns`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalPending {
    /// The WAL file.
    pub file: FileKey,
    /// Time of the process's last write to it.
    pub write_ns: u64,
}

/// A traced process sent data to a socket after writing a WAL file (the first send since).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AckRecord {
    /// Header: the sending task; `ts_ns` is the time the send returned.
    pub hdr: RecordHeader,
    /// The WAL file the process wrote last, and when.
    pub file: FileKey,
    /// Time of that write (`bpf_ktime_get_ns`).
    pub write_ns: u64,
    /// The send syscall's number.
    pub nr: u64,
    /// The socket descriptor.
    pub fd: i32,
    /// Padding (zero).
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::WalPending {}
    unsafe impl aya::Pod for super::AckRecord {}
}

/// Inode type of a socket (`S_IFSOCK`).
pub const S_IFSOCK: u32 = 0o140000;

const _: () = assert!(core::mem::size_of::<WalPending>() == 24);
const _: () =
    assert!(core::mem::size_of::<AckRecord>() == crate::records::HEADER_BYTES + 16 + 8 + 8 + 8);
