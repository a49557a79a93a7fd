//! Grouped findings (a 100k-entry directory storm) and suppression rules and profiles.

use super::*;

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
