//! Auditing servers as they run (root, real kernel, real programs): PostgreSQL adopted with
//! `-p <postmaster> -f` during a pgbench run, Redis with a BGREWRITEAOF child, a 100k-entry
//! directory storm reported as one grouped finding, suppression rules and profiles, and the
//! tracer's signals under a real process group.
mod support;

use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use support::*;

fn sigint(pid: i32) {
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
}

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn must(cmd: &mut Command, what: &str) -> String {
    let out = run(cmd, what);
    assert_eq!(out.code, 0, "{what}: {}{}", out.stdout, out.stderr);
    out.stdout
}

// ------------------------------------------------------------------------------------------------
// Grouped findings, suppressions
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn entry_storm_is_one_grouped_finding_with_every_name() {
    let (_g, d) = tempdir();
    // Removals come faster than the default buffer drains on this 2-core machine.
    let (out, r) = trace(&os(&[
        "--ring-buffer-mib",
        "32",
        "--",
        workload(),
        "entry-storm",
        &d,
        "--files",
        "100000",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = r.expect("report");
    r.assert_complete();
    let storm = format!("{d}/storm");
    r.assert_findings(&[fid("unsynced_parent_dir", &storm, Some("s0"))]);
    let f = r.finding("unsynced_parent_dir", &storm);
    assert_eq!(f["count"], 100_000);
    let entries = f["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 100_000);
    let mut names: Vec<&str> = entries.iter().map(|e| e.as_str().unwrap()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 100_000, "every name once");
    assert!(names.contains(&"s99999"));
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("100000 entries of {storm} changed")),
        "{f}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn entry_storm_text_report_stays_short() {
    let (_g, d) = tempdir();
    let out = run(
        Command::new(TRACER).args(["--", workload(), "entry-storm", &d, "--files", "20000"]),
        "fsync-trace entry-storm (text)",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The same few sections whatever the number of entries (20,000 here).
    assert!(out.stdout.lines().count() < 40, "{}", out.stdout);
    assert!(out.stdout.len() < 6000, "{}", out.stdout);
    assert!(
        out.stdout.contains("1 finding(s), worst first"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("\"s0\", \"s1\", \"s2\", \"s3\", \"s4\" and 19995 more"),
        "{}",
        out.stdout
    );
    // --group-over 0: one finding per entry.
    let (_g2, d2) = tempdir();
    let (out, r) = trace(&os(&[
        "--group-over",
        "0",
        "--",
        workload(),
        "entry-storm",
        &d2,
        "--files",
        "20",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = r.expect("report");
    r.assert_complete();
    assert_eq!(r.findings_json().len(), 20);
    assert!(r.findings_json().iter().all(|f| f.get("entries").is_none()));
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn suppressed_findings_are_counted_apart_and_never_fail_the_run() {
    let (_g, d) = tempdir();
    let rules = format!("{d}.rules.toml");
    let _rm = RemoveOnDrop(rules.clone());
    std::fs::write(
        &rules,
        format!(
            "[[rule]]\nkind = \"unsynced_write\"\npath = \"{d}/*.dat\"\nreason = \"scratch data, rebuilt at start\"\n"
        ),
    )
    .unwrap();
    let (out, r) = trace(&os(&[
        "--suppress",
        &rules,
        "--fail-on",
        "any",
        "--",
        workload(),
        "unsynced",
        &d,
    ]));
    assert_eq!(
        out.code, 0,
        "suppressed findings must not fail: {}",
        out.stderr
    );
    let r = r.expect("report");
    assert!(r.findings_json().is_empty(), "{}", r.pretty());
    assert_eq!(r.0["suppressed"], 1);
    let s = &r.0["suppressed_findings"][0];
    assert_eq!(s["kind"], "unsynced_write");
    assert_eq!(s["path"], format!("{d}/unsynced.dat"));
    assert_eq!(s["unsynced_writes"], 5);
    assert_eq!(
        s["suppressed_by"]["reason"],
        "scratch data, rebuilt at start"
    );
    assert_eq!(s["suppressed_by"]["rule"], format!("{rules}#1"));

    // The text report counts them, and lists them on request.
    let text = |extra: &[&str]| {
        let mut cmd = Command::new(TRACER);
        cmd.args(["--suppress", &rules])
            .args(extra)
            .args(["--", workload(), "unsynced", &d]);
        let out = run(&mut cmd, "fsync-trace --suppress (text)");
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
    };
    let plain = text(&[]);
    assert!(plain.contains("No durability findings."), "{plain}");
    assert!(
        plain.contains("1 finding(s) suppressed as by design (--suppress / --profile); --show-suppressed lists them"),
        "{plain}"
    );
    let listed = text(&["--show-suppressed"]);
    assert!(
        listed.contains(&format!("  - [unsynced_write] {d}/unsynced.dat")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "by design: scratch data, rebuilt at start ({rules}#1)"
        )),
        "{listed}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn bad_suppression_input_is_one_sentence_before_tracing() {
    let (_g, d) = tempdir();
    let rules = format!("{d}/r.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nkind = \"unsynced_write\"\npath = \"/x/*\"\n",
    )
    .unwrap();
    let out = run(
        Command::new(TRACER).args(["--suppress", &rules, "--", "true"]),
        "fsync-trace --suppress (no reason)",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with(&format!("fsync-trace: suppression file {rules}: ")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("missing field `reason`"),
        "{}",
        out.stderr
    );
    let out = run(
        Command::new(TRACER).args(["--profile", "oracle", "--", "true"]),
        "fsync-trace --profile oracle",
    );
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr.trim(),
        "fsync-trace: unknown profile \"oracle\" (known: postgresql, redis, sqlite, git)"
    );
    let out = run(
        Command::new(TRACER).args(["--suppress", "/nonexistent/r.toml", "--", "true"]),
        "fsync-trace --suppress missing",
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("fsync-trace: cannot read suppression file /nonexistent/r.toml: "),
        "{}",
        out.stderr
    );
}

// ------------------------------------------------------------------------------------------------
// PostgreSQL
// ------------------------------------------------------------------------------------------------

/// A PostgreSQL cluster of Debian's server, run by the `postgres` user in a temp directory,
/// listening on a Unix socket there; stopped on drop.
struct Postgres {
    _dir: TempDir,
    data: String,
    sock: String,
    port: String,
    bin: String,
}

impl Postgres {
    fn start() -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL installed (scripts/setup.sh)")
            .filter_map(std::result::Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb")
            .display()
            .to_string();
        let (dir, d) = tempdir();
        must(Command::new("chown").args(["postgres", &d]), "chown");
        let pg = Postgres {
            data: format!("{d}/data"),
            sock: d.clone(),
            port: free_port().to_string(),
            bin,
            _dir: dir,
        };
        pg.as_postgres(
            &format!("{}/initdb", pg.bin),
            &["-A", "trust", "-D", &pg.data],
        );
        let opts = format!("-k {} -c listen_addresses= -p {}", pg.sock, pg.port);
        let log = format!("{}/server.log", pg.sock);
        pg.as_postgres(
            &format!("{}/pg_ctl", pg.bin),
            &["-D", &pg.data, "-o", &opts, "-l", &log, "-w", "start"],
        );
        pg.as_postgres("pgbench", &pg.client(&["-i", "-s", "1", "-q", "postgres"]));
        pg
    }

    fn client(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = ["-h", &self.sock, "-p", &self.port]
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        v.extend(args.iter().map(std::string::ToString::to_string));
        v
    }

    fn as_postgres<S: AsRef<std::ffi::OsStr>>(&self, prog: &str, args: &[S]) -> String {
        must(
            Command::new("runuser")
                .args(["-u", "postgres", "--", prog])
                .args(args)
                .current_dir(&self.sock),
            prog,
        )
    }

    fn sql(&self, q: &str) -> String {
        self.as_postgres("psql", &self.client(&["-Atc", q, "postgres"]))
            .trim()
            .to_string()
    }

    fn postmaster(&self) -> u32 {
        let pid = std::fs::read_to_string(format!("{}/postmaster.pid", self.data)).unwrap();
        pid.lines().next().unwrap().trim().parse().unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{}/pg_ctl", self.bin))
            .args(["-D", &self.data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn postgres_adopted_with_follow_sees_every_role_and_the_checkpoint() {
    let pg = Postgres::start();
    let postmaster = pg.postmaster();
    let accounts = format!(
        "{}/{}",
        pg.data,
        pg.sql("select pg_relation_filepath('pgbench_accounts')")
    );
    let (_g, d) = tempdir();
    let report = format!("{d}/report.json");
    let pm = postmaster.to_string();
    let mut tracer = spawn_tracer(&["-p", &pm, "-f", "--profile", "postgresql"], &report);
    let _ = wait_until_tracing(&mut tracer, postmaster);
    pg.as_postgres("pgbench", &pg.client(&["-c", "4", "-T", "3", "postgres"]));
    pg.sql("CHECKPOINT");
    sigint(tracer.id() as i32);
    let out = wait_output(tracer, Duration::from_mins(1), "fsync-trace -p postmaster");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = read_report(&report);

    // Processes that existed before the trace were adopted, with their roles.
    let procs = r.0["processes"].as_array().unwrap();
    let role_of = |role: &str| {
        procs
            .iter()
            .find(|p| p["role"].as_str().is_some_and(|r| r.starts_with(role)))
            .unwrap_or_else(|| panic!("no process with role {role}: {}", r.pretty()))
    };
    for role in [
        "postgres: checkpointer",
        "postgres: walwriter",
        "postgres: background writer",
    ] {
        let p = role_of(role);
        assert_eq!(p["comm"], "postgres");
        assert_eq!(p["parent"], postmaster);
    }
    assert!(Report::u64_at(role_of("postgres: checkpointer"), "syncs") > 0);
    let backends = procs
        .iter()
        .filter(|p| {
            p["role"]
                .as_str()
                .is_some_and(|r| r.starts_with("postgres: postgres postgres [local]"))
        })
        .count();
    assert!(backends >= 4, "pgbench's 4 clients: {}", r.pretty());

    // The checkpoint (by a process adopted at attach time) made the table durable.
    let acc = r.file(&accounts);
    assert!(Report::u64_at(acc, "fsyncs") >= 1, "{acc}");
    assert_eq!(acc["unsynced_bytes"], 0, "{acc}");
    let wal_syncs: u64 = r
        .files()
        .iter()
        .filter(|f| f["path"].as_str().unwrap().contains("/pg_wal/"))
        .map(|f| Report::u64_at(f, "fsyncs") + Report::u64_at(f, "fdatasyncs"))
        .sum();
    assert!(wal_syncs > 0, "WAL synced at commit: {}", r.pretty());

    // No false unsynced_write on relation files, suppressed or not.
    let base = format!("{}/base/", pg.data);
    let all_findings = r
        .findings_json()
        .iter()
        .chain(r.0["suppressed_findings"].as_array().unwrap());
    for f in all_findings {
        assert!(
            !(f["kind"] == "unsynced_write" && f["path"].as_str().unwrap().starts_with(&base)),
            "relation file reported unsynced after a checkpoint: {f}"
        );
    }
    // What the profile does not explain: only entries of relation directories (PostgreSQL
    // never fsyncs base/<db>) and the server log this test redirected.
    for f in r.findings_json() {
        let path = f["path"].as_str().unwrap();
        let explained = (f["kind"] == "unsynced_parent_dir" && path.starts_with(&base))
            || path == format!("{}/server.log", pg.sock);
        assert!(explained, "left after --profile postgresql: {f}");
    }
    // pg_subtrans is written and never synced by design: suppressed, with the profile's reason.
    let subtrans = r.0["suppressed_findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"].as_str().unwrap().contains("/pg_subtrans/"));
    if let Some(s) = subtrans {
        assert!(s["suppressed_by"]["rule"]
            .as_str()
            .unwrap()
            .starts_with("profile:postgresql#"));
    }
}

// ------------------------------------------------------------------------------------------------
// Redis
// ------------------------------------------------------------------------------------------------

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
    let mut redis: Child = Command::new("redis-server")
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--dir",
            &d,
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--logfile",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/setup.sh installs it)");
    let start = Instant::now();
    while run(
        Command::new("redis-cli").args(["-p", &port, "ping"]),
        "ping",
    )
    .stdout
    .trim()
        != "PONG"
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "redis never answered"
        );
        thread::sleep(Duration::from_millis(50));
    }
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

// ------------------------------------------------------------------------------------------------
// Signals under a real process group
// ------------------------------------------------------------------------------------------------

/// `fsync-trace -- sh -c '<script>'` in a new session (its own process group, as a shell's
/// foreground job is), with the report as JSON in `report`.
fn traced_job(report: &str, script: &str) -> Child {
    let mut cmd = Command::new(TRACER);
    // The command's own output goes nowhere: it outlives the tracer, and must not hold the
    // tracer's pipes open.
    let script = format!("exec >/dev/null 2>&1; {script}");
    cmd.args(["--json", "-o", report, "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().expect("fsync-trace")
}

fn wait_for_file(path: &str) {
    let start = Instant::now();
    while !Path::new(path).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{path} never appeared"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn second_ctrl_c_ends_the_trace_while_the_command_ignores_it() {
    let (_g, d) = tempdir();
    let report = format!("{d}/report.json");
    let ready = format!("{d}/ready");
    let tracer = traced_job(
        &report,
        &format!("trap '' INT; echo x > {d}/data; touch {ready}; sleep 60"),
    );
    wait_for_file(&ready);
    let pgid = tracer.id() as i32;
    // Ctrl-C at a terminal goes to the whole foreground group: tracer, shell, sleep.
    sigint(-pgid);
    thread::sleep(Duration::from_millis(300));
    sigint(-pgid);
    let out = wait_output(
        tracer,
        Duration::from_secs(20),
        "fsync-trace after two Ctrl-C",
    );
    assert_eq!(out.code, 128 + libc::SIGINT, "{}", out.stderr);
    let r = read_report(&report);
    let notes = r.0["notes"].to_string();
    assert!(notes.contains("still running"), "{notes}");
    r.assert_findings(&[
        fid("unsynced_write", &format!("{d}/data"), None),
        fid("unsynced_parent_dir", &d, Some("data")),
        fid("unsynced_parent_dir", &d, Some("ready")),
    ]);
    // The command kept its own fate (it ignores SIGINT): end it.
    // SAFETY: plain syscall.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn sigterm_always_ends_the_trace_with_a_report() {
    let (_g, d) = tempdir();
    let report = format!("{d}/report.json");
    let ready = format!("{d}/ready");
    let tracer = traced_job(
        &report,
        &format!("trap '' INT TERM; touch {ready}; sleep 60"),
    );
    wait_for_file(&ready);
    let pgid = tracer.id() as i32;
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::kill(pgid, libc::SIGTERM) }, 0);
    let out = wait_output(tracer, Duration::from_secs(20), "fsync-trace after SIGTERM");
    assert_eq!(out.code, 128 + libc::SIGTERM, "{}", out.stderr);
    let r = read_report(&report);
    assert!(r.0["notes"].to_string().contains("still running"));
    // SAFETY: plain syscall.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

// ------------------------------------------------------------------------------------------------
// The write-ahead-log contract (--wal) on real servers
// ------------------------------------------------------------------------------------------------

/// Starts redis-server with an append-only file synced per `appendfsync` in `dir`; waits until
/// it answers.
fn start_redis(dir: &str, port: &str, appendfsync: &str) -> Child {
    let redis = Command::new("redis-server")
        .args([
            "--port",
            port,
            "--bind",
            "127.0.0.1",
            "--dir",
            dir,
            "--appendonly",
            "yes",
            "--appendfsync",
            appendfsync,
            "--save",
            "",
            "--logfile",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/setup.sh installs it)");
    let start = Instant::now();
    while run(Command::new("redis-cli").args(["-p", port, "ping"]), "ping")
        .stdout
        .trim()
        != "PONG"
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "redis never answered"
        );
        thread::sleep(Duration::from_millis(50));
    }
    redis
}

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
