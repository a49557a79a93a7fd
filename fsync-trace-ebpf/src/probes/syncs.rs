//! sys_exit of fsync, fdatasync, msync, sync, syncfs, sync_file_range: one record per call with
//! its latency and result.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
    EbpfContext,
};
use fsync_trace_common::{names, syscalls as nr, RecordKind, SyncOp, SyncRecord, S_IFREG};

use super::syscalls::cached_tracked_file;
use crate::{
    kernel::{current_task_btf, file_inode, load_btf, task_file, KPtr},
    maps::{config, count_lost, CONFIG, EVENTS, INFLIGHT_SYNCS, SYNC_RECORD, SYS_EXIT_TAILS},
    slots::file_slot,
    state::{clear_sync_record, emit_stack, fill_header, fill_sync_counters, wakeup_flags},
};

#[raw_tracepoint]
pub fn sys_exit_sync(ctx: RawTracePointContext) -> i32 {
    // BTF-typed task and saved registers: plain loads instead of helper reads (see sys_exit).
    let task = current_task_btf();
    let regs = unsafe { generated::bpf_task_pt_regs(task as *mut _) } as KPtr;
    let ret: i64 = ctx.arg(1);
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(inflight) = (unsafe { INFLIGHT_SYNCS.get(tid) }).copied() else {
        return 0;
    };
    let _ = INFLIGHT_SYNCS.remove(tid);
    let op = match inflight.nr {
        nr::FSYNC => SyncOp::Fsync,
        nr::FDATASYNC => SyncOp::Fdatasync,
        nr::MSYNC => SyncOp::Msync,
        nr::SYNC => SyncOp::Sync,
        nr::SYNCFS => SyncOp::Syncfs,
        nr::SYNC_FILE_RANGE => SyncOp::SyncFileRange,
        _ => return 0,
    };
    let (arg0, arg1, arg2, arg3): (u64, u64, u64, u64) = unsafe {
        (
            load_btf(regs, nr::REGS_DI),
            load_btf(regs, nr::REGS_SI),
            load_btf(regs, nr::REGS_DX),
            load_btf(regs, nr::REGS_R10),
        )
    };
    // The file synced through a descriptor: the one this CPU last wrote (the usual
    // write-then-fsync: a tracked regular file with a slot and a name, no inode reads), or
    // resolved here, and named first if it never was (opened before tracing, never written).
    let file = match op {
        SyncOp::Msync | SyncOp::Sync => None,
        _ => task_file(task, arg0 as i32 as i64),
    };
    let cached = file.and_then(cached_tracked_file);
    let inode = match cached {
        Some(_) => None,
        None => file.and_then(file_inode),
    };
    // Resolved here, so not written on this CPU since the last close anywhere: it may never
    // have been named (opened before tracing, never written). Named in a tail call at the end.
    let may_need_name = file.is_some() && inode.is_some_and(|i| i.tracked());
    if may_need_name {
        // Its slot first (a file synced before it is written has none yet): the record
        // carries the slot's counters.
        if let Some(i) = inode {
            let _ = file_slot(&i.key);
        }
    }
    // The synced file's counters now: what this sync covered (a tracked file only).
    let tracked_key = match cached {
        Some(key) => Some(key),
        None => inode.filter(|i| i.tracked()).map(|i| i.key),
    };
    // Built in a per-CPU scratch record and copied into the ring buffer at the end: holding a
    // reservation across these branches made the verifier explore too many states (seconds of
    // load time on 6.18, refused as too complex on 6.1).
    let Some(r) = SYNC_RECORD.get_ptr_mut(0) else {
        return 0;
    };
    unsafe {
        fill_header(&raw mut (*r).hdr, RecordKind::Sync);
        clear_sync_record(r);
        (*r).op = op as u32;
        (*r).ret = ret;
        (*r).enter_ns = inflight.enter_ns;
        fill_sync_counters(r, tracked_key);
        match op {
            SyncOp::Msync => {
                (*r).addr = arg0;
                (*r).len = arg1;
                (*r).flags = arg2;
            }
            SyncOp::Sync => {}
            _ => {
                (*r).fd = arg0 as i32;
                if op == SyncOp::SyncFileRange {
                    (*r).addr = arg1;
                    (*r).len = arg2;
                    (*r).flags = arg3;
                }
                if let Some(key) = cached {
                    (*r).file = key;
                    (*r).file_mode = S_IFREG;
                    (*r).durable_fs = 1;
                } else if let Some(inode) = inode {
                    (*r).file = inode.key;
                    (*r).file_mode = inode.mode;
                    (*r).durable_fs = inode.tracked() as u32;
                }
            }
        }
    }
    // A failing sync becomes an `fsync_error` finding, and any sync after it can be a retry
    // (`fsync_retry_after_error`): their user stacks, sent just before the record. Before any
    // failure no sync takes one, so the fsync-bound path stays as it was. Taken here, after
    // the branches above, so the verifier does not carry a "stack or not" state through them.
    if ret < 0 || config(names::CONFIG_SYNC_FAILED) != 0 {
        if ret < 0 {
            if let Some(p) = CONFIG.get_ptr_mut(names::CONFIG_SYNC_FAILED) {
                unsafe { core::ptr::write_volatile(p, 1) };
            }
        }
        let stack = emit_stack(ctx.as_ptr());
        unsafe { core::ptr::write_volatile(&raw mut (*r).hdr.stack, stack) };
    }
    if EVENTS
        .output::<SyncRecord>(unsafe { &*r }, wakeup_flags())
        .is_err()
    {
        count_lost(names::LOST_RINGBUF_FULL);
    }
    if may_need_name {
        // Does not return if the call is made; `sys_exit_name` checks whether it was named.
        unsafe { SYS_EXIT_TAILS.tail_call(&ctx, names::TAIL_NAME) };
    }
    0
}
