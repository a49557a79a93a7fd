//! The command line: one subcommand per scenario, each with the directory its files go in and
//! its own options (clap rejects an option a scenario does not take, so a typo never runs a
//! default: a wrong count would make a test assert nonsense). Usage errors exit with status 2.
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use super::{
    cost, demo, entry_storm, exposure, fork, fsync_bound, fsync_error, fsync_retry, good, hold,
    inode_reuse, io_uring_fsync, link, link_unlink, many_files, metadata, mkdir, mmap, no_dirsync,
    osync, rename_safe, rename_unsafe, reopen, sfr, sync_other_fd, table_churn, threads, truncate,
    unlink, unlink_one_name, unsynced, write_storm, writev, Lockstep, Res,
};

#[derive(Parser)]
#[command(
    name = "fsync-trace-workload",
    about = "Runs one deterministic durability scenario; all files are created in <DIR>.",
    after_help = "Exit status: 0 on success, 1 on an I/O error, 2 on a usage error."
)]
pub struct Cli {
    /// At the end, print one line `elapsed_ns=N utime_us=N stime_us=N maxrss_kb=N` (the
    /// scenario's own wall time, and getrusage of this process) to stderr. Used by
    /// `cargo xtask bench`.
    #[arg(long, global = true)]
    pub report_elapsed: bool,

    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Subcommand)]
pub enum Scenario {
    /// 3 writes, fsync, close, fsync dir (no findings)
    Good { dir: PathBuf },
    /// N writes, close, never fsynced
    Unsynced {
        dir: PathBuf,
        #[arg(long, default_value_t = 5)]
        writes: usize,
    },
    /// writes on one fd, fsync on a second fd
    SyncOtherFd { dir: PathBuf },
    /// new file fsynced, its directory entry never
    NoDirsync { dir: PathBuf },
    /// tmp file renamed over without fsync
    RenameUnsafe { dir: PathBuf },
    /// tmp file fsynced, renamed, dir fsynced
    RenameSafe { dir: PathBuf },
    /// 3 writes to an O_DSYNC file
    Osync { dir: PathBuf },
    /// store to 2 mmap'ed pages, msync(MS_SYNC) (not with --no-msync)
    Mmap {
        dir: PathBuf,
        #[arg(long)]
        no_msync: bool,
    },
    /// sync_file_range (not a durability point)
    Sfr { dir: PathBuf },
    /// 100 x (open a.dat, write, close; open b.dat, 2 writes, close), both fsynced at the end
    Reopen { dir: PathBuf },
    /// parent syncs, forked child does not
    Fork { dir: PathBuf },
    /// 2 threads, N records each
    Threads {
        dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        records: usize,
    },
    /// new subdir synced, parent dir never
    Mkdir { dir: PathBuf },
    /// unlink without fsyncing the dir
    Unlink { dir: PathBuf },
    /// hard link + symlink without fsyncing the dir
    Link { dir: PathBuf },
    /// fsync fails with EIO (DIR: a failfs mount)
    FsyncError { dir: PathBuf },
    /// fsync fails once, retry succeeds (DIR: a failfs mount)
    FsyncRetry { dir: PathBuf },
    /// N 64-byte writes, no sync
    WriteStorm {
        dir: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        writes: usize,
    },
    /// N x (4096-byte write + fdatasync). With --lockstep, takes turns with a second process:
    /// waits for a byte on FIFO IN before each record, writes one to FIFO OUT after it
    /// (--lockstep-first: starts without waiting), and --report-elapsed reports the time spent
    /// in its own records only
    FsyncBound {
        dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        records: usize,
        #[arg(long, num_args = 2, value_names = ["IN", "OUT"])]
        lockstep: Option<Vec<PathBuf>>,
        #[arg(long, requires = "lockstep")]
        lockstep_first: bool,
    },
    /// writev + pwritev2, fsync, writev again (unsynced)
    Writev { dir: PathBuf },
    /// 2 writes, fsync through io_uring (IORING_OP_FSYNC)
    IoUringFsync { dir: PathBuf },
    /// io_uring WRITE + WRITEV + WRITE_FIXED, waited for, then a ring FSYNC and CLOSE
    UringWriteFsync { dir: PathBuf },
    /// 4 io_uring WRITEs and a ring SYNC_FILE_RANGE (not durable)
    UringUnsynced { dir: PathBuf },
    /// One batch: 2 io_uring WRITEs and an FSYNC not linked to them (unordered)
    UringUnordered { dir: PathBuf },
    /// One batch: 2 io_uring WRITEs linked (IOSQE_IO_LINK) to an FSYNC with DATASYNC
    UringLinked { dir: PathBuf },
    /// An SQPOLL ring: 2 WRITEs, then FSYNC with DATASYNC
    UringSqpoll { dir: PathBuf },
    /// Ring OPENAT (create), WRITE, FSYNC, CLOSE, RENAMEAT, MKDIRAT, LINKAT, UNLINKAT; dir
    /// never fsynced (--syscalls: the same through their system-call twins)
    UringNamespace {
        dir: PathBuf,
        #[arg(long)]
        syscalls: bool,
    },
    /// N files written+fsynced, dir once
    ManyFiles {
        dir: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        files: usize,
    },
    /// N x (f<i>.dat: write, fsync, close, unlink), then N new g<j>.dat written once, never
    /// synced (ext4 hands the freed inode numbers out again); dir fsynced last
    /// (--print-inodes: each file's inode on stderr)
    InodeReuse {
        dir: PathBuf,
        #[arg(long, default_value_t = 40)]
        files: usize,
        #[arg(long)]
        print_inodes: bool,
    },
    /// tmp written (no fsync), link tmp -> final, unlink tmp, dir fsynced (Git's loose objects)
    LinkUnlink { dir: PathBuf },
    /// a written, link a -> b, dir fsynced, unlink a, dir fsynced
    UnlinkOneName { dir: PathBuf },
    /// N files written+fsynced, all unlinked, dir fsynced; M new files written once, never
    /// synced; dir fsynced again
    TableChurn {
        dir: PathBuf,
        #[arg(long, default_value_t = 3000)]
        files: usize,
        #[arg(long, default_value_t = 500)]
        new: usize,
    },
    /// storm/ made, dir fsynced; N empty files created in storm/, storm/ fsynced, then all
    /// unlinked, storm/ never fsynced again (N unsynced removals in one directory)
    EntryStorm {
        dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        files: usize,
    },
    /// log.dat: N x (100-byte write + fdatasync), close; dir fsynced: N+1 syncs
    /// (sync_per_write)
    PerRecordSync {
        dir: PathBuf,
        #[arg(long, default_value_t = 50)]
        records: usize,
    },
    /// log.dat: N 100-byte writes, an fdatasync after every B and after a last partial batch,
    /// close; dir fsynced (group commit)
    BatchedSync {
        dir: PathBuf,
        #[arg(long, default_value_t = 320)]
        records: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
    },
    /// d.dat: 3 writes, fsync x3 (2 redundant), write, fsync, close; reopened O_TRUNC, fsync
    /// (not redundant), close; dir fsynced twice (the second redundant): 7 fsyncs
    DoubleFsync { dir: PathBuf },
    /// big.dat, mid.dat, small.dat left unsynced (8192, 4096, 100 B), dir fsynced; log.dat:
    /// a 100-byte write + fdatasync every 100 ms for S seconds (for watching --live)
    Hold {
        dir: PathBuf,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// 4 phases of P ms whose exposure is known at every instant (see exposure.rs): a.dat
    /// and b.dat written, a.dat synced, b.dat overwritten 100x and c.tmp renamed to c, b.dat
    /// synced; then a.dat appended to, never synced
    ExposureSchedule {
        dir: PathBuf,
        #[arg(long, default_value_t = 500)]
        phase_ms: u64,
    },
    /// overwrite.dat: 1,000 pwrites of one 4 KiB page; append.log: 11 O_APPEND writes (one a
    /// pwrite at 0); far.dat: write, fsync, pwrite at 1 GiB, writev; none synced after; then a
    /// sleep of --hold-ms (see extent.rs)
    Overwrite {
        dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        hold_ms: u64,
    },
    /// a server appending each request to wal/log and replying over a socket, before or after
    /// the log's fdatasync (--order); a forked client sends the requests
    WalServer {
        dir: PathBuf,
        #[arg(long, default_value_t = 20)]
        requests: usize,
        #[arg(long, value_enum, default_value = "sync-then-reply")]
        order: crate::walserver::Order,
        #[arg(long, value_enum, default_value = "unix")]
        transport: crate::walserver::Transport,
        #[arg(long, value_enum, default_value = "write")]
        reply: crate::walserver::Reply,
        /// Also write each request to data/table (synced only at the end).
        #[arg(long)]
        data: bool,
        /// Pause after the log's first write so the tracer learns its name before serving.
        #[arg(long, default_value_t = 300)]
        settle_ms: u64,
    },
    /// write, fsync, ftruncate, fsync (needed), fsync (redundant)
    TruncateSync { dir: PathBuf },
    /// written and synced, then ftruncate and never synced
    TruncateUnsynced { dir: PathBuf },
    /// every fallocate mode, each followed by fdatasync, then one redundant fdatasync
    Fallocate { dir: PathBuf },
    /// truncate(2) by path: one never synced, one synced after
    TruncatePath { dir: PathBuf },
    /// fchmod, fsync; fchownat AT_EMPTY_PATH, fsync (neither redundant)
    ChmodThenFsync { dir: PathBuf },
    /// chmod by path, fsync; fchmodat by dirfd, fsync (neither redundant)
    ChmodPathSync { dir: PathBuf },
    /// fsetxattr, setxattr by path, fremovexattr, each followed by fsync (none redundant)
    XattrThenFsync { dir: PathBuf },
    /// futimens, utimensat by path, utimes, utimensat AT_EMPTY_PATH, each followed by fsync
    UtimesThenFsync { dir: PathBuf },
    /// fchmod, fsync (needed), fsync (redundant)
    DoubleFsyncAfterChmod { dir: PathBuf },
    /// synced, then chmod by path and fchmod, never synced (listed, not a finding)
    ChmodUnsynced { dir: PathBuf },
    /// written, fsynced, made read-only (chmod, fchmod), renamed; dir fsynced (no finding)
    ChmodThenRename { dir: PathBuf },
    /// fchmod, then a write, renamed unsynced (rename_before_fsync)
    FchmodWriteRename { dir: PathBuf },
    /// the bundled demo: a tiny key-value store (--fuse: a failfs mount for the fsync errors)
    Demo {
        dir: PathBuf,
        #[arg(long, value_name = "MOUNTDIR")]
        fuse: Option<PathBuf>,
    },
}

type Run = Box<dyn FnOnce(&Path) -> Res<()>>;

fn with<T: 'static>(value: T, f: fn(&Path, T) -> Res<()>) -> Run {
    Box::new(move |d| f(d, value))
}

impl Scenario {
    /// The directory and the scenario to run in it.
    pub fn into_run(self) -> (PathBuf, Run) {
        use Scenario as S;
        match self {
            S::Good { dir } => (dir, Box::new(good)),
            S::TruncateSync { dir } => (dir, Box::new(truncate::truncate_sync)),
            S::TruncateUnsynced { dir } => (dir, Box::new(truncate::truncate_unsynced)),
            S::Fallocate { dir } => (dir, Box::new(truncate::fallocate)),
            S::TruncatePath { dir } => (dir, Box::new(truncate::truncate_path)),
            S::ChmodThenFsync { dir } => (dir, Box::new(metadata::chmod_then_fsync)),
            S::ChmodThenRename { dir } => (dir, Box::new(metadata::chmod_then_rename)),
            S::FchmodWriteRename { dir } => (dir, Box::new(metadata::fchmod_write_rename)),
            S::ChmodPathSync { dir } => (dir, Box::new(metadata::chmod_path_sync)),
            S::XattrThenFsync { dir } => (dir, Box::new(metadata::xattr_then_fsync)),
            S::UtimesThenFsync { dir } => (dir, Box::new(metadata::utimes_then_fsync)),
            S::DoubleFsyncAfterChmod { dir } => (dir, Box::new(metadata::double_fsync_after_chmod)),
            S::ChmodUnsynced { dir } => (dir, Box::new(metadata::chmod_unsynced)),
            S::Unsynced { dir, writes } => (dir, with(writes, unsynced)),
            S::SyncOtherFd { dir } => (dir, Box::new(sync_other_fd)),
            S::NoDirsync { dir } => (dir, Box::new(no_dirsync)),
            S::RenameUnsafe { dir } => (dir, Box::new(rename_unsafe)),
            S::RenameSafe { dir } => (dir, Box::new(rename_safe)),
            S::Osync { dir } => (dir, Box::new(osync)),
            S::Mmap { dir, no_msync } => (dir, with(no_msync, mmap)),
            S::Sfr { dir } => (dir, Box::new(sfr)),
            S::Reopen { dir } => (dir, Box::new(reopen)),
            S::Fork { dir } => (dir, Box::new(fork)),
            S::Threads { dir, records } => (dir, with(records, threads)),
            S::Mkdir { dir } => (dir, Box::new(mkdir)),
            S::Unlink { dir } => (dir, Box::new(unlink)),
            S::Link { dir } => (dir, Box::new(link)),
            S::FsyncError { dir } => (dir, Box::new(fsync_error)),
            S::FsyncRetry { dir } => (
                dir,
                Box::new(|d: &Path| fsync_retry(d, "fsync-retry").map(drop)),
            ),
            S::WriteStorm { dir, writes } => (dir, with(writes, write_storm)),
            S::FsyncBound {
                dir,
                records,
                lockstep,
                lockstep_first,
            } => {
                let lockstep = lockstep.and_then(|v| {
                    let [input, output]: [PathBuf; 2] = v.try_into().ok()?;
                    Some(Lockstep {
                        input,
                        output,
                        first: lockstep_first,
                    })
                });
                (dir, Box::new(move |d| fsync_bound(d, records, lockstep)))
            }
            S::Writev { dir } => (dir, Box::new(writev)),
            S::IoUringFsync { dir } => (dir, Box::new(io_uring_fsync)),
            S::UringWriteFsync { dir } => (dir, Box::new(super::uring::uring_write_fsync)),
            S::UringUnsynced { dir } => (dir, Box::new(super::uring::uring_unsynced)),
            S::UringUnordered { dir } => (dir, Box::new(|d| super::uring::uring_batch(d, false))),
            S::UringLinked { dir } => (dir, Box::new(|d| super::uring::uring_batch(d, true))),
            S::UringSqpoll { dir } => (dir, Box::new(super::uring::uring_sqpoll)),
            S::UringNamespace { dir, syscalls } => (
                dir,
                Box::new(move |d| super::uring::uring_namespace(d, syscalls)),
            ),
            S::ManyFiles { dir, files } => (dir, with(files, many_files)),
            S::InodeReuse {
                dir,
                files,
                print_inodes,
            } => (dir, Box::new(move |d| inode_reuse(d, files, print_inodes))),
            S::LinkUnlink { dir } => (dir, Box::new(link_unlink)),
            S::UnlinkOneName { dir } => (dir, Box::new(unlink_one_name)),
            S::TableChurn { dir, files, new } => (dir, with((files, new), table_churn)),
            S::EntryStorm { dir, files } => (dir, with(files, entry_storm)),
            S::PerRecordSync { dir, records } => (dir, with(records, cost::per_record_sync)),
            S::BatchedSync {
                dir,
                records,
                batch,
            } => (dir, with((records, batch), cost::batched_sync)),
            S::DoubleFsync { dir } => (dir, Box::new(cost::double_fsync)),
            S::Hold { dir, seconds } => (dir, with(seconds, hold::hold)),
            S::Overwrite { dir, hold_ms } => (dir, with(hold_ms, super::extent::overwrite)),
            S::ExposureSchedule { dir, phase_ms } => {
                (dir, with(phase_ms, exposure::exposure_schedule))
            }
            S::WalServer {
                dir,
                requests,
                order,
                transport,
                reply,
                data,
                settle_ms,
            } => {
                let o = crate::walserver::WalServer {
                    requests,
                    order,
                    transport,
                    reply,
                    data,
                    settle_ms,
                };
                (dir, Box::new(move |d| crate::walserver::wal_server(d, o)))
            }
            S::Demo { dir, fuse } => (dir, Box::new(move |d| demo(d, fuse.as_deref()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_belong_to_their_scenario() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("fsync-trace-workload").chain(args.iter().copied()))
        };
        assert!(parse(&["unsynced", "/d", "--writes", "7", "--report-elapsed"]).is_ok());
        // An option of another scenario is a usage error, not silently ignored.
        assert!(parse(&["good", "/d", "--writes", "7"]).is_err());
        assert!(parse(&["fsync-bound", "/d", "--lockstep-first"]).is_err());
        assert!(parse(&["fsync-bound", "/d", "--lockstep", "a"]).is_err());
        assert!(parse(&["unknown", "/d"]).is_err());
        let c = parse(&[
            "fsync-bound",
            "/d",
            "--lockstep",
            "a",
            "b",
            "--lockstep-first",
        ])
        .unwrap();
        assert!(matches!(
            c.scenario,
            Scenario::FsyncBound { lockstep: Some(ref v), lockstep_first: true, .. } if v.len() == 2
        ));
    }
}
