//! Vectored writes (writev, pwritev2) and io_uring, through raw system calls (no liburing).
use std::path::Path;

use super::*;

/// One vectored write of `parts` (lengths) at `offset`, or at the file position if None
/// (writev(2), else pwritev2(2) with no flags).
pub(crate) fn write_vectored(
    fd: libc::c_int,
    parts: &[usize],
    offset: Option<i64>,
    path: &Path,
) -> Res<()> {
    let bufs: Vec<Vec<u8>> = parts
        .iter()
        .enumerate()
        .map(|(i, &n)| record(n, i))
        .collect();
    let iov: Vec<libc::iovec> = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let total: usize = parts.iter().sum();
    // SAFETY: `iov` points into `bufs`, both alive for the call.
    let n = unsafe {
        match offset {
            None => libc::writev(fd, iov.as_ptr(), iov.len() as libc::c_int) as i64,
            // (fd, iov, iovcnt, pos_l, pos_h, flags): pos_h is unused on 64-bit.
            Some(off) => libc::syscall(
                libc::SYS_pwritev2,
                libc::c_long::from(fd),
                iov.as_ptr(),
                iov.len() as libc::c_long,
                off as libc::c_long,
                0 as libc::c_long,
                0 as libc::c_long,
            ),
        }
    };
    if n < 0 {
        return Err(os_fail(format!("writev {}", path.display())));
    }
    if n as usize != total {
        return Err(fail(
            format!("writev {}", path.display()),
            format!("short write: {n} of {total} bytes"),
        ));
    }
    Ok(())
}

/// vec.dat: writev [50, 50], pwritev2 [60, 40] at offset 100, fsync, writev [100], close; dir
/// fsynced. 3 write calls, 300 bytes, 1 fsync, the last 100 bytes unsynced. The vectored
/// syscalls bypass vfs_write inside the kernel.
pub(crate) fn writev(dir: &Path) -> Res<()> {
    let path = join(dir, "vec.dat");
    let fd = create(&path)?;
    write_vectored(fd, &[50, 50], None, &path)?;
    write_vectored(fd, &[60, 40], Some(100), &path)?;
    fsync_or_die(fd, &path)?;
    write_vectored(fd, &[100], None, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// Minimal io_uring ABI (include/uapi/linux/io_uring.h), enough for one IORING_OP_FSYNC.
mod uring {
    #[repr(C)]
    #[derive(Default)]
    pub struct SqOffsets {
        pub head: u32,
        pub tail: u32,
        pub ring_mask: u32,
        pub ring_entries: u32,
        pub flags: u32,
        pub dropped: u32,
        pub array: u32,
        pub resv1: u32,
        pub user_addr: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    pub struct CqOffsets {
        pub head: u32,
        pub tail: u32,
        pub ring_mask: u32,
        pub ring_entries: u32,
        pub overflow: u32,
        pub cqes: u32,
        pub flags: u32,
        pub resv1: u32,
        pub user_addr: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    pub struct Params {
        pub sq_entries: u32,
        pub cq_entries: u32,
        pub flags: u32,
        pub sq_thread_cpu: u32,
        pub sq_thread_idle: u32,
        pub features: u32,
        pub wq_fd: u32,
        pub resv: [u32; 3],
        pub sq_off: SqOffsets,
        pub cq_off: CqOffsets,
    }
    #[repr(C)]
    pub struct Sqe {
        pub opcode: u8,
        pub flags: u8,
        pub ioprio: u16,
        pub fd: i32,
        pub off: u64,
        pub addr: u64,
        pub len: u32,
        pub fsync_flags: u32,
        pub user_data: u64,
        pub pad: [u64; 3],
    }
    #[repr(C)]
    pub struct Cqe {
        pub user_data: u64,
        pub res: i32,
        pub flags: u32,
    }
    const _: () = assert!(std::mem::size_of::<Params>() == 120);
    const _: () = assert!(std::mem::size_of::<Sqe>() == 64);
    pub const OP_FSYNC: u8 = 3;
    pub const OFF_SQ_RING: i64 = 0;
    pub const OFF_CQ_RING: i64 = 0x800_0000;
    pub const OFF_SQES: i64 = 0x1000_0000;
    pub const FEAT_SINGLE_MMAP: u32 = 1;
    pub const ENTER_GETEVENTS: u32 = 1;
}

/// fsync(fd) through io_uring: one IORING_OP_FSYNC submitted and waited for with
/// io_uring_enter. The kernel runs it in an `iou-wrk-<pid>` worker thread, which calls
/// vfs_fsync_range directly: no fsync(2) syscall happens.
fn uring_fsync(fd: libc::c_int, path: &Path) -> Res<()> {
    let mut p = uring::Params::default();
    // SAFETY: io_uring_setup(entries, params) with a valid out struct.
    let ring = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1 as libc::c_long, &raw mut p) }
        as libc::c_int;
    if ring < 0 {
        return Err(os_fail("io_uring_setup (is io_uring disabled here?)"));
    }
    let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
    let cq_len = p.cq_off.cqes as usize + p.cq_entries as usize * std::mem::size_of::<uring::Cqe>();
    let single = p.features & uring::FEAT_SINGLE_MMAP != 0;
    let sq = crate::uring::map(
        ring,
        if single { sq_len.max(cq_len) } else { sq_len },
        uring::OFF_SQ_RING,
    )?;
    let cq = if single {
        sq
    } else {
        crate::uring::map(ring, cq_len, uring::OFF_CQ_RING)?
    };
    let sqes = crate::uring::map(
        ring,
        p.sq_entries as usize * std::mem::size_of::<uring::Sqe>(),
        uring::OFF_SQES,
    )?;
    // SAFETY: offsets come from the kernel and lie inside the mappings; the ring is private to
    // this thread, and the release/acquire atomics order our stores with the kernel's reads.
    let res = unsafe {
        use std::sync::atomic::{AtomicU32, Ordering};
        let at = |base: *mut u8, off: u32| &*(base.add(off as usize) as *const AtomicU32);
        let sqe = sqes.cast::<uring::Sqe>();
        sqe.write(uring::Sqe {
            opcode: uring::OP_FSYNC,
            flags: 0,
            ioprio: 0,
            fd,
            off: 0,
            addr: 0,
            len: 0,
            fsync_flags: 0,
            user_data: 42,
            pad: [0; 3],
        });
        let tail = at(sq, p.sq_off.tail).load(Ordering::Acquire);
        let mask = *(sq.add(p.sq_off.ring_mask as usize) as *const u32);
        *sq.add(p.sq_off.array as usize)
            .cast::<u32>()
            .add((tail & mask) as usize) = 0;
        at(sq, p.sq_off.tail).store(tail.wrapping_add(1), Ordering::Release);
        // (fd, to_submit, min_complete, flags, sigset, sigset size)
        let n = libc::syscall(
            libc::SYS_io_uring_enter,
            libc::c_long::from(ring),
            1 as libc::c_long,
            1 as libc::c_long,
            libc::c_long::from(uring::ENTER_GETEVENTS),
            std::ptr::null::<libc::c_void>(),
            0 as libc::c_long,
        );
        if n != 1 {
            return Err(os_fail(format!(
                "io_uring_enter (fsync {})",
                path.display()
            )));
        }
        let head = at(cq, p.cq_off.head).load(Ordering::Acquire);
        if at(cq, p.cq_off.tail).load(Ordering::Acquire) == head {
            return Err(fail(
                format!("io_uring fsync {}", path.display()),
                "no completion",
            ));
        }
        let cmask = *(cq.add(p.cq_off.ring_mask as usize) as *const u32);
        let cqe =
            &*(cq.add(p.cq_off.cqes as usize) as *const uring::Cqe).add((head & cmask) as usize);
        let res = cqe.res;
        at(cq, p.cq_off.head).store(head.wrapping_add(1), Ordering::Release);
        res
    };
    // SAFETY: closing the ring we created; the mappings go with the process.
    unsafe { libc::close(ring) };
    if res < 0 {
        return Err(fail(
            format!("io_uring fsync {}", path.display()),
            io::Error::from_raw_os_error(-res).to_string(),
        ));
    }
    Ok(())
}

/// uring.dat: 2 writes of 100 bytes, fsync through io_uring (no fsync syscall), close; dir
/// fsynced. Durable, but only hooks inside the kernel (vfs_fsync_range) see the sync: the
/// syscall tracepoints report the 200 bytes as never synced.
pub(crate) fn io_uring_fsync(dir: &Path) -> Res<()> {
    let path = join(dir, "uring.dat");
    let fd = create(&path)?;
    write_records(fd, 2, 100, &path)?;
    uring_fsync(fd, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}
