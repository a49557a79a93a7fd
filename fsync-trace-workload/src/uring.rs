//! io_uring scenarios through raw system calls (no liburing): ring writes (WRITE, WRITEV,
//! WRITE_FIXED), FSYNC with and without DATASYNC, SYNC_FILE_RANGE, CLOSE, link chains and
//! an SQPOLL ring. Each scenario documents the requests it submits and what a tracer must see.
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

use fsync_trace_common::uring::{
    FSYNC_DATASYNC, OP_CLOSE, OP_FSYNC, OP_LINKAT, OP_MKDIRAT, OP_OPENAT, OP_RENAMEAT,
    OP_SYNC_FILE_RANGE, OP_UNLINKAT, OP_WRITE, OP_WRITEV, OP_WRITE_FIXED,
};

/// `IOSQE_*`, setup and enter flags (include/uapi/linux/io_uring.h).
const IOSQE_IO_LINK: u8 = 1 << 2;
const SETUP_SQPOLL: u32 = 1 << 1;
const ENTER_GETEVENTS: u32 = 1;
const ENTER_SQ_WAKEUP: u32 = 2;
const SQ_NEED_WAKEUP: u32 = 1;
const REGISTER_BUFFERS: u32 = 0;
const FEAT_SINGLE_MMAP: u32 = 1;
const OFF_SQ_RING: i64 = 0;
const OFF_CQ_RING: i64 = 0x800_0000;
const OFF_SQES: i64 = 0x1000_0000;

#[repr(C)]
#[derive(Default)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

/// One submission queue entry.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Sqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    /// fsync_flags, rw_flags, sync_range_flags...
    op_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    file_index: i32,
    addr3: u64,
    pad: u64,
}

#[repr(C)]
struct Cqe {
    user_data: u64,
    res: i32,
    flags: u32,
}

const _: () = assert!(std::mem::size_of::<Params>() == 120);
const _: () = assert!(std::mem::size_of::<Sqe>() == 64);

/// A ring with its mappings. Requests are pushed, then submitted and waited for together.
struct Ring {
    fd: libc::c_int,
    p: Params,
    sq: *mut u8,
    cq: *mut u8,
    sqes: *mut Sqe,
    pending: u32,
}

/// Maps `len` bytes of io_uring `ring` at `offset`.
pub fn map(ring: libc::c_int, len: usize, offset: i64) -> Res<*mut u8> {
    // SAFETY: a fresh shared mapping of the ring fd; checked for MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            ring,
            offset,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os_fail("mmap io_uring ring"));
    }
    Ok(p.cast())
}

impl Ring {
    fn new(entries: u32, flags: u32) -> Res<Ring> {
        let mut p = Params {
            flags,
            sq_thread_idle: 1000,
            ..Params::default()
        };
        // SAFETY: io_uring_setup(entries, params) with a valid out struct.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_io_uring_setup,
                libc::c_long::from(entries),
                &raw mut p,
            )
        } as libc::c_int;
        if fd < 0 {
            return Err(os_fail("io_uring_setup (is io_uring disabled here?)"));
        }
        let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
        let cq_len = p.cq_off.cqes as usize + p.cq_entries as usize * std::mem::size_of::<Cqe>();
        let single = p.features & FEAT_SINGLE_MMAP != 0;
        let sq = map(
            fd,
            if single { sq_len.max(cq_len) } else { sq_len },
            OFF_SQ_RING,
        )?;
        let cq = if single {
            sq
        } else {
            map(fd, cq_len, OFF_CQ_RING)?
        };
        let sqes = map(
            fd,
            p.sq_entries as usize * std::mem::size_of::<Sqe>(),
            OFF_SQES,
        )?
        .cast();
        Ok(Ring {
            fd,
            p,
            sq,
            cq,
            sqes,
            pending: 0,
        })
    }

    fn at(&self, base: *mut u8, off: u32) -> &AtomicU32 {
        // SAFETY: `off` is a kernel-given offset of an aligned u32 inside the mapping.
        unsafe { &*(base.add(off as usize) as *const AtomicU32) }
    }

    /// Queues `sqe` (not yet visible to the kernel's submission until `submit`).
    fn push(&mut self, sqe: Sqe) {
        let tail = self.at(self.sq, self.p.sq_off.tail).load(Ordering::Acquire);
        let mask = self
            .at(self.sq, self.p.sq_off.ring_mask)
            .load(Ordering::Relaxed);
        let idx = (tail & mask) as usize;
        // SAFETY: `idx` is inside the SQE array and the ring's index array.
        unsafe {
            self.sqes.add(idx).write(sqe);
            self.sq
                .add(self.p.sq_off.array as usize)
                .cast::<u32>()
                .add(idx)
                .write(idx as u32);
        }
        self.at(self.sq, self.p.sq_off.tail)
            .store(tail.wrapping_add(1), Ordering::Release);
        self.pending += 1;
    }

    /// Submits everything pushed in one io_uring_enter (the kernel takes it from the ring by
    /// itself with SQPOLL) and waits for as many completions; returns their results by
    /// `user_data` order of arrival.
    fn submit_and_wait(&mut self, what: &str) -> Res<Vec<(u64, i32)>> {
        let n = std::mem::take(&mut self.pending);
        let mut flags = ENTER_GETEVENTS;
        let sqpoll = self.p.flags & SETUP_SQPOLL != 0;
        if sqpoll
            && self
                .at(self.sq, self.p.sq_off.flags)
                .load(Ordering::Acquire)
                & SQ_NEED_WAKEUP
                != 0
        {
            flags |= ENTER_SQ_WAKEUP;
        }
        let mut done = Vec::new();
        while done.len() < n as usize {
            let to_submit = if done.is_empty() { n } else { 0 };
            // SAFETY: (fd, to_submit, min_complete, flags, sigset, sigset size).
            let r = unsafe {
                libc::syscall(
                    libc::SYS_io_uring_enter,
                    libc::c_long::from(self.fd),
                    libc::c_long::from(to_submit),
                    libc::c_long::from(n - done.len() as u32),
                    libc::c_long::from(flags),
                    std::ptr::null::<libc::c_void>(),
                    0 as libc::c_long,
                )
            };
            if r < 0 {
                return Err(os_fail(format!("io_uring_enter ({what})")));
            }
            let head = self.at(self.cq, self.p.cq_off.head).load(Ordering::Acquire);
            let tail = self.at(self.cq, self.p.cq_off.tail).load(Ordering::Acquire);
            let mask = self
                .at(self.cq, self.p.cq_off.ring_mask)
                .load(Ordering::Relaxed);
            let mut h = head;
            while h != tail {
                // SAFETY: index masked into the CQE array.
                let cqe = unsafe {
                    &*(self.cq.add(self.p.cq_off.cqes as usize) as *const Cqe)
                        .add((h & mask) as usize)
                };
                done.push((cqe.user_data, cqe.res));
                h = h.wrapping_add(1);
            }
            self.at(self.cq, self.p.cq_off.head)
                .store(h, Ordering::Release);
        }
        for &(ud, res) in &done {
            if res < 0 {
                return Err(fail(
                    format!("{what}: request {ud}"),
                    io::Error::from_raw_os_error(-res).to_string(),
                ));
            }
        }
        Ok(done)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: closing the ring we created; the mappings go with the process.
        unsafe { libc::close(self.fd) };
    }
}

fn write_sqe(fd: libc::c_int, buf: &[u8], off: u64, ud: u64) -> Sqe {
    Sqe {
        opcode: OP_WRITE,
        fd,
        off,
        addr: buf.as_ptr() as u64,
        len: buf.len() as u32,
        user_data: ud,
        ..Sqe::default()
    }
}

fn fsync_sqe(fd: libc::c_int, datasync: bool, ud: u64) -> Sqe {
    Sqe {
        opcode: OP_FSYNC,
        fd,
        op_flags: if datasync { FSYNC_DATASYNC } else { 0 },
        user_data: ud,
        ..Sqe::default()
    }
}

/// Every completion wrote `len` bytes (no short ring write).
fn check_writes(done: &[(u64, i32)], writes: &[u64], len: i32, path: &Path) -> Res<()> {
    for &(ud, res) in done {
        if writes.contains(&ud) && res != len {
            return Err(fail(
                format!("io_uring write {}", path.display()),
                format!("short write: {res} of {len} bytes"),
            ));
        }
    }
    Ok(())
}

/// uring-writes.dat: one batch of IORING_OP_WRITE (100 bytes at 0), IORING_OP_WRITEV (50 + 50
/// at 100) and IORING_OP_WRITE_FIXED (100 at 200, a registered buffer), waited for; then an
/// IORING_OP_FSYNC alone, waited for; then IORING_OP_CLOSE; dir fsynced. 3 writes, 300 bytes,
/// 1 fsync, durable: no findings.
pub(crate) fn uring_write_fsync(dir: &Path) -> Res<()> {
    let path = join(dir, "uring-writes.dat");
    let fd = create(&path)?;
    let mut ring = Ring::new(8, 0)?;
    let a = record(100, 0);
    let (b1, b2) = (record(50, 1), record(50, 2));
    let fixed = record(100, 3);
    let iov = [
        libc::iovec {
            iov_base: b1.as_ptr() as *mut libc::c_void,
            iov_len: b1.len(),
        },
        libc::iovec {
            iov_base: b2.as_ptr() as *mut libc::c_void,
            iov_len: b2.len(),
        },
    ];
    let reg = [libc::iovec {
        iov_base: fixed.as_ptr() as *mut libc::c_void,
        iov_len: fixed.len(),
    }];
    // SAFETY: io_uring_register(fd, IORING_REGISTER_BUFFERS, iovecs, 1); `fixed` outlives the ring.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            libc::c_long::from(ring.fd),
            libc::c_long::from(REGISTER_BUFFERS),
            reg.as_ptr(),
            1 as libc::c_long,
        )
    };
    if r < 0 {
        return Err(os_fail("io_uring_register buffers"));
    }
    ring.push(write_sqe(fd, &a, 0, 1));
    ring.push(Sqe {
        opcode: OP_WRITEV,
        fd,
        off: 100,
        addr: iov.as_ptr() as u64,
        len: 2,
        user_data: 2,
        ..Sqe::default()
    });
    ring.push(Sqe {
        opcode: OP_WRITE_FIXED,
        buf_index: 0,
        ..write_sqe(fd, &fixed, 200, 3)
    });
    let done = ring.submit_and_wait("writes")?;
    check_writes(&done, &[1, 2, 3], 100, &path)?;
    ring.push(fsync_sqe(fd, false, 4));
    ring.submit_and_wait("fsync")?;
    ring.push(Sqe {
        opcode: OP_CLOSE,
        fd,
        user_data: 5,
        ..Sqe::default()
    });
    ring.submit_and_wait("close")?;
    dirfsync(dir)
}

/// uring-unsynced.dat: 4 IORING_OP_WRITEs of 100 bytes (one batch), then an
/// IORING_OP_SYNC_FILE_RANGE of the whole file (starts writeback: not durable); closed; dir
/// fsynced. 4 writes, 400 bytes, none durable: unsynced_write.
pub(crate) fn uring_unsynced(dir: &Path) -> Res<()> {
    let path = join(dir, "uring-unsynced.dat");
    let fd = create(&path)?;
    let mut ring = Ring::new(8, 0)?;
    let bufs: Vec<Vec<u8>> = (0..4).map(|i| record(100, i)).collect();
    for (i, b) in bufs.iter().enumerate() {
        ring.push(write_sqe(fd, b, i as u64 * 100, i as u64 + 1));
    }
    let done = ring.submit_and_wait("writes")?;
    check_writes(&done, &[1, 2, 3, 4], 100, &path)?;
    // SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER over [0, 400).
    ring.push(Sqe {
        opcode: OP_SYNC_FILE_RANGE,
        fd,
        off: 0,
        len: 400,
        op_flags: 7,
        user_data: 5,
        ..Sqe::default()
    });
    ring.submit_and_wait("sync_file_range")?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// uring-batch.dat: ONE batch of 2 IORING_OP_WRITEs (100 bytes each) and an IORING_OP_FSYNC,
/// not linked: the fsync may run before the writes (uring_fsync_unordered); closed; dir
/// fsynced. With `linked`, uring-linked.dat: the same batch with IOSQE_IO_LINK on both writes
/// and IORING_FSYNC_DATASYNC: ordered, durable (1 fdatasync), no findings.
pub(crate) fn uring_batch(dir: &Path, linked: bool) -> Res<()> {
    let path = join(
        dir,
        if linked {
            "uring-linked.dat"
        } else {
            "uring-batch.dat"
        },
    );
    let fd = create(&path)?;
    let mut ring = Ring::new(8, 0)?;
    let (a, b) = (record(100, 0), record(100, 1));
    let link = if linked { IOSQE_IO_LINK } else { 0 };
    ring.push(Sqe {
        flags: link,
        ..write_sqe(fd, &a, 0, 1)
    });
    ring.push(Sqe {
        flags: link,
        ..write_sqe(fd, &b, 100, 2)
    });
    ring.push(fsync_sqe(fd, linked, 3));
    let done = ring.submit_and_wait("writes + fsync")?;
    check_writes(&done, &[1, 2], 100, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// uring-sqpoll.dat on an SQPOLL ring (the kernel's `iou-sqp` thread submits): 2
/// IORING_OP_WRITEs of 100 bytes, waited for, then IORING_OP_FSYNC with DATASYNC, waited for;
/// closed; dir fsynced. 2 writes, 200 bytes, 1 fdatasync, durable.
pub(crate) fn uring_sqpoll(dir: &Path) -> Res<()> {
    let path = join(dir, "uring-sqpoll.dat");
    let fd = create(&path)?;
    let mut ring = Ring::new(8, SETUP_SQPOLL)?;
    let (a, b) = (record(100, 0), record(100, 1));
    ring.push(write_sqe(fd, &a, 0, 1));
    ring.push(write_sqe(fd, &b, 100, 2));
    let done = ring.submit_and_wait("writes")?;
    check_writes(&done, &[1, 2], 100, &path)?;
    ring.push(fsync_sqe(fd, true, 3));
    ring.submit_and_wait("fdatasync")?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// Entry changes through io_uring, or (`syscalls`) the same sequence through their system-call
/// twins, so a test can require identical reports: OPENAT creates new.tmp (O_CREAT|O_TRUNC),
/// 100 bytes written, fsynced and closed (ring WRITE, FSYNC, CLOSE); RENAMEAT new.tmp ->
/// new.dat; MKDIRAT sub; LINKAT new.dat -> hard.dat; UNLINKAT hard.dat. The directory is never
/// fsynced: the new entries are not durable.
pub(crate) fn uring_namespace(dir: &Path, syscalls: bool) -> Res<()> {
    let tmp = cpath(&join(dir, "new.tmp"))?;
    let dat = cpath(&join(dir, "new.dat"))?;
    let sub = cpath(&join(dir, "sub"))?;
    let hard = cpath(&join(dir, "hard.dat"))?;
    let data = record(100, 0);
    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
    if syscalls {
        let path = join(dir, "new.tmp");
        let fd = create(&path)?;
        write_records(fd, 1, 100, &path)?;
        fsync_or_die(fd, &path)?;
        close_or_die(fd, &path)?;
        // SAFETY: valid NUL-terminated paths.
        let steps = unsafe {
            [
                ("rename", libc::rename(tmp.as_ptr(), dat.as_ptr())),
                ("mkdir", libc::mkdir(sub.as_ptr(), 0o755)),
                ("link", libc::link(dat.as_ptr(), hard.as_ptr())),
                ("unlink", libc::unlink(hard.as_ptr())),
            ]
        };
        for (what, r) in steps {
            if r != 0 {
                return Err(os_fail(what));
            }
        }
        return Ok(());
    }
    let mut ring = Ring::new(8, 0)?;
    let at = |op: u8, old: &CString, new: Option<&CString>, ud: u64| Sqe {
        opcode: op,
        fd: libc::AT_FDCWD,
        addr: old.as_ptr() as u64,
        len: libc::AT_FDCWD as u32,
        off: new.map_or(0, |n| n.as_ptr() as u64),
        user_data: ud,
        ..Sqe::default()
    };
    ring.push(Sqe {
        op_flags: flags as u32,
        len: 0o644,
        ..at(OP_OPENAT, &tmp, None, 1)
    });
    let done = ring.submit_and_wait("openat")?;
    let fd = done[0].1;
    ring.push(write_sqe(fd, &data, 0, 2));
    let done = ring.submit_and_wait("write")?;
    check_writes(&done, &[2], 100, &join(dir, "new.tmp"))?;
    ring.push(fsync_sqe(fd, false, 3));
    ring.submit_and_wait("fsync")?;
    ring.push(Sqe {
        opcode: OP_CLOSE,
        fd,
        user_data: 4,
        ..Sqe::default()
    });
    ring.submit_and_wait("close")?;
    ring.push(at(OP_RENAMEAT, &tmp, Some(&dat), 5));
    ring.submit_and_wait("renameat")?;
    ring.push(Sqe {
        len: 0o755,
        ..at(OP_MKDIRAT, &sub, None, 6)
    });
    ring.submit_and_wait("mkdirat")?;
    ring.push(at(OP_LINKAT, &dat, Some(&hard), 7));
    ring.submit_and_wait("linkat")?;
    ring.push(Sqe {
        len: 0,
        ..at(OP_UNLINKAT, &hard, None, 8)
    });
    ring.submit_and_wait("unlinkat")?;
    Ok(())
}
