//! Root integration tests for file identity (issue 10: "a file is an inode with names and a
//! lifetime"). The real tracer traces real programs and every report is checked for exact counts
//! and the exact list of findings, on:
//!  - lifetimes: a new file that gets the inode number of a deleted one (ext4 on /var/tmp hands
//!    freed numbers out again at once) starts a history of its own;
//!  - names: a file is reported under a name it still has (`path`, one of `names`) after
//!    link + unlink (Git's loose objects), after one of two hard links is removed, and after
//!    replace-by-rename of lock files (Git's index and refs); `removed` only once no name is left;
//!  - descriptors opened before tracing started (inherited by `fsync-trace -- CMD`, or opened
//!    before `-p PID` attached): the file is still reported by its real path;
//!  - Git itself (`git add` + `git commit`, default `core.fsync` and `core.fsync=all`);
//!  - `--all` with a kernel file table (`--file-slots`) far smaller than the number of files
//!    written: slots of files that are gone are reclaimed, nothing is lost.
//!
//! Run as root: `cargo xtask integration` (one test at a time: each one attaches to the kernel).
//! Needs python3, /bin/sh, and Debian's git (`/usr/bin/git`, the version whose syscalls the Git
//! tests spell out).
#![allow(clippy::zombie_processes)]

#[path = "../support/mod.rs"]
mod support;

mod git;
mod inherited;
mod lifetimes;
mod names;
mod slots;
