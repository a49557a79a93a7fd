//! A scheduled workload whose exposure (what a power cut would lose) is known at every
//! instant: four phases of `phase` ms each, the work done at the start of each phase, then a
//! sleep. Offsets below are from the workload's start; P = the phase length.
//!
//! - 0:  a.dat created, 3 x 4096-byte writes; b.dat created, one 1000-byte write.
//!   At risk: a.dat 3 writes 12288 B, b.dat 1 write 1000 B; entries a.dat, b.dat (create).
//! - P:  fsync a.dat, fsync the directory.             At risk: b.dat 1 write 1000 B.
//! - 2P: b.dat: 100 x 4096-byte pwrite at offset 0 (one page overwritten); c.tmp created,
//!   one 500-byte write, fsync, renamed to c.
//!   At risk: b.dat 101 writes 410600 B; entry c (rename). The peak: until b's fdatasync returns.
//! - 3P: fdatasync b.dat, fsync the directory.         Nothing at risk.
//! - 4P: a.dat reopened, one 10-byte write, never synced; exit.
use std::{path::Path, thread::sleep, time::Duration};

use super::{
    close_or_die, create, dirfsync, fail, fdatasync_or_die, fsync_or_die, join, open_flags,
    os_fail, record, rename_or_die, write_exact_once, Res,
};

pub fn exposure_schedule(dir: &Path, phase_ms: u64) -> Res<()> {
    let phase = Duration::from_millis(phase_ms);
    let (a, b) = (join(dir, "a.dat"), join(dir, "b.dat"));
    let fa = create(&a)?;
    for i in 0..3 {
        write_exact_once(fa, &record(4096, i), &a)?;
    }
    let fb = create(&b)?;
    write_exact_once(fb, &record(1000, 0), &b)?;
    sleep(phase);

    fsync_or_die(fa, &a)?;
    close_or_die(fa, &a)?;
    dirfsync(dir)?;
    sleep(phase);

    let page = record(4096, 7);
    for _ in 0..100 {
        // SAFETY: `page` is valid for its length; `fb` is ours.
        let n = unsafe { libc::pwrite(fb, page.as_ptr().cast(), page.len(), 0) };
        if n < 0 {
            return Err(os_fail(format!("pwrite {}", b.display())));
        }
        if n as usize != page.len() {
            return Err(fail(format!("pwrite {}", b.display()), "short write"));
        }
    }
    let (tmp, c) = (join(dir, "c.tmp"), join(dir, "c"));
    let fc = create(&tmp)?;
    write_exact_once(fc, &record(500, 1), &tmp)?;
    fsync_or_die(fc, &tmp)?;
    close_or_die(fc, &tmp)?;
    rename_or_die(&tmp, &c)?;
    sleep(phase);

    fdatasync_or_die(fb, &b)?;
    close_or_die(fb, &b)?;
    dirfsync(dir)?;
    sleep(phase);

    let fa = open_flags(&a, libc::O_WRONLY | libc::O_APPEND)?;
    write_exact_once(fa, &record(10, 2), &a)?;
    close_or_die(fa, &a)
}
