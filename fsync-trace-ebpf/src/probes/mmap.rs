//! sys_exit of mmap: shared, writable file mappings (stores through them dirty the file, and
//! msync ranges map back to files through them).
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use fsync_trace_common::{mman, names, syscalls as nr, MmapRecord, RecordKind, FILE_FLAG_MAPPED};

use crate::{
    kernel::{current_file, file_inode, reg, KPtr},
    maps::{count_lost, CONFIG, EVENTS},
    slots::file_counters,
    state::{atomic_or, fill_header, name_on_first_sight},
};

#[raw_tracepoint]
pub fn sys_exit_mmap(ctx: RawTracePointContext) -> i32 {
    let ret: i64 = ctx.arg(1);
    if ret < 0 && ret > -4096 {
        return 0;
    }
    let regs: KPtr = ctx.arg(0);
    let prot = reg(regs, nr::REGS_DX);
    let flags = reg(regs, nr::REGS_R10);
    let map_type = flags & mman::MAP_TYPE;
    if prot & mman::PROT_WRITE == 0
        || (map_type != mman::MAP_SHARED && map_type != mman::MAP_SHARED_VALIDATE)
    {
        return 0;
    }
    let fd = reg(regs, nr::REGS_R8) as i32;
    let Some(file) = current_file(fd as i64) else {
        return 0;
    };
    let Some(inode) = file_inode(file) else {
        return 0;
    };
    if !inode.is_reg() || !inode.tracked() {
        return 0;
    }
    name_on_first_sight(file, &inode.key);
    if let Some(c) = file_counters(&inode.key) {
        // SAFETY: `c` is this file's FILE_STATS value.
        unsafe { atomic_or(&raw mut (*c).flags, FILE_FLAG_MAPPED) };
        if let Some(any) = CONFIG.get_ptr_mut(names::CONFIG_ANY_MAPPED) {
            unsafe { *any = 1 };
        }
    }
    let Some(mut entry) = EVENTS.reserve::<MmapRecord>(0) else {
        count_lost(names::LOST_RINGBUF_FULL);
        return 0;
    };
    let r = entry.as_mut_ptr();
    unsafe {
        fill_header(&raw mut (*r).hdr, RecordKind::Mmap);
        (*r).file = inode.key;
        (*r).addr = ret as u64;
        (*r).len = reg(regs, nr::REGS_SI);
        (*r).prot = prot;
        (*r).flags = flags;
        (*r).pgoff = reg(regs, nr::REGS_R9);
        (*r).fd = fd;
        (*r)._pad = 0;
    }
    entry.submit(0);
    0
}
