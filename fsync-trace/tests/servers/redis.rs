//! Redis with a BGREWRITEAOF child, traced as a tree.

use super::*;

fn redis_cli(port: &str, args: &[&str]) -> String {
    must(
        Command::new("redis-cli").args(["-p", port]).args(args),
        "redis-cli",
    )
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn redis_with_a_rewrite_child_is_traced_as_a_tree() {
    let (_g, d) = tempdir();
    let port = free_port().to_string();
    let mut redis: Child = start_redis(&d, &port, "always");
    let report = format!("{d}.report.json");
    let _rm = RemoveOnDrop(report.clone());
    let pid = redis.id();
    let mut tracer = spawn_tracer(&["-p", &pid.to_string(), "-f"], &report);
    let _ = wait_until_tracing(&mut tracer, pid);
    for i in 0..20 {
        redis_cli(&port, &["set", &format!("k{i}"), "v"]);
    }
    redis_cli(&port, &["bgrewriteaof"]);
    let start = Instant::now();
    loop {
        let info = redis_cli(&port, &["info", "persistence"]);
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "rewrite never ended"
        );
        thread::sleep(Duration::from_millis(50));
    }
    redis_cli(&port, &["set", "after", "rewrite"]);
    sigint(tracer.id() as i32);
    let out = wait_output(tracer, Duration::from_secs(30), "fsync-trace -p redis");
    let _ = redis.kill();
    let _ = redis.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = read_report(&report);

    let procs = r.processes();
    // The main process is named for its main thread, not for the thread that synced.
    assert!(
        procs
            .iter()
            .any(|p| p.0 == u64::from(pid) && p.1 == "redis-server"),
        "{}",
        r.pretty()
    );
    assert!(
        procs.iter().any(|p| p.2 == Some(u64::from(pid))),
        "the rewrite child is traced with its parent: {}",
        r.pretty()
    );
    let aof_dir = format!("{d}/appendonlydir");
    let aof: Vec<&Value> = r
        .files()
        .iter()
        .filter(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{aof_dir}/"))
        })
        .collect();
    let base = aof
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with(".base.rdb") && f["removed"] == false)
        .unwrap_or_else(|| panic!("no live base file: {}", r.pretty()));
    assert!(Report::u64_at(base, "fsyncs") >= 1, "{base}");
    // appendfsync always: every append to a live incremental file was followed by a sync.
    for f in aof
        .iter()
        .filter(|f| f["path"].as_str().unwrap().ends_with(".incr.aof"))
    {
        assert_eq!(f["unsynced_bytes"], 0, "{f}");
        assert!(
            Report::u64_at(f, "fdatasyncs") + Report::u64_at(f, "fsyncs") >= 1,
            "{f}"
        );
    }
    assert!(r.findings_json().is_empty(), "{}", r.pretty());
}
