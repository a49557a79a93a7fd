//! The write-ahead-log contract (`--wal`): a write to a file userspace marked as a WAL
//! (`WAL_SLOTS`) leaves the process a pending entry (`WAL_PENDING`); the first data it then sends
//! to a socket (an ack) takes the entry and sends an `Ack` record. Userspace judges whether the
//! WAL data was durable by then, from the `Sync` records it has anyway. So only the first ack after
//! WAL writes costs a record, and without `--wal` (`WAL_ENABLED` 0, read-only data) the verifier
//! removes every branch below.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap},
    programs::RawTracePointContext,
};
use fsync_trace_common::{
    names,
    wal::{self, AckRecord, WalPending, S_IFSOCK},
    FileKey, RecordHeader, RecordKind, S_IFMT,
};

use crate::{
    kernel::{current_file, read, reg, KPtr},
    maps::{count_lost, off, EVENTS},
    state::{fill_header, wakeup_flags},
};

/// Nonzero with `--wal` (set at load: `wal::WAL_ENABLED_GLOBAL`).
#[unsafe(no_mangle)]
static WAL_ENABLED: u32 = 0;

/// True if `--wal` was given. Volatile so the compiler cannot fold the zero initialiser; the
/// verifier still sees the loaded value as a constant (frozen read-only map).
#[inline(always)]
pub fn wal_enabled() -> bool {
    unsafe { core::ptr::read_volatile(&WAL_ENABLED) != 0 }
}

/// The key of the WAL file holding each `FILE_STATS` slot (zero: not a WAL). Userspace sizes it
/// to the slot table with `--wal`, to one entry without.
#[map]
pub static WAL_SLOTS: Array<FileKey> = Array::with_max_entries(names::FILE_SLOTS_MAX, 0);

/// Processes that wrote a WAL file and sent nothing since, by tgid.
#[map]
pub static WAL_PENDING: HashMap<u32, WalPending> =
    HashMap::with_max_entries(wal::WAL_PENDING_MAX, 0);

/// A write (not O_SYNC) to the file `key` in `slot` by the current process: if it is a WAL, the
/// process's next send is an ack to judge.
#[inline(always)]
pub fn on_wal_write(slot: u32, key: &FileKey) {
    let Some(k) = WAL_SLOTS.get(slot) else {
        return;
    };
    if k.ino != key.ino || k.dev != key.dev || k.gen != key.gen {
        return;
    }
    let pending = WalPending {
        file: *key,
        write_ns: unsafe { bpf_ktime_get_ns() },
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if WAL_PENDING.insert(tgid, pending, 0).is_err() {
        count_lost(names::LOST_INFLIGHT_MAP_FULL);
    }
}

/// The current process sent data to socket `fd` (syscall `nr`): the first send after a WAL
/// write sends an `Ack` record.
#[inline(always)]
pub fn on_ack(fd: i64, nr: u64) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(p) = (unsafe { WAL_PENDING.get(tgid) }) else {
        return;
    };
    let pending = *p;
    // Taken: later sends need a later WAL write to be judged again.
    if WAL_PENDING.remove(tgid).is_err() {
        // Another thread of the process took it first (its ack is the one sent).
        return;
    }
    let mut r = AckRecord {
        hdr: RecordHeader::default(),
        file: pending.file,
        write_ns: pending.write_ns,
        nr,
        fd: fd as i32,
        _pad: 0,
    };
    unsafe { fill_header(&raw mut r.hdr, RecordKind::Ack) };
    if EVENTS.output::<AckRecord>(&r, wakeup_flags()).is_err() {
        count_lost(names::LOST_RINGBUF_FULL);
    }
}

/// True if open file `file` is a socket (its inode's mode).
#[inline(always)]
pub fn is_socket(file: KPtr) -> bool {
    let Some(inode) = read::<KPtr>(file, off!(file_f_inode)) else {
        return false;
    };
    match read::<u16>(inode, off!(inode_i_mode)) {
        Some(mode) => mode as u32 & S_IFMT == S_IFSOCK,
        None => false,
    }
}

/// Tail of `sys_exit` for the send syscalls (`wal::is_send`), with `--wal` only.
#[raw_tracepoint]
pub fn sys_exit_ack(ctx: RawTracePointContext) -> i32 {
    let ret: i64 = ctx.arg(1);
    if ret <= 0 {
        return 0;
    }
    // Most sends come with nothing pending: settled before any kernel read.
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if unsafe { WAL_PENDING.get(tgid) }.is_none() {
        return 0;
    }
    let regs: KPtr = ctx.arg(0);
    let id = reg(regs, fsync_trace_common::syscalls::REGS_ORIG_AX);
    let fd = match id {
        // sendfile(out_fd, in_fd, ..), splice(fd_in, off_in, fd_out, ..): only to a socket.
        wal::SENDFILE | wal::SPLICE => {
            let at = if id == wal::SENDFILE {
                fsync_trace_common::syscalls::REGS_DI
            } else {
                fsync_trace_common::syscalls::REGS_DX
            };
            let fd = reg(regs, at) as i64;
            match current_file(fd) {
                Some(file) if is_socket(file) => fd,
                _ => return 0,
            }
        }
        _ => reg(regs, fsync_trace_common::syscalls::REGS_DI) as i64,
    };
    on_ack(fd, id);
    0
}
