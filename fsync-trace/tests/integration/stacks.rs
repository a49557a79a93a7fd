//! Call sites: every finding carries the user stack of the act that made it, symbolized; the
//! text report shows the first frame in the program's own code, `--sarif` places each result
//! there. Programs built for the test (tests/fixtures/mistakes.c and mistakes.rs) make each
//! mistake at a line marked `MISTAKE: <what>`.
use std::{path::Path, process::Command};

use super::{failures::FailFs, support::*};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The line of `file` holding `MISTAKE: <what>`.
fn marker_line(file: &str, what: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap();
    let mark = format!("MISTAKE: {what} ");
    let mark_end = format!("MISTAKE: {what}");
    text.lines()
        .position(|l| l.contains(&mark) || l.trim_end().ends_with(&mark_end))
        .map(|i| i as u64 + 1)
        .unwrap_or_else(|| panic!("no marker {what:?} in {file}"))
}

/// gcc `flags` mistakes.c into `dir`; the binary's path.
fn build_c(dir: &str, name: &str, flags: &[&str]) -> String {
    let bin = format!("{dir}/{name}");
    let cc = run(
        Command::new("gcc")
            .args(flags)
            .args(["-o", &bin])
            .arg(fixture("mistakes.c")),
        "gcc mistakes.c",
    );
    assert_eq!(
        cc.code, 0,
        "building mistakes.c (gcc installed?): {}",
        cc.stderr
    );
    bin
}

/// The first frame of `finding`'s stack in `file` (the call site): its function and line.
fn site_in<'a>(finding: &'a Value, file: &str) -> (&'a str, u64) {
    let stack = finding["stack"]
        .as_array()
        .unwrap_or_else(|| panic!("finding without a stack: {finding}"));
    let f = stack
        .iter()
        .find(|f| f["file"].as_str() == Some(file))
        .unwrap_or_else(|| panic!("no frame in {file}: {finding:#}"));
    (
        f["function"].as_str().unwrap_or(""),
        f["line"].as_u64().unwrap_or(0),
    )
}

/// Traces `args` with `--json` and `--sarif` (relative to `root`); (report, SARIF log).
fn trace_with_sarif(dir: &str, root: &str, args: &[&str]) -> (Report, Value) {
    let sarif = format!("{dir}/findings.sarif");
    let mut all = os(&["--sarif", &sarif, "--source-root", root, "--"]);
    all.extend(os(args));
    let (out, report) = trace(&all);
    assert_eq!(out.code, 0, "fsync-trace: {}", out.stderr);
    let report = report.expect("a JSON report");
    report.assert_complete();
    let log: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    validate_sarif(&sarif);
    (report, log)
}

/// Microsoft's SARIF validator (`@microsoft/sarif-multitool`, installed by scripts/setup.sh)
/// finds nothing to report in `path`.
fn validate_sarif(path: &str) {
    let tool = std::env::var("SARIF_MULTITOOL")
        .unwrap_or_else(|_| "/opt/fsync-trace-test/npm/node_modules/.bin/sarif-multitool".into());
    assert!(
        Path::new(&tool).exists(),
        "{tool} missing: run scripts/setup.sh (npm @microsoft/sarif-multitool)"
    );
    let out_file = format!("{path}.validation.sarif");
    let out = run(
        Command::new(&tool).args(["validate", path, "-o", &out_file]),
        "sarif-multitool validate",
    );
    assert_eq!(out.code, 0, "sarif-multitool: {}{}", out.stdout, out.stderr);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    let results: Vec<&Value> = v["runs"][0]["results"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    // SARIF2005 asks for the tool's web page: set once the package names a repository.
    let home_known = !env!("CARGO_PKG_REPOSITORY").is_empty();
    let problems: Vec<&&Value> = results
        .iter()
        .filter(|r| home_known || r["ruleId"] != "SARIF2005")
        .collect();
    assert!(problems.is_empty(), "SARIF validator: {problems:#?}");
}

/// The SARIF result of `rule` located at `line`: its URI (relative to the source root).
fn sarif_result_at<'a>(log: &'a Value, rule: &str, line: u64) -> &'a Value {
    let results = log["runs"][0]["results"].as_array().unwrap();
    results
        .iter()
        .find(|r| {
            r["ruleId"] == rule
                && r["locations"][0]["physicalLocation"]["region"]["startLine"].as_u64()
                    == Some(line)
        })
        .unwrap_or_else(|| panic!("no {rule} result at line {line}: {log:#}"))
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn c_program_findings_carry_their_call_site() {
    let (_g, dir) = tempdir();
    let bin = build_c(&dir, "mistakes", &["-g", "-O0", "-fno-omit-frame-pointer"]);
    let work = format!("{dir}/data");
    std::fs::create_dir(&work).unwrap();
    let src = fixture("mistakes.c");
    let root = fixture("");
    let (r, log) = trace_with_sarif(&dir, root.trim_end_matches('/'), &[&bin, "local", &work]);
    let (create, write, rename) = (
        marker_line(&src, "create"),
        marker_line(&src, "write"),
        marker_line(&src, "rename"),
    );
    let record = format!("{work}/record");
    let config = format!("{work}/config");
    assert_eq!(
        site_in(r.finding("unsynced_write", &record), &src),
        ("put_record", write)
    );
    assert_eq!(
        site_in(r.finding("rename_before_fsync", &config), &src),
        ("replace_file", rename)
    );
    let entries: Vec<&Value> = r
        .findings_json()
        .iter()
        .filter(|f| f["kind"] == "unsynced_parent_dir")
        .collect();
    let entry = |name: &str| {
        entries
            .iter()
            .find(|f| f["entry"] == name)
            .unwrap_or_else(|| panic!("no unsynced_parent_dir for {name}: {}", r.pretty()))
    };
    assert_eq!(site_in(entry("record"), &src), ("put_record", create));
    assert_eq!(site_in(entry("config"), &src), ("replace_file", rename));
    // Innermost first: the C library's wrapper, then the program's function.
    let stack = r.finding("unsynced_write", &record)["stack"]
        .as_array()
        .unwrap();
    assert!(
        stack[0]["module"].as_str().unwrap_or("").contains("libc"),
        "{stack:#?}"
    );
    // SARIF: a result per finding, at the call site, relative to the source root.
    let w = sarif_result_at(&log, "unsynced_write", write);
    let loc = &w["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(loc["uri"], "mistakes.c");
    assert_eq!(loc["uriBaseId"], "SRCROOT");
    assert!(w["message"]["text"].as_str().unwrap().contains(&record));
    assert!(w["partialFingerprints"]["fsyncTrace/v1"].is_string());
    sarif_result_at(&log, "rename_before_fsync", rename);
    sarif_result_at(&log, "unsynced_parent_dir", create);
    // The text report: the call site under each finding, and the call sites grouped.
    std::fs::remove_dir_all(&work).unwrap();
    std::fs::create_dir(&work).unwrap();
    let text = run(
        Command::new(TRACER)
            .current_dir(fixture(""))
            .args(["--", &bin, "local", &work]),
        "fsync-trace (text)",
    );
    assert_eq!(text.code, 0, "{}", text.stderr);
    for (line, func) in [
        (write, "put_record"),
        (create, "put_record"),
        (rename, "replace_file"),
    ] {
        let want = format!("at mistakes.c:{line} in {func}()");
        assert!(
            text.stdout.contains(&want),
            "no {want:?} in:\n{}",
            text.stdout
        );
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn failing_fsync_and_its_retry_have_their_call_sites() {
    let fs = FailFs::mount();
    let (_g, dir) = tempdir();
    let bin = build_c(&dir, "mistakes", &["-g", "-O0", "-fno-omit-frame-pointer"]);
    let src = fixture("mistakes.c");
    let (r, log) = trace_with_sarif(&dir, "/", &[&bin, "failing", &fs.mnt]);
    let f = format!("{}/fail-once.dat", fs.mnt);
    let (fsync, retry) = (marker_line(&src, "fsync"), marker_line(&src, "retry"));
    assert_eq!(
        site_in(r.finding("fsync_error", &f), &src),
        ("sync_twice", fsync)
    );
    assert_eq!(
        site_in(r.finding("fsync_retry_after_error", &f), &src),
        ("sync_twice", retry)
    );
    sarif_result_at(&log, "fsync_error", fsync);
    sarif_result_at(&log, "fsync_retry_after_error", retry);
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn rust_program_built_with_frame_pointers() {
    let (_g, dir) = tempdir();
    let src = fixture("mistakes.rs");
    let bin = format!("{dir}/mistakes-rs");
    let rc = run(
        Command::new("rustc")
            .args(["-g", "-C", "force-frame-pointers=yes", "-o", &bin])
            .arg(&src),
        "rustc mistakes.rs",
    );
    assert_eq!(rc.code, 0, "{}", rc.stderr);
    let work = format!("{dir}/data");
    std::fs::create_dir(&work).unwrap();
    let (out, r) = trace(&os(&["--", &bin, &work]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = r.unwrap();
    let record = format!("{work}/record");
    let (func, line) = site_in(r.finding("unsynced_write", &record), &src);
    assert_eq!(
        (func, line),
        ("mistakes::put_record", marker_line(&src, "write"))
    );
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn stripped_binary_shows_module_and_offset() {
    let (_g, dir) = tempdir();
    let bin = build_c(
        &dir,
        "mistakes-stripped",
        &["-O0", "-fno-omit-frame-pointer", "-s"],
    );
    let work = format!("{dir}/data");
    std::fs::create_dir(&work).unwrap();
    let (r, _log) = trace_with_sarif(&dir, &dir, &[&bin, "local", &work]);
    let record = format!("{work}/record");
    let stack = r.finding("unsynced_write", &record)["stack"]
        .as_array()
        .unwrap()
        .clone();
    // No symbols and no lines in the program itself: its frames are module+offset.
    let own: Vec<&Value> = stack
        .iter()
        .filter(|f| f["module"] == bin.as_str())
        .collect();
    assert!(!own.is_empty(), "no frame in {bin}: {stack:#?}");
    for f in own {
        assert!(f["file"].is_null() && f["line"].is_null(), "{f}");
        assert!(f["offset"].as_str().unwrap().starts_with("0x"), "{f}");
    }
    let text = run(
        Command::new(TRACER).args(["--", &bin, "local", &work]),
        "fsync-trace (text)",
    );
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains(&format!("at {bin}+0x")),
        "no module+offset call site in:\n{}",
        text.stdout
    );
}

/// Every first dirtying takes the user stack, but a process sends the build ids of one stack
/// only once (`STACKS_SENT`): its repeats come without them, and the reader takes those of the
/// first. 24 short-lived children, many gone before the reader places their stacks, each
/// append from one call site 8 times: every one's unsynced last append has that call site.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn repeated_stacks_of_short_lived_processes_keep_their_call_site() {
    let (_g, dir) = tempdir();
    let bin = build_c(&dir, "mistakes", &["-g", "-O0", "-fno-omit-frame-pointer"]);
    let src = fixture("mistakes.c");
    let (out, r) = trace(&os(&["--", &bin, "repeat", &dir]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = r.unwrap();
    let append = marker_line(&src, "append");
    for i in 1..=24 {
        let log = format!("{dir}/d{i}/log");
        r.assert_file(&log, "file", &[("writes", 8), ("fdatasyncs", 7)]);
        assert_eq!(
            site_in(r.finding("unsynced_write", &log), &src),
            ("append_records", append),
            "{log}: {}",
            r.0["stacks"]
        );
    }
    let stacks = &r.0["stacks"];
    // Each child's 8 dirtyings take a stack; none is lost or left unplaced.
    assert!(Report::u64_at(stacks, "taken") >= 24 * 8, "{stacks}");
    assert_eq!(stacks["missing"], 0, "{stacks}");
    assert_eq!(stacks["unplaced_frames"], 0, "{stacks}");
}

/// A program whose `rbp` starts no frame chain at the syscall (code built without frame
/// pointers) gets stacks without the kernel's frame-pointer walk once four walks in a row gave
/// the first frame alone: 12 appends (each a first dirtying) from `write` called with rbp = 0
/// take 4 walks, then skip 8, and the unsynced last append (a skipped walk) keeps its call site,
/// found in the words at the stack pointer as before. The create (rbp a real frame pointer in
/// this -O0 build) is walked and counts nothing.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn stacks_without_a_frame_chain_skip_the_walk_and_keep_their_call_site() {
    let (_g, dir) = tempdir();
    let bin = build_c(&dir, "mistakes", &["-g", "-O0", "-fno-omit-frame-pointer"]);
    let src = fixture("mistakes.c");
    let work = format!("{dir}/lone");
    std::fs::create_dir(&work).unwrap();
    let (out, r) = trace(&os(&["--", &bin, "lone", &work]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = r.unwrap();
    let log = format!("{work}/log");
    r.assert_file(&log, "file", &[("writes", 12), ("fdatasyncs", 11)]);
    let asm_line = marker_line(&src, "lone") + 1;
    assert_eq!(
        site_in(r.finding("unsynced_write", &log), &src),
        ("write_without_frame_pointer", asm_line),
        "{}",
        r.0["stacks"]
    );
    let stacks = &r.0["stacks"];
    assert_eq!(stacks["taken"], 13, "{stacks}");
    assert_eq!(stacks["walks_skipped"], 8, "{stacks}");
    assert_eq!(stacks["missing"], 0, "{stacks}");
}
