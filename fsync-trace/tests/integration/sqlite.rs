//! A real embedded database: SQLite in WAL mode.

use super::support::*;

// ------------------------------------------------------------------------------------------------
// A real embedded database: SQLite (python3's sqlite3 module on the system libsqlite3)
// ------------------------------------------------------------------------------------------------

/// The application: `setup` creates the database in WAL mode with one table (untraced);
/// otherwise it opens it, sets `PRAGMA synchronous=<mode>`, commits N one-row transactions and
/// closes (which checkpoints and deletes -wal and -shm).
const SQLITE_APP: &str = r#"
import sqlite3, sys
path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = sqlite3.connect(path, isolation_level=None)
if mode == "setup":
    assert con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    con.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
else:
    con.execute("PRAGMA synchronous=" + mode)
    for i in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO kv VALUES(?, ?)", (i, "v%04d" % i))
        con.execute("COMMIT")
    assert con.execute("SELECT count(*) FROM kv").fetchone()[0] == n
con.close()
"#;

/// Runs the SQLite app traced with `synchronous=<mode>` and `n` transactions.
fn sqlite_run(mode: &str, n: usize) -> (TempDir, String, Report) {
    traced_sqlite_app(SQLITE_APP, mode, n)
}

// What SQLite 3.40 (Debian 12) does for N one-row transactions on an existing WAL database
// (https://sqlite.org/wal.html, https://sqlite.org/pragma.html#pragma_synchronous, wal.c,
// os_unix.c), confirmed with `strace -f` of the same script:
//  - the WAL is created and written: a 32-byte header, then per commit a 24-byte frame header
//    and one 4096-byte page (each row fits the table's root page): 1 + 2N writes,
//    32 + N * 4120 bytes;
//  - -shm is created and sized with one 1-byte write at the end of each of its 8 pages
//    (32 KiB), then used through a shared mapping; it is never synced (by design);
//  - on close the last connection checkpoints (one page copied to app.db: 1 write of 4096)
//    and deletes -shm and -wal (no directory fsync after the deletes);
//  - synchronous=FULL: fdatasync (Debian builds with fdatasync) of the WAL after writing its
//    header, after each commit and before the checkpoint: N + 2; the first sync of the newly
//    created WAL also fsyncs its directory (UNIXFILE_DIRSYNC, with fdatasync): 1; app.db
//    after the checkpoint: 1. Total N + 4.
//  - synchronous=OFF: no sync at all.
const SQLITE_TXNS: u64 = 10;

fn sqlite_common(r: &Report, d: &str) -> (String, String, String) {
    let (db, wal, shm) = (
        format!("{d}/app.db"),
        format!("{d}/app.db-wal"),
        format!("{d}/app.db-shm"),
    );
    let n = SQLITE_TXNS;
    assert_eq!(
        r.processes()
            .iter()
            .map(|p| p.1.as_str())
            .collect::<Vec<_>>(),
        ["python3"]
    );
    r.assert_file(
        &wal,
        "file",
        &[
            ("writes", 1 + 2 * n),
            ("bytes_written", 32 + n * 4120),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_removed(&wal, true);
    r.assert_file(
        &shm,
        "file",
        &[
            ("writes", 8),
            ("bytes_written", 8),
            ("fsyncs", 0),
            ("fdatasyncs", 0),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_removed(&shm, true);
    r.assert_removed(&db, false);
    (db, wal, shm)
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn sqlite_wal_synchronous_full_is_durable() {
    let (_g, d, r) = sqlite_run("FULL", SQLITE_TXNS as usize);
    let (db, wal, shm) = sqlite_common(&r, &d);
    let n = SQLITE_TXNS;
    r.assert_paths(&[&d, &db, &wal, &shm]);
    r.assert_file(&wal, "file", &[("fsyncs", 0), ("fdatasyncs", n + 2)]);
    r.assert_file(
        &db,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 4096),
            ("fsyncs", 0),
            ("fdatasyncs", 1),
            ("unsynced_bytes", 0),
        ],
    );
    r.assert_file(&d, "dir", &[("fsyncs", 0), ("fdatasyncs", 1)]);
    r.assert_syncs(&[("fdatasync", n + 4, 0)]);
    // All data is durable. What is not: the deletion of -wal and -shm at close (their creation
    // was made durable by the directory sync at the first commit). SQLite accepts that: a -wal
    // that comes back after a crash only holds frames already checkpointed.
    r.assert_findings(&[
        fid("unsynced_parent_dir", &d, Some("app.db-shm")),
        fid("unsynced_parent_dir", &d, Some("app.db-wal")),
    ]);
    for f in r.findings_json() {
        assert_eq!(f["op"], "unlink", "{f}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn sqlite_wal_synchronous_off_is_not_durable() {
    let (_g, d, r) = sqlite_run("OFF", SQLITE_TXNS as usize);
    let (db, wal, shm) = sqlite_common(&r, &d);
    r.assert_paths(&[&db, &wal, &shm]);
    r.assert_file(&wal, "file", &[("fsyncs", 0), ("fdatasyncs", 0)]);
    r.assert_file(
        &db,
        "file",
        &[
            ("writes", 1),
            ("bytes_written", 4096),
            ("fsyncs", 0),
            ("fdatasyncs", 0),
            ("unsynced_bytes", 4096),
        ],
    );
    r.assert_syncs(&[]);
    // The committed rows reached app.db through the checkpoint and were never synced; the WAL
    // that held them is gone. -wal and -shm were created and deleted with no directory sync in
    // between: the directory's durable state never changed.
    r.assert_findings(&[fid("unsynced_write", &db, None)]);
    r.assert_unsynced_write(&db, 1, 4096);
}
