//! Sync entry hooks and the raw `sys_exit` dispatcher. Writes (the hot path) are handled inline in
//! sys_exit; other families are tail calls so each program stays small for the verifier.
use core::mem::{align_of, size_of, MaybeUninit};

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
    EbpfContext,
};
use fsync_trace_common::{
    is_durable_fs, names, open_flags, syscalls as nr,
    wal::{is_send, TAIL_ACK},
    FileKey, InflightSync, EXTENT_UNKNOWN, FILE_FLAG_NAMED, S_IFMT, S_IFREG,
};

use super::wal::{is_socket, on_ack, wal_enabled};
use crate::{
    extent::extent_enabled,
    kernel::{current_task_btf, file_inode, load_btf, read, task_file, KPtr},
    maps::{config, count_lost, off, WriteCache, INFLIGHT_SYNCS, SYS_EXIT_TAILS, WRITE_CACHE},
    slots::{counters_at, file_counters, file_slot},
    state::{bump_close_epoch, bump_epoch, current_traced, emit_name, on_write_at, Ctx},
};

/// Entry of a sync syscall: bump the durability epoch and remember when the call started.
/// Shared by the per-syscall tracepoints below (preferred: they run only for these six
/// syscalls) and the raw `sys_enter` fallback (runs for every syscall on the machine).
#[inline(always)]
fn on_sync_enter(id: u64) {
    if !current_traced() {
        return;
    }
    // Bump before the sync starts: a write after this point is re-announced as dirty, so the
    // sync can only be credited with data written before it began.
    if nr::may_be_durable_point(id) {
        bump_epoch();
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    let inflight = InflightSync {
        enter_ns: unsafe { bpf_ktime_get_ns() },
        nr: id,
    };
    if INFLIGHT_SYNCS.insert(tid, inflight, 0).is_err() {
        count_lost(names::LOST_INFLIGHT_MAP_FULL);
    }
}

/// Fallback sync entry hook, used only where the `syscalls:sys_enter_*` tracepoints cannot be
/// attached (no tracefs): it runs on every syscall of every process.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    let id: u64 = ctx.arg(1);
    if nr::is_sync(id) {
        on_sync_enter(id);
    }
    0
}

/// One classic tracepoint program per sync syscall (`syscalls:sys_enter_<name>`): the kernel
/// runs each only for its own syscall, so writes never pay for a sync entry hook.
macro_rules! sync_enter_tracepoint {
    ($prog:ident, $nr:expr) => {
        #[tracepoint]
        pub fn $prog(_ctx: TracePointContext) -> u32 {
            on_sync_enter($nr);
            0
        }
    };
}
sync_enter_tracepoint!(sys_enter_fsync, nr::FSYNC);
sync_enter_tracepoint!(sys_enter_fdatasync, nr::FDATASYNC);
sync_enter_tracepoint!(sys_enter_msync, nr::MSYNC);
sync_enter_tracepoint!(sys_enter_sync, nr::SYNC);
sync_enter_tracepoint!(sys_enter_syncfs, nr::SYNCFS);
sync_enter_tracepoint!(sys_enter_sync_file_range, nr::SYNC_FILE_RANGE);

#[raw_tracepoint(tracepoint = "sys_exit")]
// One program: an outlined body is a BPF-to-BPF call whose frames 6.1's verifier adds up.
#[inline(always)]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    // The thread's saved user registers, as a BTF-typed pointer (the same registers the
    // tracepoint passes as its first argument, which is an untyped pointer): its fields are
    // plain loads the verifier checks against BTF, not helper calls.
    let task = current_task_btf();
    let regs = unsafe { generated::bpf_task_pt_regs(task as *mut _) } as KPtr;
    let id: u64 = unsafe { load_btf(regs, nr::REGS_ORIG_AX) };
    // Most syscalls on the machine are of no interest: that is settled before the (costlier)
    // traced-process check.
    let slot = if nr::is_write(id) {
        // A function-level tier counts this write inside the kernel (vfs_write / vfs_writev).
        if config(names::CONFIG_FN_HOOKS) & nr::write_hook_bit(id) != 0 {
            return 0;
        }
        let ret: i64 = ctx.arg(1);
        if ret <= 0 || !current_traced() {
            return 0;
        }
        let fd: u64 = unsafe { load_btf(regs, nr::REGS_DI) };
        let call = WriteCall { id, regs };
        if !handle_write(task, fd as i64, ret as u64, call, ctx.as_ptr()) {
            return 0;
        }
        // First sight of this file: its name is walked in a tail call, so the dentry walk
        // does not weigh on the hot program.
        names::TAIL_NAME
    } else if nr::may_free_files(id) {
        // Any process: a struct file a traced process wrote through may be freed by another
        // process sharing it.
        bump_close_epoch();
        return 0;
    } else if nr::is_sync(id) {
        names::TAIL_SYNC
    } else if nr::is_open(id) {
        names::TAIL_OPEN
    } else if nr::is_namespace(id) {
        names::TAIL_NAMESPACE
    } else if id == nr::MMAP {
        names::TAIL_MMAP
    } else if nr::is_truncate(id) {
        names::TAIL_TRUNCATE
    } else if nr::is_metadata(id) {
        names::TAIL_METADATA
    } else if wal_enabled() && is_send(id) {
        TAIL_ACK
    } else {
        return 0;
    };
    if !current_traced() {
        return 0;
    }
    unsafe { SYS_EXIT_TAILS.tail_call(&ctx, slot) };
    0
}

/// A successful write of `bytes` to `fd` of the current task (`task`: its BTF-typed pointer).
///
/// The hot path: it runs for every write of a traced process. If the same thread wrote the same
/// descriptor last on this CPU and no descriptor was closed anywhere since
/// (`CONFIG_CLOSE_EPOCH`), the file and its slot are known without any kernel read. Else the
/// descriptor is resolved ([`task_file`]: one helper call); if that `struct file` is the one
/// this CPU's previous write resolved, it is still the same open file (it was alive in a
/// descriptor table all along, so its memory cannot have been reused), and its inode is known:
/// a repeated write costs one helper read instead of four.
///
/// True if the file's name has not been sent yet (`sys_exit_name` sends it).
#[inline(always)]
fn handle_write(task: KPtr, fd: i64, bytes: u64, call: WriteCall, ctx: Ctx) -> bool {
    // Read before resolving: a close during the resolution makes the entry stale at once.
    let close_epoch = config(names::CONFIG_CLOSE_EPOCH);
    let cache = WRITE_CACHE.get_ptr_mut(0);
    if let Some(c) = cache {
        let c = unsafe { &mut *c };
        // The same thread writing the same descriptor again: no descriptor-table walk at all.
        if c.holds_fd(task, fd, close_epoch) {
            return cached_write(c, bytes, fd, call, ctx);
        }
    }
    let Some(file) = task_file(task, fd) else {
        return false;
    };
    if let Some(c) = cache {
        let c = unsafe { &mut *c };
        if c.holds(file, close_epoch) {
            c.task = task as u64;
            c.fd = fd;
            return cached_write(c, bytes, fd, call, ctx);
        }
    }
    let Some(resolved) = resolve_file(file) else {
        return false;
    };
    let Some((key, osync)) = resolved else {
        // Not tracked (pipe, tmpfs, ...): remember that too, and whether it is a socket
        // (a write to one is an ack, with `--wal`).
        let socket = wal_enabled() && is_socket(file);
        if let Some(c) = cache {
            let c = unsafe { &mut *c };
            c.task = task as u64;
            c.fd = fd;
            c.file = file as u64;
            c.close_epoch = close_epoch;
            c.tracked = if socket { TRACKED_SOCKET } else { 0 };
        }
        if socket {
            on_ack(fd, nr::WRITE);
        }
        return false;
    };
    let Some(slot) = file_slot(&key) else {
        return false;
    };
    if let Some(c) = cache {
        let c = unsafe { &mut *c };
        c.task = task as u64;
        c.fd = fd;
        c.file = file as u64;
        c.close_epoch = close_epoch;
        c.tracked = 1;
        c.key = key;
        c.slot = slot;
        c.osync = osync as u32;
    }
    let end = write_end(file, bytes, call);
    match counters_at(slot) {
        // SAFETY: `counters` is the FILE_STATS value of `slot`.
        Some(counters) => unsafe {
            on_write_at(counters, slot, &key, bytes, osync, fd as i32, end, ctx)
        },
        None => false,
    }
}

/// The write syscall being handled: its number and the thread's saved registers (its
/// arguments), for where the write landed.
#[derive(Clone, Copy)]
struct WriteCall {
    id: u64,
    regs: KPtr,
}

/// A syscall argument from the BTF-typed saved registers (a plain load, no helper call).
#[inline(always)]
fn arg(regs: KPtr, at: usize) -> u64 {
    // SAFETY: `regs` is the BTF-typed pointer from `bpf_task_pt_regs`, `at` a register in it.
    unsafe { load_btf(regs, at) }
}

/// pwritev2's flag: append whatever the offset (as O_APPEND does).
const RWF_APPEND: u64 = 0x10;
/// pwritev2's flag (6.9+): do not append even if the file is O_APPEND.
const RWF_NOAPPEND: u64 = 0x20;

/// Where a successful write of `bytes` to open file `file` ended (one past its last byte), at
/// the syscall's exit, or [`EXTENT_UNKNOWN`]. write(2) and writev(2) (and pwritev2 at offset
/// -1) advanced the file position to it (O_APPEND: the append moved it to the old end of file
/// first), so it is `f_pos` now (one read); pwrite64/pwritev/pwritev2 name the offset (one read
/// of `f_flags`: O_APPEND makes Linux ignore it), unless they append, which ends at `i_size`.
/// Another thread moving the same open file's position between the syscall's return and this
/// read would shift the range: documented in README (Dirty extent).
#[inline(always)]
fn write_end(file: KPtr, bytes: u64, call: WriteCall) -> u64 {
    if !extent_enabled() {
        return EXTENT_UNKNOWN;
    }
    let positional = match call.id {
        nr::PWRITE64 | nr::PWRITEV => true,
        nr::PWRITEV2 => arg(call.regs, nr::REGS_R10) as i64 != -1,
        _ => false,
    };
    if !positional {
        return match read::<i64>(file, off!(file_f_pos)) {
            Some(pos) if pos >= 0 => pos as u64,
            _ => EXTENT_UNKNOWN,
        };
    }
    let f_flags: u32 = read(file, off!(file_f_flags)).unwrap_or(0);
    let rwf = if call.id == nr::PWRITEV2 {
        arg(call.regs, nr::REGS_R9)
    } else {
        0
    };
    let append =
        rwf & RWF_APPEND != 0 || (f_flags & open_flags::O_APPEND != 0 && rwf & RWF_NOAPPEND == 0);
    if !append {
        let off = arg(call.regs, nr::REGS_R10) as i64;
        return if off >= 0 {
            (off as u64).saturating_add(bytes)
        } else {
            EXTENT_UNKNOWN
        };
    }
    let inode: KPtr = read(file, off!(file_f_inode)).unwrap_or(core::ptr::null());
    if inode.is_null() {
        return EXTENT_UNKNOWN;
    }
    match read::<i64>(inode, off!(inode_i_size)) {
        Some(size) if size >= 0 => size as u64,
        _ => EXTENT_UNKNOWN,
    }
}

/// A write to the open file this CPU's write cache holds (still valid).
#[inline(always)]
fn cached_write(c: &WriteCache, bytes: u64, fd: i64, call: WriteCall, ctx: Ctx) -> bool {
    if c.tracked != 1 {
        if c.tracked == TRACKED_SOCKET {
            on_ack(fd, nr::WRITE);
        }
        return false;
    }
    let key = c.key;
    // Only for tracked files: writes to pipes, sockets and terminals read nothing more.
    let end = if c.osync != 0 {
        EXTENT_UNKNOWN // durable at once: no extent is kept
    } else {
        write_end(c.file as KPtr, bytes, call)
    };
    match counters_at(c.slot) {
        // SAFETY: `counters` is the FILE_STATS value of the cached slot.
        Some(counters) => unsafe {
            on_write_at(
                counters,
                c.slot,
                &key,
                bytes,
                c.osync != 0,
                fd as i32,
                end,
                ctx,
            )
        },
        None => false,
    }
}

/// Tail of `sys_exit` for a write (and of `sys_exit_sync` for a sync) of a file whose name was
/// never sent: walks the path of the descriptor in the first argument and sends it
/// ([`emit_name`]). A file synced before it is written gets its slot here. Its own program, so
/// the dentry walk weighs on neither the hot write program nor the sync program's verification.
#[raw_tracepoint]
pub fn sys_exit_name(_ctx: RawTracePointContext) -> i32 {
    let task = current_task_btf();
    let regs = unsafe { generated::bpf_task_pt_regs(task as *mut _) } as KPtr;
    let fd: u64 = unsafe { load_btf(regs, nr::REGS_DI) };
    let Some(file) = task_file(task, fd as i64) else {
        return 0;
    };
    let Some(inode) = file_inode(file) else {
        return 0;
    };
    if !inode.tracked() {
        return 0;
    }
    if let Some(c) = file_counters(&inode.key) {
        if unsafe { (*c).flags } & FILE_FLAG_NAMED == 0 {
            // SAFETY: `c` is this file's FILE_STATS value.
            unsafe { emit_name(file, &inode.key, c) };
        }
    }
    0
}

/// The key of open file `file` if this CPU's write cache holds it as a tracked file (a regular
/// file on a durable filesystem, which therefore has a `FILE_SLOTS` entry), still valid.
#[inline(always)]
pub fn cached_tracked_file(file: KPtr) -> Option<FileKey> {
    let c = WRITE_CACHE.get(0)?;
    if c.holds(file, config(names::CONFIG_CLOSE_EPOCH)) && c.tracked != 0 {
        Some(c.key)
    } else {
        None
    }
}

/// The (dev, ino) of open file `file` and whether it was opened O_SYNC/O_DSYNC; `Some(None)` if
/// writes to it are not tracked (not a regular file, or a filesystem without durability), None
/// if the kernel structures could not be read. One `bpf_probe_read_kernel` per structure (a
/// [`Window`] over the fields it needs), not one per field.
// Three outcomes, as documented above; a dedicated enum would only rename them.
#[allow(clippy::option_option)]
#[inline(always)]
fn resolve_file(file: KPtr) -> Option<Option<(FileKey, bool)>> {
    // Not zeroed (a memset costs more than the reads it saves): only bytes a read filled are used.
    let mut buf = MaybeUninit::<[u8; WINDOW]>::uninit();
    // file->{f_inode, f_flags}
    let (inode_off, flags_off) = (off!(file_f_inode), off!(file_f_flags));
    let w = Window::read(&mut buf, file, &[(inode_off, 8), (flags_off, 4)])?;
    let inode = w.field::<KPtr>(&buf, inode_off)?;
    let f_flags: u32 = w.field(&buf, flags_off).unwrap_or(0);
    // inode->{i_mode, i_sb, i_ino}
    let (mode_off, sb_off, ino_off) = (off!(inode_i_mode), off!(inode_i_sb), off!(inode_i_ino));
    let w = Window::read(&mut buf, inode, &[(mode_off, 2), (sb_off, 8), (ino_off, 8)])?;
    let mode = w.field::<u16>(&buf, mode_off)?;
    if mode as u32 & S_IFMT != S_IFREG {
        return Some(None);
    }
    let sb = w.field::<KPtr>(&buf, sb_off)?;
    let ino = w.field::<u64>(&buf, ino_off)?;
    // sb->{s_dev, s_magic}
    let (dev_off, magic_off) = (off!(sb_s_dev), off!(sb_s_magic));
    let w = Window::read(&mut buf, sb, &[(dev_off, 4), (magic_off, 8)])?;
    let magic = w.field::<u64>(&buf, magic_off)?;
    if !is_durable_fs(magic) {
        return Some(None);
    }
    let dev = w.field::<u32>(&buf, dev_off)?;
    // Far from the other inode fields: its own read (on a write-cache miss only).
    let gen: u32 = read(inode, off!(inode_i_generation)).unwrap_or(0);
    let osync = f_flags & open_flags::O_DSYNC != 0;
    Some(Some((FileKey { dev, gen, ino }, osync)))
}

/// `WriteCache::tracked` of a socket (only with `--wal`: writes to it are acks).
const TRACKED_SOCKET: u32 = 2;

/// Enough for super_block {s_dev .. s_magic} (88 bytes on 6.x) and inode {i_mode .. i_ino} (72).
const WINDOW: usize = 128;

/// Where a read of several fields of one kernel structure landed in a buffer: one helper call
/// for all of them (a call costs far more than the bytes it copies). The offsets come from BTF
/// at load time and the verifier sees them as constants (read-only `.rodata`), so the bounds
/// below are settled at load. Fields too far apart for the buffer are read one by one instead.
#[derive(Clone, Copy)]
struct Window {
    base: KPtr,
    start: usize,
    /// The buffer holds `[start, end)` of `base`, covering every field asked for.
    whole: bool,
}

impl Window {
    /// Reads the span of `fields` (offset, size) of `base` into `buf`. None if `base` is null
    /// or unreadable.
    #[inline(always)]
    fn read(
        buf: &mut MaybeUninit<[u8; WINDOW]>,
        base: KPtr,
        fields: &[(usize, usize)],
    ) -> Option<Window> {
        if base.is_null() {
            return None;
        }
        let (mut start, mut end) = (usize::MAX, 0);
        for &(off, size) in fields {
            if off < start {
                start = off;
            }
            if off + size > end {
                end = off + size;
            }
        }
        let mut w = Window {
            base,
            start,
            whole: false,
        };
        if end > start && end - start <= WINDOW {
            let len = (end - start) as u32;
            let r = unsafe {
                generated::bpf_probe_read_kernel(
                    buf.as_mut_ptr().cast(),
                    len,
                    base.wrapping_add(start).cast(),
                )
            };
            if r != 0 {
                return None;
            }
            w.whole = true;
        }
        Some(w)
    }

    /// The `T` at offset `off` of the structure: from `buf`, or read on its own.
    #[inline(always)]
    fn field<T: Copy>(&self, buf: &MaybeUninit<[u8; WINDOW]>, off: usize) -> Option<T> {
        if self.whole && off >= self.start {
            let at = off - self.start;
            if at + size_of::<T>() <= WINDOW && at.is_multiple_of(align_of::<T>()) {
                // SAFETY: `at..at + size_of::<T>()` is inside the span `read` filled.
                return Some(unsafe { (buf.as_ptr().cast::<u8>().add(at) as *const T).read() });
            }
        }
        read(self.base, off)
    }
}
