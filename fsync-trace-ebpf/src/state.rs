//! The per-file state transitions every tier shares: count a write, announce a file as dirty
//! once per durability epoch, and emit records. Probes decode their hook's arguments and call
//! these, so fentry/kprobe/tracepoint programs produce identical facts.
use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns};

use aya_ebpf::helpers::generated;

use fsync_trace_common::{
    names, DirtyRecord, FileCounters, FileKey, NameRecord, RecordHeader, RecordKind, SyncOp,
    SyncRecord, DIRTY_BY_METADATA, DIRTY_BY_WRITE, EXTENT_UNKNOWN, FILE_FLAG_NAMED, NO_SLOT,
};

use crate::{
    extent::{extent_enabled, widen_extent},
    kernel::{inode_nlink, path_at, read, walk_path, KPtr},
    maps::{
        config, count_lost, off, CONFIG, EVENTS, EVENTS_BYTES, SYNC_RECORD, TRACED_BITS,
        TRACED_TGIDS,
    },
    slots::{counters_at, existing_slot, file_counters, file_slot},
};

/// A program's context as the helpers take it (`bpf_get_stack`); null where there is none.
pub type Ctx = *mut core::ffi::c_void;

/// True if the current process is traced. First thing every program checks. With
/// `CONFIG_TRACE_ALL` (`--all`) every process is, except the tracer itself (its own reads of
/// /proc and writes of the report are not the machine's durability) and the idle task.
#[inline(always)]
pub fn current_traced() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if config(names::CONFIG_TRACE_ALL) != 0 {
        return tgid != 0 && tgid as u64 != config(names::CONFIG_SELF_TGID);
    }
    let word = TRACED_BITS.get_ptr_mut(tgid >> 6);
    let bit = 1u64 << (tgid & 63);
    if let Some(w) = word {
        if unsafe { core::ptr::read_volatile(w) } & bit != 0 {
            return true;
        }
    }
    // TRACED_TGIDS is the truth (userspace and the fork hook add to it); cache the answer.
    if unsafe { TRACED_TGIDS.get(tgid).is_none() } {
        return false;
    }
    if let Some(w) = word {
        unsafe {
            core::intrinsics::atomic_or::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                w, bit,
            )
        };
    }
    true
}

/// Stops tracing process `tgid` (it exited: its pid may be reused by an untraced process).
#[inline(always)]
pub fn untrace(tgid: u32) {
    let _ = TRACED_TGIDS.remove(tgid);
    if let Some(w) = TRACED_BITS.get_ptr_mut(tgid >> 6) {
        let keep = !(1u64 << (tgid & 63));
        unsafe {
            core::intrinsics::atomic_and::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                w, keep,
            )
        };
    }
}

/// `bpf_ringbuf_*` flags (include/uapi/linux/bpf.h).
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;
/// Above this much unread data, records wake the reader at once.
const WAKEUP_AT_BYTES: u64 = EVENTS_BYTES as u64 / 8;

/// Submit flags for a state-change record. Waking the reader for every record costs the traced
/// syscall that submits it an irq_work and a context switch of the tracer (tens of µs per
/// fsync measured), so records are normally submitted silently and userspace drains the buffer
/// on a short timer; only a filling buffer wakes it at once, so nothing is lost to a sleeping
/// reader. Records userspace may have to complete from /proc (a file it may not know yet), and
/// fork, exit and mmap records keep the kernel's default wakeup (they are rare).
#[inline(always)]
pub fn wakeup_flags() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA) >= WAKEUP_AT_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Fills the header every record starts with (the current task, the time).
///
/// # Safety
/// `hdr` points to a reserved, not yet submitted ring buffer record.
#[inline(always)]
pub unsafe fn fill_header(hdr: *mut RecordHeader, kind: RecordKind) {
    let pid_tgid = bpf_get_current_pid_tgid();
    unsafe {
        (*hdr).kind = kind as u32;
        (*hdr).tgid = (pid_tgid >> 32) as u32;
        (*hdr).tid = pid_tgid as u32;
        (*hdr).stack = 0;
        (*hdr).ts_ns = bpf_ktime_get_ns();
        (*hdr).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*hdr).cgroup_id = generated::bpf_get_current_cgroup_id();
    }
}

/// Sends the current thread's user stack as a `Stack` record, for the record the caller sends
/// next (which sets `RecordHeader::stack` to the value returned: 1 if the stack was sent, 0 if
/// not). Called only at acts that can become findings, never per write. `ctx` is the calling
/// program's context (the user stack itself comes from the task's saved registers, so any
/// program type in syscall or fault context works); null: no stack.
#[inline(always)]
pub fn emit_stack(ctx: Ctx) -> u32 {
    if ctx.is_null() || config(names::CONFIG_NO_STACKS) != 0 {
        return 0;
    }
    // The facts come first: a storm of entry changes (each one a namespace record and a
    // stack) must not fill the ring buffer with stacks. Past a sixteenth of it, no stack.
    if EVENTS.query(BPF_RB_AVAIL_DATA) >= EVENTS_BYTES as u64 / 16 {
        return 0;
    }
    crate::stack::emit(ctx)
}

/// The current durability epoch + 1 (never 0, so a fresh entry always differs).
#[inline(always)]
pub fn current_gen() -> u64 {
    config(names::CONFIG_SYNC_EPOCH) + 1
}

/// Some process may have freed an open file: forget every CPU's `WRITE_CACHE` entry.
#[inline(always)]
pub fn bump_close_epoch() {
    if let Some(p) = CONFIG.get_ptr_mut(names::CONFIG_CLOSE_EPOCH) {
        // SAFETY: a CONFIG slot.
        unsafe { atomic_add(p, 1) };
    }
}

/// Bumps the durability epoch: every file's next write announces it as dirty again.
#[inline(always)]
pub fn bump_epoch() {
    if let Some(p) = CONFIG.get_ptr_mut(names::CONFIG_SYNC_EPOCH) {
        // SAFETY: a CONFIG slot.
        unsafe { atomic_add(p, 1) };
    }
}

/// Atomic `*p += v` (result unused, so it compiles to BPF_XADD): exact counts when threads on
/// several CPUs write the same file.
///
/// # Safety
/// `p` points to an aligned `u64` in map memory (a map value or a reserved record).
#[inline(always)]
pub unsafe fn atomic_add(p: *mut u64, v: u64) {
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            p, v,
        )
    };
}

/// A successful write of `bytes` to open file `file` (`key`) through a descriptor with open
/// flags `f_flags`, ending at file offset `end` ([`EXTENT_UNKNOWN`]: not known); sends the
/// file's name on first sight. `ctx`: the program's context (for the user stack of a first
/// dirtying).
#[inline(always)]
pub fn on_write(file: KPtr, key: &FileKey, bytes: u64, osync: bool, fd: i32, end: u64, ctx: Ctx) {
    let Some(slot) = file_slot(key) else {
        return;
    };
    if let Some(c) = counters_at(slot) {
        // SAFETY: `c` is the FILE_STATS value of `slot`.
        unsafe {
            if on_write_at(c, slot, key, bytes, osync, fd, end, ctx) {
                emit_name(file, key, c);
            }
        }
    }
}

/// [`on_write`] with the file's counters (in `slot`) already found. True if the file's name
/// has not been sent yet (the caller sends it: [`emit_name`]).
///
/// # Safety
/// `c` is the `FILE_STATS` value of `slot` ([`crate::slots::counters_at`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn on_write_at(
    c: *mut FileCounters,
    slot: u32,
    key: &FileKey,
    bytes: u64,
    osync: bool,
    fd: i32,
    end: u64,
    ctx: Ctx,
) -> bool {
    unsafe {
        let unnamed = (*c).flags & FILE_FLAG_NAMED == 0;
        if osync {
            atomic_add(&raw mut (*c).sync_writes, 1);
            atomic_add(&raw mut (*c).sync_write_bytes, bytes);
            // Durable point for this file: tell userspace only if it was told the file is dirty.
            if (*c).dirty_gen != 0 {
                (*c).dirty_gen = 0;
                emit_sync_write(key, fd);
            }
            return unnamed;
        }
        let writes_before = (*c).writes;
        let bytes_before = (*c).bytes;
        if crate::probes::wal::wal_enabled() {
            crate::probes::wal::on_wal_write(slot, key);
        }
        atomic_add(&raw mut (*c).writes, 1);
        atomic_add(&raw mut (*c).bytes, bytes);
        let pages_before = (*c).mapped_dirty_pages;
        // The written range; an end before the bytes written (a position that could not be
        // read right) is no range at all.
        let (lo, hi) = if end != EXTENT_UNKNOWN && end >= bytes {
            (end - bytes, end)
        } else {
            (0, EXTENT_UNKNOWN)
        };
        mark_dirty(
            key,
            c,
            slot,
            writes_before,
            bytes_before,
            pages_before,
            DIRTY_BY_WRITE,
            fd,
            lo,
            hi,
            false,
            ctx,
        );
        unnamed
    }
}

/// Sends the name of open file `file` (`key`, a tracked file) unless it was sent already;
/// gives the file a slot if it has none (a file synced or mapped before it is written).
#[inline(always)]
pub fn name_on_first_sight(file: KPtr, key: &FileKey) {
    if let Some(c) = file_counters(key) {
        // SAFETY: `c` is this file's FILE_STATS value.
        unsafe {
            if (*c).flags & FILE_FLAG_NAMED == 0 {
                emit_name(file, key, c);
            }
        }
    }
}

/// Atomic `*p |= v` (flags are also set by other programs on other CPUs).
///
/// # Safety
/// `p` points to an aligned `u64` in map memory.
#[inline(always)]
pub unsafe fn atomic_or(p: *mut u64, v: u64) {
    unsafe {
        core::intrinsics::atomic_or::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(p, v)
    };
}

/// Sends the name of open file `file` (`key`, counters `c`): its path walked from the
/// descriptor's dentry and its link count. Once per slot (`FILE_FLAG_NAMED`): a file opened
/// before tracing started gets its real name, not a guess from /proc made later.
///
/// # Safety
/// `c` is the `FILE_STATS` value of the file's slot.
#[inline(always)]
pub unsafe fn emit_name(file: KPtr, key: &FileKey, c: *mut FileCounters) {
    let Some((mnt, dentry)) = path_at(file, off!(file_f_path)) else {
        return;
    };
    let inode: KPtr = read(file, off!(file_f_inode)).unwrap_or(core::ptr::null());
    let f_flags: u32 = read(file, off!(file_f_flags)).unwrap_or(0);
    let Some(mut entry) = EVENTS.reserve::<NameRecord>(0) else {
        count_lost(names::LOST_RINGBUF_FULL);
        return;
    };
    // SAFETY: `c` is this file's FILE_STATS value (the caller's contract).
    unsafe { atomic_or(&raw mut (*c).flags, FILE_FLAG_NAMED) };
    let r = entry.as_mut_ptr();
    unsafe {
        fill_header(&raw mut (*r).hdr, RecordKind::Name);
        (*r).file = *key;
        (*r).nlink = inode_nlink(inode);
        (*r).open_flags = f_flags;
        let (start, truncated) = walk_path(mnt, dentry, (*r).path.as_mut_ptr());
        (*r).path_start = start;
        (*r).path_truncated = truncated;
    }
    entry.submit(wakeup_flags());
}

/// Sends a `Dirty` record if userspace has not been told about this file in this epoch (or,
/// `force`, in any case: a change that writes no data is announced even after a write), and
/// keeps the dirty extent: a write `[lo, hi)` of the current segment widens it; the record that
/// starts a new segment carries the closed segment's extent and restarts it at `[lo, hi)`.
/// True if the record was sent. Every caller passes a constant `force`, so the write path
/// compiles to the same code as without the argument.
// Inlined into each caller: a struct of these would only be another copy on the 512-byte stack.
#[allow(clippy::too_many_arguments)]
///
/// # Safety
/// `c` is the `FILE_STATS` value of `slot`.
#[inline(always)]
pub unsafe fn mark_dirty(
    key: &FileKey,
    c: *mut FileCounters,
    slot: u32,
    writes_before: u64,
    bytes_before: u64,
    mapped_pages_before: u64,
    source: u32,
    fd: i32,
    lo: u64,
    hi: u64,
    force: bool,
    ctx: Ctx,
) -> bool {
    let gen = current_gen();
    unsafe {
        let prev_gen = (*c).dirty_gen;
        if !force && prev_gen == gen {
            if extent_enabled() {
                widen_extent(c, lo, hi);
            }
            return false;
        }
        (*c).dirty_gen = gen;
        // The act that can become an `unsynced_write` finding: its user stack (once per
        // dirtying, never per write).
        let stack = emit_stack(ctx);
        let Some(mut entry) = EVENTS.reserve::<DirtyRecord>(0) else {
            // Not announced: forget we tried so the next write retries (forced: as it was, so a
            // write's announcement of this epoch stands), and count the loss. The segment goes
            // on (its extent is sent by the next record that gets through).
            (*c).dirty_gen = if force { prev_gen } else { 0 };
            if extent_enabled() {
                widen_extent(c, lo, hi);
            }
            count_lost(names::LOST_RINGBUF_FULL);
            return false;
        };
        let r = entry.as_mut_ptr();
        fill_header(&raw mut (*r).hdr, RecordKind::Dirty);
        (*r).hdr.stack = stack;
        (*r).file = *key;
        (*r).writes_before = writes_before;
        (*r).bytes_before = bytes_before;
        (*r).mapped_pages_before = mapped_pages_before;
        (*r).source = source;
        (*r).fd = fd;
        (*r).slot = slot;
        (*r)._pad = 0;
        (*r).prev_extent_lo = (*c).extent_lo;
        (*r).prev_extent_hi = (*c).extent_hi;
        if extent_enabled() {
            (*c).extent_lo = lo;
            (*c).extent_hi = hi;
        }
        entry.submit(wakeup_flags());
    }
    true
}

/// A change that writes no data (ftruncate, fallocate, a metadata change: `source`) of file `key` (counters `c`
/// in `slot`, already counted by the caller): announced once per durability epoch with a
/// `Dirty` record of that source, even if a write announced the file in this epoch already, so
/// userspace knows an unsynced change is a truncation or allocation. Like a first write, it
/// takes the user stack.
///
/// # Safety
/// `c` is the `FILE_STATS` value of `slot`.
#[inline(always)]
pub unsafe fn mark_changed(
    key: &FileKey,
    c: *mut FileCounters,
    slot: u32,
    source: u32,
    fd: i32,
    ctx: Ctx,
) {
    let gen = current_gen();
    unsafe {
        // Metadata changes have their own epoch mark (see `FileCounters::metadata_gen`);
        // `source` is a constant at every call site.
        let mark = if source == DIRTY_BY_METADATA {
            &raw mut (*c).metadata_gen
        } else {
            &raw mut (*c).change_gen
        };
        if *mark == gen {
            return;
        }
        *mark = gen;
        let dirty_gen = (*c).dirty_gen;
        let sent = mark_dirty(
            key,
            c,
            slot,
            (*c).writes,
            (*c).bytes,
            (*c).mapped_dirty_pages,
            source,
            fd,
            // Nothing written: the record closes the extent segment and opens an empty one.
            0,
            0,
            true,
            ctx,
        );
        if !sent {
            // Not announced (ring buffer full, counted): the next change retries.
            *mark = 0;
        }
        if source == DIRTY_BY_METADATA {
            // A metadata change holds no data: a write after it in this epoch still announces
            // itself, so userspace knows which spans hold data (a rename after a chmod alone
            // publishes durable data).
            (*c).dirty_gen = dirty_gen;
        }
    }
}

/// A write through an O_SYNC/O_DSYNC descriptor: a durable point for `key`, sent as a sync
/// record of its own.
fn emit_sync_write(key: &FileKey, fd: i32) {
    let file = (*key, fsync_trace_common::S_IFREG, true);
    emit_sync(SyncOp::SyncWrite, fd, 0, None, Some(file));
}

/// A sync of one file that no syscall record covers (function tiers: io_uring's
/// IORING_OP_FSYNC and other in-kernel callers of vfs_fsync_range). The same record the
/// syscall path sends for fsync/fdatasync, with the fd unknown.
#[inline(always)]
pub fn emit_file_sync(
    op: SyncOp,
    ret: i64,
    enter_ns: u64,
    inode: Option<crate::kernel::InodeInfo>,
) {
    let file = inode.map(|i| (i.key, i.mode, i.tracked()));
    emit_sync(op, -1, ret, Some(enter_ns), file);
}

/// A `Sync` record for one file (`file`: key, mode, tracked) or none; `enter_ns` None: now.
#[inline(always)]
fn emit_sync(
    op: SyncOp,
    fd: i32,
    ret: i64,
    enter_ns: Option<u64>,
    file: Option<(FileKey, u32, bool)>,
) {
    // Built in the per-CPU scratch record, then copied (see `SYNC_RECORD`).
    let Some(r) = SYNC_RECORD.get_ptr_mut(0) else {
        return;
    };
    unsafe {
        fill_header(&raw mut (*r).hdr, RecordKind::Sync);
        clear_sync_record(r);
        (*r).op = op as u32;
        (*r).fd = fd;
        (*r).ret = ret;
        (*r).enter_ns = enter_ns.unwrap_or((*r).hdr.ts_ns);
        if let Some((key, mode, tracked)) = file {
            (*r).file = key;
            (*r).file_mode = mode;
            (*r).durable_fs = tracked as u32;
        }
        fill_sync_counters(r, file.filter(|f| f.2).map(|f| f.0));
        if EVENTS.output::<SyncRecord>(&*r, wakeup_flags()).is_err() {
            count_lost(names::LOST_RINGBUF_FULL);
        }
    }
}

/// Zeroes every field of `Sync` record `r` after its header, one volatile store per field:
/// plain stores of zeros are merged by LLVM into a `memset`, which the BPF target turns into
/// a byte loop that the verifier then walks once per state.
///
/// # Safety
/// `r` points to a `SyncRecord` being built.
#[inline(always)]
pub unsafe fn clear_sync_record(r: *mut SyncRecord) {
    use core::ptr::write_volatile as w;
    unsafe {
        w(&raw mut (*r).op, 0);
        w(&raw mut (*r).fd, -1);
        w(&raw mut (*r).ret, 0);
        w(&raw mut (*r).enter_ns, 0);
        w(&raw mut (*r).file.dev, 0);
        w(&raw mut (*r).file.gen, 0);
        w(&raw mut (*r).file.ino, 0);
        w(&raw mut (*r).file_mode, 0);
        w(&raw mut (*r).durable_fs, 0);
        w(&raw mut (*r).addr, 0);
        w(&raw mut (*r).len, 0);
        w(&raw mut (*r).flags, 0);
        w(&raw mut (*r).writes, 0);
        w(&raw mut (*r).bytes, 0);
        w(&raw mut (*r).mapped_pages, 0);
        w(&raw mut (*r).counters_slot, NO_SLOT);
        w(&raw mut (*r)._pad, 0);
    }
}

/// The counters of the synced file `key` (a tracked file) at the sync's return, into record
/// `r`: one hash lookup per sync, so userspace knows exactly how many writes and bytes each
/// sync covered without any per-write record; left as [`clear_sync_record`] set them (no slot:
/// `NO_SLOT`) if the file has none.
///
/// # Safety
/// `r` points to a `SyncRecord` being built (a scratch map value, not ring buffer memory: see
/// `SYNC_RECORD`), cleared by [`clear_sync_record`].
#[inline(always)]
pub unsafe fn fill_sync_counters(r: *mut SyncRecord, key: Option<FileKey>) {
    unsafe {
        if let Some((slot, c)) = key.and_then(|k| existing_slot(&k)) {
            (*r).writes = (*c).writes;
            (*r).bytes = (*c).bytes;
            (*r).mapped_pages = (*c).mapped_dirty_pages;
            (*r).counters_slot = slot;
        }
    }
}
