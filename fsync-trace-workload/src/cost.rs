//! Scenarios for what durability costs: one sync per record, batched syncs (group commit) and
//! syncs with nothing to make durable. Each comment lists the exact syscalls.
use std::path::Path;

use super::{
    close_or_die, create, dirfsync, fdatasync_or_die, fsync_or_die, join, open_flags, record,
    write_exact_once, Res,
};

/// Bytes of each record in these scenarios.
pub const RECORD_BYTES: usize = 100;

/// log.dat: create, N x (write 100 bytes + fdatasync), close; dir fsynced. One sync per record.
pub fn per_record_sync(dir: &Path, records: usize) -> Res<()> {
    let path = join(dir, "log.dat");
    let fd = create(&path)?;
    for i in 0..records {
        write_exact_once(fd, &record(RECORD_BYTES, i), &path)?;
        fdatasync_or_die(fd, &path)?;
    }
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// log.dat: create, N writes of 100 bytes with an fdatasync after every B of them (and one
/// after a last partial batch), close; dir fsynced. Group commit.
pub fn batched_sync(dir: &Path, (records, batch): (usize, usize)) -> Res<()> {
    let path = join(dir, "log.dat");
    let fd = create(&path)?;
    let batch = batch.max(1);
    for i in 0..records {
        write_exact_once(fd, &record(RECORD_BYTES, i), &path)?;
        if (i + 1) % batch == 0 || i + 1 == records {
            fdatasync_or_die(fd, &path)?;
        }
    }
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// d.dat: create, 3 writes of 100 bytes, fsync, fsync, fsync (two redundant), 1 write, fsync,
/// close; open(O_WRONLY|O_TRUNC), fsync (not redundant: truncated), close; the directory
/// fsynced twice (open+fsync+close each; the second is redundant).
pub fn double_fsync(dir: &Path) -> Res<()> {
    let path = join(dir, "d.dat");
    let fd = create(&path)?;
    for i in 0..3 {
        write_exact_once(fd, &record(RECORD_BYTES, i), &path)?;
    }
    fsync_or_die(fd, &path)?;
    fsync_or_die(fd, &path)?;
    fsync_or_die(fd, &path)?;
    write_exact_once(fd, &record(RECORD_BYTES, 3), &path)?;
    fsync_or_die(fd, &path)?;
    close_or_die(fd, &path)?;
    let fd = open_flags(&path, libc::O_WRONLY | libc::O_TRUNC)?;
    fsync_or_die(fd, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)?;
    dirfsync(dir)
}
