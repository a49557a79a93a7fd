//! `overwrite`: bytes written versus the dirty extent (what is really at risk). Exact syscalls,
//! all files in DIR:
//!
//! - overwrite.dat, append.log (O_APPEND) and far.dat created; DIR fsynced (only data is at
//!   risk from then on);
//! - overwrite.dat: 1,000 x pwrite of one 4096-byte page at offset 0. At risk: 4,096,000 bytes
//!   written, extent 0..4096;
//! - append.log: 10 x 100-byte write, then one 50-byte pwrite at offset 0, which Linux appends
//!   (O_APPEND ignores pwrite's offset). At risk: 1050 bytes, extent 0..1050;
//! - far.dat: one 10-byte write, fsync; one 20-byte pwrite at 1 GiB; one writev of 2 x 5 bytes
//!   at the file position (10). At risk: 30 bytes, extent 10..1 GiB + 20;
//! - then a sleep of `--hold-ms` (for `--crash-at`); close all; nothing is ever synced again.
use std::{path::Path, thread::sleep, time::Duration};

use super::{
    close_or_die, create, dirfsync, fail, fsync_or_die, join, open_flags, os_fail, record,
    vectored::write_vectored, write_exact_once, Res,
};

/// far.dat's pwrite offset: 1 GiB.
const FAR: i64 = 1 << 30;

/// Exactly one pwrite(2) of `buf` at `offset`.
fn pwrite_exact(fd: libc::c_int, buf: &[u8], offset: i64, path: &Path) -> Res<()> {
    // SAFETY: `buf` is valid for `buf.len()` bytes; `fd` is ours.
    let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), offset) };
    if n < 0 {
        return Err(os_fail(format!("pwrite {}", path.display())));
    }
    if n as usize != buf.len() {
        return Err(fail(format!("pwrite {}", path.display()), "short write"));
    }
    Ok(())
}

pub(crate) fn overwrite(dir: &Path, hold_ms: u64) -> Res<()> {
    let (ow, ap, far) = (
        join(dir, "overwrite.dat"),
        join(dir, "append.log"),
        join(dir, "far.dat"),
    );
    let fo = create(&ow)?;
    let fa = open_flags(
        &ap,
        libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_APPEND,
    )?;
    let ff = create(&far)?;
    dirfsync(dir)?;

    let page = record(4096, 3);
    for _ in 0..1000 {
        pwrite_exact(fo, &page, 0, &ow)?;
    }
    for i in 0..10 {
        write_exact_once(fa, &record(100, i), &ap)?;
    }
    pwrite_exact(fa, &record(50, 10), 0, &ap)?;
    write_exact_once(ff, &record(10, 0), &far)?;
    fsync_or_die(ff, &far)?;
    pwrite_exact(ff, &record(20, 1), FAR, &far)?;
    write_vectored(ff, &[5, 5], None, &far)?;

    sleep(Duration::from_millis(hold_ms));
    close_or_die(fo, &ow)?;
    close_or_die(fa, &ap)?;
    close_or_die(ff, &far)
}
