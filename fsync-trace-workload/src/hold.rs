//! `hold`: data left at risk for a while, for watching a live view. Exact syscalls:
//! big.dat (2 writes of 4096 B), mid.dat (1 write of 4096 B), small.dat (1 write of 100 B), all
//! created and never synced; dir fsynced (so only data is at risk); then log.dat created and,
//! every 100 ms for S seconds, one 100-byte write + fdatasync; close. At risk throughout:
//! big.dat 8192 B, mid.dat 4096 B, small.dat 100 B (in that order); log.dat synced ~10 times/s.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use super::{
    close_or_die, create, dirfsync, fdatasync_or_die, join, record, write_exact_once, write_file,
    Res,
};

pub fn hold(dir: &Path, seconds: f64) -> Res<()> {
    write_file(&join(dir, "big.dat"), 2, 4096, false)?;
    write_file(&join(dir, "mid.dat"), 1, 4096, false)?;
    write_file(&join(dir, "small.dat"), 1, 100, false)?;
    dirfsync(dir)?;
    let path = join(dir, "log.dat");
    let fd = create(&path)?;
    let end = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let mut i = 0;
    while Instant::now() < end {
        write_exact_once(fd, &record(100, i), &path)?;
        fdatasync_or_die(fd, &path)?;
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    close_or_die(fd, &path)
}
