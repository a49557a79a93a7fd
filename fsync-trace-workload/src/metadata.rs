//! Metadata changes (mode, owner, times, extended attributes) that write no data but need a
//! sync to be durable: a sync after one is not redundant. Every call is a raw syscall (libc's
//! wrappers may pick another one: glibc's utimes(3) calls utimensat(2)), so each comment lists
//! the exact syscalls. Every file is created, written once (100 bytes) and fsynced first, so
//! the syncs after it have only the metadata change to make durable.
use std::ffi::CString;
use std::path::Path;

use super::{
    close_or_die, cpath, create, dirfsync, fsync_or_die, join, open_flags, os_fail, rename_or_die,
    write_records, Res,
};

/// Bytes of the one record each file gets.
const RECORD: usize = 100;
/// An extended attribute in the `user.` namespace (any owner may set it on ext4).
const XATTR: &str = "user.fsync-trace";

/// One raw syscall's result: an error naming `what` unless it returned 0.
fn done(ret: libc::c_long, what: &str, path: &Path) -> Res<()> {
    if ret != 0 {
        return Err(os_fail(format!("{what} {}", path.display())));
    }
    Ok(())
}

/// create, one write, fsync: the file's fd, all it holds durable.
fn written_and_synced(path: &Path) -> Res<libc::c_int> {
    let fd = create(path)?;
    write_records(fd, 1, RECORD, path)?;
    fsync_or_die(fd, path)?;
    Ok(fd)
}

fn fchmod(fd: libc::c_int, mode: libc::mode_t, path: &Path) -> Res<()> {
    // SAFETY: plain syscall on an fd we own.
    let ret = unsafe { libc::syscall(libc::SYS_fchmod, fd, mode) };
    done(ret, "fchmod", path)
}

fn chmod(path: &Path, mode: libc::mode_t) -> Res<()> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let ret = unsafe { libc::syscall(libc::SYS_chmod, c.as_ptr(), mode) };
    done(ret, "chmod", path)
}

/// The empty path of the at-calls with AT_EMPTY_PATH.
fn empty() -> CString {
    CString::default()
}

/// m.dat: create, write, fsync; fchmod 0600, fsync (not redundant); fchownat(fd, "", -1, -1,
/// AT_EMPTY_PATH), fsync (not redundant); close; the directory fsynced.
pub(crate) fn chmod_then_fsync(dir: &Path) -> Res<()> {
    let path = join(dir, "m.dat");
    let fd = written_and_synced(&path)?;
    fchmod(fd, 0o600, &path)?;
    fsync_or_die(fd, &path)?;
    let e = empty();
    // SAFETY: `e` is a valid NUL-terminated string, `fd` ours; -1 keeps owner and group.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fchownat,
            fd,
            e.as_ptr(),
            -1i32,
            -1i32,
            libc::AT_EMPTY_PATH,
        )
    };
    done(ret, "fchownat AT_EMPTY_PATH", &path)?;
    fsync_or_die(fd, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// c.dat: create, write, fsync; chmod(path, 0600), fsync (not redundant); open the directory,
/// fchmodat(dirfd, "c.dat", 0644), close it, fsync (not redundant); close; the directory
/// fsynced.
pub(crate) fn chmod_path_sync(dir: &Path) -> Res<()> {
    let path = join(dir, "c.dat");
    let fd = written_and_synced(&path)?;
    chmod(&path, 0o600)?;
    fsync_or_die(fd, &path)?;
    let dfd = open_flags(dir, libc::O_RDONLY | libc::O_DIRECTORY)?;
    let name = cpath(Path::new("c.dat"))?;
    // SAFETY: `name` is a valid NUL-terminated string, `dfd` ours.
    let ret = unsafe { libc::syscall(libc::SYS_fchmodat, dfd, name.as_ptr(), 0o644) };
    done(ret, "fchmodat", &path)?;
    close_or_die(dfd, dir)?;
    fsync_or_die(fd, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// x.dat: create, write, fsync; fsetxattr(user.fsync-trace), fsync; setxattr(path,
/// user.fsync-trace, another value), fsync; fremovexattr(user.fsync-trace), fsync (none
/// redundant); close; the directory fsynced.
pub(crate) fn xattr_then_fsync(dir: &Path) -> Res<()> {
    let path = join(dir, "x.dat");
    let fd = written_and_synced(&path)?;
    let name = CString::new(XATTR).map_err(|_| os_fail("xattr name"))?;
    let c = cpath(&path)?;
    // SAFETY: valid NUL-terminated strings and a 1-byte value; `fd` ours.
    unsafe {
        let ret = libc::syscall(libc::SYS_fsetxattr, fd, name.as_ptr(), b"1".as_ptr(), 1, 0);
        done(ret, "fsetxattr", &path)?;
        fsync_or_die(fd, &path)?;
        let ret = libc::syscall(
            libc::SYS_setxattr,
            c.as_ptr(),
            name.as_ptr(),
            b"2".as_ptr(),
            1,
            0,
        );
        done(ret, "setxattr", &path)?;
        fsync_or_die(fd, &path)?;
        let ret = libc::syscall(libc::SYS_fremovexattr, fd, name.as_ptr());
        done(ret, "fremovexattr", &path)?;
    }
    fsync_or_die(fd, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// u.dat: create, write, fsync; then each followed by an fsync (none redundant):
/// utimensat(fd, NULL, NULL, 0) (futimens), utimensat(AT_FDCWD, path, NULL, 0), utimes(path,
/// NULL), utimensat(fd, "", NULL, AT_EMPTY_PATH); close; the directory fsynced.
pub(crate) fn utimes_then_fsync(dir: &Path) -> Res<()> {
    let path = join(dir, "u.dat");
    let fd = written_and_synced(&path)?;
    let c = cpath(&path)?;
    let e = empty();
    let none = std::ptr::null::<libc::c_char>();
    let now = std::ptr::null::<libc::timespec>();
    let calls: [(&str, &dyn Fn() -> libc::c_long); 4] = [
        // SAFETY (each): valid NUL-terminated strings or NULL; NULL times mean "now"; `fd` ours.
        ("futimens", &|| unsafe {
            libc::syscall(libc::SYS_utimensat, fd, none, now, 0)
        }),
        ("utimensat", &|| unsafe {
            libc::syscall(libc::SYS_utimensat, libc::AT_FDCWD, c.as_ptr(), now, 0)
        }),
        ("utimes", &|| unsafe {
            libc::syscall(
                libc::SYS_utimes,
                c.as_ptr(),
                std::ptr::null::<libc::timeval>(),
            )
        }),
        ("utimensat AT_EMPTY_PATH", &|| unsafe {
            libc::syscall(
                libc::SYS_utimensat,
                fd,
                e.as_ptr(),
                now,
                libc::AT_EMPTY_PATH,
            )
        }),
    ];
    for (what, call) in calls {
        done(call(), what, &path)?;
        fsync_or_die(fd, &path)?;
    }
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// d.dat: create, write, fsync; fchmod 0600, fsync (not redundant), fsync (redundant); close;
/// the directory fsynced.
pub(crate) fn double_fsync_after_chmod(dir: &Path) -> Res<()> {
    let path = join(dir, "d.dat");
    let fd = written_and_synced(&path)?;
    fchmod(fd, 0o600, &path)?;
    fsync_or_die(fd, &path)?;
    fsync_or_die(fd, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// n.dat: create, write, fsync, close; the directory fsynced; chmod(path, 0600); open
/// (O_RDONLY), fchmod 0640, close: two metadata changes never synced (listed in the file's
/// `unsynced_changes`, but not a finding).
pub(crate) fn chmod_unsynced(dir: &Path) -> Res<()> {
    let path = join(dir, "n.dat");
    let fd = written_and_synced(&path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)?;
    chmod(&path, 0o600)?;
    let fd = open_flags(&path, libc::O_RDONLY)?;
    fchmod(fd, 0o640, &path)?;
    close_or_die(fd, &path)
}

/// Git's packs: written and fsynced under a temporary name, made read-only, renamed; the
/// directory fsynced. a.tmp: create, write, fsync, close; chmod(path, 0444); rename to a.dat.
/// b.tmp: create, write, fsync; fchmod 0444; close; rename to b.dat. Then the directory
/// fsynced. The data was durable before each rename: no `rename_before_fsync` (the mode
/// change alone is unsynced: listed, not a finding).
pub(crate) fn chmod_then_rename(dir: &Path) -> Res<()> {
    let (a_tmp, a) = (join(dir, "a.tmp"), join(dir, "a.dat"));
    let fd = written_and_synced(&a_tmp)?;
    close_or_die(fd, &a_tmp)?;
    chmod(&a_tmp, 0o444)?;
    rename_or_die(&a_tmp, &a)?;
    let (b_tmp, b) = (join(dir, "b.tmp"), join(dir, "b.dat"));
    let fd = written_and_synced(&b_tmp)?;
    fchmod(fd, 0o444, &b_tmp)?;
    close_or_die(fd, &b_tmp)?;
    rename_or_die(&b_tmp, &b)?;
    dirfsync(dir)
}

/// An installer's temporary file: mode set first, then the data, never synced. c.tmp: create;
/// fchmod 0644; one write (100 bytes); close; rename to c.dat; the directory fsynced. The
/// write follows the mode change in the same durability epoch: it is still data the rename
/// publishes unsynced (`rename_before_fsync`, and `unsynced_write` at the end).
pub(crate) fn fchmod_write_rename(dir: &Path) -> Res<()> {
    let (tmp, dst) = (join(dir, "c.tmp"), join(dir, "c.dat"));
    let fd = create(&tmp)?;
    fchmod(fd, 0o644, &tmp)?;
    write_records(fd, 1, RECORD, &tmp)?;
    close_or_die(fd, &tmp)?;
    rename_or_die(&tmp, &dst)?;
    dirfsync(dir)
}
