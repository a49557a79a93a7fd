//! Names of maps, globals and programs in the eBPF object, shared so they are spelled once.

// Maps.
pub const TRACED_TGIDS: &str = "TRACED_TGIDS";
pub const FILE_STATS: &str = "FILE_STATS";
pub const FILE_SLOTS: &str = "FILE_SLOTS";
pub const INFLIGHT_SYNCS: &str = "INFLIGHT_SYNCS";
pub const EVENTS: &str = "EVENTS";
pub const LOST_EVENTS: &str = "LOST_EVENTS";
pub const CONFIG: &str = "CONFIG";
pub const SYS_EXIT_TAILS: &str = "SYS_EXIT_TAILS";
pub const SLOT_OWNERS: &str = "SLOT_OWNERS";
pub const FREE_SLOTS: &str = "FREE_SLOTS";

// Globals set at load time.
pub const OFFSETS_GLOBAL: &str = "OFFSETS";

// Tracepoint tier programs (raw tracepoints).
pub const PROG_SYS_ENTER: &str = "sys_enter";
pub const PROG_SYS_EXIT: &str = "sys_exit";
/// Sync syscall entry: one classic tracepoint program per syscall, named as its tracepoint in
/// the `syscalls` group (`PROG_SYS_ENTER` is the fallback when these cannot be attached).
pub const PROGS_SYNC_ENTER: [&str; 6] = [
    "sys_enter_fsync",
    "sys_enter_fdatasync",
    "sys_enter_msync",
    "sys_enter_sync",
    "sys_enter_syncfs",
    "sys_enter_sync_file_range",
];
pub const PROG_SYS_EXIT_OPEN: &str = "sys_exit_open";
pub const PROG_SYS_EXIT_NAMESPACE: &str = "sys_exit_namespace";
pub const PROG_SYS_EXIT_SYNC: &str = "sys_exit_sync";
pub const PROG_SYS_EXIT_MMAP: &str = "sys_exit_mmap";
pub const PROG_SYS_EXIT_NAME: &str = "sys_exit_name";
pub const PROG_PROCESS_FORK: &str = "sched_process_fork";
pub const PROG_PROCESS_EXIT: &str = "sched_process_exit";
pub const PROG_DIRTY_FOLIO: &str = "writeback_dirty_folio";
pub const PROG_WRITEBACK_INODE: &str = "writeback_single_inode";

// Function-level tiers (see `fsync-trace-ebpf/src/probes/functions.rs`): writes and in-kernel
// syncs from kernel functions. Program names are unique per tier; the kernel function a program
// hooks is chosen at load/attach time, so one program covers alternatives (vfs_writev or
// do_iter_write).
pub const INFLIGHT_CALLS: &str = "INFLIGHT_CALLS";
pub const PROG_FEXIT_WRITE: &str = "fexit_vfs_write";
pub const PROG_FEXIT_VECTORED_WRITE: &str = "fexit_vectored_write";
pub const PROG_FENTRY_FSYNC_RANGE: &str = "fentry_vfs_fsync_range";
pub const PROG_FEXIT_FSYNC_RANGE: &str = "fexit_vfs_fsync_range";
pub const PROG_KPROBE_WRITE: &str = "kprobe_vfs_write";
pub const PROG_KRETPROBE_WRITE: &str = "kretprobe_vfs_write";
pub const PROG_KPROBE_VECTORED_WRITE: &str = "kprobe_vectored_write";
pub const PROG_KRETPROBE_VECTORED_WRITE: &str = "kretprobe_vectored_write";
pub const PROG_KPROBE_FSYNC_RANGE: &str = "kprobe_vfs_fsync_range";
pub const PROG_KRETPROBE_FSYNC_RANGE: &str = "kretprobe_vfs_fsync_range";

/// Slots in [`SYS_EXIT_TAILS`]: the sys_exit dispatcher handles writes inline (the hot path)
/// and tail-calls one of these for everything else, keeping each program small for the verifier.
pub const TAIL_OPEN: u32 = 0;
pub const TAIL_NAMESPACE: u32 = 1;
pub const TAIL_SYNC: u32 = 2;
pub const TAIL_MMAP: u32 = 3;
/// A write found a file with no `Name` record yet: walk its path (kept out of the hot program).
pub const TAIL_NAME: u32 = 4;
pub const TAIL_SLOTS: u32 = 5;

/// Indices into the CONFIG array map.
pub const CONFIG_FOLLOW_FORKS: u32 = 0;
/// Global durability epoch: bumped at the entry of every durable-point syscall so the next write
/// to any file re-announces it as dirty (see `FileCounters::dirty_gen`).
pub const CONFIG_SYNC_EPOCH: u32 = 1;
/// `FN_*` bits: which facts function hooks deliver, so `sys_exit` does not count them again.
/// Zero in the tracepoint tier.
pub const CONFIG_FN_HOOKS: u32 = 3;
/// write(2) and pwrite64(2) are counted by a hook on vfs_write.
pub const FN_WRITE: u64 = 1;
/// writev(2), pwritev(2), pwritev2(2) are counted by a hook on the vectored write path.
pub const FN_VECTORED_WRITE: u64 = 2;
/// vfs_fsync_range is hooked (syncs from io_uring and other in-kernel callers are seen).
pub const FN_FSYNC_RANGE: u64 = 4;
/// Nonzero: trace every process but `CONFIG_SELF_TGID` (`--all`), ignoring TRACED_TGIDS.
pub const CONFIG_TRACE_ALL: u32 = 4;
/// The tracer's own tgid, never traced with `CONFIG_TRACE_ALL`.
pub const CONFIG_SELF_TGID: u32 = 5;
/// Bumped whenever any process may have freed an open file (`syscalls::may_free_files`, task
/// exit): invalidates every CPU's cache of the last written file.
pub const CONFIG_CLOSE_EPOCH: u32 = 6;
/// The next never-used slot of `FILE_STATS` (freed slots are reused first, from `FREE_SLOTS`).
pub const CONFIG_NEXT_FILE_SLOT: u32 = 7;
/// Nonzero once a traced process has mapped a tracked file shared and writable: until then the
/// writeback_dirty_folio hook (every page a write dirties) has nothing to count and returns at
/// once.
pub const CONFIG_ANY_MAPPED: u32 = 8;
/// Slots of `FILE_STATS` in this run (`--file-slots`; the slot maps are sized to it at load).
pub const CONFIG_FILE_SLOTS: u32 = 9;
/// Slots handed out so far, fresh or reused (userspace subtracts the ones it freed).
pub const CONFIG_SLOTS_ALLOCATED: u32 = 10;
/// Default number of files the kernel side can count (`--file-slots`).
pub const FILE_SLOTS_MAX: u32 = 262_144;
pub const CONFIG_SLOTS: u32 = 11;

/// Indices into the LOST_EVENTS per-CPU array.
pub const LOST_RINGBUF_FULL: u32 = 0;
pub const LOST_FILE_MAP_FULL: u32 = 1;
pub const LOST_INFLIGHT_MAP_FULL: u32 = 2;
pub const LOST_TGID_MAP_FULL: u32 = 3;
pub const LOST_SLOTS: u32 = 4;
