//! PostgreSQL adopted with `-p <postmaster> -f` during a pgbench run.

use super::*;

/// A PostgreSQL cluster of Debian's server, run by the `postgres` user in a temp directory,
/// listening on a Unix socket there; stopped on drop.
pub(crate) struct Postgres {
    _dir: TempDir,
    data: String,
    sock: String,
    port: String,
    bin: String,
}

impl Postgres {
    pub(crate) fn start() -> Postgres {
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

    pub(crate) fn client(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = ["-h", &self.sock, "-p", &self.port]
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        v.extend(args.iter().map(std::string::ToString::to_string));
        v
    }

    pub(crate) fn as_postgres<S: AsRef<std::ffi::OsStr>>(&self, prog: &str, args: &[S]) -> String {
        must(
            Command::new("runuser")
                .args(["-u", "postgres", "--", prog])
                .args(args)
                .current_dir(&self.sock),
            prog,
        )
    }

    pub(crate) fn sql(&self, q: &str) -> String {
        self.as_postgres("psql", &self.client(&["-Atc", q, "postgres"]))
            .trim()
            .to_string()
    }

    pub(crate) fn postmaster(&self) -> u32 {
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
