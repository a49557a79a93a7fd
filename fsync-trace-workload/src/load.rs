//! The benchmark loads: a write storm, appends each fdatasynced (optionally in lockstep with a
//! second process), many small files.
use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use super::*;

/// storm.dat: N writes of 64 bytes, close, no sync. Tracer overhead benchmark.
pub(crate) fn write_storm(dir: &Path, writes: usize) -> Res<()> {
    let path = join(dir, "storm.dat");
    let fd = create(&path)?;
    // One buffer for all writes: the benchmark should measure syscalls.
    let buf = record(64, 0);
    for _ in 0..writes {
        write_exact_once(fd, &buf, &path)?;
    }
    close_or_die(fd, &path)
}

/// wal.log: N x (write 4096 + fdatasync), close. fsync-latency benchmark.
pub(crate) fn fsync_bound(dir: &Path, records: usize, lockstep: Option<Lockstep>) -> Res<()> {
    let path = join(dir, "wal.log");
    let fd = create(&path)?;
    let buf = record(4096, 0);
    let mut turns = lockstep.map(Turns::open).transpose()?;
    let mut busy = std::time::Duration::ZERO;
    for i in 0..records {
        if let Some(t) = &mut turns {
            t.wait(i)?;
        }
        // Monotonic clock reads are vDSO calls, not syscalls: nothing a tracer sees.
        let start = std::time::Instant::now();
        write_exact_once(fd, &buf, &path)?;
        fdatasync_or_die(fd, &path)?;
        busy += start.elapsed();
        if let Some(t) = &mut turns {
            t.pass(i, records)?;
        }
    }
    if turns.is_some() {
        BUSY_NS.store(busy.as_nanos() as u64, Ordering::Relaxed);
    }
    close_or_die(fd, &path)
}

/// `--lockstep IN OUT [--lockstep-first]`: two FIFOs shared with a partner process.
pub(crate) struct Lockstep {
    pub(crate) input: PathBuf,
    pub(crate) output: PathBuf,
    pub(crate) first: bool,
}

/// Time spent in a lockstep scenario's own steps (0: not in lockstep mode, report wall time).
pub(crate) static BUSY_NS: AtomicU64 = AtomicU64::new(0);

/// Two processes taking turns, one record each, so both run under the same conditions
/// (`cargo xtask bench` runs one of them traced and compares the two: the disk and host
/// vary too much from one whole run to the next to see a 2% difference).
struct Turns {
    input: libc::c_int,
    output: libc::c_int,
    first: bool,
    /// A byte from the partner arrived (from then on, EOF means it ended).
    connected: bool,
}

impl Turns {
    fn open(l: Lockstep) -> Res<Turns> {
        // The read end without O_NONBLOCK would wait for a writer, and the partner opens its
        // ends in the same order: open it non-blocking, then the write end (which waits for the
        // partner's read end), then make reads blocking again.
        let input = open_flags(
            &l.input,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )?;
        let output = open_flags(&l.output, libc::O_WRONLY | libc::O_CLOEXEC)?;
        // SAFETY: fcntl on a descriptor we own.
        if unsafe { libc::fcntl(input, libc::F_SETFL, 0) } < 0 {
            return Err(os_fail(format!("fcntl {}", l.input.display())));
        }
        Ok(Turns {
            input,
            output,
            first: l.first,
            connected: false,
        })
    }

    /// Waits for the partner to finish its record (the first process starts at once).
    fn wait(&mut self, i: usize) -> Res<()> {
        if self.first && i == 0 {
            return Ok(());
        }
        let mut b = 0u8;
        // Before its first byte the partner may not have opened its write end yet (a traced
        // partner starts after the tracer has loaded): a FIFO without a writer reads as EOF.
        let mut retries = 0;
        loop {
            // SAFETY: reads one byte into `b`.
            match unsafe { libc::read(self.input, (&raw mut b).cast(), 1) } {
                1 => break,
                0 if !self.connected && retries < 60_000 => {
                    retries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                0 => return Err(fail("lockstep", "the partner process ended early")),
                _ => return Err(os_fail("lockstep read")),
            }
        }
        self.connected = true;
        Ok(())
    }

    /// Gives the turn to the partner (after record `i`), unless the partner is done.
    fn pass(&mut self, i: usize, records: usize) -> Res<()> {
        if i + 1 == records && !self.first {
            return Ok(()); // the partner has done all its records
        }
        // SAFETY: writes one byte from a local.
        match unsafe { libc::write(self.output, [1u8].as_ptr().cast(), 1) } {
            1 => Ok(()),
            _ => Err(os_fail("lockstep write")),
        }
    }
}

/// f<i>.dat for i in 0..N: 1 write of 128, fsync, close; then the dir once.
/// Tracer state-table benchmark (many inodes).
pub(crate) fn many_files(dir: &Path, files: usize) -> Res<()> {
    for i in 0..files {
        write_file(&join(dir, &format!("f{i}.dat")), 1, 128, true)?;
    }
    dirfsync(dir)
}
