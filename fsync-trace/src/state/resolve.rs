//! Looking things up outside the event stream (the only impure part of the state machine,
//! behind a trait so tests can fake it).
use std::os::unix::fs::MetadataExt;

use fsync_trace_common::{is_durable_fs, FileKey};

pub trait Resolver {
    /// Identity of the directory at `path` as process `pid` sees it, and whether its
    /// filesystem can be durable.
    fn dir_of_path(&self, pid: u32, path: &str) -> Option<(FileKey, bool)>;
    /// Identity of the file at `path` as process `pid` sees it.
    fn file_of_path(&self, pid: u32, path: &str) -> Option<FileKey>;
    /// Path of descriptor `fd` of process `pid`.
    fn fd_path(&self, pid: u32, fd: i32) -> Option<String>;
}

/// Resolves nothing: the state machine then relies on the event stream alone (tests).
#[cfg(test)]
pub struct NoResolver;

#[cfg(test)]
impl Resolver for NoResolver {
    fn dir_of_path(&self, _: u32, _: &str) -> Option<(FileKey, bool)> {
        None
    }
    fn file_of_path(&self, _: u32, _: &str) -> Option<FileKey> {
        None
    }
    fn fd_path(&self, _: u32, _: i32) -> Option<String> {
        None
    }
}

/// Resolves through /proc/<pid>/root (the process's own mount namespace), falling back to our
/// view when the process is gone.
pub struct ProcResolver;

/// Userspace `st_dev` to the kernel-internal encoding the eBPF side sees.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = libc::major(st_dev as libc::dev_t);
    let minor = libc::minor(st_dev as libc::dev_t);
    (major << 20) | minor
}

fn stat_in(pid: u32, path: &str) -> Option<std::fs::Metadata> {
    std::fs::metadata(format!("/proc/{pid}/root{path}"))
        .or_else(|_| std::fs::metadata(path))
        .ok()
}

fn fs_magic(pid: u32, path: &str) -> Option<u64> {
    let try_one = |p: String| -> Option<u64> {
        let c = std::ffi::CString::new(p).ok()?;
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid C string and out pointer.
        (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as u64)
    };
    try_one(format!("/proc/{pid}/root{path}")).or_else(|| try_one(path.to_string()))
}

impl Resolver for ProcResolver {
    fn dir_of_path(&self, pid: u32, path: &str) -> Option<(FileKey, bool)> {
        let m = stat_in(pid, path)?;
        if !m.is_dir() {
            return None;
        }
        let durable = fs_magic(pid, path).map(is_durable_fs).unwrap_or(true);
        Some((
            FileKey {
                dev: kernel_dev(m.dev()),
                _pad: 0,
                ino: m.ino(),
            },
            durable,
        ))
    }
    fn file_of_path(&self, pid: u32, path: &str) -> Option<FileKey> {
        let m = stat_in(pid, path)?;
        Some(FileKey {
            dev: kernel_dev(m.dev()),
            _pad: 0,
            ino: m.ino(),
        })
    }
    fn fd_path(&self, pid: u32, fd: i32) -> Option<String> {
        let p = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
        let s = p.to_string_lossy().into_owned();
        s.starts_with('/').then_some(s)
    }
}
