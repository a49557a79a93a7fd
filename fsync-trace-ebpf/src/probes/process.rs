//! Process lifetime: follow forks of traced processes, forget the stacks of a process that execs,
//! report when a traced process is gone.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext,
};
use fsync_trace_common::{names, ExitRecord, ForkRecord, RecordKind};

use crate::{
    kernel::{read, KPtr},
    maps::{config, count_lost, off, EVENTS, TRACED_TGIDS},
    state::{bump_close_epoch, current_traced, fill_header, untrace},
};

/// sched_process_fork(struct task_struct *parent, struct task_struct *child)
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    if config(names::CONFIG_FOLLOW_FORKS) == 0 || !current_traced() {
        return 0;
    }
    let child: KPtr = ctx.arg(1);
    let Some(pid) = read::<u32>(child, off!(task_pid)) else {
        return 0;
    };
    let Some(tgid) = read::<u32>(child, off!(task_tgid)) else {
        return 0;
    };
    if pid != tgid {
        return 0; // a new thread of a traced process: already covered by its tgid
    }
    if TRACED_TGIDS.insert(tgid, 1, 0).is_err() {
        count_lost(names::LOST_TGID_MAP_FULL);
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<ForkRecord>(0) else {
        count_lost(names::LOST_RINGBUF_FULL);
        return 0;
    };
    let r = entry.as_mut_ptr();
    unsafe {
        fill_header(&raw mut (*r).hdr, RecordKind::Fork);
        (*r).child_tgid = tgid;
        (*r)._pad = 0;
    }
    entry.submit(0);
    0
}

/// sched_process_exit(struct task_struct *p): fires per thread; the process is gone when the
/// thread group's live count has reached zero (decremented before this tracepoint).
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    // Any exiting task may close the last descriptor of a file (traced or not).
    bump_close_epoch();
    if !current_traced() {
        return 0;
    }
    let task: KPtr = ctx.arg(0);
    let Some(signal) = read::<KPtr>(task, off!(task_signal)) else {
        return 0;
    };
    let Some(live) = read::<i32>(signal, off!(signal_live)) else {
        return 0;
    };
    if live != 0 {
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    crate::stack::forget_process(tgid);
    if super::wal::wal_enabled() {
        // A WAL write never followed by a send: the pid may be reused.
        let _ = super::wal::WAL_PENDING.remove(tgid);
    }
    let Some(mut entry) = EVENTS.reserve::<ExitRecord>(0) else {
        count_lost(names::LOST_RINGBUF_FULL);
        untrace(tgid);
        return 0;
    };
    let r = entry.as_mut_ptr();
    unsafe { fill_header(&raw mut (*r).hdr, RecordKind::Exit) };
    entry.submit(0);
    untrace(tgid);
    0
}

/// sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm): the
/// process runs a new program (same tgid, even when a non-leader thread called exec). The
/// frames of its earlier stacks may now hold other code at the same addresses, so its stacks
/// must be walked for build ids again: it starts a new incarnation in `stack.rs`.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(_ctx: RawTracePointContext) -> i32 {
    if !current_traced() {
        return 0;
    }
    crate::stack::forget_process((bpf_get_current_pid_tgid() >> 32) as u32);
    0
}
