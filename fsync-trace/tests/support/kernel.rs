//! What the tracer holds in the kernel (its BPF objects, read with raw bpf(2)) and waiting
//! for it to attach, to trace a `-p` target, and to release everything on exit.
use super::*;

/// Raw bpf(2), for checking what the tracer holds in the kernel (no bpftool needed).
pub mod bpf {
    use std::{
        io,
        os::fd::{FromRawFd, OwnedFd},
    };

    const MAP_LOOKUP_ELEM: libc::c_long = 1;
    const PROG_GET_FD_BY_ID: libc::c_long = 13;
    const MAP_GET_FD_BY_ID: libc::c_long = 14;
    const OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const LINK_GET_FD_BY_ID: libc::c_long = 30;

    #[repr(C, align(8))]
    struct Attr([u8; 128]);

    impl Attr {
        fn new() -> Attr {
            Attr([0; 128])
        }
        fn u32(mut self, off: usize, v: u32) -> Attr {
            self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
            self
        }
        fn u64(mut self, off: usize, v: u64) -> Attr {
            self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
            self
        }
    }

    fn sys_bpf(cmd: libc::c_long, mut attr: Attr) -> io::Result<i64> {
        // SAFETY: `attr` is a zero-padded bpf_attr of the size passed.
        let r =
            unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len() as u32) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Kind {
        Prog,
        Map,
        Link,
    }

    /// A descriptor of the kernel object with this id, or None if the kernel has none.
    pub fn get(kind: Kind, id: u32) -> io::Result<Option<OwnedFd>> {
        let cmd = match kind {
            Kind::Prog => PROG_GET_FD_BY_ID,
            Kind::Map => MAP_GET_FD_BY_ID,
            Kind::Link => LINK_GET_FD_BY_ID,
        };
        match sys_bpf(cmd, Attr::new().u32(0, id)) {
            // SAFETY: a new descriptor we own.
            Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Name of a map (struct bpf_map_info: name[16] at offset 24).
    pub fn map_name(fd: &OwnedFd) -> io::Result<String> {
        use std::os::fd::AsRawFd;
        let mut info = [0u8; 64];
        let attr = Attr::new()
            .u32(0, fd.as_raw_fd() as u32)
            .u32(4, info.len() as u32)
            .u64(8, info.as_mut_ptr() as u64);
        sys_bpf(OBJ_GET_INFO_BY_FD, attr)?;
        let name = &info[24..40];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Ok(String::from_utf8_lossy(&name[..end]).into_owned())
    }

    /// Whether a hash map with u32 keys (and values of `value_size` bytes) holds `key`.
    pub fn map_has_u32(fd: &OwnedFd, key: u32, value_size: usize) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let mut value = vec![0u8; value_size];
        let attr = Attr::new()
            .u32(0, fd.as_raw_fd() as u32)
            .u64(8, &raw const key as u64)
            .u64(16, value.as_mut_ptr() as u64);
        match sys_bpf(MAP_LOOKUP_ELEM, attr) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The BPF programs, maps and links process `pid` holds descriptors of (from fdinfo).
pub fn bpf_objects_of(pid: u32) -> BTreeSet<(bpf::Kind, u32)> {
    let mut out = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let field = |name: &str| -> Option<u32> {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
        };
        if let Some(id) = field("link_id:") {
            out.insert((bpf::Kind::Link, id));
        }
        if let Some(id) = field("prog_id:") {
            out.insert((bpf::Kind::Prog, id));
        }
        if let Some(id) = field("map_id:") {
            out.insert((bpf::Kind::Map, id));
        }
    }
    out
}

/// Fails the test if the tracer exited (with its stderr).
fn assert_still_running(tracer: &mut Child) {
    if let Some(status) = tracer.try_wait().unwrap() {
        let mut err = String::new();
        let _ = tracer.stderr.take().map(|mut e| e.read_to_string(&mut err));
        panic!("fsync-trace exited before tracing: {status}; stderr: {err}");
    }
}

/// True once process `pid` has a SIGINT handler (the tracer installs it when attached).
fn catches_sigint(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGINT - 1)) != 0)
}

/// Waits until tracer `tracer` traces `target` (its TRACED_TGIDS map holds the pid) and has
/// its SIGINT handler in place; returns the BPF objects it holds then.
pub fn wait_until_tracing(tracer: &mut Child, target: u32) -> BTreeSet<(bpf::Kind, u32)> {
    let start = Instant::now();
    loop {
        assert_still_running(tracer);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "fsync-trace never started tracing pid {target}"
        );
        let objs = bpf_objects_of(tracer.id());
        let traced = objs
            .iter()
            .filter(|(k, _)| *k == bpf::Kind::Map)
            .any(|&(_, id)| {
                let Ok(Some(fd)) = bpf::get(bpf::Kind::Map, id) else {
                    return false;
                };
                bpf::map_name(&fd).is_ok_and(|n| n == "TRACED_TGIDS")
                    && bpf::map_has_u32(&fd, target, 4).unwrap_or(false)
            });
        let caught = catches_sigint(tracer.id());
        if traced && caught {
            // The leak check after exit looks these up by id: make sure the lookup sees them now.
            for &(kind, id) in &objs {
                assert!(
                    bpf::get(kind, id).expect("bpf(2)").is_some(),
                    "{kind:?} {id} held by the tracer is not visible"
                );
            }
            return objs;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until tracer `tracer` (started with `--all`) has attached its programs and has its
/// SIGINT handler in place (it installs it once everything is attached).
pub fn wait_until_attached(tracer: &mut Child) {
    let start = Instant::now();
    loop {
        assert_still_running(tracer);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "fsync-trace never attached"
        );
        let objs = bpf_objects_of(tracer.id());
        let links = objs.iter().filter(|o| o.0 == bpf::Kind::Link).count();
        let caught = catches_sigint(tracer.id());
        if links > 0 && caught {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Every BPF program, link and map the tracer held is gone from the kernel (not pinned, not
/// held by anything else) once it exited. Freeing is asynchronous (RCU, workqueues): poll.
pub fn assert_bpf_released(objs: &BTreeSet<(bpf::Kind, u32)>) {
    let progs = objs.iter().filter(|o| o.0 == bpf::Kind::Prog).count();
    let links = objs.iter().filter(|o| o.0 == bpf::Kind::Link).count();
    assert!(
        progs > 0 && links > 0,
        "the tracer held no programs or links: {objs:?}"
    );
    let start = Instant::now();
    loop {
        let left: Vec<_> = objs
            .iter()
            .filter(|&&(k, id)| bpf::get(k, id).expect("bpf(2)").is_some())
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still in the kernel after fsync-trace exited: {left:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}
