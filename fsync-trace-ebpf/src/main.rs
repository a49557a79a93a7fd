//! fsync-trace kernel side: thin programs that filter by traced process first, count writes per
//! file in `FILE_STATS`, and send a record only when something changes (a file became dirty, a
//! sync finished, a directory entry changed...).
//!
//! Tiers: this object holds the tracepoint tier (raw syscall tracepoints plus scheduler and
//! writeback tracepoints) and the function-level tiers (`probes/fentry.rs`, `probes/kprobe.rs`)
//! that call the same `state` helpers, so userspace cannot tell them apart. Userspace loads only
//! the programs of the tier it chose.
#![no_std]
#![no_main]
// Atomic add without fetch (BPF_XADD) is available on every BPF CPU version; core's atomics
// are not exposed for the bpf target, so use the intrinsic directly.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod extent;
mod kernel;
mod maps;
mod probes;
mod slots;
mod stack;
mod state;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that can reach a real panic; this is never called.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
