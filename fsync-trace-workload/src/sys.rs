//! The workload's vocabulary: its error type, `say!`, and syscall helpers that
//! are each exactly one syscall (dirfsync: open+fsync+close), so the counts
//! written on every scenario stay true.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// An error from one step of a scenario: `what` names the step, `err` is the
/// OS error (or a description when there is no errno, e.g. a short write).
pub(crate) struct Fail {
    pub(crate) what: String,
    pub(crate) err: String,
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.err)
    }
}

pub(crate) type Res<T> = Result<T, Fail>;

/// Turns the current errno into a `Fail` for step `what`.
pub(crate) fn os_fail(what: impl Into<String>) -> Fail {
    Fail {
        what: what.into(),
        err: io::Error::last_os_error().to_string(),
    }
}

pub(crate) fn fail(what: impl Into<String>, err: impl Into<String>) -> Fail {
    Fail {
        what: what.into(),
        err: err.into(),
    }
}

/// The `<dir>/<name>` path, shown in error messages as given.
pub(crate) fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

pub(crate) fn cpath(p: &Path) -> Res<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| fail(format!("path {}", p.display()), "contains a NUL byte"))
}

/// A deterministic record: `len` bytes of a letter chosen by `seed`, ending in
/// a newline so the files are readable when debugging.
pub(crate) fn record(len: usize, seed: usize) -> Vec<u8> {
    let mut buf = vec![b'a' + (seed % 26) as u8; len];
    if let Some(last) = buf.last_mut() {
        *last = b'\n';
    }
    buf
}

// ---------------------------------------------------------------------------
// Syscall helpers. Each one is exactly one syscall (dirfsync: open+fsync+close)
// so the per-scenario counts in the comments below stay true.
// ---------------------------------------------------------------------------

pub(crate) fn open_flags(path: &Path, flags: libc::c_int) -> Res<libc::c_int> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated string; mode is only read with O_CREAT.
    let fd = unsafe { libc::open(c.as_ptr(), flags, 0o644 as libc::c_uint) };
    if fd < 0 {
        return Err(os_fail(format!("open {}", path.display())));
    }
    Ok(fd)
}

/// open(O_CREAT|O_WRONLY|O_TRUNC, 0644).
pub(crate) fn create(path: &Path) -> Res<libc::c_int> {
    open_flags(path, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC)
}

/// Exactly one write(2); a short write is an error, not a retry, so the
/// number of write calls the tracer sees is exactly the number of records.
pub(crate) fn write_exact_once(fd: libc::c_int, buf: &[u8], path: &Path) -> Res<()> {
    // SAFETY: `buf` is valid for `buf.len()` bytes.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(os_fail(format!("write {}", path.display())));
    }
    if n as usize != buf.len() {
        return Err(fail(
            format!("write {}", path.display()),
            format!("short write: {} of {} bytes", n, buf.len()),
        ));
    }
    Ok(())
}

/// `count` writes of `len` bytes each.
pub(crate) fn write_records(fd: libc::c_int, count: usize, len: usize, path: &Path) -> Res<()> {
    for i in 0..count {
        write_exact_once(fd, &record(len, i), path)?;
    }
    Ok(())
}

pub(crate) fn fsync_or_die(fd: libc::c_int, path: &Path) -> Res<()> {
    // SAFETY: plain syscall on an fd we own.
    if unsafe { libc::fsync(fd) } != 0 {
        return Err(os_fail(format!("fsync {}", path.display())));
    }
    Ok(())
}

pub(crate) fn fdatasync_or_die(fd: libc::c_int, path: &Path) -> Res<()> {
    // SAFETY: plain syscall on an fd we own.
    if unsafe { libc::fdatasync(fd) } != 0 {
        return Err(os_fail(format!("fdatasync {}", path.display())));
    }
    Ok(())
}

/// close(2) is checked: on NFS/FUSE it can report a write-back error.
pub(crate) fn close_or_die(fd: libc::c_int, path: &Path) -> Res<()> {
    // SAFETY: `fd` is ours and closed exactly once.
    if unsafe { libc::close(fd) } != 0 {
        return Err(os_fail(format!("close {}", path.display())));
    }
    Ok(())
}

/// Makes `dir`'s entries durable: open(O_RDONLY|O_DIRECTORY), fsync, close.
pub(crate) fn dirfsync(dir: &Path) -> Res<()> {
    let fd = open_flags(dir, libc::O_RDONLY | libc::O_DIRECTORY)?;
    fsync_or_die(fd, dir)?;
    close_or_die(fd, dir)
}

/// create + `count` writes of `len` bytes + optional fsync + close.
pub(crate) fn write_file(path: &Path, count: usize, len: usize, sync: bool) -> Res<()> {
    let fd = create(path)?;
    write_records(fd, count, len, path)?;
    if sync {
        fsync_or_die(fd, path)?;
    }
    close_or_die(fd, path)
}

pub(crate) fn rename_or_die(from: &Path, to: &Path) -> Res<()> {
    let (f, t) = (cpath(from)?, cpath(to)?);
    // SAFETY: both are valid C strings.
    if unsafe { libc::rename(f.as_ptr(), t.as_ptr()) } != 0 {
        return Err(os_fail(format!(
            "rename {} -> {}",
            from.display(),
            to.display()
        )));
    }
    Ok(())
}

pub(crate) fn link_or_die(from: &Path, to: &Path) -> Res<()> {
    let (f, t) = (cpath(from)?, cpath(to)?);
    // SAFETY: both are valid C strings.
    if unsafe { libc::link(f.as_ptr(), t.as_ptr()) } != 0 {
        return Err(os_fail(format!(
            "link {} -> {}",
            from.display(),
            to.display()
        )));
    }
    Ok(())
}

pub(crate) fn unlink_or_die(path: &Path) -> Res<()> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    if unsafe { libc::unlink(c.as_ptr()) } != 0 {
        return Err(os_fail(format!("unlink {}", path.display())));
    }
    Ok(())
}

/// The inode number of an open file (one fstat(2): not a write, nothing a tracer counts).
pub(crate) fn inode_of(fd: libc::c_int, path: &Path) -> Res<u64> {
    // SAFETY: fstat fills the zeroed struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &raw mut st) } != 0 {
        return Err(os_fail(format!("fstat {}", path.display())));
    }
    Ok(st.st_ino)
}
