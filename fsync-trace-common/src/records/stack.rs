//! User stacks: the record sent before an act that can become a finding, and the key of the
//! stacks a process already sent with their build ids.

use super::{RecordHeader, HEADER_BYTES};

/// Return addresses kept per user stack (innermost first).
pub const STACK_FRAMES: usize = 24;
/// Words read at the user stack pointer: a libc syscall wrapper keeps no frame pointer, so
/// the frame-pointer walk skips its caller; that caller's return address is among these.
pub const STACK_SP_WORDS: usize = 32;

/// The user stack of a thread at an act that can become a finding (a file's first dirtying,
/// a directory entry change, a failing sync), sent just before the record of that act, which
/// has `RecordHeader::stack` set. Never sent per write: only with those records.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StackRecord {
    /// Header: the thread (`stack` is 0 here).
    pub hdr: RecordHeader,
    /// Valid entries in `ips` (0 if the kernel could not walk the stack).
    pub frames: u32,
    /// Valid entries in `sp_words` (0 if the user stack could not be read).
    pub sp_words_read: u32,
    /// Valid entries in `build_ids` (the same walk again, so entry `i` is frame `i`).
    pub build_id_frames: u32,
    /// [`STACK_BUILD_IDS_SENT`], [`STACK_WALK_SKIPPED`] or 0. Was padding.
    pub flags: u32,
    /// `bpf_get_stack(BPF_F_USER_STACK)`: the user instruction pointer, then the return
    /// addresses found by following frame pointers.
    pub ips: [u64; STACK_FRAMES],
    /// The first words at the user stack pointer (see [`STACK_SP_WORDS`]).
    pub sp_words: [u64; STACK_SP_WORDS],
    /// `bpf_get_stack(BPF_F_USER_STACK | BPF_F_USER_BUILD_ID)`: each frame as the build id of
    /// the file it is in and its offset there, which the kernel resolves from the process's
    /// mappings at once. A short-lived process is often gone before userspace reads its
    /// `/proc/PID/maps`; its frames are still placed through these.
    pub build_ids: [BuildIdFrame; STACK_FRAMES],
}

/// [`StackRecord::flags`]: this process sent a stack with these very frames (`ips`) and their
/// build ids before, so the kernel skipped the build-id walk and cut the record before
/// `build_ids` ([`STACK_WITHOUT_BUILD_IDS_LEN`]): the reader takes them from that earlier stack.
pub const STACK_BUILD_IDS_SENT: u32 = 1;

/// [`StackRecord::flags`]: the kernel did not walk the frame pointers: the user frame pointer
/// could not start a frame chain (not just above the stack pointer) and this process's walks
/// from such a pointer had given the first frame alone, so `ips` is that frame (the user
/// instruction pointer), as the walk would have given (see `fsync-trace-ebpf/src/stack.rs`).
pub const STACK_WALK_SKIPPED: u32 = 2;

/// Bytes of a [`StackRecord`] sent with [`STACK_BUILD_IDS_SENT`]: the record cut before
/// `build_ids` (512 of 1,280 bytes). The reader zero-fills the rest.
pub const STACK_WITHOUT_BUILD_IDS_LEN: usize = core::mem::offset_of!(StackRecord, build_ids);

/// Key of `STACKS_SENT`: a stack (hash of its frames) a process sent with its build ids. The
/// process is named by its tgid and its incarnation (`STACK_PROCS`), so a reused pid never
/// finds the stacks of the process that had it before.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackSentKey {
    /// The process (tgid).
    pub tgid: u32,
    /// Frames in the stack.
    pub frames: u32,
    /// `STACK_PROCS[tgid]`: when the process's first stack was taken (`bpf_ktime_get_ns`).
    pub incarnation: u64,
    /// A 64-bit hash of the frames' addresses.
    pub hash: u64,
}

/// The kernel's `struct bpf_stack_build_id`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BuildIdFrame {
    /// [`BUILD_ID_VALID`]: `build_id` and `offset_or_ip` (an offset in that file) are set;
    /// else `offset_or_ip` is the raw address, or the entry is empty.
    pub status: i32,
    /// The ELF build id (GNU note), padded with zeros.
    pub build_id: [u8; 20],
    /// The file offset (if valid) or the instruction pointer.
    pub offset_or_ip: u64,
}

/// [`BuildIdFrame::status`]: build id and file offset are valid.
pub const BUILD_ID_VALID: i32 = 1;

// Layout checks: read from raw bytes on the other side of the boundary.
const _: () = assert!(
    core::mem::size_of::<StackRecord>()
        == HEADER_BYTES + 16 + 8 * (STACK_FRAMES + STACK_SP_WORDS) + 32 * STACK_FRAMES
);
const _: () = assert!(core::mem::size_of::<BuildIdFrame>() == 32);
const _: () =
    assert!(STACK_WITHOUT_BUILD_IDS_LEN == core::mem::size_of::<StackRecord>() - 32 * STACK_FRAMES);
const _: () = assert!(core::mem::size_of::<StackSentKey>() == 24);
