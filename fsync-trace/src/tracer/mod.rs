//! The kernel side seen from userspace: load the eBPF object with this kernel's offsets, attach
//! the programs of the chosen tier, choose what to trace, and read records and counters.
mod attach;
mod btf;
mod counters;
pub mod decode;
mod error;
mod probe;
pub mod tier;

use std::{collections::HashMap, os::fd::AsRawFd};

use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::{Program, RawTracePoint, TracePoint},
    Ebpf, EbpfLoader,
};
pub use btf::VMLINUX_BTF;
pub use counters::KernelCounters;
use counters::{read_counters, read_slots};
mod slots;
mod uring;
pub use error::TracerError;
use fsync_trace_common::{names, wal, FileCounters, FileKey};
pub use tier::{Selection, Tier};
pub use uring::UringHook;

use crate::event::Event;

/// The object built by `build.rs` (aya-build) from `fsync-trace-ebpf`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fsync-trace"));

#[derive(Clone, Debug, Default)]
pub struct TracerOptions {
    /// Trace processes forked by traced processes.
    pub follow_forks: bool,
    /// Use this tier or fail; None: the best one that works here.
    pub tier: Option<Tier>,
    /// Files the kernel side can count at once (`--file-slots`); 0: the default.
    pub file_slots: u32,
    /// Size of the event ring buffer in MiB (a power of two); 0: the object's own (4 MiB).
    pub ring_buffer_mib: u32,
    /// `--wal` given: hook sends, remember WAL writes (see `mark_wal`).
    pub wal: bool,
    /// Take no user stacks (findings get no call site).
    pub no_stacks: bool,
    /// `--no-dirty-extent`: keep no write positions (`dirty_extent` is null everywhere).
    pub no_dirty_extent: bool,
}

/// Events that could not be recorded, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LostCounts {
    pub ring_buffer_full: u64,
    pub file_table_full: u64,
    pub inflight_table_full: u64,
    pub process_table_full: u64,
    /// Records userspace could not decode.
    pub undecodable: u64,
}

impl LostCounts {
    /// Every reason, named as in the JSON report and the `lost_events_total{reason}` metric.
    pub const REASONS: [&'static str; 5] = [
        "ring_buffer_full",
        "file_table_full",
        "inflight_table_full",
        "process_table_full",
        "undecodable",
    ];

    /// The counts in the order of [`Self::REASONS`].
    pub fn by_reason(&self) -> [u64; 5] {
        [
            self.ring_buffer_full,
            self.file_table_full,
            self.inflight_table_full,
            self.process_table_full,
            self.undecodable,
        ]
    }

    pub fn total(&self) -> u64 {
        self.by_reason().iter().sum()
    }
}

pub struct Tracer {
    ebpf: Ebpf,
    events: RingBuf<MapData>,
    selection: Selection,
    sync_entry: SyncEntryHook,
    uring: UringHook,
    undecodable: u64,
    file_slots: u32,
    /// Slots this tracer pushed back onto `FREE_SLOTS`.
    freed_slots: u64,
    /// The `block_rq_issue` hook is attached (see [`Tracer::counts_device_flushes`]).
    device_flushes: bool,
}

/// A second handle on `map` (map `name`), owned, to move to another thread.
fn owned_map(map: &MapData, name: &'static str) -> Result<aya::maps::Map, TracerError> {
    use std::os::fd::AsFd as _;
    let fd = map
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| TracerError::FdClone { name, source })?;
    MapData::from_fd(fd)
        .and_then(aya::maps::Map::from_map_data)
        .map_err(|source| TracerError::Map { name, source })
}

/// Sets slots of the CONFIG array map, in order.
fn set_config(ebpf: &mut Ebpf, values: &[(u32, u64)]) -> Result<(), TracerError> {
    let map_err = |source| TracerError::Map {
        name: names::CONFIG,
        source,
    };
    let map = ebpf
        .map_mut(names::CONFIG)
        .ok_or(TracerError::MissingMap(names::CONFIG))?;
    let mut config: Array<_, u64> = Array::try_from(map).map_err(map_err)?;
    for &(slot, value) in values {
        config.set(slot, value, 0).map_err(map_err)?;
    }
    Ok(())
}

/// Loads raw tracepoint program `name`.
fn load_raw<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut RawTracePoint, TracerError> {
    let prog: &mut RawTracePoint = ebpf
        .program_mut(name)
        .ok_or(TracerError::MissingProgram(name))?
        .try_into()
        .map_err(|source| program_error(name, source))?;
    prog.load().map_err(|source| program_error(name, source))?;
    Ok(prog)
}

/// Loads raw tracepoint program `name` and attaches it to tracepoint `tp`.
fn attach_raw(ebpf: &mut Ebpf, name: &'static str, tp: &str) -> Result<(), TracerError> {
    load_raw(ebpf, name)?
        .attach(tp)
        .map_err(|source| program_error(name, source))?;
    log::debug!("attached {name} to raw tracepoint {tp}");
    Ok(())
}

/// How sync syscall entry is hooked.
#[derive(Clone, Debug)]
pub enum SyncEntryHook {
    /// `syscalls:sys_enter_<sync>` tracepoints: run only for the six sync syscalls.
    SyscallTracepoints,
    /// Raw `sys_enter`: runs on every syscall; used when the former cannot be attached (why).
    RawSysEnter(String),
}

impl std::fmt::Display for SyncEntryHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncEntryHook::SyscallTracepoints => {
                write!(f, "sync syscall entry: syscalls:sys_enter_* tracepoints")
            }
            SyncEntryHook::RawSysEnter(why) => write!(
                f,
                "sync syscall entry: raw sys_enter (every syscall pays for it) because {why}"
            ),
        }
    }
}

/// Hooks sync syscall entry: the per-syscall tracepoints if possible, else raw `sys_enter`.
fn attach_sync_entry(ebpf: &mut Ebpf) -> Result<SyncEntryHook, TracerError> {
    let why = match fsync_trace_common::host::ensure_tracefs() {
        Ok(mounted) => {
            if mounted {
                log::debug!("mounted tracefs on {}", fsync_trace_common::host::TRACEFS);
            }
            let mut failed = None;
            for name in names::PROGS_SYNC_ENTER {
                let attached = (|| -> Result<(), aya::programs::ProgramError> {
                    let prog: &mut TracePoint = ebpf
                        .program_mut(name)
                        .ok_or(aya::programs::ProgramError::NotLoaded)?
                        .try_into()?;
                    prog.load()?;
                    prog.attach("syscalls", name)?;
                    Ok(())
                })();
                if let Err(e) = attached {
                    failed = Some(format!("attaching tracepoint syscalls:{name} failed: {e}"));
                    break;
                }
            }
            match failed {
                None => return Ok(SyncEntryHook::SyscallTracepoints),
                Some(why) => {
                    // Unloading detaches: no sync may be seen twice.
                    for name in names::PROGS_SYNC_ENTER {
                        if let Some(Program::TracePoint(p)) = ebpf.program_mut(name) {
                            let _ = p.unload();
                        }
                    }
                    why
                }
            }
        }
        Err(why) => why,
    };
    log::debug!("sync entry falls back to raw sys_enter: {why}");
    attach_raw(ebpf, names::PROG_SYS_ENTER, "sys_enter")?;
    Ok(SyncEntryHook::RawSysEnter(why))
}

/// Tail-called handlers of the sys_exit dispatcher, by slot.
const TAILS: [(&str, u32); 8] = [
    (names::PROG_SYS_EXIT_NAME, names::TAIL_NAME),
    (names::PROG_SYS_EXIT_OPEN, names::TAIL_OPEN),
    (names::PROG_SYS_EXIT_NAMESPACE, names::TAIL_NAMESPACE),
    (names::PROG_SYS_EXIT_SYNC, names::TAIL_SYNC),
    (names::PROG_SYS_EXIT_MMAP, names::TAIL_MMAP),
    (wal::PROG_SYS_EXIT_ACK, wal::TAIL_ACK),
    (names::PROG_SYS_EXIT_TRUNCATE, names::TAIL_TRUNCATE),
    (names::PROG_SYS_EXIT_METADATA, names::TAIL_METADATA),
];

/// Attached programs and the raw tracepoint each hooks (sync entry: see [`attach_sync_entry`]).
const ATTACHED: [(&str, &str); 6] = [
    (names::PROG_SYS_EXIT, "sys_exit"),
    (names::PROG_PROCESS_FORK, "sched_process_fork"),
    (names::PROG_PROCESS_EXIT, "sched_process_exit"),
    (names::PROG_PROCESS_EXEC, "sched_process_exec"),
    (names::PROG_DIRTY_FOLIO, "writeback_dirty_folio"),
    (names::PROG_WRITEBACK_INODE, "writeback_single_inode"),
];

fn program_error(name: &'static str, source: aya::programs::ProgramError) -> TracerError {
    if is_eperm(&source) {
        return TracerError::NotPermitted {
            what: name,
            source: Box::new(source),
        };
    }
    TracerError::Program { name, source }
}

/// True if `e` or one of its sources is an OS error EPERM (the kernel refused: lockdown, or
/// missing capabilities), found through the error chain, not the message.
fn is_eperm(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(libc::EPERM) {
                return true;
            }
        }
        src = s.source();
    }
    false
}

impl Tracer {
    /// Loads and attaches everything. Nothing is traced until [`Tracer::trace_tgid`].
    pub fn start(opts: &TracerOptions) -> Result<Self, TracerError> {
        let kernel_btf = btf::open(VMLINUX_BTF)?;
        let offsets = btf::offsets(&kernel_btf)?;
        // No kernel BTF for the loader: the programs use no CO-RE relocations (offsets come from
        // `OFFSETS`), and aya's parse of vmlinux BTF would cost tens of MiB of peak memory.
        // fentry/fexit programs get aya's BTF only when they are tried (tracer/attach.rs).
        let file_slots = match opts.file_slots {
            0 => names::FILE_SLOTS_MAX,
            n => n,
        };
        let wal_enabled = u32::from(opts.wal);
        let extent_enabled = u32::from(!opts.no_dirty_extent);
        let mut loader = EbpfLoader::new();
        loader
            .btf(None)
            .override_global(names::OFFSETS_GLOBAL, &offsets, true)
            .override_global(wal::WAL_ENABLED_GLOBAL, &wal_enabled, true)
            .override_global(names::EXTENT_ENABLED_GLOBAL, &extent_enabled, true)
            // Without --wal the table is never read: one entry instead of 4 MiB.
            .map_max_entries(wal::WAL_SLOTS, if opts.wal { file_slots } else { 1 });
        for map in [
            names::FILE_STATS,
            names::FILE_SLOTS,
            names::SLOT_OWNERS,
            names::FREE_SLOTS,
        ] {
            loader.map_max_entries(map, file_slots);
        }
        if opts.ring_buffer_mib != 0 {
            loader.map_max_entries(names::EVENTS, opts.ring_buffer_mib << 20);
        }
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(|e| {
            if is_eperm(&e) {
                TracerError::NotPermitted {
                    what: "loading the eBPF object",
                    source: Box::new(e),
                }
            } else {
                TracerError::Load(e)
            }
        })?;
        // Config before attach, so the programs never run with a half-set configuration.
        set_config(
            &mut ebpf,
            &[
                (names::CONFIG_FOLLOW_FORKS, opts.follow_forks as u64),
                (names::CONFIG_FILE_SLOTS, file_slots as u64),
                (names::CONFIG_NO_STACKS, u64::from(opts.no_stacks)),
            ],
        )?;
        for (name, slot) in TAILS {
            let fd = load_raw(&mut ebpf, name)?
                .fd()
                .map_err(|source| program_error(name, source))?
                .try_clone()
                .map_err(|source| TracerError::FdClone { name, source })?;
            let map = ebpf
                .map_mut(names::SYS_EXIT_TAILS)
                .ok_or(TracerError::MissingMap(names::SYS_EXIT_TAILS))?;
            let mut tails = ProgramArray::try_from(map).map_err(|source| TracerError::Map {
                name: names::SYS_EXIT_TAILS,
                source,
            })?;
            tails.set(slot, &fd, 0).map_err(|source| TracerError::Map {
                name: names::SYS_EXIT_TAILS,
                source,
            })?;
        }
        for (name, tp) in ATTACHED {
            attach_raw(&mut ebpf, name, tp)?;
        }
        // Optional: without it device flushes are not counted (and never reported missing).
        let device_flushes = offsets.block_ready == 1
            && attach_raw(&mut ebpf, names::PROG_BLOCK_RQ_ISSUE, "block_rq_issue").is_ok();
        let sync_entry = attach_sync_entry(&mut ebpf)?;
        let uring = uring::attach(&mut ebpf, offsets.uring_ready != 0)?;
        // Function-level hooks last: until CONFIG_FN_HOOKS says so, sys_exit still counts every
        // write, and nothing is traced before `trace_tgid` anyway.
        let selection = tier::select(
            opts.tier,
            &mut attach::ProgramAttacher::new(&mut ebpf, &kernel_btf),
        )
        .map_err(|u| TracerError::TierUnavailable {
            tier: u.tier.name(),
            reason: u.reason,
        })?;
        set_config(
            &mut ebpf,
            &[(names::CONFIG_FN_HOOKS, selection.config_mask())],
        )?;
        let events = RingBuf::try_from(
            ebpf.take_map(names::EVENTS)
                .ok_or(TracerError::MissingMap(names::EVENTS))?,
        )
        .map_err(|source| TracerError::Map {
            name: names::EVENTS,
            source,
        })?;
        Ok(Self {
            ebpf,
            events,
            selection,
            sync_entry,
            uring,
            undecodable: 0,
            file_slots,
            freed_slots: 0,
            device_flushes,
        })
    }

    /// True if device cache flushes and FUA writes are counted (the `block_rq_issue` hook is
    /// attached).
    pub fn counts_device_flushes(&self) -> bool {
        self.device_flushes
    }

    /// Size of the kernel's per-file table in this run.
    pub fn file_slots(&self) -> u32 {
        self.file_slots
    }

    /// How io_uring requests are seen (for `--verbose`).
    pub fn uring(&self) -> &UringHook {
        &self.uring
    }

    /// How sync syscall entry is hooked (for `--verbose`).
    pub fn sync_entry(&self) -> &SyncEntryHook {
        &self.sync_entry
    }

    pub fn tier(&self) -> Tier {
        self.selection.tier
    }

    /// Which hook delivers what, and why better tiers were skipped (for `--verbose`).
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    fn traced_map(&mut self) -> Result<BpfHashMap<&mut MapData, u32, u32>, TracerError> {
        let map = self
            .ebpf
            .map_mut(names::TRACED_TGIDS)
            .ok_or(TracerError::MissingMap(names::TRACED_TGIDS))?;
        BpfHashMap::try_from(map).map_err(|source| TracerError::Map {
            name: names::TRACED_TGIDS,
            source,
        })
    }

    /// Starts tracing every thread of process `tgid`.
    pub fn trace_tgid(&mut self, tgid: u32) -> Result<(), TracerError> {
        self.traced_map()?
            .insert(tgid, 1, 0)
            .map_err(|source| TracerError::Map {
                name: names::TRACED_TGIDS,
                source,
            })
    }

    /// Starts tracing every process on the machine except this one (`--all`). New processes
    /// are traced from their first syscall; no fork following is needed.
    pub fn trace_all(&mut self) -> Result<(), TracerError> {
        // Our own tgid first, so there is no moment where the tracer traces itself.
        set_config(
            &mut self.ebpf,
            &[
                (names::CONFIG_SELF_TGID, std::process::id() as u64),
                (names::CONFIG_TRACE_ALL, 1),
            ],
        )
    }

    /// A reader of the kernel's per-file counters with its own map descriptor, to be moved to
    /// another thread (the metrics scanner) while the tracer keeps draining events.
    pub fn file_counters_reader(
        &self,
    ) -> Result<
        impl FnMut() -> Result<HashMap<FileKey, FileCounters>, String> + Send + 'static,
        TracerError,
    > {
        use aya::maps::IterableMap as _;
        let map_err = |name| move |source| TracerError::Map { name, source };
        let map = |name| self.ebpf.map(name).ok_or(TracerError::MissingMap(name));
        let slots: BpfHashMap<_, FileKey, u32> =
            BpfHashMap::try_from(map(names::FILE_SLOTS)?).map_err(map_err(names::FILE_SLOTS))?;
        let slots = owned_map(slots.map(), names::FILE_SLOTS)?;
        let stats: Array<_, FileCounters> =
            Array::try_from(map(names::FILE_STATS)?).map_err(map_err(names::FILE_STATS))?;
        let stats = owned_map(stats.map(), names::FILE_STATS)?;
        let slots: BpfHashMap<MapData, FileKey, u32> =
            BpfHashMap::try_from(slots).map_err(map_err(names::FILE_SLOTS))?;
        let stats: Array<MapData, FileCounters> =
            Array::try_from(stats).map_err(map_err(names::FILE_STATS))?;
        Ok(move || {
            read_counters(&slots, &stats)
                .map(|v| v.into_iter().collect())
                .map_err(|e| e.to_string())
        })
    }

    /// Makes the kernel treat `key` as a write-ahead log (`--wal`): its writes leave the writer a
    /// pending entry that its next socket send turns into an `Ack` record. False if the file has
    /// no slot (yet: it gets one on its first write or sync, and is named then).
    pub fn mark_wal(&mut self, key: &FileKey) -> Result<bool, TracerError> {
        let map_err = |name| move |source| TracerError::Map { name, source };
        let slots: BpfHashMap<_, FileKey, u32> = BpfHashMap::try_from(
            self.ebpf
                .map(names::FILE_SLOTS)
                .ok_or(TracerError::MissingMap(names::FILE_SLOTS))?,
        )
        .map_err(map_err(names::FILE_SLOTS))?;
        let slot = match slots.get(key, 0) {
            Ok(slot) => slot,
            Err(aya::maps::MapError::KeyNotFound) => return Ok(false),
            Err(e) => return Err(map_err(names::FILE_SLOTS)(e)),
        };
        let mut wal_slots: Array<_, FileKey> = Array::try_from(
            self.ebpf
                .map_mut(wal::WAL_SLOTS)
                .ok_or(TracerError::MissingMap(wal::WAL_SLOTS))?,
        )
        .map_err(map_err(wal::WAL_SLOTS))?;
        wal_slots
            .set(slot, *key, 0)
            .map_err(map_err(wal::WAL_SLOTS))?;
        Ok(true)
    }

    /// File descriptor of the ring buffer, to wait on with epoll.
    pub fn events_fd(&self) -> std::os::fd::RawFd {
        self.events.as_raw_fd()
    }

    /// Decodes every record now in the ring buffer, in order, into `sink`.
    /// Applies `sink` to every record waiting, with the cgroup id its header carries.
    pub fn drain(&mut self, mut sink: impl FnMut(Event, u64)) -> usize {
        let mut n = 0;
        while let Some(item) = self.events.next() {
            match decode::decode(&item) {
                Ok(ev) => sink(ev, decode::cgroup_id(&item)),
                Err(e) => {
                    self.undecodable += 1;
                    log::warn!("dropping undecodable record: {e}");
                }
            }
            n += 1;
        }
        n
    }

    /// Ends tracing: unmaps the ring buffer (its pages count twice in our RSS) and lists the
    /// files the kernel kept counters for; their counters are read one file at a time
    /// ([`KernelCounters::for_each`]), then everything is detached.
    pub fn into_file_counters(self) -> Result<KernelCounters, TracerError> {
        let Tracer { ebpf, events, .. } = self;
        drop(events);
        let map_err = |name| move |source| TracerError::Map { name, source };
        let slots: BpfHashMap<_, FileKey, u32> = BpfHashMap::try_from(
            ebpf.map(names::FILE_SLOTS)
                .ok_or(TracerError::MissingMap(names::FILE_SLOTS))?,
        )
        .map_err(map_err(names::FILE_SLOTS))?;
        let mut keys = read_slots(&slots)?;
        // Key order, each key once (a walk of a hash map can meet a key twice).
        keys.sort_unstable_by_key(|(k, _)| *k);
        keys.dedup_by_key(|(k, _)| *k);
        Ok(KernelCounters { ebpf, keys })
    }

    /// Everything the kernel side could not record, plus undecodable records.
    pub fn lost(&self) -> Result<LostCounts, TracerError> {
        let map = self
            .ebpf
            .map(names::LOST_EVENTS)
            .ok_or(TracerError::MissingMap(names::LOST_EVENTS))?;
        let lost: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| TracerError::Map {
                name: names::LOST_EVENTS,
                source,
            })?;
        let sum = |slot: u32| -> Result<u64, TracerError> {
            let v = lost.get(&slot, 0).map_err(|source| TracerError::Map {
                name: names::LOST_EVENTS,
                source,
            })?;
            Ok(v.iter().sum())
        };
        Ok(LostCounts {
            ring_buffer_full: sum(names::LOST_RINGBUF_FULL)?,
            file_table_full: sum(names::LOST_FILE_MAP_FULL)?,
            inflight_table_full: sum(names::LOST_INFLIGHT_MAP_FULL)?,
            process_table_full: sum(names::LOST_TGID_MAP_FULL)?,
            undecodable: self.undecodable,
        })
    }
}
