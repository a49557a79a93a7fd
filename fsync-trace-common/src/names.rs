//! Names of maps, globals and programs in the eBPF object, shared so they are spelled once.

// Maps.
/// Map: process ids (tgids) being traced; userspace adds `-p` processes, the fork hook
/// their children.
pub const TRACED_TGIDS: &str = "TRACED_TGIDS";
/// Map: per-file [`FileCounters`](crate::FileCounters) (writes, bytes, mapped pages...), by slot.
pub const FILE_STATS: &str = "FILE_STATS";
/// Map: each file's ([`FileKey`](crate::FileKey)) slot in [`FILE_STATS`], given on first sight.
pub const FILE_SLOTS: &str = "FILE_SLOTS";
/// Map: sync syscalls between entry and exit ([`InflightSync`](crate::InflightSync)), by thread id.
pub const INFLIGHT_SYNCS: &str = "INFLIGHT_SYNCS";
/// Map: the ring buffer of records (state changes) from the kernel to userspace.
pub const EVENTS: &str = "EVENTS";
/// Map: per-CPU counts of what could not be recorded, by reason (`LOST_*` indices).
pub const LOST_EVENTS: &str = "LOST_EVENTS";
/// Map: small settings, epochs and slot counters, by `CONFIG_*` index.
pub const CONFIG: &str = "CONFIG";
/// Map: tail-call targets of the `sys_exit` dispatcher, by `TAIL_*` slot.
pub const SYS_EXIT_TAILS: &str = "SYS_EXIT_TAILS";
/// Map: which file claimed each [`FILE_STATS`] slot (keeps slot numbers unique across CPUs).
pub const SLOT_OWNERS: &str = "SLOT_OWNERS";
/// Map: queue of [`FILE_STATS`] slots userspace freed, handed out again before fresh ones.
pub const FREE_SLOTS: &str = "FREE_SLOTS";

// Globals set at load time.
/// Global: the [`KernelOffsets`](crate::KernelOffsets) (`OFFSETS`) userspace fills from BTF
/// before load.
pub const OFFSETS_GLOBAL: &str = "OFFSETS";
/// Global (read-only data) set at load: nonzero unless `--no-dirty-extent`. At 0 the verifier
/// drops every position read and extent store (the write path as without the feature).
pub const EXTENT_ENABLED_GLOBAL: &str = "EXTENT_ENABLED";

// Tracepoint tier programs (raw tracepoints).
/// Raw tracepoint `sys_enter`: fallback sync entry hook (runs for every syscall) when the
/// per-syscall tracepoints in [`PROGS_SYNC_ENTER`] cannot be attached.
pub const PROG_SYS_ENTER: &str = "sys_enter";
/// Raw tracepoint `sys_exit`: counts writes inline and tail-calls [`SYS_EXIT_TAILS`] for the other
/// syscall families.
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
/// Tail call ([`TAIL_OPEN`]): exit of open, openat, openat2 and creat; sends `Open` records.
pub const PROG_SYS_EXIT_OPEN: &str = "sys_exit_open";
/// Tail call ([`TAIL_NAMESPACE`]): exit of rename*, link*, unlink*, mkdir*, rmdir and symlink*;
/// sends `Namespace` records.
pub const PROG_SYS_EXIT_NAMESPACE: &str = "sys_exit_namespace";
/// Tail call ([`TAIL_SYNC`]): exit of the sync-family syscalls; sends `Sync` records (latency,
/// result).
pub const PROG_SYS_EXIT_SYNC: &str = "sys_exit_sync";
/// Tail call ([`TAIL_MMAP`]): exit of mmap; marks shared writable file mappings, sends `Mmap`
/// records.
pub const PROG_SYS_EXIT_MMAP: &str = "sys_exit_mmap";
/// Tail call ([`TAIL_NAME`]): walks the path of a written file never named yet; sends its
/// `Name` record.
pub const PROG_SYS_EXIT_NAME: &str = "sys_exit_name";
/// Tail of `sys_exit` for truncate, ftruncate and fallocate: counts the change per file and
/// announces the file as changed once per durability epoch.
pub const PROG_SYS_EXIT_TRUNCATE: &str = "sys_exit_truncate";
/// Tail of `sys_exit` for the metadata calls (chmod, chown, utimes, xattrs: every form):
/// counts the change per file and announces it once per durability epoch, or sends the path.
pub const PROG_SYS_EXIT_METADATA: &str = "sys_exit_metadata";
/// Raw tracepoint `sched_process_fork`: traces children of traced processes
/// ([`CONFIG_FOLLOW_FORKS`]).
pub const PROG_PROCESS_FORK: &str = "sched_process_fork";
/// Raw tracepoint `sched_process_exit`: sends `Exit` when a traced process's last thread exits.
pub const PROG_PROCESS_EXIT: &str = "sched_process_exit";
/// Raw tracepoint `sched_process_exec`: a traced process that execs is a new program, so the
/// stacks it sent with build ids (`STACKS_SENT`) no longer describe its code: it starts a new
/// stack incarnation.
pub const PROG_PROCESS_EXEC: &str = "sched_process_exec";
/// Raw tracepoint `writeback_dirty_folio`: counts pages of shared mappings dirtied by traced
/// stores.
pub const PROG_DIRTY_FOLIO: &str = "writeback_dirty_folio";
/// Raw tracepoint `writeback_single_inode`: counts the kernel flusher writing a file back.
pub const PROG_WRITEBACK_INODE: &str = "writeback_single_inode";
/// Raw tracepoint `block_rq_issue`: device cache flushes and FUA writes, per block device.
pub const PROG_BLOCK_RQ_ISSUE: &str = "block_rq_issue";

// io_uring (every tier; see `fsync-trace-ebpf/src/probes/uring.rs`).
/// Raw tracepoint `io_uring_submit_req` (`io_uring_submit_sqe` before 6.2): remembers traced
/// requests and flags a fsync not ordered after writes in flight.
pub const PROG_URING_SUBMIT: &str = "uring_submit";
/// Raw tracepoint `io_uring_queue_async_work`: a sync request starts (it always runs in an
/// io-wq worker): the durability epoch moves, as at a sync syscall's entry.
pub const PROG_URING_ASYNC: &str = "uring_async";
/// Raw tracepoint `io_uring_complete`: counts a finished write, sends a finished sync's record.
pub const PROG_URING_COMPLETE: &str = "uring_complete";
/// Tail call (slot 0 of [`URING_TAILS`]) of [`PROG_URING_COMPLETE`] for a finished fsync or
/// sync_file_range; sends its `Sync` record (and a `Uring` record for an unordered fsync).
pub const PROG_URING_COMPLETE_SYNC: &str = "uring_complete_sync";
/// Tail call (slot 1 of [`URING_TAILS`]) of [`PROG_URING_COMPLETE`] for a finished
/// IORING_OP_OPENAT/OPENAT2; sends its `Open` record.
pub const PROG_URING_COMPLETE_OPEN: &str = "uring_complete_open";
/// Tail call (slot 2 of [`URING_TAILS`]) of [`PROG_URING_COMPLETE`] for a finished
/// RENAMEAT/UNLINKAT/MKDIRAT/SYMLINKAT/LINKAT; sends its `Namespace` record if it succeeded.
pub const PROG_URING_COMPLETE_NAMESPACE: &str = "uring_complete_namespace";
/// Tail call (slot 3 of [`URING_TAILS`]) of [`PROG_URING_SUBMIT`] for those requests: builds
/// their `Namespace` record from the prepared request.
pub const PROG_URING_SUBMIT_NAMESPACE: &str = "uring_submit_namespace";
/// Tail call (slot 4 of [`URING_TAILS`]) of [`PROG_URING_COMPLETE_SYNC`]: sends the synced
/// file's `Name` record if it was never sent.
pub const PROG_URING_COMPLETE_NAME: &str = "uring_complete_name";
/// Map: tail-call targets of [`PROG_URING_COMPLETE`].
pub const URING_TAILS: &str = "URING_TAILS";
/// Map: traced io_uring requests between submission and completion, by `struct io_kiocb *`.
pub const URING_REQS: &str = "URING_REQS";
/// Map: io_uring writes in flight per inode, to tell an unordered fsync.
pub const URING_FILES: &str = "URING_FILES";
/// Map: per ring (`struct io_ring_ctx *`), the link chain its next request joins.
pub const URING_RINGS: &str = "URING_RINGS";

// Function-level tiers (see `fsync-trace-ebpf/src/probes/functions.rs`): writes and in-kernel
// syncs from kernel functions. Program names are unique per tier; the kernel function a program
// hooks is chosen at load/attach time, so one program covers alternatives (vfs_writev or
// do_iter_write).
/// Map: hooked kernel function calls between entry and return
/// ([`InflightCall`](crate::InflightCall)), by `inflight_call_key(tid, hook)`.
pub const INFLIGHT_CALLS: &str = "INFLIGHT_CALLS";
/// fentry tier: fexit on vfs_write (write, pwrite64); counts the write.
pub const PROG_FEXIT_WRITE: &str = "fexit_vfs_write";
/// fentry tier: fexit on the vectored write path (vfs_writev or do_iter_write: writev, pwritev,
/// pwritev2); counts the write.
pub const PROG_FEXIT_VECTORED_WRITE: &str = "fexit_vectored_write";
/// fentry tier: fentry on vfs_fsync_range; starts a sync no syscall record covers (io_uring...).
pub const PROG_FENTRY_FSYNC_RANGE: &str = "fentry_vfs_fsync_range";
/// fentry tier: fexit on vfs_fsync_range; sends that sync's `Sync` record.
pub const PROG_FEXIT_FSYNC_RANGE: &str = "fexit_vfs_fsync_range";
/// kprobe tier: kprobe on vfs_write; keeps the `struct file` argument for the return probe.
pub const PROG_KPROBE_WRITE: &str = "kprobe_vfs_write";
/// kprobe tier: kretprobe on vfs_write; counts the write.
pub const PROG_KRETPROBE_WRITE: &str = "kretprobe_vfs_write";
/// kprobe tier: kprobe on the vectored write path (vfs_writev or do_iter_write).
pub const PROG_KPROBE_VECTORED_WRITE: &str = "kprobe_vectored_write";
/// kprobe tier: kretprobe on the vectored write path; counts the write.
pub const PROG_KRETPROBE_VECTORED_WRITE: &str = "kretprobe_vectored_write";
/// kprobe tier: kprobe on vfs_fsync_range; starts a sync no syscall record covers (io_uring...).
pub const PROG_KPROBE_FSYNC_RANGE: &str = "kprobe_vfs_fsync_range";
/// kprobe tier: kretprobe on vfs_fsync_range; sends that sync's `Sync` record.
pub const PROG_KRETPROBE_FSYNC_RANGE: &str = "kretprobe_vfs_fsync_range";

/// Slots in [`SYS_EXIT_TAILS`]: the sys_exit dispatcher handles writes inline (the hot path)
/// and tail-calls one of these for everything else, keeping each program small for the verifier.
///
/// This slot: [`PROG_SYS_EXIT_OPEN`] (open, openat, openat2, creat).
pub const TAIL_OPEN: u32 = 0;
/// [`SYS_EXIT_TAILS`] slot of [`PROG_SYS_EXIT_NAMESPACE`] (calls that change directory entries).
pub const TAIL_NAMESPACE: u32 = 1;
/// [`SYS_EXIT_TAILS`] slot of [`PROG_SYS_EXIT_SYNC`] (sync-family syscalls).
pub const TAIL_SYNC: u32 = 2;
/// [`SYS_EXIT_TAILS`] slot of [`PROG_SYS_EXIT_MMAP`] (mmap).
pub const TAIL_MMAP: u32 = 3;
/// A write found a file with no `Name` record yet: walk its path (kept out of the hot program).
pub const TAIL_NAME: u32 = 4;
/// [`SYS_EXIT_TAILS`] slot of [`PROG_SYS_EXIT_TRUNCATE`] (truncate, ftruncate, fallocate).
pub const TAIL_TRUNCATE: u32 = 6;
/// [`SYS_EXIT_TAILS`] slot of [`PROG_SYS_EXIT_METADATA`] (chmod, chown, utimes, xattrs).
pub const TAIL_METADATA: u32 = 7;
/// Number of slots in [`SYS_EXIT_TAILS`].
pub const TAIL_SLOTS: u32 = 8;

/// Indices into the CONFIG array map.
///
/// This index: nonzero if children forked by traced processes are traced too (`-f`, always
/// with `--`).
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
/// Not a fact: the vectored write hook is on do_iter_write, whose `loff_t *pos` is its third
/// argument (vfs_writev's is its fourth). A high bit, apart from the facts.
pub const FN_VECTORED_POS_ARG2: u64 = 1 << 32;
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
/// Nonzero once a sync failed (set by the kernel): from then on every sync takes its user
/// stack, so a retry after the failure (a finding) has its call site too.
pub const CONFIG_SYNC_FAILED: u32 = 11;
/// Nonzero: take no user stacks (`--no-stacks`).
pub const CONFIG_NO_STACKS: u32 = 12;
/// Number of entries in the CONFIG map (one past the highest `CONFIG_*` index).
pub const CONFIG_SLOTS: u32 = 13;

/// Indices into the LOST_EVENTS per-CPU array.
///
/// This index: records dropped because [`EVENTS`] was full (`ring_buffer_full`).
pub const LOST_RINGBUF_FULL: u32 = 0;
/// [`LOST_EVENTS`] index: files that got no [`FILE_STATS`] slot, the table being full
/// (`file_table_full`).
pub const LOST_FILE_MAP_FULL: u32 = 1;
/// [`LOST_EVENTS`] index: sync or hooked calls not recorded, [`INFLIGHT_SYNCS`] or
/// [`INFLIGHT_CALLS`] being full (`inflight_table_full`).
pub const LOST_INFLIGHT_MAP_FULL: u32 = 2;
/// [`LOST_EVENTS`] index: forked children not traced, [`TRACED_TGIDS`] being full
/// (`process_table_full`).
pub const LOST_TGID_MAP_FULL: u32 = 3;
/// Number of entries in [`LOST_EVENTS`] (one per reason).
pub const LOST_SLOTS: u32 = 4;
