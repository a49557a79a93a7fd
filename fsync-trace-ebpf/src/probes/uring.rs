//! io_uring requests, on every tier: writes, syncs and closes submitted through a ring are
//! judged exactly as their system-call twins, from three raw tracepoints of the io_uring
//! subsystem (tracepoints work wherever BPF tracing does, locked-down kernels included, so
//! every tier attaches the same programs and gives the same facts):
//!
//! - `io_uring_submit_req(struct io_kiocb *req)` (named `io_uring_submit_sqe(req, bool)` before
//!   6.2, as in Debian's 6.1; `req` is the first argument in both): a traced process (or its
//!   SQPOLL thread, which is in its thread group) submitted a request. Its opcode and
//!   `IOSQE_*` flags are read from the request, the request is remembered (`URING_REQS`, by
//!   request pointer) and link chains are followed per ring, to tell a fsync not ordered after
//!   writes still in flight (`URING_FSYNC_UNORDERED`).
//! - `io_uring_queue_async_work(req, ..)`: a fsync or sync_file_range always runs in an io-wq
//!   worker (`iou-wrk-<pid>`), queued when it may start (after its link predecessors, at once
//!   without a link): the durability epoch moves here, as at a sync syscall's entry, so data
//!   written after the sync could have started is not credited to it.
//! - `io_uring_complete(ctx, req, ..)` (`req` is the second argument on 6.1 and 6.18, whose
//!   other arguments differ): the result, read from the request (`io_kiocb.cqe.res`, filled
//!   before the completion is posted on both). Bytes written and errors come from here, not
//!   from the submission.
//!
//! Why raw tracepoints with BTF offsets rather than `tp_btf`: `io_uring_complete` passes the
//! request as `void *` on both kernels, so `tp_btf` would give no typed access anyway, and the
//! prototypes around `req` differ between 6.1 and 6.18; the offsets (`io_kiocb.opcode`,
//! `.flags`, `.file`, `.ctx`, `.cqe.res`, `io_sync.flags`) come from the running kernel's BTF at
//! load, as every other structure this object reads.
//!
//! Attribution: a request is traced if the task submitting it is (checked at submission; the
//! completion only looks the request up), and every task that runs a request (the submitter,
//! its `iou-wrk` workers, its `iou-sqp` SQPOLL thread) belongs to the ring owner's thread group,
//! so records carry the submitting process. The function-level tiers leave io_uring's own
//! vfs_fsync_range calls (in io workers) to these programs, so nothing is counted twice.
use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{map, raw_tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray, ProgramArray},
    programs::RawTracePointContext,
};
use fsync_trace_common::{
    names, open_flags::O_TRUNC, NamespaceOp, NamespaceRecord, RecordKind, SyncOp, UringRecord,
    AT_FDCWD, EXTENT_UNKNOWN, URING_FSYNC_UNORDERED,
};

use super::{
    functions::write_done,
    namespace::{fill_namespace, send_namespace},
    opens::emit_open,
};
use crate::{
    kernel::{file_inode, read, KPtr},
    maps::{count_lost, off, EVENTS},
    slots::file_slot,
    state::{
        bump_close_epoch, bump_epoch, current_traced, emit_file_sync, fill_header,
        name_on_first_sight, wakeup_flags,
    },
};

use fsync_trace_common::uring::{
    FSYNC_DATASYNC as IORING_FSYNC_DATASYNC, OP_CLOSE, OP_FSYNC, OP_LINKAT, OP_MKDIRAT, OP_OPENAT,
    OP_OPENAT2, OP_RENAMEAT, OP_SYMLINKAT, OP_SYNC_FILE_RANGE, OP_UNLINKAT, OP_WRITE, OP_WRITEV,
    OP_WRITEV_FIXED, OP_WRITE_FIXED,
};

/// unlinkat's flag: remove a directory.
const AT_REMOVEDIR: u64 = 0x200;

/// `REQ_F_*` bits equal to the SQE's `IOSQE_*` flags (io_uring/io_uring_types.h).
const REQ_F_FIXED_FILE: u32 = 1 << 0;
const REQ_F_IO_DRAIN: u32 = 1 << 1;
const REQ_F_LINK: u32 = 1 << 2;
const REQ_F_HARDLINK: u32 = 1 << 3;
/// IOSQE_CQE_SKIP_SUCCESS: no completion is posted on success, so none would be traced.
const REQ_F_CQE_SKIP: u32 = 1 << 6;

/// What a request is, for the completion.
const CLASS_WRITE: u32 = 1;
const CLASS_FSYNC: u32 = 2;
const CLASS_SYNC_FILE_RANGE: u32 = 3;
const CLASS_CLOSE: u32 = 4;
const CLASS_OPEN: u32 = 5;
const CLASS_NAMESPACE: u32 = 6;

/// `URING_TAILS` slots.
const TAIL_SYNC: u32 = 0;
const TAIL_OPEN: u32 = 1;
const TAIL_NAMESPACE: u32 = 2;
const TAIL_SUBMIT_NAMESPACE: u32 = 3;
const TAIL_NAME: u32 = 4;

/// A traced request between submission and completion.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UringReq {
    /// The descriptor the request names on its ring (`URING_FILES` key).
    pub target: UringTarget,
    /// The link chain the request belongs to (the chain's first request).
    pub chain: u64,
    /// When a sync started (queued to an io worker), 0 before; the submission time otherwise.
    pub enter_ns: u64,
    pub submit_ns: u64,
    pub class: u32,
    /// Sync: `io_sync.flags` (IORING_FSYNC_DATASYNC).
    pub sync_flags: u32,
    /// Fsync: writes to the same descriptor in flight and not ordered before it at submission.
    pub unordered: u32,
    pub _pad: u32,
    /// The sync linked right after this request (0: none): it may start when this completes.
    pub next_sync: u64,
}

/// A descriptor as a ring's requests name it: the fd, or the fixed-file index.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UringTarget {
    pub ring: u64,
    pub fd: i32,
    pub fixed: u32,
}

/// io_uring writes in flight to one descriptor of one ring.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UringWrites {
    pub inflight: u64,
    /// The chain of the newest write, and how many of the in-flight writes are in it.
    pub chain: u64,
    pub chain_inflight: u64,
}

/// The link chain the next request on a ring joins.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UringRing {
    pub chain: u64,
    /// The ring's previous request.
    pub last: u64,
    /// The previous request had IOSQE_IO_LINK / IOSQE_IO_HARDLINK: the next one is in its chain.
    pub linked: u64,
}

/// Traced requests between submission and completion, by `struct io_kiocb *`. Not LRU: an
/// entry lost would be a write not counted, so a full table is counted instead.
#[map]
static URING_REQS: HashMap<u64, UringReq> = HashMap::with_max_entries(16384, 0);

/// In-flight writes by descriptor (deleted when none is left in flight).
#[map]
static URING_FILES: HashMap<UringTarget, UringWrites> = HashMap::with_max_entries(4096, 0);

/// Chain state per ring. LRU: a ring that was closed leaves its entry behind, and an evicted
/// entry only starts the next request's chain afresh.
#[map]
static URING_RINGS: LruHashMap<u64, UringRing> = LruHashMap::with_max_entries(1024, 0);

/// Tail calls of `uring_complete` and `uring_submit` (`TAIL_*`).
#[map]
static URING_TAILS: ProgramArray = ProgramArray::with_max_entries(5, 0);

/// The `Namespace` record of an entry-changing request, built at submission (its names are
/// freed when it runs) and sent at its completion if it succeeded. BPF_F_NO_PREALLOC (1).
#[map]
static URING_NAMESPACE: HashMap<u64, NamespaceRecord> = HashMap::with_max_entries(256, 1);

/// Per-CPU scratch space for a `Namespace` record (2 KiB: too big for the stack).
#[map]
static URING_NAMESPACE_SCRATCH: PerCpuArray<NamespaceRecord> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn class_of(opcode: u8) -> u32 {
    match opcode {
        OP_WRITEV | OP_WRITE_FIXED | OP_WRITE | OP_WRITEV_FIXED => CLASS_WRITE,
        OP_FSYNC => CLASS_FSYNC,
        OP_SYNC_FILE_RANGE => CLASS_SYNC_FILE_RANGE,
        OP_CLOSE => CLASS_CLOSE,
        OP_OPENAT | OP_OPENAT2 => CLASS_OPEN,
        OP_RENAMEAT..=OP_LINKAT => CLASS_NAMESPACE,
        _ => 0,
    }
}

/// The chain request `req` (flags `flags`) joins on `ring` and the request linked right before
/// it (0: none), and the ring's state for the next.
#[inline(always)]
fn follow_chain(ring: u64, req: u64, flags: u32) -> (u64, u64) {
    let (chain, prev) = match unsafe { URING_RINGS.get(ring) } {
        Some(s) if s.linked != 0 => (s.chain, s.last),
        _ => (req, 0),
    };
    let next = UringRing {
        chain,
        last: req,
        linked: (flags & (REQ_F_LINK | REQ_F_HARDLINK) != 0) as u64,
    };
    let _ = URING_RINGS.insert(ring, next, 0);
    (chain, prev)
}

#[raw_tracepoint]
pub fn uring_submit(ctx: RawTracePointContext) -> i32 {
    if off!(uring_ready) == 0 || !current_traced() {
        return 0;
    }
    let req: KPtr = ctx.arg(0);
    let Some(opcode) = read::<u8>(req, off!(req_opcode)) else {
        return 0;
    };
    let flags: u32 = read(req, off!(req_flags)).unwrap_or(0);
    let ring: u64 = read(req, off!(req_ctx)).unwrap_or(0);
    // Every request of the ring: a chain runs through any opcode.
    let (chain, prev) = follow_chain(ring, req as u64, flags);
    let class = class_of(opcode);
    if class == 0 || flags & REQ_F_CQE_SKIP != 0 {
        return 0;
    }
    // The file is assigned when the request is issued, after this point: the SQE's fd is in
    // `cqe.fd` (a union with the completion's flags) until then.
    let fd: i32 = read(req, off!(req_fd)).unwrap_or(-1);
    let target = UringTarget {
        ring,
        fd,
        fixed: flags & REQ_F_FIXED_FILE,
    };
    let now = unsafe { bpf_ktime_get_ns() };
    let mut r = UringReq {
        target,
        chain,
        enter_ns: 0,
        submit_ns: now,
        class,
        sync_flags: 0,
        unordered: 0,
        _pad: 0,
        next_sync: 0,
    };
    match class {
        CLASS_WRITE => write_submitted(&target, chain),
        CLASS_FSYNC | CLASS_SYNC_FILE_RANGE => {
            r.sync_flags = read(req, off!(req_file) + off!(sync_flags)).unwrap_or(0);
            if class == CLASS_FSYNC && flags & REQ_F_IO_DRAIN == 0 {
                r.unordered = unordered_writes(&target, chain);
            }
            // Linked after a request: it starts when that one completes (an io worker that
            // ran the predecessor runs it next without queueing it again).
            if prev != 0 {
                if let Some(p) = URING_REQS.get_ptr_mut(prev) {
                    unsafe { (*p).next_sync = req as u64 };
                }
            }
        }
        _ => {}
    }
    if URING_REQS.insert(req as u64, r, 0).is_err() {
        count_lost(names::LOST_INFLIGHT_MAP_FULL);
        if class == CLASS_WRITE {
            write_finished(&target, chain);
        }
        return 0;
    }
    if class == CLASS_NAMESPACE {
        // The names are read now, in a program of their own (two path walks).
        unsafe { URING_TAILS.tail_call(&ctx, TAIL_SUBMIT_NAMESPACE) };
        let _ = URING_REQS.remove(req as u64);
    }
    0
}

/// Tail of `uring_submit` for RENAMEAT, UNLINKAT, MKDIRAT, SYMLINKAT, LINKAT: the record
/// rename(2) and the others send, built from the prepared request (its names are kernel
/// `struct filename`s, freed when the request runs) and kept until the completion.
#[raw_tracepoint]
pub fn uring_submit_namespace(ctx: RawTracePointContext) -> i32 {
    let req: KPtr = ctx.arg(0);
    let cmd = off!(req_file);
    let dfd = |o: usize| read::<i32>(req, cmd + o).unwrap_or(AT_FDCWD) as i64 as u64;
    let ptr = |o: usize| read::<u64>(req, cmd + o).unwrap_or(0);
    let flag = |o: usize| read::<i32>(req, cmd + o).unwrap_or(0) as u32 as u64;
    let cwd = AT_FDCWD as i64 as u64;
    // (op, old dirfd, old name, new dirfd, new name, flags), as `sys_exit_namespace` decodes.
    let (op, odfd, oname, ndfd, nname, flags) = match read::<u8>(req, off!(req_opcode)) {
        Some(OP_RENAMEAT) => (
            NamespaceOp::Rename,
            dfd(off!(ren_old_dfd)),
            ptr(off!(ren_oldpath)),
            dfd(off!(ren_new_dfd)),
            ptr(off!(ren_newpath)),
            flag(off!(ren_flags)),
        ),
        Some(OP_UNLINKAT) => {
            let f = flag(off!(unlink_flags));
            let op = if f & AT_REMOVEDIR != 0 {
                NamespaceOp::Rmdir
            } else {
                NamespaceOp::Unlink
            };
            (
                op,
                dfd(off!(unlink_dfd)),
                ptr(off!(unlink_filename)),
                cwd,
                0,
                f,
            )
        }
        Some(OP_MKDIRAT) => (
            NamespaceOp::Mkdir,
            dfd(off!(mkdir_dfd)),
            ptr(off!(mkdir_filename)),
            cwd,
            0,
            0,
        ),
        // symlinkat(target, newdirfd, linkpath): the entry made is linkpath.
        Some(OP_SYMLINKAT) => (
            NamespaceOp::Symlink,
            dfd(off!(link_new_dfd)),
            ptr(off!(link_newpath)),
            cwd,
            0,
            0,
        ),
        Some(OP_LINKAT) => (
            NamespaceOp::Link,
            dfd(off!(link_old_dfd)),
            ptr(off!(link_oldpath)),
            dfd(off!(link_new_dfd)),
            ptr(off!(link_newpath)),
            flag(off!(link_flags)),
        ),
        _ => return 0,
    };
    let Some(r) = URING_NAMESPACE_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    unsafe {
        fill_namespace(r, op, odfd, oname, ndfd, nname, flags, true);
        // By reference: a copy of the 2 KiB record would not fit the stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let inserted = URING_NAMESPACE.insert(req as u64, &*r, 0);
        if inserted.is_err() {
            count_lost(names::LOST_INFLIGHT_MAP_FULL);
        }
    }
    0
}

/// Tail of `uring_complete` for an entry-changing request: its record, if it succeeded.
#[raw_tracepoint]
pub fn uring_complete_namespace(ctx: RawTracePointContext) -> i32 {
    let req: u64 = ctx.arg(1);
    let _ = URING_REQS.remove(req);
    let res: i32 = read(req as KPtr, off!(req_res)).unwrap_or(-1);
    if let Some(r) = URING_NAMESPACE.get_ptr_mut(req) {
        if res == 0 {
            unsafe {
                // The change happened now, not at submission.
                (*r).hdr.ts_ns = bpf_ktime_get_ns();
                send_namespace(r);
            }
        }
        let _ = URING_NAMESPACE.remove(req);
    }
    0
}

#[inline(always)]
fn write_submitted(target: &UringTarget, chain: u64) {
    if let Some(w) = URING_FILES.get_ptr_mut(target) {
        unsafe {
            (*w).inflight += 1;
            if (*w).chain == chain {
                (*w).chain_inflight += 1;
            } else {
                (*w).chain = chain;
                (*w).chain_inflight = 1;
            }
        }
        return;
    }
    let w = UringWrites {
        inflight: 1,
        chain,
        chain_inflight: 1,
    };
    if URING_FILES.insert(target, w, 0).is_err() {
        count_lost(names::LOST_INFLIGHT_MAP_FULL);
    }
}

#[inline(always)]
fn write_finished(target: &UringTarget, chain: u64) {
    let Some(w) = URING_FILES.get_ptr_mut(target) else {
        return;
    };
    unsafe {
        (*w).inflight = (*w).inflight.saturating_sub(1);
        if (*w).chain == chain {
            (*w).chain_inflight = (*w).chain_inflight.saturating_sub(1);
        }
        if (*w).inflight == 0 {
            let _ = URING_FILES.remove(target);
        }
    }
}

/// Writes to `target` in flight and outside chain `chain` (a fsync in the chain runs after
/// the writes before it in the chain; any other write may still be running when it starts).
#[inline(always)]
fn unordered_writes(target: &UringTarget, chain: u64) -> u32 {
    let Some(w) = (unsafe { URING_FILES.get(target) }) else {
        return 0;
    };
    let ordered = if w.chain == chain {
        w.chain_inflight
    } else {
        0
    };
    w.inflight.saturating_sub(ordered) as u32
}

/// A request was handed to an io worker: a sync starts (its links before it are done).
#[raw_tracepoint]
pub fn uring_async(ctx: RawTracePointContext) -> i32 {
    sync_may_start(ctx.arg(0));
    0
}

/// Sync request `req` (if it is one, traced) may start now: data written from now on is not
/// covered by it. Once per request.
#[inline(always)]
fn sync_may_start(req: u64) {
    let Some(r) = URING_REQS.get_ptr_mut(req) else {
        return;
    };
    unsafe {
        if (*r).enter_ns != 0 {
            return;
        }
        match (*r).class {
            CLASS_FSYNC => {
                (*r).enter_ns = bpf_ktime_get_ns();
                bump_epoch();
            }
            CLASS_SYNC_FILE_RANGE => (*r).enter_ns = bpf_ktime_get_ns(),
            _ => {}
        }
    }
}

#[raw_tracepoint]
pub fn uring_complete(ctx: RawTracePointContext) -> i32 {
    let req: u64 = ctx.arg(1);
    let Some(r) = (unsafe { URING_REQS.get(req) }).copied() else {
        return 0;
    };
    match r.class {
        CLASS_WRITE => {
            let _ = URING_REQS.remove(req);
            write_finished(&r.target, r.chain);
            let p = req as KPtr;
            let res: i32 = read(p, off!(req_res)).unwrap_or(0);
            let file: KPtr = read(p, off!(req_file)).unwrap_or(core::ptr::null());
            // The request's position: its end once the write completed (O_APPEND: where the
            // append landed; offset -1: the file position it used and advanced).
            let end = match off!(req_ki_pos) {
                _ if !crate::extent::extent_enabled() => EXTENT_UNKNOWN,
                0 => EXTENT_UNKNOWN,
                at => match read::<i64>(p, at) {
                    Some(e) if e >= 0 => e as u64,
                    _ => EXTENT_UNKNOWN,
                },
            };
            // No user stack: the completion runs in the kernel, not the program's code.
            write_done(file, res as i64, end, core::ptr::null_mut());
            if r.next_sync != 0 {
                sync_may_start(r.next_sync);
            }
        }
        CLASS_CLOSE => {
            let _ = URING_REQS.remove(req);
            // The descriptor may name another file from now on (see `WriteCache`).
            bump_close_epoch();
        }
        CLASS_NAMESPACE => unsafe {
            URING_TAILS.tail_call(&ctx, TAIL_NAMESPACE);
            let _ = URING_REQS.remove(req);
            let _ = URING_NAMESPACE.remove(req);
        },
        CLASS_OPEN => unsafe {
            // Its own program: the path walk would weigh on this one.
            URING_TAILS.tail_call(&ctx, TAIL_OPEN);
            let _ = URING_REQS.remove(req);
        },
        _ => unsafe {
            URING_TAILS.tail_call(&ctx, TAIL_SYNC);
            let _ = URING_REQS.remove(req);
        },
    }
    0
}

/// Tail of `uring_complete` for a fsync or sync_file_range: the same `Sync` record a
/// vfs_fsync_range hook sends, timed from when the sync could start.
#[raw_tracepoint]
pub fn uring_complete_sync(ctx: RawTracePointContext) -> i32 {
    let req: u64 = ctx.arg(1);
    let Some(r) = (unsafe { URING_REQS.get(req) }).copied() else {
        return 0;
    };
    let _ = URING_REQS.remove(req);
    let p = req as KPtr;
    let res: i32 = read(p, off!(req_res)).unwrap_or(0);
    let file: KPtr = read(p, off!(req_file)).unwrap_or(core::ptr::null());
    let op = match r.class {
        CLASS_FSYNC if r.sync_flags & IORING_FSYNC_DATASYNC != 0 => SyncOp::Fdatasync,
        CLASS_FSYNC => SyncOp::Fsync,
        _ => SyncOp::SyncFileRange,
    };
    if r.next_sync != 0 {
        sync_may_start(r.next_sync);
    }
    let mut enter = r.enter_ns;
    if enter == 0 {
        // Neither queued to a worker nor linked after a traced request: it may have started
        // as early as its submission (no write after that is credited to it).
        enter = r.submit_ns;
        if op != SyncOp::SyncFileRange {
            bump_epoch();
        }
    }
    let inode = file_inode(file);
    let tracked = inode.filter(|i| i.tracked());
    if let Some(i) = tracked {
        // Its slot first (a file synced before it is written has none): the record carries
        // the slot's counters. Named in a tail call after the record (as `sys_exit_sync`
        // does): the path walk here made this program slow to verify.
        let _ = file_slot(&i.key);
        if r.unordered != 0 {
            emit_unordered(&i.key, op == SyncOp::Fdatasync, r.unordered);
        }
    }
    emit_file_sync(op, res as i64, enter, inode);
    if tracked.is_some() {
        unsafe { URING_TAILS.tail_call(&ctx, TAIL_NAME) };
    }
    0
}

/// Tail of `uring_complete_sync`: sends the synced file's name if it was never sent (opened
/// before tracing, never written).
#[raw_tracepoint]
pub fn uring_complete_name(ctx: RawTracePointContext) -> i32 {
    let req: u64 = ctx.arg(1);
    let file: KPtr = read(req as KPtr, off!(req_file)).unwrap_or(core::ptr::null());
    if let Some(i) = file_inode(file).filter(|i| i.tracked()) {
        name_on_first_sight(file, &i.key);
    }
    0
}

/// Tail of `uring_complete` for IORING_OP_OPENAT/OPENAT2: the `Open` record openat(2) sends.
/// The new descriptor is in the submitting process's table, which its io workers share.
#[raw_tracepoint]
pub fn uring_complete_open(ctx: RawTracePointContext) -> i32 {
    let req: u64 = ctx.arg(1);
    if URING_REQS.remove(req).is_err() {
        return 0;
    }
    let p = req as KPtr;
    let cmd = off!(req_file);
    // A fixed-file install returns 0, not a descriptor.
    if read::<u32>(p, cmd + off!(open_file_slot)).unwrap_or(1) != 0 {
        return 0;
    }
    let res: i32 = read(p, off!(req_res)).unwrap_or(-1);
    // `open_how.flags` keeps O_TRUNC (the file's f_flags lose it at open).
    let how_flags: u64 = read(p, cmd + off!(open_how)).unwrap_or(0);
    // No user stack: an io worker runs the request (the null context takes none).
    emit_open(
        res as i64,
        || (how_flags as u32) & O_TRUNC,
        core::ptr::null_mut(),
    )
}

#[inline(always)]
fn emit_unordered(key: &fsync_trace_common::FileKey, datasync: bool, writes: u32) {
    let Some(mut entry) = EVENTS.reserve::<UringRecord>(0) else {
        count_lost(names::LOST_RINGBUF_FULL);
        return;
    };
    let r = entry.as_mut_ptr();
    unsafe {
        fill_header(&raw mut (*r).hdr, RecordKind::Uring);
        (*r).file = *key;
        (*r).what = URING_FSYNC_UNORDERED;
        (*r).datasync = datasync as u32;
        (*r).unordered_writes = writes;
        (*r)._pad = 0;
    }
    entry.submit(wakeup_flags());
}
