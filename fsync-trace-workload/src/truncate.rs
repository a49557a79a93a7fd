//! Changes that write no data but need a sync to be durable: ftruncate, truncate(2) by path and
//! fallocate (every mode). Each comment lists the exact syscalls.
use std::path::Path;

use super::{
    close_or_die, cpath, create, dirfsync, fdatasync_or_die, fsync_or_die, join, open_flags,
    os_fail, write_records, Res,
};

/// Bytes of each record written here.
const RECORD: usize = 100;
/// One ext4 block: collapse and insert ranges must be block-aligned.
const BLOCK: i64 = 4096;

fn ftruncate_or_die(fd: libc::c_int, len: i64, path: &Path) -> Res<()> {
    // SAFETY: plain syscall on an fd we own.
    if unsafe { libc::ftruncate(fd, len) } != 0 {
        return Err(os_fail(format!("ftruncate {}", path.display())));
    }
    Ok(())
}

fn truncate_or_die(path: &Path, len: i64) -> Res<()> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    if unsafe { libc::truncate(c.as_ptr(), len) } != 0 {
        return Err(os_fail(format!("truncate {}", path.display())));
    }
    Ok(())
}

fn fallocate_or_die(
    fd: libc::c_int,
    mode: libc::c_int,
    off: i64,
    len: i64,
    path: &Path,
) -> Res<()> {
    // SAFETY: plain syscall on an fd we own.
    if unsafe { libc::fallocate(fd, mode, off, len) } != 0 {
        return Err(os_fail(format!(
            "fallocate mode {mode:#x} {}",
            path.display()
        )));
    }
    Ok(())
}

/// t.dat: create, 3 writes of 100 bytes, fsync, ftruncate 100, fsync (not redundant: the
/// truncation), fsync (redundant), close; the directory fsynced.
pub(crate) fn truncate_sync(dir: &Path) -> Res<()> {
    let path = join(dir, "t.dat");
    let fd = create(&path)?;
    write_records(fd, 3, RECORD, &path)?;
    fsync_or_die(fd, &path)?;
    ftruncate_or_die(fd, RECORD as i64, &path)?;
    fsync_or_die(fd, &path)?;
    fsync_or_die(fd, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// u.dat: create, 2 writes of 100 bytes, fsync, close; the directory fsynced; open(O_WRONLY),
/// ftruncate 50, close: the truncation is never synced.
pub(crate) fn truncate_unsynced(dir: &Path) -> Res<()> {
    let path = join(dir, "u.dat");
    let fd = create(&path)?;
    write_records(fd, 2, RECORD, &path)?;
    fsync_or_die(fd, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)?;
    let fd = open_flags(&path, libc::O_WRONLY)?;
    ftruncate_or_die(fd, 50, &path)?;
    close_or_die(fd, &path)
}

/// f.dat: create, one write of 16 KiB, fdatasync; then each fallocate mode followed by an
/// fdatasync (none redundant): allocate 16..24 KiB (size grows), KEEP_SIZE 24..28 KiB,
/// PUNCH_HOLE|KEEP_SIZE 0..4 KiB, ZERO_RANGE 4..8 KiB, COLLAPSE_RANGE 8..12 KiB,
/// INSERT_RANGE 8..12 KiB; one more fdatasync (redundant), close; the directory fsynced.
pub(crate) fn fallocate(dir: &Path) -> Res<()> {
    let path = join(dir, "f.dat");
    let fd = create(&path)?;
    write_records(fd, 1, 4 * BLOCK as usize, &path)?;
    fdatasync_or_die(fd, &path)?;
    let modes = [
        (0, 4 * BLOCK, 2 * BLOCK),
        (libc::FALLOC_FL_KEEP_SIZE, 6 * BLOCK, BLOCK),
        (
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            BLOCK,
        ),
        (libc::FALLOC_FL_ZERO_RANGE, BLOCK, BLOCK),
        (libc::FALLOC_FL_COLLAPSE_RANGE, 2 * BLOCK, BLOCK),
        (libc::FALLOC_FL_INSERT_RANGE, 2 * BLOCK, BLOCK),
    ];
    for (mode, off, len) in modes {
        fallocate_or_die(fd, mode, off, len, &path)?;
        fdatasync_or_die(fd, &path)?;
    }
    fdatasync_or_die(fd, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// truncate(2) by path. p.dat: create, one write of 100 bytes, fsync, close; q.dat: the same;
/// the directory fsynced; truncate(p.dat, 10), never synced; truncate(q.dat, 0), then
/// open(O_WRONLY), fsync (not redundant: the truncation), close.
pub(crate) fn truncate_path(dir: &Path) -> Res<()> {
    let (p, q) = (join(dir, "p.dat"), join(dir, "q.dat"));
    for path in [&p, &q] {
        let fd = create(path)?;
        write_records(fd, 1, RECORD, path)?;
        fsync_or_die(fd, path)?;
        close_or_die(fd, path)?;
    }
    dirfsync(dir)?;
    truncate_or_die(&p, 10)?;
    truncate_or_die(&q, 0)?;
    let fd = open_flags(&q, libc::O_WRONLY)?;
    fsync_or_die(fd, &q)?;
    close_or_die(fd, &q)
}
