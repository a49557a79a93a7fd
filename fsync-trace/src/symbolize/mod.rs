//! Where in the program a finding was made: the user stacks the kernel takes at acts that can
//! become findings (`Stack` records), placed in their files while the process lives
//! (`maps.rs`) or, once it is gone, through the build ids the kernel gave each frame, and
//! symbolized for the report (`resolve.rs`, blazesym).
//!
//! The kernel sends a thread's stack just before the record of the act (whose header says a
//! stack came); the event loop keeps it here ([`Stacks::on_stack`]) and hands its id to that
//! record's actor ([`Stacks::attach`]), so the state machine carries a small id, never frames.
mod libdirs;
mod maps;
mod resolve;

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    sync::Arc,
};

pub use resolve::Frame;

use crate::event::{Actor, StackId};

/// Distinct stacks kept at most (a program has a few call sites that make findings; a bound
/// keeps a long trace of many programs from growing without end). Beyond, stacks are counted
/// in [`StackStats::dropped`] and their findings show none.
const MAX_STACKS: usize = 8192;
/// Processes whose mappings are kept at most (the oldest snapshot goes first).
const MAX_PROCESSES: usize = 1024;

/// One frame as taken: the address and where it lies in a file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawFrame {
    pub addr: u64,
    /// The mapped file; None if no file mapping holds the address (or the process was gone).
    pub module: Option<Arc<str>>,
    /// Offset of `addr` in `module` (`addr` itself without one).
    pub file_offset: u64,
    /// A return address (every frame but the innermost): the call is the byte before.
    pub return_address: bool,
}

/// A frame as the kernel's build-id walk gave it: (build id, offset in that file), if it could.
type FrameBuildId = Option<([u8; 20], u64)>;

/// A stack as kept: placed in files, or (its process gone) as the kernel sent it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Kept {
    Placed(Arc<[RawFrame]>),
    Gone(Arc<GoneStack>),
}

/// The stack of a process that was gone before its mappings were read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GoneStack {
    pid: u32,
    ips: Vec<u64>,
    sp_words: Vec<u64>,
    build_ids: Vec<Option<([u8; 20], u64)>>,
}

/// What became of the stacks the kernel sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StackStats {
    /// Stack records received.
    pub taken: u64,
    /// Stacks whose process was gone before its mappings could be read, placed through the
    /// build ids the kernel gave their frames.
    pub by_build_id: u64,
    /// Frames that could be placed in no file (no mapping, no build id): address only.
    pub unplaced_frames: u64,
    /// Stacks not kept: [`MAX_STACKS`] distinct ones were kept already.
    pub dropped: u64,
    /// Records that said a stack came before them, with none received (the ring buffer was
    /// full): their findings show no stack.
    pub missing: u64,
    /// Stacks for which the kernel skipped the frame-pointer walk, as it could give only the
    /// first frame (a process built without frame pointers): taken at a lower cost, the same.
    pub walks_skipped: u64,
}

/// The stacks of a trace.
pub struct Stacks {
    /// Files by ELF build id: every executable file seen mapped (this tracer's own libraries,
    /// and each traced process's at first sight), for stacks of processes already gone.
    build_ids: HashMap<[u8; 20], Arc<str>>,
    scanned: HashSet<Arc<str>>,
    /// Each process's file mappings, read at its first stack (and again when an address is
    /// not in them: a library loaded since).
    maps: HashMap<u32, Arc<Vec<maps::Mapping>>>,
    /// The last stack each thread sent, until its next record.
    pending: HashMap<u32, StackId>,
    index: HashMap<Kept, StackId>,
    stacks: Vec<Kept>,
    /// Where each process's files start in its memory (`address - file offset`), learned from
    /// the placed frames of its stacks: a later-placed stack of the same process finds the
    /// wrapper's caller through them (see [`Stacks::place_by_build_id`]). By build id: the file
    /// of a build id may be learned only later (from another process that maps it).
    bases: HashMap<u32, Vec<(u64, [u8; 20])>>,
    pub stats: StackStats,
}

impl Default for Stacks {
    fn default() -> Self {
        let mut s = Stacks {
            build_ids: HashMap::new(),
            scanned: HashSet::new(),
            maps: HashMap::new(),
            pending: HashMap::new(),
            index: HashMap::new(),
            stacks: Vec::new(),
            bases: HashMap::new(),
            stats: StackStats::default(),
        };
        // Traced programs mostly use the same C library and loader as this tracer.
        if let Some(m) = maps::read(std::process::id()) {
            s.learn(&m);
        }
        s
    }
}

impl Stacks {
    /// A `Stack` record of thread `tid` of process `pid`: placed in the process's files now (it
    /// may exit at any moment), kept for the thread's next record. `build_ids_sent`: the
    /// kernel left the build ids off, the process having sent these frames with them before.
    pub fn on_stack(
        &mut self,
        pid: u32,
        tid: u32,
        ips: &[u64],
        sp_words: &[u64],
        build_ids: &[Option<([u8; 20], u64)>],
        build_ids_sent: bool,
    ) {
        self.stats.taken += 1;
        let maps = self.maps_of(pid, ips);
        let kept = match maps.as_deref() {
            Some(m) if ips.first().is_none_or(|&a| maps::find(m, a).is_some()) => {
                Kept::Placed(place(m, ips, sp_words).into())
            }
            _ => {
                // Gone: placed at the end, when every stack of the process taught its bases.
                self.stats.by_build_id += 1;
                let earlier = if build_ids_sent {
                    self.earlier_build_ids(pid, ips)
                } else {
                    None
                };
                let build_ids = earlier.as_deref().unwrap_or(build_ids);
                for (i, id) in build_ids.iter().enumerate() {
                    if let (Some(&ip), Some((id, off))) = (ips.get(i), id) {
                        let bases = self.bases.entry(pid).or_default();
                        let base = ip.wrapping_sub(*off);
                        if !bases.iter().any(|(b, _)| *b == base) && bases.len() < 64 {
                            bases.push((base, *id));
                        }
                    }
                }
                Kept::Gone(Arc::new(GoneStack {
                    pid,
                    ips: ips.to_vec(),
                    sp_words: sp_words.to_vec(),
                    build_ids: build_ids.to_vec(),
                }))
            }
        };
        let id = match self.index.get(&kept) {
            Some(&id) => id,
            None if self.stacks.len() >= MAX_STACKS => {
                self.stats.dropped += 1;
                self.pending.remove(&tid);
                return;
            }
            None => {
                let id = StackId(self.stacks.len() as u32);
                self.stacks.push(kept.clone());
                self.index.insert(kept, id);
                id
            }
        };
        self.pending.insert(tid, id);
    }

    /// The build ids of an earlier stack of process `pid` with frames `ips`, for a stack the
    /// kernel sent without them. Only a stack placed through build ids needs them: one placed
    /// in the process's mappings left its snapshot, which places this one too.
    fn earlier_build_ids(&self, pid: u32, ips: &[u64]) -> Option<Vec<FrameBuildId>> {
        let found = self.stacks.iter().find_map(|k| match k {
            Kept::Gone(g) if g.pid == pid && g.ips == ips => Some(g.build_ids.clone()),
            _ => None,
        });
        if found.is_none() {
            log::debug!("stack of process {pid} sent without build ids, none kept from before");
        }
        found
    }

    /// Any other record: gives its actor the stack its thread sent just before it, if its
    /// header says one came; a thread's pending stack never outlives its next record.
    pub fn attach(&mut self, actor: &mut Actor) {
        let pending = self.pending.remove(&actor.tid);
        if actor.stack == Some(StackId::PENDING) {
            actor.stack = pending;
            if pending.is_none() {
                self.stats.missing += 1;
            }
        }
    }

    /// The first record of process `pid`: its mappings now (its executable and loader at
    /// least), in case it is gone before its first stack is read.
    pub fn on_first_sight(&mut self, pid: u32) {
        if let Some(m) = maps::read(pid) {
            self.learn(&m);
            self.keep_maps(pid, Arc::new(m));
        }
    }

    /// Records the build id of every executable file in `maps` not seen before.
    fn learn(&mut self, maps: &[maps::Mapping]) {
        for m in maps
            .iter()
            .filter(|m| m.executable && m.path.starts_with('/'))
        {
            if !self.scanned.insert(m.path.clone()) {
                continue;
            }
            if let Some(id) = libdirs::build_id(std::path::Path::new(&*m.path)) {
                self.build_ids.insert(id, m.path.clone());
            }
        }
    }

    /// Frames of a process already gone: each in the file of its build id (or named by the
    /// build id, if no such file was seen). The wrapper's caller (see [`place`]) is looked for
    /// in the file of the next frame, its usual home.
    fn place_by_build_id(&self, g: &GoneStack) -> Vec<RawFrame> {
        let (ips, sp_words, build_ids) = (&g.ips[..], &g.sp_words[..], &g.build_ids[..]);
        let frame = |i: usize, addr: u64| -> RawFrame {
            match build_ids.get(i).copied().flatten() {
                Some((id, offset)) => RawFrame {
                    addr,
                    module: Some(self.module_of(&id)),
                    file_offset: offset,
                    return_address: i > 0,
                },
                None => RawFrame {
                    addr,
                    module: None,
                    file_offset: addr,
                    return_address: i > 0,
                },
            }
        };
        // Frames the kernel could place in no file are the frame-pointer walk gone astray.
        let walked = ips
            .iter()
            .enumerate()
            .skip(1)
            .position(|(i, _)| matches!(build_ids.get(i), Some(None)))
            .map_or(ips.len(), |p| p + 1);
        let ips = &ips[..walked];
        let mut out: Vec<RawFrame> = ips.iter().enumerate().map(|(i, &a)| frame(i, a)).collect();
        // The wrapper's caller: the first word on the stack inside a file of this process
        // (known from its stacks' frames) other than the innermost one's (the C library).
        let inner = build_ids
            .first()
            .copied()
            .flatten()
            .map(|(id, _)| self.module_of(&id));
        let files: Vec<(u64, Arc<str>, u64)> = self
            .bases
            .get(&g.pid)
            .into_iter()
            .flatten()
            .map(|(b, id)| (b, self.module_of(id)))
            .filter(|(_, p)| Some(p) != inner.as_ref() && p.starts_with('/'))
            .map(|(b, p)| {
                let size = std::fs::metadata(&*p).map_or(0, |m| m.len());
                (*b, p, size)
            })
            .collect();
        let caller = sp_words.iter().find_map(|&w| {
            files
                .iter()
                .find(|(b, _, size)| w.wrapping_sub(*b) < *size)
                .map(|(b, p, _)| (w, b, p))
        });
        if let Some((w, b, p)) = caller {
            if ips.get(1) != Some(&w) && !ips.is_empty() {
                out.insert(
                    1,
                    RawFrame {
                        addr: w,
                        module: Some(p.clone()),
                        file_offset: w - b,
                        return_address: true,
                    },
                );
            }
        }
        out
    }

    /// The file of build id `id`, or a name for it.
    fn module_of(&self, id: &[u8; 20]) -> Arc<str> {
        self.build_ids.get(id).cloned().unwrap_or_else(|| {
            let hex = id.iter().fold(String::new(), |mut h, b| {
                let _ = write!(h, "{b:02x}");
                h
            });
            format!("[build-id {}]", hex.trim_end_matches('0')).into()
        })
    }

    /// Keeps `maps` as `pid`'s, within the bound on processes.
    fn keep_maps(&mut self, pid: u32, m: Arc<Vec<maps::Mapping>>) {
        if self.maps.len() >= MAX_PROCESSES && !self.maps.contains_key(&pid) {
            if let Some(&old) = self.maps.keys().next() {
                self.maps.remove(&old);
            }
        }
        self.maps.insert(pid, m);
    }

    /// The last stack received was taken without the frame-pointer walk.
    pub fn note_walk_skipped(&mut self) {
        self.stats.walks_skipped += 1;
    }

    /// Process `pid` exited: its mappings are no longer needed.
    pub fn forget_process(&mut self, pid: u32) {
        self.maps.remove(&pid);
    }

    /// The kept stacks that `wanted` asks for symbolized, by id (index; the others empty),
    /// innermost frame first. Only the stacks of reported findings are symbolized: loading
    /// symbols and DWARF lines of every module costs megabytes a trace without findings
    /// does not need.
    pub fn resolve(&mut self, wanted: impl Fn(StackId) -> bool) -> Vec<Arc<[Frame]>> {
        self.find_unknown_build_ids(&wanted, &libdirs::LIBRARY_DIRS);
        let mut r = resolve::Resolver::default();
        let placed: Vec<Arc<[RawFrame]>> = self
            .stacks
            .iter()
            .map(|k| match k {
                Kept::Placed(f) => f.clone(),
                Kept::Gone(g) => self.place_by_build_id(g).into(),
            })
            .collect();
        self.stats.unplaced_frames = placed
            .iter()
            .flat_map(|s| s.iter())
            .filter(|f| f.module.is_none())
            .count() as u64;
        placed
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                let id = StackId(u32::try_from(i).unwrap_or(u32::MAX));
                if wanted(id) {
                    raw.iter().flat_map(|f| r.frames(f).to_vec()).collect()
                } else {
                    Arc::from([])
                }
            })
            .collect()
    }

    /// Looks in `dirs` for the files of the build ids that `wanted` stacks of gone processes
    /// name and no mapping seen showed (see [`libdirs`]).
    fn find_unknown_build_ids(&mut self, wanted: &impl Fn(StackId) -> bool, dirs: &[&str]) {
        let missing: HashSet<[u8; 20]> = self
            .stacks
            .iter()
            .enumerate()
            .filter(|(i, _)| wanted(StackId(u32::try_from(*i).unwrap_or(u32::MAX))))
            .filter_map(|(_, k)| match k {
                Kept::Gone(g) => Some(g),
                Kept::Placed(_) => None,
            })
            .flat_map(|g| g.build_ids.iter().flatten().map(|(id, _)| *id))
            .filter(|id| !self.build_ids.contains_key(id))
            .collect();
        if !missing.is_empty() {
            let found = libdirs::find(dirs, &missing);
            log::debug!(
                "{} of {} build ids found in the library directories",
                found.len(),
                missing.len()
            );
            self.build_ids.extend(found);
        }
    }

    /// Learns the build id of the program about to be run as `cmd` (found as `execvp` finds
    /// it): it may exit before any of its stacks is read.
    pub fn learn_program(&mut self, cmd: &std::ffi::OsStr) {
        let path = std::path::Path::new(cmd);
        let found = if cmd.as_encoded_bytes().contains(&b'/') {
            Some(path.to_path_buf())
        } else {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(path))
                    .find(|c| c.is_file())
            })
        };
        let Some(found) = found.and_then(|f| std::fs::canonicalize(f).ok()) else {
            return;
        };
        let path: Arc<str> = found.to_string_lossy().into();
        self.learn(&[maps::Mapping {
            start: 0,
            end: 0,
            offset: 0,
            path,
            executable: true,
        }]);
    }

    /// The mappings of `pid`, read again if one of `ips` is in none of them.
    fn maps_of(&mut self, pid: u32, ips: &[u64]) -> Option<Arc<Vec<maps::Mapping>>> {
        if let Some(m) = self.maps.get(&pid) {
            if ips.iter().all(|&a| maps::find(m, a).is_some()) {
                return Some(m.clone());
            }
        }
        match maps::read(pid) {
            Some(m) => {
                self.learn(&m);
                let m = Arc::new(m);
                self.keep_maps(pid, m.clone());
                Some(m)
            }
            // Gone: the snapshot from its earlier stacks is still right for its code.
            None => self.maps.get(&pid).cloned(),
        }
    }
}

/// The frames of a stack: the kernel's frame-pointer walk, and the caller of the innermost
/// function found at the stack pointer. A libc syscall wrapper keeps no frame pointer, so the
/// walk goes from the wrapper straight to its caller's caller; the wrapper's return address
/// (into the function that called it) is the first word on the stack that points into
/// executable code (`sp_words`).
///
/// A library built without frame pointers may use the frame-pointer register for data: the
/// walk's frames stop at the first return address outside executable code.
fn place(maps: &[maps::Mapping], ips: &[u64], sp_words: &[u64]) -> Vec<RawFrame> {
    let in_code = |a: u64| maps::find(maps, a).is_some_and(|m| m.executable);
    let walked = ips
        .iter()
        .skip(1)
        .position(|&a| !in_code(a))
        .map_or(ips.len(), |p| p + 1);
    let ips = &ips[..walked];
    let mut addrs: Vec<(u64, bool)> = ips.iter().enumerate().map(|(i, &a)| (a, i > 0)).collect();
    if let Some(&caller) = sp_words.iter().find(|&&w| in_code(w)) {
        if !ips.is_empty() && ips.get(1) != Some(&caller) && ips[0] != caller {
            addrs.insert(1, (caller, true));
        }
    }
    addrs
        .into_iter()
        .map(|(addr, return_address)| {
            let m = maps::find(maps, addr);
            RawFrame {
                addr,
                module: m.map(|m| m.path.clone()),
                file_offset: m.map_or(addr, |m| m.file_offset(addr)),
                return_address,
            }
        })
        .collect()
}

/// The frame a person reads first: the first one in the program's own code, past the C
/// library, the Rust standard library and other system libraries. If none has a source line,
/// the first one outside system libraries; else the first outside the C runtime (a program
/// whose I/O is done by a system library, e.g. the sqlite3 shell through libsqlite3, is placed
/// in that library, not in libc's syscall wrapper); else the innermost.
pub fn call_site(frames: &[Frame]) -> Option<&Frame> {
    let own_module = |f: &Frame| {
        f.module.as_deref().is_some_and(|m| {
            !(m.starts_with("/lib/")
                || m.starts_with("/lib64/")
                || m.starts_with("/usr/lib/")
                || m.starts_with("/usr/lib64/")
                || m.starts_with('['))
        })
    };
    let own_source = |f: &Frame| {
        f.file.as_deref().is_some_and(|p| {
            !(p.starts_with("/rustc/")
                || p.contains("/.cargo/registry/")
                || p.contains("/rustlib/src/"))
        }) && f.line.is_some()
    };
    frames
        .iter()
        .find(|f| own_module(f) && own_source(f))
        .or_else(|| frames.iter().find(|f| own_module(f)))
        .or_else(|| frames.iter().find(|f| !c_runtime(f)))
        .or_else(|| frames.first())
}

/// A frame in the C runtime (libc, the dynamic loader, libpthread, libstdc++...): the
/// wrappers every program calls through, never where a durability decision is made.
fn c_runtime(f: &Frame) -> bool {
    f.module.as_deref().is_none_or(c_runtime_module)
}

/// True if the file at `module` (a path, or `[vdso]`-like) is part of the C runtime.
pub(crate) fn c_runtime_module(module: &str) -> bool {
    const RUNTIME: [&str; 9] = [
        "libc.so",
        "libc-",
        "ld-linux",
        "ld64.so",
        "libpthread",
        "libdl",
        "librt",
        "libstdc++",
        "libgcc_s",
    ];
    let name = module.rsplit('/').next().unwrap_or(module);
    // `[vdso]` and the like are the kernel's; `[build-id …]` is a file not found, which may
    // well be the program's own.
    (name.starts_with('[') && !name.starts_with("[build-id"))
        || RUNTIME.iter().any(|r| name.starts_with(r))
}

#[cfg(test)]
mod tests;
