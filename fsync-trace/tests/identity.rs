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

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    io::{BufRead, BufReader, Write},
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use support::*;

// ------------------------------------------------------------------------------------------------
// Lifetimes: inode numbers are reused
// ------------------------------------------------------------------------------------------------

/// The `inodes f=I,... g=I,...` line of `inode-reuse --print-inodes`.
fn workload_inodes(stderr: &str) -> (Vec<u64>, Vec<u64>) {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("inodes "))
        .unwrap_or_else(|| panic!("no inodes line from the workload: {stderr:?}"));
    let list = |key: &str| -> Vec<u64> {
        line.split(' ')
            .find_map(|p| p.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .split(',')
            .map(|n| n.parse().unwrap())
            .collect()
    };
    (list("f="), list("g="))
}

/// 40 × (f_i: create, write 100 B, fsync, close, unlink), then 40 new g_j written once and never
/// synced, then the directory fsynced. On ext4 the f files and g0 share one inode number: each
/// must still be its own file with its own counts, and only the g files hold unsynced data.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn reused_inode_number_starts_a_fresh_history() {
    const N: usize = 40;
    let (_g, d) = tempdir();
    // One finding per file (not one grouped finding for the directory): --group-over 0.
    let (out, r) = trace(&os(&[
        "--group-over",
        "0",
        "--",
        workload(),
        "inode-reuse",
        &d,
        "--print-inodes",
    ]));
    assert_eq!(out.code, 0, "inode-reuse: stderr: {}", out.stderr);
    let r = r.unwrap_or_else(|| panic!("no report; stderr: {}", out.stderr));
    r.assert_complete();
    // The test proves something only if numbers really were handed out again.
    let (f_ino, g_ino) = workload_inodes(&out.stderr);
    assert_eq!((f_ino.len(), g_ino.len()), (N, N));
    let f_set: BTreeSet<u64> = f_ino.iter().copied().collect();
    assert!(
        f_set.len() < N && g_ino.iter().any(|i| f_set.contains(i)),
        "the filesystem did not reuse inode numbers (f: {f_ino:?}, g: {g_ino:?}): this test \
         needs a filesystem that does (ext4)"
    );
    let f: Vec<String> = (0..N).map(|i| format!("{d}/f{i}.dat")).collect();
    let g: Vec<String> = (0..N).map(|j| format!("{d}/g{j}.dat")).collect();
    let mut all: Vec<&str> = vec![&d];
    all.extend(f.iter().map(String::as_str));
    all.extend(g.iter().map(String::as_str));
    r.assert_paths(&all);
    for (i, p) in f.iter().enumerate() {
        r.assert_file(
            p,
            "file",
            &[
                ("writes", 1),
                ("bytes_written", 100),
                ("fsyncs", 1),
                ("fdatasyncs", 0),
                ("unsynced_bytes", 0),
                ("ino", f_ino[i]),
            ],
        );
        r.assert_removed(p, true);
    }
    for (j, p) in g.iter().enumerate() {
        r.assert_file(
            p,
            "file",
            &[
                ("writes", 1),
                ("bytes_written", 100),
                ("fsyncs", 0),
                ("fdatasyncs", 0),
                ("unsynced_bytes", 100),
                ("ino", g_ino[j]),
            ],
        );
        r.assert_removed(p, false);
    }
    r.assert_file(&d, "dir", &[("fsyncs", 1), ("writes", 0)]);
    r.assert_syncs(&[("fsync", N as u64 + 1, 0)]);
    // The directory was synced last: every create and unlink is durable.
    let want: Vec<FindingId> = g.iter().map(|p| fid("unsynced_write", p, None)).collect();
    r.assert_findings(&want);
    for p in &g {
        r.assert_unsynced_write(p, 1, 100);
    }
    for p in &f {
        r.assert_names(p, &[]);
    }
    for p in &g {
        r.assert_names(p, &[p]);
    }
    r.assert_identity();
}

// ------------------------------------------------------------------------------------------------
// Names: link, unlink, one name of two
// ------------------------------------------------------------------------------------------------

/// Git's loose objects: tmp written (no fsync), link(tmp, final), unlink(tmp), directory fsynced.
/// One file, named `final` and nothing else; its data is still at risk.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn link_then_unlink_keeps_the_file_under_its_new_name() {
    let (_g, d, r) = scenario("link-unlink", &[]);
    let (tmp, fin) = (format!("{d}/tmp"), format!("{d}/final"));
    r.assert_paths(&[&d, &fin]);
    r.assert_file(
        &fin,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 100),
            ("fsyncs", 0),
            ("unsynced_bytes", 100),
        ],
    );
    r.assert_removed(&fin, false);
    r.assert_file(&d, "dir", &[("fsyncs", 1)]);
    r.assert_syncs(&[("fsync", 1, 0)]);
    r.assert_findings(&[fid("unsynced_write", &fin, None)]);
    r.assert_unsynced_write(&fin, 1, 100);
    r.assert_names(&fin, &[&fin]);
    for f in r.files() {
        assert!(
            f["path"] != tmp.as_str() && !Report::names_of(f).contains(&tmp),
            "{tmp} is gone, but reported: {f}"
        );
    }
    r.assert_identity();
}

/// a written (no fsync), link a -> b, directory fsynced, unlink a, directory fsynced: the file
/// lives on as b (not removed: it still has a name) and its data is at risk.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn removing_one_of_two_names_keeps_the_file() {
    let (_g, d, r) = scenario("unlink-one-name", &[]);
    let (a, b) = (format!("{d}/a"), format!("{d}/b"));
    r.assert_paths(&[&d, &b]);
    r.assert_file(
        &b,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 100),
            ("fsyncs", 0),
            ("unsynced_bytes", 100),
        ],
    );
    r.assert_removed(&b, false);
    r.assert_file(&d, "dir", &[("fsyncs", 2)]);
    r.assert_syncs(&[("fsync", 2, 0)]);
    r.assert_findings(&[fid("unsynced_write", &b, None)]);
    r.assert_unsynced_write(&b, 1, 100);
    r.assert_names(&b, &[&b]);
    assert!(
        r.files().iter().all(|f| f["path"] != a.as_str()),
        "{a} is gone, but reported:\n{}",
        r.pretty()
    );
    r.assert_identity();
}

// ------------------------------------------------------------------------------------------------
// Descriptors opened before tracing started
// ------------------------------------------------------------------------------------------------

/// The traced command inherits each (file, fd number) pair (at most 4): the tracer is started
/// with them, and passes them on as it passes every descriptor on to the command it starts.
fn inherit_fds(cmd: &mut Command, fds: &[(&File, i32)]) {
    assert!(fds.len() <= 4);
    let n = fds.len();
    let mut pairs = [(-1, -1); 4];
    for (slot, (f, target)) in pairs.iter_mut().zip(fds) {
        *slot = (f.as_raw_fd(), *target);
    }
    // SAFETY: between fork and exec the closure allocates nothing and only makes
    // async-signal-safe syscalls (fcntl, dup2, close) on descriptors the parent keeps open
    // until the spawn has returned.
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way of every target number, then onto the targets: a source may
            // itself sit on another pair's target number.
            let mut high = [-1; 4];
            for i in 0..n {
                high[i] = libc::fcntl(pairs[i].0, libc::F_DUPFD, 100);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for i in 0..n {
                // dup2 clears close-on-exec on the target.
                if libc::dup2(high[i], pairs[i].1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(high[i]);
            }
            Ok(())
        });
    }
}

/// Opens `path` for appending (creating it), untraced, as the shell's `7>>FILE` would.
fn open_append(path: &str) -> File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {path}: {e}"))
}

/// `fsync-trace -- sh -c 'echo hello >&7' 7>>FILE`: FILE was opened before the trace, by the
/// tracer's parent. Its one write is reported on FILE, by FILE's path.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn inherited_descriptor_is_reported_by_its_path() {
    let (_g, d) = tempdir();
    let file = format!("{d}/inherited.log");
    let f = open_append(&file);
    let (out, r) = trace_with(&os(&["--", "/bin/sh", "-c", "echo hello >&7"]), |cmd| {
        inherit_fds(cmd, &[(&f, 7)]);
    });
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = r.unwrap_or_else(|| panic!("no report; stderr: {}", out.stderr));
    r.assert_complete();
    r.assert_paths(&[&file]);
    r.assert_file(
        &file,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 6),
            ("fsyncs", 0),
            ("unsynced_bytes", 6),
        ],
    );
    r.assert_removed(&file, false);
    r.assert_syncs(&[]);
    r.assert_findings(&[fid("unsynced_write", &file, None)]);
    r.assert_unsynced_write(&file, 1, 6);
    r.assert_names(&file, &[&file]);
    r.assert_identity();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello\n");
}

/// Two inherited descriptors on two files (fd 7 -> A, fd 8 -> B), each written once: each write
/// on its own file, by its own path.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn two_inherited_descriptors_keep_their_own_paths() {
    let (_g, d) = tempdir();
    let (a, b) = (format!("{d}/a.log"), format!("{d}/b.log"));
    let (fa, fb) = (open_append(&a), open_append(&b));
    let (out, r) = trace_with(
        &os(&["--", "/bin/sh", "-c", "echo alpha >&7; echo beta-two >&8"]),
        |cmd| inherit_fds(cmd, &[(&fa, 7), (&fb, 8)]),
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = r.unwrap_or_else(|| panic!("no report; stderr: {}", out.stderr));
    r.assert_complete();
    r.assert_paths(&[&a, &b]);
    for (p, bytes) in [(&a, 6), (&b, 9)] {
        r.assert_file(
            p,
            "file",
            &[
                ("writes", 1),
                ("bytes_written", bytes),
                ("fsyncs", 0),
                ("unsynced_bytes", bytes),
            ],
        );
        r.assert_removed(p, false);
    }
    r.assert_syncs(&[]);
    r.assert_findings(&[
        fid("unsynced_write", &a, None),
        fid("unsynced_write", &b, None),
    ]);
    r.assert_unsynced_write(&a, 1, 6);
    r.assert_unsynced_write(&b, 1, 9);
    r.assert_names(&a, &[&a]);
    r.assert_names(&b, &[&b]);
    r.assert_identity();
}

/// Opens its file, says "ready", waits for a line on stdin, then writes 100 bytes 3 times and
/// exits at once (`os._exit`: nothing else runs after the writes, so the process and its
/// descriptor are gone a moment after the last write).
const OPEN_THEN_WRITE: &str = r#"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
print("ready", flush=True)
sys.stdin.readline()
for i in range(3):
    assert os.write(fd, b"x" * 99 + b"\n") == 100
os._exit(0)
"#;

/// `-p PID` attached after the process opened its file: the 3 writes are reported on the file,
/// by its path.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn descriptor_opened_before_pid_attach_is_reported_by_its_path() {
    let (_g, d) = tempdir();
    let file = format!("{d}/opened-before.dat");
    let mut py = Command::new(python())
        .args(["-I", "-B", "-c", OPEN_THEN_WRITE, &file])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting python3");
    let pid = py.id();
    let mut stdin = py.stdin.take().unwrap();
    let mut stdout = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let report = format!("{d}.report.json");
    let _rm = RemoveOnDrop(report.clone());
    let mut tracer = spawn_tracer(&["-p", &pid.to_string()], &report);
    wait_until_tracing(&mut tracer, pid);
    writeln!(stdin, "go").unwrap();
    drop(stdin);
    let status = py.wait().unwrap();
    assert!(status.success(), "python: {status}");
    let out = wait_output(
        tracer,
        Duration::from_secs(20),
        "fsync-trace -p after the target exited",
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = read_report(&report);
    r.assert_paths(&[&file]);
    r.assert_file(
        &file,
        "file",
        &[
            ("writes", 3),
            ("bytes_written", 300),
            ("fsyncs", 0),
            ("unsynced_bytes", 300),
        ],
    );
    r.assert_removed(&file, false);
    r.assert_syncs(&[]);
    r.assert_findings(&[fid("unsynced_write", &file, None)]);
    r.assert_unsynced_write(&file, 3, 300);
    r.assert_adopted_process(pid, "python3");
    r.assert_names(&file, &[&file]);
    r.assert_identity();
}

// ------------------------------------------------------------------------------------------------
// Git
// ------------------------------------------------------------------------------------------------

/// Debian 12's git (2.39): the syscalls below were read from it with strace.
const GIT: &str = "/usr/bin/git";

/// A Git repository in a fresh directory with one commit (a.txt), and b.txt, c.txt written but
/// not added; Git's environment pinned (no system or user config, fixed dates: the same objects
/// and the same bytes every run).
struct GitRepo {
    _dir: TempDir,
    _home: TempDir,
    home: String,
    /// The work tree.
    dir: String,
}

impl GitRepo {
    fn new() -> GitRepo {
        assert!(
            Path::new(GIT).exists(),
            "{GIT} is missing: apt-get install -y git (scripts/setup.sh)"
        );
        let (_dir, dir) = tempdir();
        let (_home, home) = tempdir();
        let repo = GitRepo {
            _dir,
            _home,
            home,
            dir,
        };
        repo.git(&["init", "-q", "-b", "main", "."]);
        repo.git(&["config", "user.name", "fsync-trace test"]);
        repo.git(&["config", "user.email", "test@example.com"]);
        repo.write("a.txt", "one\n");
        repo.git(&["add", "a.txt"]);
        repo.git(&["commit", "-q", "-m", "first"]);
        repo.write("b.txt", "two\n");
        repo.write("c.txt", "three\n");
        repo
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(format!("{}/{name}", self.dir), text).unwrap();
    }

    /// Git's environment for any git run here, traced or not.
    fn env(&self, cmd: &mut Command) {
        for var in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            "GIT_CEILING_DIRECTORIES",
            "GIT_CONFIG",
            "GIT_CONFIG_PARAMETERS",
            "GIT_CONFIG_COUNT",
            "GIT_TRACE",
            "GIT_TRACE2",
            "GIT_TRACE2_EVENT",
            "GIT_TRACE2_PERF",
        ] {
            cmd.env_remove(var);
        }
        cmd.current_dir(&self.dir)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", format!("{}/.config", self.home))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
            .env("LC_ALL", "C");
    }

    /// An untraced git command that must succeed; its stdout.
    fn git(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(GIT);
        cmd.args(args);
        self.env(&mut cmd);
        let out = run(&mut cmd, "git");
        assert_eq!(out.code, 0, "git {args:?}: {}", out.stderr);
        out.stdout
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir)
    }

    fn size(&self, rel: &str) -> u64 {
        std::fs::metadata(self.path(rel)).unwrap().len()
    }

    /// Every loose object file: `xx/<38 hex>` under .git/objects.
    fn loose_objects(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for e in std::fs::read_dir(self.path(".git/objects")).unwrap() {
            let e = e.unwrap();
            let xx = e.file_name().to_str().unwrap().to_string();
            if xx.len() != 2 || !e.file_type().unwrap().is_dir() {
                continue;
            }
            for o in std::fs::read_dir(e.path()).unwrap() {
                let name = o.unwrap().file_name().to_str().unwrap().to_string();
                out.insert(format!("{xx}/{name}"));
            }
        }
        out
    }

    /// `git add b.txt c.txt && git commit -m second`, traced, with `config` (`-c k=v` pairs) on
    /// both git commands. Returns the report and what changed:
    /// (new loose objects, their fan-out dirs that did not exist before, bytes appended to
    /// logs/HEAD, bytes appended to logs/refs/heads/main).
    fn traced_add_commit(&self, config: &[&str]) -> (Report, GitChanges) {
        self.traced_add_commit_with(config, &[])
    }

    /// [`Self::traced_add_commit`] with extra tracer arguments.
    fn traced_add_commit_with(&self, config: &[&str], tracer: &[&str]) -> (Report, GitChanges) {
        let before = self.loose_objects();
        let dirs_before: BTreeSet<String> = before.iter().map(|o| o[..2].to_string()).collect();
        let logs_before = (
            self.size(".git/logs/HEAD"),
            self.size(".git/logs/refs/heads/main"),
        );
        let cfg = config.join(" ");
        let script = format!("{GIT} {cfg} add b.txt c.txt && {GIT} {cfg} commit -q -m second");
        let mut args = os(tracer);
        args.extend(os(&["--", "/bin/sh", "-c", &script]));
        let (out, r) = trace_with(&args, |cmd| self.env(cmd));
        assert_eq!(out.code, 0, "traced git add + commit: {}", out.stderr);
        let r = r.unwrap_or_else(|| panic!("no report; stderr: {}", out.stderr));
        r.assert_complete();
        // The objects the commit added: its commit, its tree and the two new blobs (a.txt's
        // blob is from the first commit).
        let objects: BTreeSet<String> = self.loose_objects().difference(&before).cloned().collect();
        let listed: BTreeSet<String> = self
            .git(&["rev-list", "--objects", "-1", "HEAD"])
            .lines()
            .map(|l| {
                let oid = l.split(' ').next().unwrap();
                format!("{}/{}", &oid[..2], &oid[2..])
            })
            .filter(|o| !before.contains(o))
            .collect();
        assert_eq!(objects, listed, "new loose objects vs the commit's objects");
        assert_eq!(objects.len(), 4, "commit, tree, 2 blobs: {objects:?}");
        let new_dirs = objects
            .iter()
            .map(|o| o[..2].to_string())
            .filter(|xx| !dirs_before.contains(xx))
            .collect();
        let changes = GitChanges {
            objects,
            new_dirs,
            logs_head: self.size(".git/logs/HEAD") - logs_before.0,
            logs_main: self.size(".git/logs/refs/heads/main") - logs_before.1,
        };
        (r, changes)
    }
}

struct GitChanges {
    /// `xx/<38 hex>` of each loose object the traced commands wrote.
    objects: BTreeSet<String>,
    /// Fan-out directories (`xx`) they created.
    new_dirs: BTreeSet<String>,
    /// Bytes appended to .git/logs/HEAD and .git/logs/refs/heads/main.
    logs_head: u64,
    logs_main: u64,
}

// What Debian 12's git 2.39 does for `git add b.txt c.txt && git commit -q -m second` in a
// repository with one commit (strace -f -e trace=%file,write,fsync,fdatasync), with the
// default core.fsync (loose objects, the index and refs are not synced) and nothing else set:
//  - git add: index.lock created (O_EXCL); per new blob: mkdir objects/xx if missing,
//    objects/xx/tmp_obj_XXXXXX created (O_EXCL), 1 write, close, link(tmp_obj, xx/<38 hex>),
//    unlink(tmp_obj); index.lock: 2 writes (entries, checksum), close, rename over index.
//  - git commit: index.lock created, tree object (as above), index.lock 2 writes, renamed over
//    index (replacing git add's index: that inode has no name left); COMMIT_EDITMSG (existing)
//    opened O_TRUNC, 1 write of 7 bytes ("second\n"); commit object (as above); HEAD.lock
//    created and later unlinked (never written); refs/heads/main.lock created, 2 writes
//    (40 hex + "\n"), close; logs/HEAD and logs/refs/heads/main (existing) opened O_APPEND,
//    1 write each; main.lock renamed over refs/heads/main; HEAD.lock unlinked.
//  - git maintenance run --auto (a child of commit): objects/maintenance.lock created and
//    unlinked, nothing written.
//  - no fsync, fdatasync or directory sync at all.
// So, by the rules in README.md (an entry created and removed again between directory syncs
// leaves the directory as it was; a rename of a file with unsynced data is
// rename_before_fsync):
//  - every new object: unsynced_write (1 write, its size), and unsynced_parent_dir on
//    objects/xx for its final name (its tmp_obj_ entry came and went);
//  - every new objects/xx: unsynced_parent_dir on objects for xx;
//  - index: rename_before_fsync twice (add's and commit's index.lock), unsynced_write on the
//    live one (2 writes, its size), unsynced_parent_dir on .git for "index"; git add's index
//    is removed (no finding: its data can no longer be read by anyone);
//  - refs/heads/main: rename_before_fsync, unsynced_write (2 writes, 41 bytes),
//    unsynced_parent_dir on refs/heads for "main";
//  - COMMIT_EDITMSG (1 write, 7 bytes), logs/HEAD and logs/refs/heads/main (1 write each):
//    unsynced_write;
//  - HEAD.lock, index.lock, main.lock and maintenance.lock: nothing (their entries cancel; the
//    lock files' data lives on under the final names).
// (On ext4 the fan-out directory git commit creates for its commit object usually gets the
// inode number of git add's index, freed by the rename just before: a removed file and a live
// directory of one number, whose histories must not mix: that directory's entry is still a
// finding.)
// With core.fsync=all and core.fsyncMethod=fsync the same calls happen, plus one fsync of each
// object's tmp_obj_ descriptor before close, of each index.lock before its rename and of
// main.lock before its rename: 7 fsyncs. Git 2.39 syncs neither COMMIT_EDITMSG nor the reflogs
// (logs/) nor any directory, so those unsynced_write and all unsynced_parent_dir findings stay.

/// The findings both Git runs have: entries never made durable, and the files Git never syncs.
fn git_common_findings(repo: &GitRepo, c: &GitChanges) -> Vec<FindingId> {
    let objects = repo.path(".git/objects");
    let mut want = vec![
        fid("unsynced_parent_dir", &repo.path(".git"), Some("index")),
        fid(
            "unsynced_parent_dir",
            &repo.path(".git/refs/heads"),
            Some("main"),
        ),
        fid("unsynced_write", &repo.path(".git/COMMIT_EDITMSG"), None),
        fid("unsynced_write", &repo.path(".git/logs/HEAD"), None),
        fid(
            "unsynced_write",
            &repo.path(".git/logs/refs/heads/main"),
            None,
        ),
    ];
    for o in &c.objects {
        let (xx, rest) = o.split_at(2);
        want.push(fid(
            "unsynced_parent_dir",
            &format!("{objects}/{xx}"),
            Some(&rest[1..]),
        ));
    }
    for xx in &c.new_dirs {
        want.push(fid("unsynced_parent_dir", &objects, Some(xx)));
    }
    want
}

/// Files and counts both Git runs have (`fsynced`: whether Git synced objects, index and refs).
fn assert_git_files(repo: &GitRepo, r: &Report, c: &GitChanges, fsynced: bool) {
    let s = u64::from(fsynced);
    let mut live: BTreeSet<String> = [
        ".git/index",
        ".git/COMMIT_EDITMSG",
        ".git/refs/heads/main",
        ".git/logs/HEAD",
        ".git/logs/refs/heads/main",
    ]
    .iter()
    .map(|p| repo.path(p))
    .collect();
    live.extend(
        c.objects
            .iter()
            .map(|o| repo.path(&format!(".git/objects/{o}"))),
    );
    assert_eq!(r.live_paths(), live, "files not removed:\n{}", r.pretty());
    for o in &c.objects {
        let rel = format!(".git/objects/{o}");
        let p = repo.path(&rel);
        let size = repo.size(&rel);
        r.assert_live_file(
            &p,
            "file",
            &[
                ("writes", 1),
                ("bytes_written", size),
                ("fsyncs", s),
                ("unsynced_bytes", size * (1 - s)),
            ],
        );
        assert_eq!(Report::names_of(r.live_file(&p)), vec![p.clone()]);
    }
    let index_size = repo.size(".git/index");
    for (rel, writes, bytes, fsyncs) in [
        (".git/index", 2, index_size, s),
        (".git/refs/heads/main", 2, 41, s),
        (".git/COMMIT_EDITMSG", 1, 7, 0),
        (".git/logs/HEAD", 1, c.logs_head, 0),
        (".git/logs/refs/heads/main", 1, c.logs_main, 0),
    ] {
        let p = repo.path(rel);
        let unsynced = if fsyncs == 1 { 0 } else { bytes };
        r.assert_live_file(
            &p,
            "file",
            &[
                ("writes", writes),
                ("bytes_written", bytes),
                ("fsyncs", fsyncs),
                ("fdatasyncs", 0),
                ("unsynced_bytes", unsynced),
            ],
        );
        assert_eq!(Report::names_of(r.live_file(&p)), vec![p.clone()]);
    }
    assert_eq!(
        std::fs::read_to_string(repo.path(".git/COMMIT_EDITMSG")).unwrap(),
        "second\n"
    );
    // The only file without a name left: the index git add wrote, replaced by git commit's.
    let removed: Vec<&Value> = r.files().iter().filter(|f| f["removed"] == true).collect();
    assert_eq!(removed.len(), 1, "removed files:\n{}", r.pretty());
    let old_index = removed[0];
    assert!(
        [repo.path(".git/index"), repo.path(".git/index.lock")]
            .iter()
            .any(|p| old_index["path"] == p.as_str()),
        "git add's index: {old_index}"
    );
    assert_eq!(
        (
            Report::u64_at(old_index, "writes"),
            Report::u64_at(old_index, "fsyncs")
        ),
        (2, s),
        "git add's index: {old_index}"
    );
    // No temporary object is a live file, by path or by name.
    for f in r.files() {
        let tmp = f["path"].as_str().unwrap().contains("tmp_obj_")
            || Report::names_of(f).iter().any(|n| n.contains("tmp_obj_"));
        assert!(
            !tmp || f["removed"] == true,
            "a live file under a temporary object name: {f}"
        );
    }
}

/// `git add` + `git commit` of two new files with Git's default durability settings: every
/// loose object is reported under its final name (not the tmp_obj_ it was written as), with its
/// unsynced write; the index and the branch ref under their final names (not *.lock).
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn git_commit_default_fsync_reports_objects_under_their_final_names() {
    let repo = GitRepo::new();
    let (r, c) = repo.traced_add_commit(&[]);
    assert_git_files(&repo, &r, &c, false);
    r.assert_syncs(&[]);
    let index = repo.path(".git/index");
    let main = repo.path(".git/refs/heads/main");
    let mut want = git_common_findings(&repo, &c);
    want.extend([
        fid("rename_before_fsync", &index, None),
        fid("rename_before_fsync", &index, None),
        fid("rename_before_fsync", &main, None),
        fid("unsynced_write", &index, None),
        fid("unsynced_write", &main, None),
    ]);
    for o in &c.objects {
        want.push(fid(
            "unsynced_write",
            &repo.path(&format!(".git/objects/{o}")),
            None,
        ));
    }
    r.assert_findings(&want);
    for o in &c.objects {
        let rel = format!(".git/objects/{o}");
        r.assert_unsynced_write(&repo.path(&rel), 1, repo.size(&rel));
    }
    r.assert_unsynced_write(&index, 2, repo.size(".git/index"));
    r.assert_unsynced_write(&main, 2, 41);
    r.assert_unsynced_write(&repo.path(".git/COMMIT_EDITMSG"), 1, 7);
    r.assert_unsynced_write(&repo.path(".git/logs/HEAD"), 1, c.logs_head);
    r.assert_unsynced_write(&repo.path(".git/logs/refs/heads/main"), 1, c.logs_main);
    let sources: BTreeMap<String, usize> = r
        .findings_json()
        .iter()
        .filter(|f| f["kind"] == "rename_before_fsync")
        .fold(BTreeMap::new(), |mut m, f| {
            *m.entry(f["source"].as_str().unwrap().to_string())
                .or_default() += 1;
            m
        });
    assert_eq!(
        sources,
        BTreeMap::from([
            (repo.path(".git/index.lock"), 2),
            (repo.path(".git/refs/heads/main.lock"), 1)
        ])
    );
    r.assert_identity();
}

/// `--profile git`: everything Git's default `core.fsync` leaves unsynced by design is set
/// apart with the profile's reasons; nothing is left unexplained.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn git_commit_with_the_git_profile_leaves_nothing_unexplained() {
    let repo = GitRepo::new();
    let (r, c) = repo.traced_add_commit_with(&[], &["--profile", "git", "--group-over", "0"]);
    assert!(r.findings_json().is_empty(), "{}", r.pretty());
    // The same findings as without the profile (see above), all suppressed.
    let want = git_common_findings(&repo, &c).len() + 5 + c.objects.len();
    assert_eq!(
        r.0["suppressed"].as_u64(),
        Some(want as u64),
        "{}",
        r.pretty()
    );
    for s in r.0["suppressed_findings"].as_array().unwrap() {
        let rule = s["suppressed_by"]["rule"].as_str().unwrap();
        assert!(rule.starts_with("profile:git#"), "{s}");
        assert!(!s["suppressed_by"]["reason"].as_str().unwrap().is_empty());
    }
}

/// The same with `core.fsync=all` and `core.fsyncMethod=fsync`: objects, index and ref are
/// synced before they are linked or renamed into place, so none of them is a finding; what Git
/// still never syncs (COMMIT_EDITMSG, the reflogs, directories) is.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn git_commit_fsync_all_leaves_objects_index_and_refs_durable() {
    let repo = GitRepo::new();
    let (r, c) = repo.traced_add_commit(&["-c", "core.fsync=all", "-c", "core.fsyncMethod=fsync"]);
    assert_git_files(&repo, &r, &c, true);
    r.assert_syncs(&[("fsync", 7, 0)]);
    r.assert_findings(&git_common_findings(&repo, &c));
    r.assert_unsynced_write(&repo.path(".git/COMMIT_EDITMSG"), 1, 7);
    r.assert_unsynced_write(&repo.path(".git/logs/HEAD"), 1, c.logs_head);
    r.assert_unsynced_write(&repo.path(".git/logs/refs/heads/main"), 1, c.logs_main);
    r.assert_identity();
}

// ------------------------------------------------------------------------------------------------
// --all with a small kernel file table
// ------------------------------------------------------------------------------------------------

/// `--all --file-slots 1024` while an untraced workload writes and fsyncs 3000 files, unlinks
/// them, fsyncs the directory, then writes 500 new files once and never syncs them (and syncs
/// the directory again). Slots of the files that are gone must be reclaimed: nothing is lost,
/// and every new file is there with its unsynced write.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn all_mode_reclaims_slots_of_a_small_file_table() {
    const NEW: usize = 500;
    let (_g, d) = tempdir();
    let (_rg, rdir) = tempdir();
    let report = format!("{rdir}/report.json");
    let mut tracer = spawn_tracer(
        &[
            "--all",
            "--file-slots",
            "1024",
            "--duration",
            "120",
            "--group-over",
            "0",
        ],
        &report,
    );
    wait_until_attached(&mut tracer);
    let w = run(
        Command::new(workload()).args(["table-churn", &d, "--files", "3000", "--new", "500"]),
        "table-churn",
    );
    assert_eq!(w.code, 0, "table-churn: {}", w.stderr);
    // SAFETY: plain syscall to our child.
    assert_eq!(unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) }, 0);
    let out = wait_output(
        tracer,
        Duration::from_mins(1),
        "fsync-trace --all after SIGINT",
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = read_report(&report); // complete, nothing lost
    let count = |key: &str| {
        r.0[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no integer {key:?} at the top of the report"))
    };
    assert!(count("reclaimed_slots") > 0, "no slot was reclaimed");
    let _ = count("released_files");
    // Only what happened in the workload's directory: --all sees the whole machine.
    let prefix = format!("{d}/");
    let in_dir = |p: &str| p == d || p.starts_with(&prefix);
    let new: BTreeSet<String> = (0..NEW).map(|j| format!("{d}/n{j}.dat")).collect();
    let mut seen = BTreeSet::new();
    for f in r.files() {
        let p = f["path"].as_str().unwrap();
        if !new.contains(p) {
            continue;
        }
        assert!(seen.insert(p.to_string()), "{p} listed twice");
        let got = (
            f["writes"].as_u64(),
            f["bytes_written"].as_u64(),
            f["fsyncs"].as_u64(),
            f["unsynced_bytes"].as_u64(),
            f["removed"].as_bool(),
        );
        assert_eq!(
            got,
            (Some(1), Some(100), Some(0), Some(100), Some(false)),
            "(writes, bytes_written, fsyncs, unsynced_bytes, removed) of {p}: {f}"
        );
        assert_eq!(Report::names_of(f), vec![p.to_string()], "names of {p}");
    }
    let missing: Vec<&String> = new.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "{} of the {NEW} new files are not in the report, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let mut got: Vec<(String, String, Option<String>)> = Vec::new();
    for f in r.findings_json() {
        let p = f["path"].as_str().unwrap();
        if !in_dir(p) {
            continue;
        }
        got.push(fid(
            f["kind"].as_str().unwrap(),
            p,
            f.get("entry").and_then(Value::as_str),
        ));
        if f["kind"] == "unsynced_write" {
            assert_eq!(
                (f["unsynced_writes"].as_u64(), f["unsynced_bytes"].as_u64()),
                (Some(1), Some(100)),
                "{f}"
            );
        }
    }
    got.sort();
    let want: Vec<FindingId> = new.iter().map(|p| fid("unsynced_write", p, None)).collect();
    if got != want {
        let extra: Vec<_> = got.iter().filter(|f| !want.contains(f)).take(10).collect();
        let absent: Vec<_> = want.iter().filter(|f| !got.contains(f)).take(10).collect();
        panic!(
            "findings in {d}: {} (want {}); extra (first 10): {extra:?}; missing (first 10): \
             {absent:?}",
            got.len(),
            want.len()
        );
    }
}
