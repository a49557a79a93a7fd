//! Git itself: `git add` + `git commit` with default `core.fsync`, `--profile git`, `core.fsync=all`.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use super::support::*;

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

/// `git gc` with `core.fsync=all`: pack-objects writes and fsyncs each pack file (.pack, .idx,
/// .rev) under a temporary name, git repack makes it read-only (chmod 0444) and renames it into
/// objects/pack/. The data was durable at each rename, so no pack file is a
/// `rename_before_fsync`: the unsynced mode change alone is listed on the file, not a finding.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn git_gc_fsync_all_renames_durable_read_only_packs_without_findings() {
    let repo = GitRepo::new();
    let args = os(&[
        "--",
        GIT,
        "-c",
        "core.fsync=all",
        "-c",
        "core.fsyncMethod=fsync",
        "gc",
        "-q",
    ]);
    let (out, r) = trace_with(&args, |cmd| repo.env(cmd));
    assert_eq!(out.code, 0, "traced git gc: {}", out.stderr);
    let r = r.unwrap_or_else(|| panic!("no report; stderr: {}", out.stderr));
    r.assert_complete();
    let pack_dir = repo.path(".git/objects/pack");
    let packs: Vec<String> = std::fs::read_dir(&pack_dir)
        .unwrap()
        .map(|e| format!("{pack_dir}/{}", e.unwrap().file_name().to_str().unwrap()))
        .filter(|p| [".pack", ".idx", ".rev"].iter().any(|x| p.ends_with(x)))
        .collect();
    assert!(packs.len() >= 2, "a pack and its index: {packs:?}");
    for p in &packs {
        let f = r.file(p);
        assert_eq!(Report::u64_at(f, "fsyncs"), 1, "{p}: {f}");
        assert_eq!(Report::u64_at(f, "unsynced_bytes"), 0, "{p}: {f}");
        assert_eq!(
            Report::u64_at(f, "metadata_changes"),
            1,
            "{p}: chmod 0444: {f}"
        );
        assert_eq!(
            f["unsynced_changes"],
            serde_json::json!(["metadata"]),
            "{p}: {f}"
        );
    }
    let wrong: Vec<&serde_json::Value> = r
        .findings_json()
        .iter()
        .filter(|f| f["path"].as_str().is_some_and(|p| p.starts_with(&pack_dir)))
        .filter(|f| f["kind"] != "unsynced_parent_dir")
        .collect();
    assert!(wrong.is_empty(), "findings on durable packs: {wrong:#?}");
}
