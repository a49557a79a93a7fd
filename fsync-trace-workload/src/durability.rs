//! The durability scenarios made of plain system calls: each one's comment
//! lists its exact syscalls, which the scenario table (`scenarios.rs`) counts.

use super::*;

// ---------------------------------------------------------------------------
// Scenarios. The comment on each lists its exact syscalls.
// ---------------------------------------------------------------------------

/// good.dat: 3 writes, fsync, close; dir fsynced. Nothing at risk.
pub(crate) fn good(dir: &Path) -> Res<()> {
    write_file(&join(dir, "good.dat"), 3, 100, true)?;
    dirfsync(dir)
}

/// unsynced.dat: N writes, close, never fsynced. The dir is fsynced so that
/// only the file's data (not its entry) is at risk.
pub(crate) fn unsynced(dir: &Path, writes: usize) -> Res<()> {
    write_file(&join(dir, "unsynced.dat"), writes, 100, false)?;
    dirfsync(dir)
}

/// other.dat: 4 writes on fd A, close; fsync on a fresh read-only fd B.
/// fsync is per inode, so this IS durable: a tracer keyed on fds would
/// wrongly report it.
pub(crate) fn sync_other_fd(dir: &Path) -> Res<()> {
    let path = join(dir, "other.dat");
    write_file(&path, 4, 10, false)?;
    let fd = open_flags(&path, libc::O_RDONLY)?;
    fsync_or_die(fd, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// nodir.dat: 1 write, fsync, close. The data is durable but the directory
/// entry is not: after a crash the file may not exist.
pub(crate) fn no_dirsync(dir: &Path) -> Res<()> {
    write_file(&join(dir, "nodir.dat"), 1, 10, true)
}

/// config.tmp: 1 write, close, rename to config, dir fsynced. The classic
/// mistake: the rename can reach disk before the data, leaving an empty
/// `config` after a crash.
pub(crate) fn rename_unsafe(dir: &Path) -> Res<()> {
    let (tmp, dst) = (join(dir, "config.tmp"), join(dir, "config"));
    write_file(&tmp, 1, 64, false)?;
    rename_or_die(&tmp, &dst)?;
    dirfsync(dir)
}

/// safe.tmp: 1 write, fsync, close, rename to safe, dir fsynced. Correct.
pub(crate) fn rename_safe(dir: &Path) -> Res<()> {
    let (tmp, dst) = (join(dir, "safe.tmp"), join(dir, "safe"));
    write_file(&tmp, 1, 64, true)?;
    rename_or_die(&tmp, &dst)?;
    dirfsync(dir)
}

/// osync.dat opened O_DSYNC: each of the 3 writes is durable on return, with
/// no fsync call at all.
pub(crate) fn osync(dir: &Path) -> Res<()> {
    let path = join(dir, "osync.dat");
    let fd = open_flags(&path, libc::O_CREAT | libc::O_WRONLY | libc::O_DSYNC)?;
    write_records(fd, 3, 50, &path)?;
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// mapped.dat: ftruncate 8192, dir fsynced, mmap, one store per page (no
/// write(2) at all), msync(MS_SYNC) unless `no_msync`, munmap, close.
pub(crate) fn mmap(dir: &Path, no_msync: bool) -> Res<()> {
    const LEN: usize = 8192;
    // The two stores are meant to dirty two distinct pages.
    const PAGE: usize = 4096;
    let path = join(dir, "mapped.dat");
    let fd = open_flags(&path, libc::O_CREAT | libc::O_RDWR | libc::O_TRUNC)?;
    // SAFETY: plain syscall on our fd.
    if unsafe { libc::ftruncate(fd, LEN as libc::off_t) } != 0 {
        return Err(os_fail(format!("ftruncate {}", path.display())));
    }
    dirfsync(dir)?;
    // SAFETY: mapping a file we just sized to LEN; checked for MAP_FAILED.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(os_fail(format!("mmap {}", path.display())));
    }
    let base = addr.cast::<u8>();
    // SAFETY: both offsets are inside the LEN-byte mapping. Volatile so the
    // compiler cannot drop stores it sees no reader for.
    unsafe {
        std::ptr::write_volatile(base, b'A');
        std::ptr::write_volatile(base.add(PAGE), b'B');
    }
    if !no_msync {
        // SAFETY: `addr` is the start of our LEN-byte mapping.
        if unsafe { libc::msync(addr, LEN, libc::MS_SYNC) } != 0 {
            return Err(os_fail(format!("msync {}", path.display())));
        }
    }
    // SAFETY: unmapping exactly what we mapped; no references outlive it.
    if unsafe { libc::munmap(addr, LEN) } != 0 {
        return Err(os_fail(format!("munmap {}", path.display())));
    }
    close_or_die(fd, &path)
}

/// sfr.dat: 1 write of 4096, sync_file_range(WRITE|WAIT_AFTER), close, dir
/// fsynced. sync_file_range writes the pages back but flushes neither the
/// metadata nor the disk cache, so it is not a durability point.
pub(crate) fn sfr(dir: &Path) -> Res<()> {
    let path = join(dir, "sfr.dat");
    let fd = create(&path)?;
    write_exact_once(fd, &record(4096, 0), &path)?;
    let flags = libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: plain syscall on our fd.
    if unsafe { libc::sync_file_range(fd, 0, 0, flags) } != 0 {
        return Err(os_fail(format!("sync_file_range {}", path.display())));
    }
    close_or_die(fd, &path)?;
    dirfsync(dir)
}

/// 100 rounds of: open a.dat (append), 1 write of 10 B, close; open b.dat
/// (append), 2 writes of 10 B, close. Then both fsynced through new fds and
/// the dir fsynced. Each open gets a freshly allocated open file, often at the
/// address the other file's last one had: every write must still be counted
/// on its own file.
pub(crate) fn reopen(dir: &Path) -> Res<()> {
    let a = join(dir, "a.dat");
    let b = join(dir, "b.dat");
    let append = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND;
    for _ in 0..100 {
        let fd = open_flags(&a, append)?;
        write_exact_once(fd, &record(10, 0), &a)?;
        close_or_die(fd, &a)?;
        let fd = open_flags(&b, append)?;
        write_exact_once(fd, &record(10, 1), &b)?;
        write_exact_once(fd, &record(10, 2), &b)?;
        close_or_die(fd, &b)?;
    }
    for path in [&a, &b] {
        let fd = open_flags(path, libc::O_RDONLY)?;
        fsync_or_die(fd, path)?;
        close_or_die(fd, path)?;
    }
    dirfsync(dir)
}

/// parent.dat: 1 write + fsync in the parent. Then fork; the child writes
/// child.dat (2 writes, no fsync) and _exits; the parent waits, then fsyncs
/// the dir. Checks that findings are attributed to the right pid.
pub(crate) fn fork(dir: &Path) -> Res<()> {
    write_file(&join(dir, "parent.dat"), 1, 10, true)?;
    // SAFETY: the process is single-threaded here, so the child may run
    // arbitrary code; it leaves only through _exit (no atexit handlers, no
    // unwinding back into the parent's main).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_fail("fork"));
    }
    if pid == 0 {
        let code = match write_file(&join(dir, "child.dat"), 2, 10, false) {
            Ok(()) => 0,
            Err(e) => {
                say!("workload: fork: child: {e}");
                1
            }
        };
        // SAFETY: ends the child without running the parent's cleanup.
        unsafe { libc::_exit(code) }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(pid, &raw mut status, 0) } != pid {
        return Err(os_fail("waitpid"));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(fail("child", format!("failed (wait status {status:#x})")));
    }
    dirfsync(dir)
}

/// thread0.dat, thread1.dat: N writes of 64 bytes each, from two threads,
/// fsync after every `THREADS_FSYNC_EVERY` (100th) record and after the last one (once, if N
/// is a multiple of 100: ceil(N/100) fsyncs per file). Main then fsyncs the dir.
pub(crate) fn threads(dir: &Path, records: usize) -> Res<()> {
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let path = join(dir, &format!("thread{i}.dat"));
            std::thread::spawn(move || -> Res<()> {
                let fd = create(&path)?;
                for r in 0..records {
                    write_exact_once(fd, &record(64, r + i), &path)?;
                    if (r as u64 + 1).is_multiple_of(THREADS_FSYNC_EVERY) || r + 1 == records {
                        fsync_or_die(fd, &path)?;
                    }
                }
                close_or_die(fd, &path)
            })
        })
        .collect();
    let mut first_err = None;
    for (i, h) in handles.into_iter().enumerate() {
        let r = h
            .join()
            .unwrap_or_else(|_| Err(fail(format!("thread {i}"), "panicked")));
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    dirfsync(dir)
}

/// mkdir sub; sub/f.dat: 1 write, fsync, close; sub fsynced. The parent is
/// not, so the `sub` entry itself (and everything under it) may vanish.
pub(crate) fn mkdir(dir: &Path) -> Res<()> {
    let sub = join(dir, "sub");
    let c = cpath(&sub)?;
    // SAFETY: valid C string.
    if unsafe { libc::mkdir(c.as_ptr(), 0o755) } != 0 {
        return Err(os_fail(format!("mkdir {}", sub.display())));
    }
    write_file(&join(&sub, "f.dat"), 1, 10, true)?;
    dirfsync(&sub)
}

/// gone.dat: 1 write, fsync, close, dir fsynced; then unlinked with no dir
/// fsync, so the removal is not durable (the file may come back).
pub(crate) fn unlink(dir: &Path) -> Res<()> {
    let path = join(dir, "gone.dat");
    write_file(&path, 1, 10, true)?;
    dirfsync(dir)?;
    let c = cpath(&path)?;
    // SAFETY: valid C string.
    if unsafe { libc::unlink(c.as_ptr()) } != 0 {
        return Err(os_fail(format!("unlink {}", path.display())));
    }
    Ok(())
}

/// orig.dat: 1 write, fsync, close, dir fsynced; then link hard.dat and
/// symlink soft.lnk -> orig.dat, with no dir fsync: two unsynced entries.
pub(crate) fn link(dir: &Path) -> Res<()> {
    let orig = join(dir, "orig.dat");
    write_file(&orig, 1, 10, true)?;
    dirfsync(dir)?;
    let hard = join(dir, "hard.dat");
    let (co, ch) = (cpath(&orig)?, cpath(&hard)?);
    // SAFETY: valid C strings.
    if unsafe { libc::link(co.as_ptr(), ch.as_ptr()) } != 0 {
        return Err(os_fail(format!(
            "link {} -> {}",
            hard.display(),
            orig.display()
        )));
    }
    let soft = join(dir, "soft.lnk");
    // The target is relative on purpose, as most real symlinks are.
    let (target, cs) = (cpath(Path::new("orig.dat"))?, cpath(&soft)?);
    // SAFETY: valid C strings.
    if unsafe { libc::symlink(target.as_ptr(), cs.as_ptr()) } != 0 {
        return Err(os_fail(format!("symlink {} -> orig.dat", soft.display())));
    }
    Ok(())
}

/// fail-always.dat on failfs: 1 write, fsync (fails with EIO: reported on
/// stderr, exit stays 0), close. Succeeding would mean the mount is wrong.
pub(crate) fn fsync_error(dir: &Path) -> Res<()> {
    let path = join(dir, "fail-always.dat");
    let fd = create(&path)?;
    write_exact_once(fd, &record(10, 0), &path)?;
    // SAFETY: plain syscall on our fd.
    if unsafe { libc::fsync(fd) } == 0 {
        return Err(fail(
            format!("fsync {}", path.display()),
            "succeeded, but EIO was expected (is the dir a failfs mount?)",
        ));
    }
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    say!("workload: fsync-error: fsync failed: errno {errno}");
    close_or_die(fd, &path)
}

/// fail-once.dat on failfs: 1 write, fsync (fails with EIO, ignored), fsync
/// again (must succeed), close. Shows a retry that "succeeds" although the
/// data from the failed write-back may already be lost. Returns whether the
/// first fsync failed.
pub(crate) fn fsync_retry(dir: &Path, tag: &str) -> Res<bool> {
    let path = join(dir, "fail-once.dat");
    let fd = create(&path)?;
    write_exact_once(fd, &record(10, 0), &path)?;
    // SAFETY: plain syscall on our fd.
    let failed = unsafe { libc::fsync(fd) } != 0;
    if failed {
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        say!("workload: {tag}: first fsync failed: errno {errno} (retrying)");
    }
    fsync_or_die(fd, &path)?;
    close_or_die(fd, &path)?;
    Ok(failed)
}

/// A create/remove storm in one directory: `storm/` made and the dir fsynced, N empty files
/// `s<i>` created (and closed) in it and `storm/` fsynced, then all N unlinked and `storm/`
/// never fsynced again: N removals of one directory left unsynced.
pub(crate) fn entry_storm(dir: &Path, files: usize) -> Res<()> {
    let storm = join(dir, "storm");
    let c = cpath(&storm)?;
    // SAFETY: valid C string.
    if unsafe { libc::mkdir(c.as_ptr(), 0o755) } != 0 {
        return Err(os_fail(format!("mkdir {}", storm.display())));
    }
    dirfsync(dir)?;
    for i in 0..files {
        let path = join(&storm, &format!("s{i}"));
        close_or_die(create(&path)?, &path)?;
    }
    dirfsync(&storm)?;
    for i in 0..files {
        unlink_or_die(&join(&storm, &format!("s{i}")))?;
    }
    Ok(())
}

/// Files of one inode number with separate lifetimes. N rounds of: f<i>.dat created, 1 write
/// of 100 B, fsync, close, unlink (ext4 reuses the freed inode number at once, so all of them
/// usually get the same one); then g<j>.dat for j in 0..N: created, 1 write of 100 B, close,
/// never synced (g0 usually gets the number the f files had); then the dir fsynced, so every
/// entry change is durable and only the g files' data is at risk. With `print`, one line
/// `inodes f=I,I,... g=I,I,...` (fstat of each file while it was open) on stderr at the end.
pub(crate) fn inode_reuse(dir: &Path, files: usize, print: bool) -> Res<()> {
    let mut f_inodes = Vec::with_capacity(files);
    for i in 0..files {
        let path = join(dir, &format!("f{i}.dat"));
        let fd = create(&path)?;
        write_exact_once(fd, &record(100, i), &path)?;
        fsync_or_die(fd, &path)?;
        f_inodes.push(inode_of(fd, &path)?);
        close_or_die(fd, &path)?;
        unlink_or_die(&path)?;
    }
    let mut g_inodes = Vec::with_capacity(files);
    for j in 0..files {
        let path = join(dir, &format!("g{j}.dat"));
        let fd = create(&path)?;
        write_exact_once(fd, &record(100, j), &path)?;
        g_inodes.push(inode_of(fd, &path)?);
        close_or_die(fd, &path)?;
    }
    dirfsync(dir)?;
    if print {
        let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        say!("inodes f={} g={}", list(&f_inodes), list(&g_inodes));
    }
    Ok(())
}

/// Git's loose objects: tmp created, 1 write of 100 B, close, never synced; link tmp -> final;
/// unlink tmp; dir fsynced. One file, whose only name at the end is `final`.
pub(crate) fn link_unlink(dir: &Path) -> Res<()> {
    let (tmp, fin) = (join(dir, "tmp"), join(dir, "final"));
    write_file(&tmp, 1, 100, false)?;
    link_or_die(&tmp, &fin)?;
    unlink_or_die(&tmp)?;
    dirfsync(dir)
}

/// a created, 1 write of 100 B, close, never synced; link a -> b; dir fsynced; unlink a; dir
/// fsynced. The file lives on as b.
pub(crate) fn unlink_one_name(dir: &Path) -> Res<()> {
    let (a, b) = (join(dir, "a"), join(dir, "b"));
    write_file(&a, 1, 100, false)?;
    link_or_die(&a, &b)?;
    dirfsync(dir)?;
    unlink_or_die(&a)?;
    dirfsync(dir)
}

/// More files than a small tracer table holds, most of them gone by the end: c<i>.dat for i in
/// 0..N: created, 1 write of 100 B, fsync, close; then all N unlinked; dir fsynced; then
/// n<j>.dat for j in 0..M: created, 1 write of 100 B, close, never synced; dir fsynced again.
/// At the end only the M new files hold data at risk.
pub(crate) fn table_churn(dir: &Path, (files, new): (usize, usize)) -> Res<()> {
    for i in 0..files {
        write_file(&join(dir, &format!("c{i}.dat")), 1, 100, true)?;
    }
    for i in 0..files {
        unlink_or_die(&join(dir, &format!("c{i}.dat")))?;
    }
    dirfsync(dir)?;
    for j in 0..new {
        write_file(&join(dir, &format!("n{j}.dat")), 1, 100, false)?;
    }
    dirfsync(dir)
}

/// The bundled demo: a "tiny key-value store" that does one thing right and
/// makes each kind of durability mistake. The segment step must stay the last
/// one touching `dir`, so the final directory state has unsynced entries.
pub(crate) fn demo(dir: &Path, fuse: Option<&Path>) -> Res<()> {
    // Right: WAL append made durable with fdatasync, and its entry with a
    // dir fsync.
    let wal = join(dir, "wal.log");
    let fd = create(&wal)?;
    write_records(fd, 3, 128, &wal)?;
    fdatasync_or_die(fd, &wal)?;
    close_or_die(fd, &wal)?;
    dirfsync(dir)?;
    say!("demo: appended 3 records to wal.log, fdatasync'ed it and fsynced the directory (done right)");

    // Wrong: data file written and never synced.
    write_file(&join(dir, "data.db"), 4, 256, false)?;
    say!("demo: wrote data.db (4 writes) and never fsynced it");

    // Wrong: config replaced by rename, without fsyncing the new contents.
    let (tmp, cfg) = (join(dir, "config.json.tmp"), join(dir, "config.json"));
    write_file(&tmp, 1, 64, false)?;
    rename_or_die(&tmp, &cfg)?;
    say!(
        "demo: replaced config.json by renaming config.json.tmp over it without fsyncing it first"
    );

    // Wrong: segment fsynced but its directory entry never is.
    write_file(&join(dir, "segment-0001.log"), 2, 512, true)?;
    say!("demo: created segment-0001.log and fsynced it, but never fsynced the directory");

    if let Some(mnt) = fuse {
        // Wrong: an fsync error swallowed by a retry (failfs mount).
        if fsync_retry(mnt, "demo")? {
            say!("demo: fsync of fail-once.dat failed with EIO; the retry \"succeeded\" and the error was ignored");
        } else {
            say!(
                "demo: fsync of fail-once.dat did not fail: is {} a failfs mount?",
                mnt.display()
            );
        }
    }
    Ok(())
}
