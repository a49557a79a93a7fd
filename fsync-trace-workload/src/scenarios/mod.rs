//! The one table of scenarios and what each must report: the Debian 6.1 guest runs every one
//! under every tier (`cargo xtask vm`), and the root integration tests run every one on this
//! host's tier (`tests/support/table.rs`, `tests/integration/table.rs`). Their syscalls are
//! documented on each scenario's function in the workload binary (`durability.rs`, `uring.rs`,
//! `truncate.rs`, ...). The types of the table are in `shape.rs`.

mod shape;
pub use shape::*;

const NO_FINDINGS: &[(&str, &str, Option<&str>)] = &[];
const NO_EXTENTS: &[(&str, Option<(u64, u64)>)] = &[];

/// (writes, bytes_written, fsyncs, fdatasyncs, unsynced_bytes) as [`Counts`].
const fn counts(writes: u64, bytes: u64, fsyncs: u64, fdatasyncs: u64, unsynced: u64) -> Counts {
    Counts {
        writes,
        bytes_written: bytes,
        fsyncs,
        fdatasyncs,
        unsynced_bytes: unsynced,
    }
}

/// Files changed without writing data, with the exact calls every tier must count: (scenario,
/// path, truncates, fallocates). A scenario named here must report exactly these files with
/// such changes (`facts::check_changes`).
pub const CHANGES: &[(&str, &str, u64, u64)] = &[
    ("truncate-sync", "t.dat", 1, 0),
    ("truncate-unsynced", "u.dat", 1, 0),
    ("fallocate", "f.dat", 0, 6),
    ("truncate-path", "p.dat", 1, 0),
    ("truncate-path", "q.dat", 1, 0),
    ("mmap", "mapped.dat", 1, 0),
];

/// `redundant_sync` advice every tier must report: (scenario, path, redundant syncs). A
/// scenario named here (or in [`CHANGES`] or [`METADATA`]) must report exactly these.
pub const REDUNDANT: &[(&str, &str, u64)] = &[
    ("truncate-sync", "t.dat", 1),
    ("fallocate", "f.dat", 1),
    ("double-fsync-after-chmod", "d.dat", 1),
];

/// Metadata changes (chmod, chown, utimes, xattrs; `metadata.rs`) every tier must count:
/// (scenario, path, `metadata_changes`, "metadata" in `unsynced_changes`). A scenario named
/// here must report exactly these files with such changes (`facts::check_changes`).
pub const METADATA: &[(&str, &str, u64, bool)] = &[
    ("chmod-then-fsync", "m.dat", 2, false),
    ("chmod-path-sync", "c.dat", 2, false),
    ("xattr-then-fsync", "x.dat", 3, false),
    ("utimes-then-fsync", "u.dat", 4, false),
    ("double-fsync-after-chmod", "d.dat", 1, false),
    ("chmod-unsynced", "n.dat", 2, true),
    ("chmod-then-rename", "a.dat", 1, true),
    ("chmod-then-rename", "b.dat", 1, true),
    ("fchmod-write-rename", "c.dat", 1, true),
];

/// Why each scenario is here is in its comment.
pub const SCENARIOS: &[Scenario] = &[
    // Plain write + fsync + directory fsync.
    Scenario {
        name: "good",
        args: &[],
        expect: Some(Expected {
            files: &[
                ("good.dat", counts(3, 300, 1, 0, 0)),
                ("", counts(0, 0, 1, 0, 0)),
            ],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    Scenario {
        name: "unsynced",
        args: &["--writes", "5"],
        expect: Some(Expected {
            files: &[("unsynced.dat", counts(5, 500, 0, 0, 500))],
            findings: &[("unsynced_write", "unsynced.dat", None)],
            extents: &[("unsynced.dat", Some((0, 500)))],
        }),
        tracepoint_expect: None,
    },
    // Written, renamed over its final name, never synced: both findings on the final name.
    Scenario {
        name: "rename-unsafe",
        args: &[],
        expect: Some(Expected {
            files: &[("config", counts(1, 64, 0, 0, 64))],
            findings: &[
                ("rename_before_fsync", "config", None),
                ("unsynced_write", "config", None),
            ],
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // O_DSYNC writes: vfs_write runs vfs_fsync_range inside; it must not count as an fsync.
    Scenario {
        name: "osync",
        args: &[],
        expect: Some(Expected {
            files: &[("osync.dat", counts(3, 150, 0, 0, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // msync(MS_SYNC) runs vfs_fsync_range inside the msync syscall: counted once, as msync.
    Scenario {
        name: "mmap",
        args: &[],
        expect: Some(Expected {
            files: &[("mapped.dat", counts(0, 0, 0, 0, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // fdatasync(2) never reaches vfs_fsync_range's entry on 6.1 (inlined): all must be counted.
    Scenario {
        name: "fsync-bound",
        args: &["--records", "10"],
        expect: Some(Expected {
            files: &[("wal.log", fsync_bound_log(10))],
            findings: &[("unsynced_parent_dir", "", Some("wal.log"))],
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // writev/pwritev2 bypass vfs_write.
    Scenario {
        name: "writev",
        args: &[],
        expect: Some(Expected {
            files: &[("vec.dat", counts(3, 300, 1, 0, 100))],
            findings: &[("unsynced_write", "vec.dat", None)],
            extents: &[("vec.dat", Some((100, 200)))],
        }),
        tracepoint_expect: None,
    },
    // IORING_OP_FSYNC after write(2)s: no fsync syscall; every tier sees it through the io_uring
    // tracepoints (the function tiers leave the io worker's vfs_fsync_range to them).
    Scenario {
        name: "io-uring-fsync",
        args: &[],
        expect: Some(Expected {
            files: &[("uring.dat", counts(2, 200, 1, 0, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // Ring WRITE + WRITEV + WRITE_FIXED (in io workers on 6.1's ext4), then a ring FSYNC, CLOSE.
    Scenario {
        name: "uring-write-fsync",
        args: &[],
        expect: Some(Expected {
            files: &[("uring-writes.dat", counts(3, 300, 1, 0, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // 4 ring writes and a ring SYNC_FILE_RANGE (not durable).
    Scenario {
        name: "uring-unsynced",
        args: &[],
        expect: Some(Expected {
            files: &[("uring-unsynced.dat", counts(4, 400, 0, 0, 400))],
            findings: &[("unsynced_write", "uring-unsynced.dat", None)],
            extents: &[("uring-unsynced.dat", Some((0, 400)))],
        }),
        tracepoint_expect: None,
    },
    // One batch: 2 writes and a fsync not linked to them.
    Scenario {
        name: "uring-unordered",
        args: &[],
        expect: Some(Expected {
            files: &[("uring-batch.dat", counts(2, 200, 1, 0, 200))],
            findings: &[
                ("unsynced_write", "uring-batch.dat", None),
                ("uring_fsync_unordered", "uring-batch.dat", None),
            ],
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // The same batch linked (IOSQE_IO_LINK) to an fdatasync: ordered, durable.
    Scenario {
        name: "uring-linked",
        args: &[],
        expect: Some(Expected {
            files: &[("uring-linked.dat", counts(2, 200, 0, 1, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // An SQPOLL ring (the kernel's iou-sqp thread submits): 2 writes, then an fdatasync.
    Scenario {
        name: "uring-sqpoll",
        args: &[],
        expect: Some(Expected {
            files: &[("uring-sqpoll.dat", counts(2, 200, 0, 1, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // Ring OPENAT (create), WRITE, FSYNC, CLOSE, RENAMEAT, MKDIRAT, LINKAT, UNLINKAT; the
    // directory never fsynced (the same report as the system-call sequence, `--syscalls`).
    Scenario {
        name: "uring-namespace",
        args: &[],
        expect: Some(Expected {
            files: &[("new.dat", counts(1, 100, 1, 0, 0))],
            findings: &[
                ("unsynced_parent_dir", "", Some("new.dat")),
                ("unsynced_parent_dir", "", Some("sub")),
            ],
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // Two threads writing concurrently (exact per-file counts across CPUs and tiers).
    Scenario {
        name: "threads",
        args: &["--records", "300"],
        expect: Some(Expected {
            files: &[
                ("thread0.dat", thread_file(300)),
                ("thread1.dat", thread_file(300)),
            ],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // A forked child (followed) that never syncs.
    Scenario {
        name: "fork",
        args: &[],
        expect: Some(Expected {
            files: &[
                ("parent.dat", counts(1, 10, 1, 0, 0)),
                ("child.dat", counts(2, 20, 0, 0, 20)),
            ],
            findings: &[("unsynced_write", "child.dat", None)],
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // A hard link and a symbolic link, neither made durable by a directory fsync.
    Scenario {
        name: "link",
        args: &[],
        expect: Some(Expected {
            files: &[("orig.dat", counts(1, 10, 1, 0, 0))],
            findings: &[
                ("unsynced_parent_dir", "", Some("hard.dat")),
                ("unsynced_parent_dir", "", Some("soft.lnk")),
            ],
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // Open files freed and reallocated between writes: each write counts on its own file (the
    // write path's per-CPU cache of the last written file must not outlive a close).
    Scenario {
        name: "reopen",
        args: &[],
        expect: Some(Expected {
            files: &[
                ("a.dat", counts(100, 1000, 1, 0, 0)),
                ("b.dat", counts(200, 2000, 1, 0, 0)),
            ],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // Bytes written versus the dirty extent (extent.rs): 1,000 overwrites of one page are one
    // page at risk; appends (one a pwrite, which O_APPEND appends); a pwrite 1 GiB out after
    // an fsync, then a writev at the file position.
    Scenario {
        name: "overwrite",
        args: &[],
        expect: Some(Expected {
            files: &[
                ("overwrite.dat", counts(1000, 4_096_000, 0, 0, 4_096_000)),
                ("append.log", counts(11, 1050, 0, 0, 1050)),
                ("far.dat", counts(3, 40, 1, 0, 30)),
            ],
            findings: &[
                ("unsynced_write", "overwrite.dat", None),
                ("unsynced_write", "append.log", None),
                ("unsynced_write", "far.dat", None),
            ],
            extents: &[
                ("overwrite.dat", Some((0, 4096))),
                ("append.log", Some((0, 1050))),
                ("far.dat", Some((10, (1 << 30) + 20))),
            ],
        }),
        tracepoint_expect: None,
    },
    // The write-ahead-log contract (`--wal`, see `TRACER_WAL`): 10 replies, each sent before
    // the log's fdatasync; the finding's "entry" is its ack count (see `check::facts`).
    Scenario {
        name: "wal-server",
        args: &[
            "--requests",
            "10",
            "--order",
            "reply-then-sync",
            "--settle-ms",
            "1500",
        ],
        expect: Some(Expected {
            files: &[("wal/log", counts(11, 704, 0, 11, 0))],
            findings: &[("ack_before_durable", "wal/log", Some("10 acks"))],
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // Changes that write no data (`truncate.rs`): a sync after ftruncate is needed, the one
    // after that is not (advice, see `REDUNDANT`).
    Scenario {
        name: "truncate-sync",
        args: &[],
        expect: Some(Expected {
            files: &[("t.dat", counts(3, 300, 3, 0, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // Synced, then truncated through a descriptor and never synced again: at risk with 0 bytes.
    Scenario {
        name: "truncate-unsynced",
        args: &[],
        expect: Some(Expected {
            files: &[("u.dat", counts(2, 200, 1, 0, 0))],
            findings: &[("unsynced_write", "u.dat", None)],
            // At risk with no byte written since the sync: no extent.
            extents: &[("u.dat", None)],
        }),
        tracepoint_expect: None,
    },
    // Every fallocate mode, each followed by an fdatasync (needed), then one redundant.
    Scenario {
        name: "fallocate",
        args: &[],
        expect: Some(Expected {
            files: &[("f.dat", counts(1, 16384, 0, 8, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // truncate(2) by path: p.dat never synced after it, q.dat synced (not redundant).
    Scenario {
        name: "truncate-path",
        args: &[],
        expect: Some(Expected {
            files: &[
                ("p.dat", counts(1, 100, 1, 0, 0)),
                ("q.dat", counts(1, 100, 2, 0, 0)),
            ],
            findings: &[("unsynced_write", "p.dat", None)],
            extents: &[("p.dat", None)],
        }),
        tracepoint_expect: None,
    },
    // fchmod, then fchownat(AT_EMPTY_PATH): each makes the next fsync needed (none redundant).
    Scenario {
        name: "chmod-then-fsync",
        args: &[],
        expect: Some(Expected {
            files: &[("m.dat", counts(1, 100, 3, 0, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // chmod by path and fchmodat by dirfd (resolved among the names the trace knows), each
    // followed by an fsync of an open fd on the file: none redundant.
    Scenario {
        name: "chmod-path-sync",
        args: &[],
        expect: Some(Expected {
            files: &[("c.dat", counts(1, 100, 3, 0, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // fsetxattr, setxattr by path, fremovexattr, each followed by an fsync: none redundant.
    Scenario {
        name: "xattr-then-fsync",
        args: &[],
        expect: Some(Expected {
            files: &[("x.dat", counts(1, 100, 4, 0, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // futimens, utimensat by path, utimes, utimensat(AT_EMPTY_PATH), each followed by an
    // fsync: none redundant.
    Scenario {
        name: "utimes-then-fsync",
        args: &[],
        expect: Some(Expected {
            files: &[("u.dat", counts(1, 100, 5, 0, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // fchmod, fsync (needed), fsync: exactly one redundant (see `REDUNDANT`).
    Scenario {
        name: "double-fsync-after-chmod",
        args: &[],
        expect: Some(Expected {
            files: &[("d.dat", counts(1, 100, 3, 0, 0))],
            findings: NO_FINDINGS,
            extents: NO_EXTENTS,
        }),
        tracepoint_expect: None,
    },
    // Synced, then chmod by path and fchmod, never synced: listed in `unsynced_changes` (see
    // `METADATA`) but not a finding by itself.
    Scenario {
        name: "chmod-unsynced",
        args: &[],
        expect: Some(Expected {
            files: &[("n.dat", counts(1, 100, 1, 0, 0))],
            findings: NO_FINDINGS,
            extents: &[("n.dat", None)],
        }),
        tracepoint_expect: None,
    },
    // Git's packs: fsynced, made read-only (by path, then by fd), renamed, the directory
    // fsynced: the data was durable at each rename, so no `rename_before_fsync` (a mode change
    // alone is listed, not a finding).
    Scenario {
        name: "chmod-then-rename",
        args: &[],
        expect: Some(Expected {
            files: &[
                ("a.dat", counts(1, 100, 1, 0, 0)),
                ("b.dat", counts(1, 100, 1, 0, 0)),
            ],
            findings: NO_FINDINGS,
            extents: &[("a.dat", None), ("b.dat", None)],
        }),
        tracepoint_expect: None,
    },
    // fchmod, then the data, renamed unsynced: the write after the mode change (same epoch) is
    // still unsynced data the rename publishes.
    Scenario {
        name: "fchmod-write-rename",
        args: &[],
        expect: Some(Expected {
            files: &[("c.dat", counts(1, 100, 0, 0, 100))],
            findings: &[
                ("rename_before_fsync", "c.dat", None),
                ("unsynced_write", "c.dat", None),
            ],
            extents: &[("c.dat", Some((0, 100)))],
        }),
        tracepoint_expect: None,
    },
];

/// Scenarios traced with `--wal GLOB` (passed to the tracer, not the workload): (scenario, glob).
pub const TRACER_WAL: &[(&str, &str)] = &[("wal-server", "**/wal/*")];

/// Whether findings of scenario `name` must carry call stacks: not where io_uring does the
/// acts (the kernel's workers run them, with no user stack of the program).
#[must_use]
pub fn expects_stacks(name: &str) -> bool {
    !name.starts_with("uring-") && !name.starts_with("io-uring")
}
