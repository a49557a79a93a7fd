//! Maps shared by all programs. Names match `fsync_trace_common::names`.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, ProgramArray, Queue, RingBuf},
};
use fsync_trace_common::{
    names, FileCounters, FileKey, InflightCall, InflightSync, KernelOffsets, NamespaceRecord,
    StackRecord, SyncRecord,
};

/// Thread-group ids being traced (value unused).
#[map]
pub static TRACED_TGIDS: HashMap<u32, u32> = HashMap::with_max_entries(65536, 0);

/// A cache of `TRACED_TGIDS`: bit `tgid % 64` of word `tgid / 64` (tgids < 2^22, the kernel's
/// PID_MAX_LIMIT). An array lookup is inlined by the verifier, where a hash lookup is a call
/// and a hash: this check runs on every syscall exit of a traced process. Only the kernel
/// writes it (a bit is set on the first hit in `TRACED_TGIDS`, cleared at exit), so userspace
/// never races with it.
#[map]
pub static TRACED_BITS: Array<u64> = Array::with_max_entries(1 << 16, 0);

/// The file this CPU's last write resolved to (see `probes::syscalls::handle_write`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct WriteCache {
    /// The thread (`task_struct`) and descriptor the entry was resolved for: while no
    /// descriptor is closed anywhere (`close_epoch`), that fd still names the same open file.
    pub task: u64,
    pub fd: i64,
    /// The `struct file` the fd pointed at, and `CONFIG_CLOSE_EPOCH` when it was resolved.
    pub file: u64,
    pub close_epoch: u64,
    pub key: FileKey,
    /// The file's `FILE_STATS` slot.
    pub slot: u32,
    /// 0: not a regular file on a durable filesystem (writes to it are ignored); 1: tracked;
    /// 2: a socket, with `--wal` (a write to it is an ack: `probes/wal.rs`).
    pub tracked: u32,
    /// Opened O_SYNC/O_DSYNC (cannot change: F_SETFL ignores these flags).
    pub osync: u32,
}

impl WriteCache {
    /// Still the entry of open file `file`: the same `struct file` and no descriptor closed
    /// anywhere since (`close_epoch` is the current `CONFIG_CLOSE_EPOCH`), so its memory cannot
    /// have been freed and reused for another file.
    #[inline(always)]
    pub fn holds(&self, file: *const u8, close_epoch: u64) -> bool {
        self.file == file as u64 && self.close_epoch == close_epoch
    }

    /// Still the entry of descriptor `fd` of thread `task`: a descriptor only names another
    /// open file after a close, dup2/dup3, exec, unshare or io_uring call, and each of those
    /// (and every task exit, so a `task_struct` is not reused unseen) moves `close_epoch`.
    #[inline(always)]
    pub fn holds_fd(&self, task: *const u8, fd: i64, close_epoch: u64) -> bool {
        self.task == task as u64 && self.fd == fd && self.close_epoch == close_epoch
    }
}

#[map]
pub static WRITE_CACHE: PerCpuArray<WriteCache> = PerCpuArray::with_max_entries(1, 0);

/// A `Sync` record under construction (per CPU), copied into `EVENTS` once complete: building
/// it in ring buffer memory would hold a reservation across the program's branches, which older
/// verifiers cannot prune (see `probes/syncs.rs`).
#[map]
pub static SYNC_RECORD: PerCpuArray<SyncRecord> = PerCpuArray::with_max_entries(1, 0);

/// A `Namespace` record under construction (per CPU): sent cut to its used part
/// (`NAMESPACE_ONE_NAME_LEN` for one-name operations), which a reservation cannot be.
#[map]
pub static NAMESPACE_RECORD: PerCpuArray<NamespaceRecord> = PerCpuArray::with_max_entries(1, 0);

/// A `Stack` record under construction (per CPU): 368 bytes, too many for the BPF stack.
#[map]
pub static STACK_RECORD: PerCpuArray<StackRecord> = PerCpuArray::with_max_entries(1, 0);

/// Exact per-file counters, by slot (`FILE_SLOTS`). An array is preallocated: 28 MiB of kernel
/// memory for the default 262,144 files (userspace sizes the slot maps to `--file-slots`).
#[map]
pub static FILE_STATS: Array<FileCounters> = Array::with_max_entries(names::FILE_SLOTS_MAX, 0);

/// Each file's slot in `FILE_STATS`, given on first sight. A file's counters are reached by an
/// array lookup (inlined by the verifier) once its slot is known: the write path keeps the slot
/// in `WRITE_CACHE`, so a repeated write needs no hash lookup.
/// BPF_F_NO_PREALLOC (1): memory only for files actually seen.
#[map]
pub static FILE_SLOTS: HashMap<FileKey, u32> = HashMap::with_max_entries(names::FILE_SLOTS_MAX, 1);

/// Which file claimed each `FILE_STATS` slot: makes slot numbers unique across CPUs (see
/// `slots::file_slot`).
#[map]
pub static SLOT_OWNERS: HashMap<u32, FileKey> = HashMap::with_max_entries(names::FILE_SLOTS_MAX, 1);

/// Slots userspace freed (files removed, or durable and idle, in long runs), handed out again
/// before fresh ones. Userspace pushes a slot only after zeroing it and after a grace period in
/// which every CPU's write cache was invalidated (`CONFIG_CLOSE_EPOCH`), so no write can still
/// count into it for its old file.
#[map]
pub static FREE_SLOTS: Queue<u32> = Queue::with_max_entries(names::FILE_SLOTS_MAX, 0);

/// Sync calls between sys_enter and sys_exit, by thread id.
#[map]
pub static INFLIGHT_SYNCS: HashMap<u32, InflightSync> = HashMap::with_max_entries(16384, 0);

/// Hooked kernel functions between entry and return (function-level tiers), by
/// `inflight_call_key(tid, hook)`.
#[map]
pub static INFLIGHT_CALLS: HashMap<u64, InflightCall> = HashMap::with_max_entries(16384, 0);

/// Size of `EVENTS`. Its pages count twice in the tracer's RSS (the kernel maps the data area
/// twice so records can wrap), and records are few (state changes, drained every few ms), so
/// 4 MiB is plenty (see `state::wakeup_flags`).
pub const EVENTS_BYTES: u32 = 4 * 1024 * 1024;

/// State changes for userspace.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Everything that could not be recorded, by reason (`names::LOST_*`).
#[map]
pub static LOST_EVENTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(names::LOST_SLOTS, 0);

/// Small settings and the durability epoch (`names::CONFIG_*`).
#[map]
pub static CONFIG: Array<u64> = Array::with_max_entries(names::CONFIG_SLOTS, 0);

/// Tail-call targets of the sys_exit dispatcher (`names::TAIL_*`).
#[map]
pub static SYS_EXIT_TAILS: ProgramArray = ProgramArray::with_max_entries(names::TAIL_SLOTS, 0);

/// Struct offsets of the running kernel, written by userspace before load (from BTF).
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets {
    task_pid: 0,
    task_tgid: 0,
    task_files: 0,
    task_fs: 0,
    task_signal: 0,
    signal_live: 0,
    files_fdt: 0,
    fdt_max_fds: 0,
    fdt_fd: 0,
    file_f_mode: 0,
    file_f_flags: 0,
    file_f_inode: 0,
    file_f_path: 0,
    path_mnt: 0,
    path_dentry: 0,
    inode_i_mode: 0,
    inode_i_ino: 0,
    inode_i_sb: 0,
    sb_s_dev: 0,
    sb_s_magic: 0,
    dentry_d_parent: 0,
    dentry_d_name: 0,
    dentry_d_inode: 0,
    fs_pwd: 0,
    mount_mnt: 0,
    mount_mnt_parent: 0,
    mount_mnt_mountpoint: 0,
    vfsmount_mnt_root: 0,
    mapping_host: 0,
    task_flags: 0,
    inode_i_generation: 0,
    inode_i_nlink: 0,
    ready: 0,
    request_cmd_flags: 0,
    request_q: 0,
    queue_disk: 0,
    gendisk_part0: 0,
    bdev_bd_dev: 0,
    req_fua: 0,
    block_ready: 0,
    req_opcode: 0,
    req_flags: 0,
    req_file: 0,
    req_ctx: 0,
    req_res: 0,
    req_fd: 0,
    sync_flags: 0,
    sync_off: 0,
    sync_len: 0,
    open_file_slot: 0,
    open_how: 0,
    ren_old_dfd: 0,
    ren_new_dfd: 0,
    ren_oldpath: 0,
    ren_newpath: 0,
    ren_flags: 0,
    unlink_dfd: 0,
    unlink_flags: 0,
    unlink_filename: 0,
    mkdir_dfd: 0,
    mkdir_filename: 0,
    link_old_dfd: 0,
    link_new_dfd: 0,
    link_oldpath: 0,
    link_newpath: 0,
    link_flags: 0,
    uring_ready: 0,
    file_f_pos: 0,
    inode_i_size: 0,
    req_ki_pos: 0,
};

/// Reads one offset. Volatile so the compiler cannot fold the zero initialiser.
macro_rules! off {
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        let v = unsafe { core::ptr::read_volatile(&$crate::maps::OFFSETS.$field) as usize };
        v
    }};
}
pub(crate) use off;

#[inline(always)]
pub fn count_lost(reason: u32) {
    if let Some(p) = LOST_EVENTS.get_ptr_mut(reason) {
        unsafe { *p += 1 };
    }
}

#[inline(always)]
pub fn config(slot: u32) -> u64 {
    match CONFIG.get(slot) {
        Some(v) => *v,
        None => 0,
    }
}

/// Always 0, but unknown to LLVM (see `kernel::walk_path`).
#[unsafe(no_mangle)]
static OPAQUE_ZERO: usize = 0;

#[inline(always)]
pub fn opaque_zero() -> usize {
    unsafe { core::ptr::read_volatile(&OPAQUE_ZERO) }
}
