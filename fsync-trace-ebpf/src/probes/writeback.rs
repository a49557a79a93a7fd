//! Writeback tracepoints: pages of shared mappings dirtied by traced processes (how stores
//! through a mapping become visible), and the kernel flusher writing inodes back (recorded per
//! file; written back is not durable).
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext, EbpfContext};
use fsync_trace_common::{names, DIRTY_BY_MAPPED_STORE, EXTENT_UNKNOWN, FILE_FLAG_MAPPED};

use crate::{
    kernel::{inode_info, read, KPtr},
    maps::{config, off},
    slots::{existing_counters, existing_slot},
    state::{atomic_add, current_traced, mark_dirty},
};

/// writeback_dirty_folio(struct folio *folio, struct address_space *mapping)
#[raw_tracepoint(tracepoint = "writeback_dirty_folio")]
pub fn writeback_dirty_folio(ctx: RawTracePointContext) -> i32 {
    // Every write(2) dirties pages too: skip them all while no tracked file is mapped.
    if config(names::CONFIG_ANY_MAPPED) == 0 || !current_traced() {
        return 0;
    }
    let mapping: KPtr = ctx.arg(1);
    let Some(host) = read::<KPtr>(mapping, off!(mapping_host)) else {
        return 0;
    };
    let Some(inode) = inode_info(host) else {
        return 0;
    };
    let Some((slot, c)) = existing_slot(&inode.key) else {
        return 0;
    };
    unsafe {
        if (*c).flags & FILE_FLAG_MAPPED == 0 {
            return 0; // dirtied by write(2): already counted by the write path
        }
        let pages_before = (*c).mapped_dirty_pages;
        atomic_add(&raw mut (*c).mapped_dirty_pages, 1);
        let (writes, bytes) = ((*c).writes, (*c).bytes);
        mark_dirty(
            &inode.key,
            c,
            slot,
            writes,
            bytes,
            pages_before,
            DIRTY_BY_MAPPED_STORE,
            -1,
            // A store's offset is not followed (page granularity, and the folio would need
            // more reads): the segment's extent becomes unknown.
            0,
            EXTENT_UNKNOWN,
            false,
            // The store's user stack (this runs in the faulting task).
            ctx.as_ptr(),
        );
    }
    0
}

/// writeback_single_inode(struct inode *inode, struct writeback_control *wbc, unsigned long)
#[raw_tracepoint(tracepoint = "writeback_single_inode")]
pub fn writeback_single_inode(ctx: RawTracePointContext) -> i32 {
    let inode: KPtr = ctx.arg(0);
    let Some(info) = inode_info(inode) else {
        return 0;
    };
    let Some(c) = existing_counters(&info.key) else {
        return 0;
    };
    // SAFETY: `c` is this file's FILE_STATS value.
    unsafe { atomic_add(&raw mut (*c).kernel_writebacks, 1) };
    0
}
