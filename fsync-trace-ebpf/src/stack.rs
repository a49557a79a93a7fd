//! User stacks (`state::emit_stack`): one `Stack` record per act that can become a finding.
//!
//! A stack costs two `bpf_get_stack` walks: raw addresses, then build id + file offset per
//! frame (for a process gone before userspace reads its /proc/PID/maps). A program dirties
//! its files from a few call sites again and again (fsync-bound: every write is a first
//! dirtying), so the second walk is taken once per (process, stack): `STACKS_SENT` remembers
//! the stacks (a hash of their frames) each process has sent with build ids, and a repeated
//! one is sent cut before `build_ids` with `STACK_BUILD_IDS_SENT`; userspace reuses the build
//! ids of the earlier one. Measured on fsync-bound (6.18 here): the build-id walk cost about
//! as much as the first walk (1.3-2 us each).
//!
//! The first walk follows frame pointers from the user `rbp`. In a program built without them
//! (most distribution binaries, Rust's release builds) `rbp` is just another register: the walk
//! gives the first frame (the user instruction pointer) and then reads at `rbp`, usually
//! faulting, for 1.3-1.7 us. So a walk is skipped when it cannot find more than that frame:
//! `rbp` does not point just above the stack pointer (where a frame chain would start), and
//! the last [`LONE_WALKS_BEFORE_SKIPPING`] walks this process made from such an `rbp` gave
//! the first frame alone. Then `ips` is the instruction pointer, as the walk gives. Every
//! [`WALK_AGAIN_AFTER`] skips the walk is taken again to check: a kernel that unwinds without
//! frame pointers gives more frames, and the process walks again until its walks are lone
//! again. (A walk from an `rbp` that happens to point at readable memory reads "frames" there:
//! garbage the skipped stack leaves out.) The call site itself comes from the words at the
//! stack pointer, read either way.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated},
    macros::map,
    maps::LruHashMap,
};
use core::mem::size_of;
use fsync_trace_common::{
    names, syscalls, BuildIdFrame, RecordKind, StackRecord, StackSentKey, BUILD_ID_VALID,
    STACK_BUILD_IDS_SENT, STACK_FRAMES, STACK_SP_WORDS, STACK_WALK_SKIPPED,
    STACK_WITHOUT_BUILD_IDS_LEN,
};

use crate::{
    kernel::{current_task_btf, load_btf, KPtr},
    maps::{count_lost, EVENTS, STACK_RECORD},
    state::{wakeup_flags, Ctx},
};

/// What the stacks of a process taught (`STACK_PROCS`).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct StackProc {
    /// When its first stack was taken: its incarnation.
    incarnation: u64,
    /// The last address walks begun at an `rbp` that cannot start a frame chain, counted while
    /// they gave the first frame alone (up to [`LONE_WALKS_BEFORE_SKIPPING`]); 0 after one gave
    /// more.
    lone_walks: u32,
    /// Walks skipped since the last one taken.
    skipped: u32,
}

/// Lone-frame walks in a row a process makes before its walks from an `rbp` that starts no
/// chain are skipped.
const LONE_WALKS_BEFORE_SKIPPING: u32 = 4;
/// Skipped walks after which one is taken again, to check it is still lone.
const WALK_AGAIN_AFTER: u32 = 64;
/// How far above the stack pointer a frame chain may start: a frame pointer beyond this (or
/// below the stack pointer) is not one. A thread stack is 8 MiB by default.
const FRAME_POINTER_REACH: u64 = 64 << 20;

/// Each process's incarnation and walks. Deleted at its exit and at an exec
/// (`forget_process`), so a reused pid, or a process running a new program, starts a new
/// incarnation and never matches the `STACKS_SENT` entries (or the walks) of the process or
/// program before it. LRU: an evicted entry only starts a new incarnation (its stacks are
/// sent with build ids again).
#[map]
pub static STACK_PROCS: LruHashMap<u32, StackProc> = LruHashMap::with_max_entries(8192, 0);

/// Stacks sent with their build ids, by process incarnation and frames (value unused). LRU: an
/// evicted stack is sent in full again, which is only its old cost.
#[map]
pub static STACKS_SENT: LruHashMap<StackSentKey, u8> = LruHashMap::with_max_entries(16384, 0);

/// `bpf_get_stack` flag: the user stack, not the kernel's.
const BPF_F_USER_STACK: u64 = 1 << 8;
/// `bpf_get_stack` flag: frames as (build id, file offset).
const BPF_F_USER_BUILD_ID: u64 = 1 << 11;

/// Process `tgid` exited (its pid may be reused) or exec'd (a new program).
#[inline(always)]
pub fn forget_process(tgid: u32) {
    let _ = STACK_PROCS.remove(tgid);
}

/// The 64-bit FNV-1a offset basis and prime.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over the 64-bit words of the frames (the unused tail is zero, so the whole array is
/// hashed without a data-dependent bound).
#[inline(always)]
fn hash_frames(ips: &[u64; STACK_FRAMES]) -> u64 {
    let mut h = FNV_OFFSET;
    for ip in ips {
        h = (h ^ *ip).wrapping_mul(FNV_PRIME);
    }
    h
}

/// [`hash_frames`] of a walk that gave `ip` alone (the zeros after it only multiply).
#[inline(always)]
fn hash_lone_frame(ip: u64) -> u64 {
    let mut h = (FNV_OFFSET ^ ip).wrapping_mul(FNV_PRIME);
    for _ in 1..STACK_FRAMES {
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Process `tgid`'s entry in `STACK_PROCS`, made (a new incarnation) if it has none.
#[inline(always)]
fn stack_proc(tgid: u32) -> Option<*mut StackProc> {
    if let Some(p) = STACK_PROCS.get_ptr_mut(tgid) {
        return Some(p);
    }
    let fresh = StackProc {
        // SAFETY: a helper without arguments.
        incarnation: unsafe { bpf_ktime_get_ns() },
        lone_walks: 0,
        skipped: 0,
    };
    let _ = STACK_PROCS.insert(tgid, fresh, 0);
    STACK_PROCS.get_ptr_mut(tgid)
}

/// True if the build-id walk placed each of the `frames` frames in a file.
///
/// # Safety
/// `r` is this CPU's scratch record.
#[inline(always)]
unsafe fn all_build_ids(r: *const StackRecord, frames: u32) -> bool {
    // SAFETY: reads of the scratch record.
    unsafe {
        if core::ptr::read_volatile(&raw const (*r).build_id_frames) != frames {
            return false;
        }
        let mut ok = true;
        for (i, f) in (*r).build_ids.iter().enumerate() {
            if (i as u32) < frames && f.status != BUILD_ID_VALID {
                ok = false;
            }
        }
        ok
    }
}

/// Builds and sends the current thread's user stack (see `state::emit_stack`): 1 if sent.
#[inline(always)]
pub fn emit(ctx: Ctx) -> u32 {
    let Some(r) = STACK_RECORD.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: `r` is this CPU's scratch record; `ctx` is the calling program's context.
    unsafe {
        // The header without `comm` and `cgroup_id` (the reader takes a stack only as its thread's
        // next record's).
        let pid_tgid = bpf_get_current_pid_tgid();
        let tgid = (pid_tgid >> 32) as u32;
        core::ptr::write_volatile(&raw mut (*r).hdr.kind, RecordKind::Stack as u32);
        core::ptr::write_volatile(&raw mut (*r).hdr.tgid, tgid);
        core::ptr::write_volatile(&raw mut (*r).hdr.tid, pid_tgid as u32);
        core::ptr::write_volatile(&raw mut (*r).hdr.stack, 0);
        core::ptr::write_volatile(&raw mut (*r).hdr.ts_ns, bpf_ktime_get_ns());
        core::ptr::write_volatile(&raw mut (*r).hdr.comm, [0; 16]);
        core::ptr::write_volatile(&raw mut (*r).hdr.cgroup_id, 0);
        let Some(proc) = stack_proc(tgid) else {
            return 0;
        };
        // The user registers: where a frame chain would start, and the first frame.
        let task = current_task_btf();
        let regs = generated::bpf_task_pt_regs(task as *mut _) as KPtr;
        let sp: u64 = load_btf(regs, syscalls::REGS_SP);
        let bp: u64 = load_btf(regs, syscalls::REGS_BP);
        let ip: u64 = load_btf(regs, syscalls::REGS_IP);
        // `cs` is the low 16 bits of its word (FRED keeps more there).
        let cs = load_btf::<u64>(regs, syscalls::REGS_CS) & 0xffff;
        // A compat task's walk reads 4-byte frames from other registers: always walked.
        let no_chain = cs == syscalls::USER64_CS && (bp < sp || bp - sp >= FRAME_POINTER_REACH);
        let lone_walks = core::ptr::read_volatile(&raw const (*proc).lone_walks);
        let skipped = core::ptr::read_volatile(&raw const (*proc).skipped);
        let skip =
            no_chain && lone_walks >= LONE_WALKS_BEFORE_SKIPPING && skipped < WALK_AGAIN_AFTER;
        let (frames, hash) = if skip {
            core::ptr::write_volatile(&raw mut (*proc).skipped, skipped + 1);
            // What the walk gives here: the instruction pointer (the reader takes no more; the
            // rest of `ips` is left as it was).
            core::ptr::write_volatile(&raw mut (*r).ips[0], ip);
            (1, hash_lone_frame(ip))
        } else {
            let n = generated::bpf_get_stack(
                ctx,
                (&raw mut (*r).ips).cast(),
                (STACK_FRAMES * 8) as u32,
                BPF_F_USER_STACK,
            );
            let frames = if n > 0 { (n as u32) / 8 } else { 0 };
            if no_chain && frames > 0 {
                let lone = frames == 1 && core::ptr::read_volatile(&raw const (*r).ips[0]) == ip;
                let next = if lone {
                    (lone_walks + 1).min(LONE_WALKS_BEFORE_SKIPPING)
                } else {
                    0
                };
                core::ptr::write_volatile(&raw mut (*proc).lone_walks, next);
                core::ptr::write_volatile(&raw mut (*proc).skipped, 0);
            }
            (frames, hash_frames(&(*r).ips))
        };
        core::ptr::write_volatile(&raw mut (*r).frames, frames);
        let key = StackSentKey {
            tgid,
            frames,
            incarnation: core::ptr::read_volatile(&raw const (*proc).incarnation),
            hash,
        };
        let skipped_flag = if skip { STACK_WALK_SKIPPED } else { 0 };
        let sent_before = frames > 0 && STACKS_SENT.get(key).is_some();
        if sent_before {
            core::ptr::write_volatile(&raw mut (*r).build_id_frames, 0);
            core::ptr::write_volatile(&raw mut (*r).flags, STACK_BUILD_IDS_SENT | skipped_flag);
        } else {
            let n = generated::bpf_get_stack(
                ctx,
                (&raw mut (*r).build_ids).cast(),
                (STACK_FRAMES * size_of::<BuildIdFrame>()) as u32,
                BPF_F_USER_STACK | BPF_F_USER_BUILD_ID,
            );
            core::ptr::write_volatile(
                &raw mut (*r).build_id_frames,
                if n > 0 {
                    (n as u32) / size_of::<BuildIdFrame>() as u32
                } else {
                    0
                },
            );
            core::ptr::write_volatile(&raw mut (*r).flags, skipped_flag);
        }
        // The wrapper's caller: its return address is at (or near) the user stack pointer.
        let read = generated::bpf_probe_read_user(
            (&raw mut (*r).sp_words).cast(),
            (STACK_SP_WORDS * 8) as u32,
            sp as *const _,
        );
        core::ptr::write_volatile(
            &raw mut (*r).sp_words_read,
            if read == 0 { STACK_SP_WORDS as u32 } else { 0 },
        );
        // No wakeup of its own (a wakeup per entry of a storm costs the traced syscalls): a
        // process gone before the reader runs is placed through the build ids.
        let len = if sent_before {
            STACK_WITHOUT_BUILD_IDS_LEN
        } else {
            size_of::<StackRecord>()
        };
        // SAFETY: `len` is at most the record's size.
        let bytes = core::slice::from_raw_parts(r.cast::<u8>().cast_const(), len);
        if EVENTS.output::<[u8]>(bytes, wakeup_flags()).is_err() {
            count_lost(names::LOST_RINGBUF_FULL);
            return 0;
        }
        // Only once the build ids are on their way (a lost record must not make later stacks
        // rely on it), and only if every frame got its build id: a walk that could not take
        // the process's mmap lock (or read a file's build id) gives raw addresses, and a repeat
        // must not be left with those where its own walk might do better.
        if !sent_before && frames > 0 && all_build_ids(r, frames) {
            let _ = STACKS_SENT.insert(key, 0, 0);
        }
    }
    1
}
