//! Where in the program a finding was made: the user stacks the kernel takes at acts that can
//! become findings (`Stack` records), placed in their files while the process lives
//! (`maps.rs`), and symbolized for the report (`resolve.rs`, blazesym).
//!
//! The kernel sends a thread's stack just before the record of the act (whose header says a
//! stack came); the event loop keeps it here ([`Stacks::on_stack`]) and hands its id to that
//! record's actor ([`Stacks::attach`]), so the state machine carries a small id, never frames.
mod maps;
mod resolve;

use std::{collections::HashMap, sync::Arc};

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

/// What became of the stacks the kernel sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StackStats {
    /// Stack records received.
    pub taken: u64,
    /// Stacks whose process was gone before its mappings could be read: addresses only.
    pub unplaced: u64,
    /// Stacks not kept: [`MAX_STACKS`] distinct ones were kept already.
    pub dropped: u64,
    /// Records that said a stack came before them, with none received (the ring buffer was
    /// full): their findings show no stack.
    pub missing: u64,
}

/// The stacks of a trace.
#[derive(Default)]
pub struct Stacks {
    /// Each process's file mappings, read at its first stack (and again when an address is
    /// not in them: a library loaded since).
    maps: HashMap<u32, Arc<Vec<maps::Mapping>>>,
    /// The last stack each thread sent, until its next record.
    pending: HashMap<u32, StackId>,
    index: HashMap<Arc<[RawFrame]>, StackId>,
    stacks: Vec<Arc<[RawFrame]>>,
    pub stats: StackStats,
}

impl Stacks {
    /// A `Stack` record of thread `tid` of process `pid`: placed in the process's files now (it
    /// may exit at any moment), kept for the thread's next record.
    pub fn on_stack(&mut self, pid: u32, tid: u32, ips: &[u64], sp_words: &[u64]) {
        self.stats.taken += 1;
        let maps = self.maps_of(pid, ips);
        let frames = place(maps.as_deref().map_or(&[][..], |m| &m[..]), ips, sp_words);
        if maps.is_none() {
            self.stats.unplaced += 1;
        }
        let frames: Arc<[RawFrame]> = frames.into();
        let id = match self.index.get(&frames) {
            Some(&id) => id,
            None if self.stacks.len() >= MAX_STACKS => {
                self.stats.dropped += 1;
                self.pending.remove(&tid);
                return;
            }
            None => {
                let id = StackId(self.stacks.len() as u32);
                self.stacks.push(frames.clone());
                self.index.insert(frames, id);
                id
            }
        };
        self.pending.insert(tid, id);
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

    /// Process `pid` exited: its mappings are no longer needed.
    pub fn forget_process(&mut self, pid: u32) {
        self.maps.remove(&pid);
    }

    /// Every kept stack symbolized, by id (index), innermost frame first.
    pub fn resolve(&self) -> Vec<Arc<[Frame]>> {
        let mut r = resolve::Resolver::default();
        self.stacks
            .iter()
            .map(|raw| raw.iter().flat_map(|f| r.frames(f).to_vec()).collect())
            .collect()
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
                if self.maps.len() >= MAX_PROCESSES && !self.maps.contains_key(&pid) {
                    if let Some(&old) = self.maps.keys().next() {
                        self.maps.remove(&old);
                    }
                }
                let m = Arc::new(m);
                self.maps.insert(pid, m.clone());
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
fn place(maps: &[maps::Mapping], ips: &[u64], sp_words: &[u64]) -> Vec<RawFrame> {
    let mut addrs: Vec<(u64, bool)> = ips
        .iter()
        .enumerate()
        .map(|(i, &a)| (a, i > 0))
        .collect();
    let in_code = |a: u64| maps::find(maps, a).is_some_and(|m| m.executable);
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
/// the first one outside system libraries; else the innermost.
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
        .or_else(|| frames.first())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(start: u64, end: u64, path: &str, executable: bool) -> maps::Mapping {
        maps::Mapping {
            start,
            end,
            offset: 0x1000,
            path: path.into(),
            executable,
        }
    }

    #[test]
    fn the_wrappers_caller_is_found_at_the_stack_pointer() {
        let maps = [
            mapping(0x1000, 0x2000, "/usr/bin/app", true),
            mapping(0x7000, 0x8000, "/usr/lib/libc.so.6", true),
            mapping(0x9000, 0xa000, "/usr/bin/app", false),
        ];
        // write() in libc at 0x7010; [sp] holds data, then a pointer to read-only data, then
        // the return address into put_record (0x1100); the walk went on to main (0x1200).
        let frames = place(&maps, &[0x7010, 0x1200], &[5, 0x9008, 0x1100, 0x1300]);
        let addrs: Vec<(u64, u64, bool)> = frames
            .iter()
            .map(|f| (f.addr, f.file_offset, f.return_address))
            .collect();
        assert_eq!(
            addrs,
            [(0x7010, 0x1010, false), (0x1100, 0x1100, true), (0x1200, 0x1200, true)]
        );
        // Already walked (a caller with a frame of its own): not doubled.
        assert_eq!(place(&maps, &[0x7010, 0x1100], &[0x1100]).len(), 2);
        // No mappings (the process was gone): addresses only.
        let bare = place(&[], &[0x7010, 0x1200], &[0x1100]);
        assert_eq!(bare.len(), 2);
        assert!(bare.iter().all(|f| f.module.is_none()));
    }

    #[test]
    fn a_stack_goes_to_the_threads_next_record_only() {
        let mut s = Stacks::default();
        let pid = std::process::id();
        s.on_stack(pid, 7, &[0x10, 0x20], &[]);
        s.on_stack(pid, 8, &[0x10, 0x20], &[]);
        assert_eq!(s.stacks.len(), 1, "one distinct stack");
        let mut a = Actor {
            pid,
            tid: 7,
            stack: Some(StackId::PENDING),
            ..Default::default()
        };
        s.attach(&mut a);
        assert_eq!(a.stack, Some(StackId(0)));
        // Thread 8's next record says no stack came: the pending one is dropped, not kept for
        // a later record.
        let mut b = Actor {
            pid,
            tid: 8,
            ..Default::default()
        };
        s.attach(&mut b);
        assert_eq!(b.stack, None);
        let mut c = Actor {
            pid,
            tid: 8,
            stack: Some(StackId::PENDING),
            ..Default::default()
        };
        s.attach(&mut c);
        assert_eq!(c.stack, None);
        assert_eq!(s.stats.missing, 1);
        assert_eq!(s.stats.taken, 2);
    }

    fn frame(function: &str, file: Option<&str>, module: &str) -> Frame {
        Frame {
            function: Some(function.into()),
            file: file.map(str::to_string),
            line: file.map(|_| 9),
            module: Some(module.into()),
            address: "0x1".into(),
            offset: "0x1".into(),
        }
    }

    #[test]
    fn the_call_site_skips_libc_and_the_rust_standard_library() {
        let frames = [
            frame("write", None, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            frame("std::fs::write", Some("/rustc/abc/library/std/src/fs.rs"), "/app"),
            frame("put_record", Some("/src/kv.c"), "/app"),
        ];
        assert_eq!(call_site(&frames).unwrap().function.as_deref(), Some("put_record"));
        let stripped = [
            frame("write", None, "/lib/x86_64-linux-gnu/libc.so.6"),
            frame("main", None, "/app"),
        ];
        assert_eq!(call_site(&stripped).unwrap().function.as_deref(), Some("main"));
        assert!(call_site(&[]).is_none());
    }
}
