//! The write-ahead-log contract (`--wal`) on real servers: Redis `appendfsync` and PostgreSQL.

use super::*;
use crate::postgres::Postgres;

/// `n` SETs over one connection, each answered before the next (RESP inline commands).
fn redis_sets(port: &str, n: usize, tag: &str) {
    use std::io::{BufRead, BufReader, Write};
    let mut conn = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let mut replies = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    for i in 0..n {
        conn.write_all(format!("SET {tag}{i} value{i}\r\n").as_bytes())
            .unwrap();
        line.clear();
        replies.read_line(&mut line).unwrap();
        assert_eq!(line, "+OK\r\n");
    }
}

/// Traces redis (`appendfsync`) with `--wal` on its AOF directory while a client sends
/// `sets` SETs; the report.
fn traced_redis_sets(appendfsync: &str, sets: usize) -> (TempDir, String, Report) {
    let (g, d) = tempdir();
    let port = free_port().to_string();
    let mut redis = start_redis(&d, &port, appendfsync);
    let report = format!("{d}.report.json");
    let _rm = RemoveOnDrop(report.clone());
    let pid = redis.id();
    let wal = format!("{d}/appendonlydir/*.incr.aof");
    let mut tracer = spawn_tracer(&["-p", &pid.to_string(), "-f", "--wal", &wal], &report);
    let _ = wait_until_tracing(&mut tracer, pid);
    // The first append names the AOF in the kernel; the tracer marks it as a WAL within a
    // drain (20 ms): the judged SETs come after.
    redis_sets(&port, 1, "warm");
    thread::sleep(Duration::from_millis(300));
    redis_sets(&port, sets, "k");
    // Long enough for everysec's background sync to make the last appends durable.
    thread::sleep(Duration::from_millis(2500));
    sigint(tracer.id() as i32);
    let out = wait_output(
        tracer,
        Duration::from_secs(30),
        "fsync-trace -p redis --wal",
    );
    let _ = redis.kill();
    let _ = redis.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = read_report(&report);
    (g, d, r)
}

/// The incremental AOF file of a report (its path).
fn incr_aof(r: &Report, d: &str) -> String {
    r.files()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .find(|p| p.starts_with(&format!("{d}/appendonlydir/")) && p.ends_with(".incr.aof"))
        .unwrap_or_else(|| panic!("no incr AOF: {}", r.pretty()))
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn redis_appendfsync_always_acks_after_the_aof_is_durable() {
    let (_g, d, r) = traced_redis_sets("always", 200);
    let aof = incr_aof(&r, &d);
    // Every SET was appended, synced and then answered: every answer was judged.
    assert!(r.wal_acks_judged() >= 200, "{}", r.pretty());
    assert!(
        Report::u64_at(r.file(&aof), "fdatasyncs") + Report::u64_at(r.file(&aof), "fsyncs") >= 200,
        "{}",
        r.pretty()
    );
    r.assert_findings(&[]);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn redis_appendfsync_everysec_acks_before_the_aof_is_durable() {
    let (_g, d, r) = traced_redis_sets("everysec", 200);
    let aof = incr_aof(&r, &d);
    let f = r.finding("ack_before_durable", &aof);
    // Redis appends each SET, replies, and syncs in the background about once a second: most
    // replies go out first. Replies whose append a background sync had already covered when
    // they went out are kept (how many depends on where the syncs fall: 0 to ~30 of 200 seen).
    let acks = Report::u64_at(f, "count");
    assert!((100..=200).contains(&acks), "{f}");
    assert_eq!(f["comm"], "redis-server", "{f}");
    // Made durable by the next background sync (about a second; never more than a few).
    let max = Report::u64_at(f, "durability_lag_max_us");
    assert!(max < 5_000_000, "{f}");
    assert_eq!(f["acks_never_durable"], 0, "{f}");
    assert_eq!(
        r.findings_json().len(),
        1 + r
            .findings_json()
            .iter()
            .filter(|x| x["kind"] == "unsynced_write")
            .count(),
        "{}",
        r.pretty()
    );
}

/// PostgreSQL with `synchronous_commit=on` (the default) answers a commit only after the WAL
/// flush that covers it: with `--wal '**/pg_wal/*'` under concurrent pgbench clients, every
/// backend that wrote WAL and then answered had its write covered by a sync first.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn postgres_synchronous_commit_keeps_the_wal_contract() {
    let pg = Postgres::start();
    assert_eq!(pg.sql("show synchronous_commit"), "on");
    let postmaster = pg.postmaster();
    let (_g, d) = tempdir();
    let report = format!("{d}/report.json");
    let pm = postmaster.to_string();
    let mut tracer = spawn_tracer(
        &[
            "-p",
            &pm,
            "-f",
            "--profile",
            "postgresql",
            "--wal",
            "**/pg_wal/*",
        ],
        &report,
    );
    let _ = wait_until_tracing(&mut tracer, postmaster);
    // One transaction first: the WAL segment gets named and marked before the measured run.
    pg.sql("create table warm(x int); insert into warm values (1)");
    thread::sleep(Duration::from_millis(300));
    pg.as_postgres("pgbench", &pg.client(&["-c", "4", "-T", "3", "postgres"]));
    sigint(tracer.id() as i32);
    let out = wait_output(
        tracer,
        Duration::from_mins(1),
        "fsync-trace -p postmaster --wal",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = read_report(&report);
    // Commits were judged (one per transaction that wrote its own WAL)...
    assert!(r.wal_acks_judged() >= 50, "{}", r.pretty());
    // ...and none was answered before its WAL was durable.
    let broken: Vec<&Value> = r
        .findings_json()
        .iter()
        .filter(|f| f["kind"] == "ack_before_durable")
        .collect();
    assert!(broken.is_empty(), "{broken:?}");
}
