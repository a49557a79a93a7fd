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

/// `FS_IOC_GETVERSION` (`_IOR('v', 1, long)`): the inode's generation (ext4, xfs, btrfs...).
const FS_IOC_GETVERSION: libc::c_ulong = 0x8008_7601;

/// The generation of the inode at `path` (the third part of a [`FileKey`]), 0 where the
/// filesystem does not report one (as the kernel side then reads: such filesystems leave
/// `i_generation` 0).
fn generation(pid: u32, path: &str) -> u32 {
    let try_one = |p: String| -> Option<u32> {
        let c = std::ffi::CString::new(p).ok()?;
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
        // SAFETY: valid C string; the descriptor is closed below.
        let fd = unsafe { libc::open(c.as_ptr(), flags) };
        if fd < 0 {
            return None;
        }
        let mut gen: libc::c_long = 0;
        // SAFETY: the ioctl writes at most a long into `gen`.
        let ok = unsafe { libc::ioctl(fd, FS_IOC_GETVERSION as _, &mut gen) } == 0;
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        // ext4 writes an int: the low half of the long on x86_64.
        ok.then_some(gen as u32)
    };
    try_one(format!("/proc/{pid}/root{path}"))
        .or_else(|| try_one(path.to_string()))
        .unwrap_or(0)
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
                gen: generation(pid, path),
                ino: m.ino(),
            },
            durable,
        ))
    }
    fn file_of_path(&self, pid: u32, path: &str) -> Option<FileKey> {
        let m = stat_in(pid, path)?;
        Some(FileKey {
            dev: kernel_dev(m.dev()),
            gen: generation(pid, path),
            ino: m.ino(),
        })
    }
}
