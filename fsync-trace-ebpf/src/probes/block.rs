//! Block layer: did a sync reach the device? Every cache flush (`REQ_OP_FLUSH`) and FUA write
//! issued on any block device is sent with its device; userspace counts those that fall inside
//! the syncs of traced files on that device (jbd2 or a kworker often issues them on the syncing
//! task's behalf, so the issuing task is not filtered). Everything else returns after one read.
use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::raw_tracepoint, programs::RawTracePointContext};
use fsync_trace_common::{names, DeviceFlushRecord, RecordKind, DEVICE_FLUSH, DEVICE_FUA_WRITE};

use crate::{
    kernel::{read, KPtr},
    maps::{count_lost, off, EVENTS},
    state::wakeup_flags,
};

/// `REQ_OP_MASK`: the operation in the low 8 bits of `cmd_flags` (stable since 4.10).
const REQ_OP_MASK: u32 = 0xff;
/// `REQ_OP_WRITE`, `REQ_OP_FLUSH`.
const REQ_OP_WRITE: u32 = 1;
const REQ_OP_FLUSH: u32 = 2;

/// block_rq_issue(struct request *rq)
#[raw_tracepoint(tracepoint = "block_rq_issue")]
pub fn block_rq_issue(ctx: RawTracePointContext) -> i32 {
    if off!(block_ready) == 0 {
        return 0;
    }
    let rq: KPtr = ctx.arg(0);
    let Some(flags) = read::<u32>(rq, off!(request_cmd_flags)) else {
        return 0;
    };
    let what = match flags & REQ_OP_MASK {
        REQ_OP_FLUSH => DEVICE_FLUSH,
        REQ_OP_WRITE if flags & off!(req_fua) as u32 != 0 => DEVICE_FUA_WRITE,
        _ => return 0,
    };
    // The whole disk (a flush request carries no partition); userspace maps a file's
    // partition to its disk.
    let Some(q) = read::<KPtr>(rq, off!(request_q)) else {
        return 0;
    };
    let Some(disk) = read::<KPtr>(q, off!(queue_disk)) else {
        return 0;
    };
    let Some(part0) = read::<KPtr>(disk, off!(gendisk_part0)) else {
        return 0;
    };
    let Some(dev) = read::<u32>(part0, off!(bdev_bd_dev)) else {
        return 0;
    };
    let Some(mut entry) = EVENTS.reserve::<DeviceFlushRecord>(0) else {
        count_lost(names::LOST_RINGBUF_FULL);
        return 0;
    };
    let r = entry.as_mut_ptr();
    // SAFETY: `r` is the reserved record, written in full before submit.
    unsafe {
        // The header without the task (tgid, tid, comm, cgroup id: zero): the issuing task is
        // jbd2 or a kworker as often as the syncing one, and the reader keeps only the time
        // and the device, so three helper calls per flush are saved. One store per field, so
        // the zeroes do not become a byte loop.
        let h = &raw mut (*r).hdr;
        core::ptr::write_volatile(&raw mut (*h).kind, RecordKind::DeviceFlush as u32);
        core::ptr::write_volatile(&raw mut (*h).tgid, 0);
        core::ptr::write_volatile(&raw mut (*h).tid, 0);
        core::ptr::write_volatile(&raw mut (*h).stack, 0);
        core::ptr::write_volatile(&raw mut (*h).ts_ns, bpf_ktime_get_ns());
        core::ptr::write_volatile((&raw mut (*h).comm).cast::<[u64; 2]>(), [0; 2]);
        core::ptr::write_volatile(&raw mut (*h).cgroup_id, 0);
        (*r).dev = dev;
        (*r).what = what;
    }
    entry.submit(wakeup_flags());
    0
}
