//! The write-ahead-log contract (`--wal`): the `wal-server` workload appends each request to
//! `wal/log`, and replies over a socket before or after the log's fdatasync.
use super::support::*;

/// `fsync-trace --wal <glob> -- fsync-trace-workload wal-server <dir> <extra>` in a fresh
/// directory: (guard, dir, report).
fn wal_server(globs: &[&str], extra: &[&str]) -> (TempDir, String, Report) {
    let (guard, dir) = tempdir();
    let mut args = Vec::new();
    for g in globs {
        args.extend(os(&["--wal", g]));
    }
    args.extend(os(&["--", workload(), "wal-server", &dir]));
    args.extend(os(extra));
    let (out, report) = trace(&args);
    assert_eq!(out.code, 0, "fsync-trace on wal-server: {}", out.stderr);
    let report = report.unwrap_or_else(|| panic!("no report; stderr: {}", out.stderr));
    report.assert_complete();
    (guard, dir, report)
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn syncing_the_log_before_replying_keeps_the_contract() {
    for (transport, reply) in [("unix", "write"), ("tcp", "send"), ("udp", "sendmsg")] {
        let (_g, d, r) = wal_server(
            &["**/wal/*"],
            &[
                "--requests",
                "25",
                "--transport",
                transport,
                "--reply",
                reply,
                "--data",
            ],
        );
        r.assert_findings(&[]);
        // Every reply followed a log write: each was judged.
        assert_eq!(
            r.wal_acks_judged(),
            25,
            "{transport}/{reply}:\n{}",
            r.pretty()
        );
        r.assert_file(
            &format!("{d}/wal/log"),
            "file",
            &[("writes", 26), ("fdatasyncs", 26), ("unsynced_bytes", 0)],
        );
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn replying_before_the_log_is_durable_is_flagged_per_reply() {
    for (transport, reply) in [("unix", "write"), ("tcp", "sendmsg"), ("udp", "send")] {
        let (_g, d, r) = wal_server(
            &["/nowhere/*", "**/wal/*"],
            &[
                "--requests",
                "17",
                "--order",
                "reply-then-sync",
                "--transport",
                transport,
                "--reply",
                reply,
                "--data",
            ],
        );
        let log = format!("{d}/wal/log");
        r.assert_findings(&[fid("ack_before_durable", &log, None)]);
        let f = r.finding("ack_before_durable", &log);
        assert_eq!(f["count"], 17, "{transport}/{reply}: {f}");
        // Each reply's data became durable at the fdatasync right after it.
        assert_eq!(f["acks_never_durable"], 0, "{f}");
        let (med, max) = (
            Report::u64_at(f, "durability_lag_median_us"),
            Report::u64_at(f, "durability_lag_max_us"),
        );
        assert!(med <= max && max < 5_000_000, "{f}");
        assert_eq!(f["comm"], "fsync-trace-wor", "{f}");
        let msg = f["message"].as_str().unwrap();
        assert!(msg.contains("sent 17 replies"), "{msg}");
        assert!(msg.contains("power cut"), "{msg}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn replies_whose_log_is_never_synced_are_never_durable() {
    let (_g, d, r) = wal_server(
        &["**/wal/*"],
        &["--requests", "9", "--order", "reply-never-sync"],
    );
    let log = format!("{d}/wal/log");
    r.assert_findings(&[
        fid("ack_before_durable", &log, None),
        fid("unsynced_write", &log, None),
    ]);
    let f = r.finding("ack_before_durable", &log);
    assert_eq!(f["count"], 9, "{f}");
    assert_eq!(f["acks_never_durable"], 9, "{f}");
    assert!(f.get("durability_lag_max_us").is_none(), "{f}");
}

/// Files that do not match `--wal` are never judged, whatever the order: the data file is
/// written before each reply and synced only at the end.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn files_not_matching_wal_are_never_flagged() {
    let (_g, _d, r) = wal_server(
        &["**/data/*.idx", "/var/lib/*/wal/*"],
        &["--requests", "12", "--order", "reply-then-sync", "--data"],
    );
    r.assert_findings(&[]);
    assert_eq!(r.wal_acks_judged(), 0, "{}", r.pretty());
}

/// Without --wal nothing changes: no note, no new finding.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn without_wal_the_contract_is_not_checked() {
    let (_g, _d, r) = scenario(
        "wal-server",
        &["--requests", "5", "--order", "reply-then-sync"],
    );
    r.assert_findings(&[]);
    let notes = r.0["notes"].as_array().cloned().unwrap_or_default();
    assert!(
        notes
            .iter()
            .all(|n| !n.as_str().unwrap_or("").contains("write-ahead")),
        "{}",
        r.pretty()
    );
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn a_bad_wal_glob_is_a_usage_error() {
    let (out, report) = trace(&os(&["--wal", "a/[", "--", "true"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(report.is_none());
    assert!(
        out.stderr.contains("--wal \"a/[\" is not a valid glob"),
        "{}",
        out.stderr
    );
}
