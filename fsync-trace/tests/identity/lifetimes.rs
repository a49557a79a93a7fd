//! Lifetimes: a new file that gets the inode number of a deleted one starts its own history.
use std::collections::BTreeSet;

use super::support::*;

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
