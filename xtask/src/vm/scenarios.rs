//! The scenarios the guest runs under every tier (`fsync-trace-workload` scenarios; their
//! syscalls are documented in fsync-trace-workload/src/main.rs), and what some must report.

/// What the report says about one file: the counts compared across tiers and checked against
/// the expectations.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) writes: u64,
    pub(super) bytes_written: u64,
    pub(super) fsyncs: u64,
    pub(super) fdatasyncs: u64,
    pub(super) unsynced_bytes: u64,
}

/// As the tuple (writes, bytes_written, fsyncs, fdatasyncs, unsynced_bytes): the failure
/// messages print counts that way, after a header naming the fields once.
impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (
            self.writes,
            self.bytes_written,
            self.fsyncs,
            self.fdatasyncs,
            self.unsynced_bytes,
        )
            .fmt(f)
    }
}

/// What one tier must report for a scenario. Paths are relative to the scenario's directory
/// ("" is the directory itself).
pub(super) struct Expected {
    pub(super) files: &'static [(&'static str, Counts)],
    /// (kind, path, entry): the complete set of findings.
    pub(super) findings: &'static [(&'static str, &'static str, Option<&'static str>)],
}

pub(super) struct Scenario {
    pub(super) name: &'static str,
    pub(super) args: &'static [&'static str],
    /// Exact expectations for every tier, if any.
    pub(super) expect: Option<Expected>,
    /// Seen only by the function-level tiers: fentry and kprobe must match `expect`, the
    /// tracepoint tier must match this instead (and is left out of the equality check).
    pub(super) tracepoint_expect: Option<Expected>,
}

const NO_FINDINGS: &[(&str, &str, Option<&str>)] = &[];

/// Why each scenario is here is in its comment.
pub(super) const SCENARIOS: &[Scenario] = &[
    // Plain write + fsync + directory fsync.
    Scenario {
        name: "good",
        args: &[],
        expect: Some(Expected {
            files: &[
                (
                    "good.dat",
                    Counts {
                        writes: 3,
                        bytes_written: 300,
                        fsyncs: 1,
                        fdatasyncs: 0,
                        unsynced_bytes: 0,
                    },
                ),
                (
                    "",
                    Counts {
                        writes: 0,
                        bytes_written: 0,
                        fsyncs: 1,
                        fdatasyncs: 0,
                        unsynced_bytes: 0,
                    },
                ),
            ],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    Scenario {
        name: "unsynced",
        args: &["--writes", "5"],
        expect: Some(Expected {
            files: &[(
                "unsynced.dat",
                Counts {
                    writes: 5,
                    bytes_written: 500,
                    fsyncs: 0,
                    fdatasyncs: 0,
                    unsynced_bytes: 500,
                },
            )],
            findings: &[("unsynced_write", "unsynced.dat", None)],
        }),
        tracepoint_expect: None,
    },
    Scenario {
        name: "rename-unsafe",
        args: &[],
        expect: None,
        tracepoint_expect: None,
    },
    // O_DSYNC writes: vfs_write runs vfs_fsync_range inside; it must not count as an fsync.
    Scenario {
        name: "osync",
        args: &[],
        expect: Some(Expected {
            files: &[(
                "osync.dat",
                Counts {
                    writes: 3,
                    bytes_written: 150,
                    fsyncs: 0,
                    fdatasyncs: 0,
                    unsynced_bytes: 0,
                },
            )],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    // msync(MS_SYNC) runs vfs_fsync_range inside the msync syscall: counted once, as msync.
    Scenario {
        name: "mmap",
        args: &[],
        expect: Some(Expected {
            files: &[(
                "mapped.dat",
                Counts {
                    writes: 0,
                    bytes_written: 0,
                    fsyncs: 0,
                    fdatasyncs: 0,
                    unsynced_bytes: 0,
                },
            )],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    // fdatasync(2) never reaches vfs_fsync_range's entry on 6.1 (inlined): all must be counted.
    Scenario {
        name: "fsync-bound",
        args: &["--records", "10"],
        expect: Some(Expected {
            files: &[(
                "wal.log",
                Counts {
                    writes: 10,
                    bytes_written: 40960,
                    fsyncs: 0,
                    fdatasyncs: 10,
                    unsynced_bytes: 0,
                },
            )],
            findings: &[("unsynced_parent_dir", "", Some("wal.log"))],
        }),
        tracepoint_expect: None,
    },
    // writev/pwritev2 bypass vfs_write.
    Scenario {
        name: "writev",
        args: &[],
        expect: Some(Expected {
            files: &[(
                "vec.dat",
                Counts {
                    writes: 3,
                    bytes_written: 300,
                    fsyncs: 1,
                    fdatasyncs: 0,
                    unsynced_bytes: 100,
                },
            )],
            findings: &[("unsynced_write", "vec.dat", None)],
        }),
        tracepoint_expect: None,
    },
    // IORING_OP_FSYNC after write(2)s: no fsync syscall; every tier sees it through the io_uring
    // tracepoints (the function tiers leave the io worker's vfs_fsync_range to them).
    Scenario {
        name: "io-uring-fsync",
        args: &[],
        expect: Some(Expected {
            files: &[(
                "uring.dat",
                Counts {
                    writes: 2,
                    bytes_written: 200,
                    fsyncs: 1,
                    fdatasyncs: 0,
                    unsynced_bytes: 0,
                },
            )],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    // Ring WRITE + WRITEV + WRITE_FIXED (in io workers on 6.1's ext4), then a ring FSYNC, CLOSE.
    Scenario {
        name: "uring-write-fsync",
        args: &[],
        expect: Some(Expected {
            files: &[(
                "uring-writes.dat",
                Counts {
                    writes: 3,
                    bytes_written: 300,
                    fsyncs: 1,
                    fdatasyncs: 0,
                    unsynced_bytes: 0,
                },
            )],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    // 4 ring writes and a ring SYNC_FILE_RANGE (not durable).
    Scenario {
        name: "uring-unsynced",
        args: &[],
        expect: Some(Expected {
            files: &[(
                "uring-unsynced.dat",
                Counts {
                    writes: 4,
                    bytes_written: 400,
                    fsyncs: 0,
                    fdatasyncs: 0,
                    unsynced_bytes: 400,
                },
            )],
            findings: &[("unsynced_write", "uring-unsynced.dat", None)],
        }),
        tracepoint_expect: None,
    },
    // One batch: 2 writes and a fsync not linked to them.
    Scenario {
        name: "uring-unordered",
        args: &[],
        expect: Some(Expected {
            files: &[(
                "uring-batch.dat",
                Counts {
                    writes: 2,
                    bytes_written: 200,
                    fsyncs: 1,
                    fdatasyncs: 0,
                    unsynced_bytes: 200,
                },
            )],
            findings: &[
                ("unsynced_write", "uring-batch.dat", None),
                ("uring_fsync_unordered", "uring-batch.dat", None),
            ],
        }),
        tracepoint_expect: None,
    },
    // The same batch linked (IOSQE_IO_LINK) to an fdatasync: ordered, durable.
    Scenario {
        name: "uring-linked",
        args: &[],
        expect: Some(Expected {
            files: &[(
                "uring-linked.dat",
                Counts {
                    writes: 2,
                    bytes_written: 200,
                    fsyncs: 0,
                    fdatasyncs: 1,
                    unsynced_bytes: 0,
                },
            )],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    // An SQPOLL ring (the kernel's iou-sqp thread submits): 2 writes, then an fdatasync.
    Scenario {
        name: "uring-sqpoll",
        args: &[],
        expect: Some(Expected {
            files: &[(
                "uring-sqpoll.dat",
                Counts {
                    writes: 2,
                    bytes_written: 200,
                    fsyncs: 0,
                    fdatasyncs: 1,
                    unsynced_bytes: 0,
                },
            )],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    // Ring OPENAT (create), WRITE, FSYNC, CLOSE, RENAMEAT, MKDIRAT, LINKAT, UNLINKAT; the
    // directory never fsynced (the same report as the system-call sequence, `--syscalls`).
    Scenario {
        name: "uring-namespace",
        args: &[],
        expect: Some(Expected {
            files: &[(
                "new.dat",
                Counts {
                    writes: 1,
                    bytes_written: 100,
                    fsyncs: 1,
                    fdatasyncs: 0,
                    unsynced_bytes: 0,
                },
            )],
            findings: &[
                ("unsynced_parent_dir", "", Some("new.dat")),
                ("unsynced_parent_dir", "", Some("sub")),
            ],
        }),
        tracepoint_expect: None,
    },
    // Two threads writing concurrently (exact per-file counts across CPUs and tiers).
    Scenario {
        name: "threads",
        args: &["--records", "300"],
        expect: Some(Expected {
            files: &[
                (
                    "thread0.dat",
                    Counts {
                        writes: 300,
                        bytes_written: 19200,
                        fsyncs: 3,
                        fdatasyncs: 0,
                        unsynced_bytes: 0,
                    },
                ),
                (
                    "thread1.dat",
                    Counts {
                        writes: 300,
                        bytes_written: 19200,
                        fsyncs: 3,
                        fdatasyncs: 0,
                        unsynced_bytes: 0,
                    },
                ),
            ],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
    // A forked child (followed) that never syncs.
    Scenario {
        name: "fork",
        args: &[],
        expect: None,
        tracepoint_expect: None,
    },
    Scenario {
        name: "link",
        args: &[],
        expect: None,
        tracepoint_expect: None,
    },
    // Open files freed and reallocated between writes: each write counts on its own file (the
    // write path's per-CPU cache of the last written file must not outlive a close).
    Scenario {
        name: "reopen",
        args: &[],
        expect: Some(Expected {
            files: &[
                (
                    "a.dat",
                    Counts {
                        writes: 100,
                        bytes_written: 1000,
                        fsyncs: 1,
                        fdatasyncs: 0,
                        unsynced_bytes: 0,
                    },
                ),
                (
                    "b.dat",
                    Counts {
                        writes: 200,
                        bytes_written: 2000,
                        fsyncs: 1,
                        fdatasyncs: 0,
                        unsynced_bytes: 0,
                    },
                ),
            ],
            findings: NO_FINDINGS,
        }),
        tracepoint_expect: None,
    },
];
