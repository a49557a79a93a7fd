//! Bad input and exit status.
use std::{collections::BTreeSet, os::unix::fs::PermissionsExt, path::Path, process::Command};

use super::support::*;

// ------------------------------------------------------------------------------------------------
// Bad input and exit status
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn not_root_is_one_clear_sentence() {
    // The binary where user nobody can run it, and a directory nobody could write a marker to
    // (so the marker's absence means the command did not run, not that it failed).
    let (_g, d) = tempdir();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = format!("{d}/fsync-trace");
    std::fs::copy(TRACER, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = format!("{d}/marker");
    let out = run(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                &bin,
                "--",
                "sh",
                "-c",
            ])
            .arg(format!("touch {marker}")),
        "fsync-trace as nobody",
    );
    assert_eq!(out.code, 1, "stderr: {}", out.stderr);
    assert_eq!(
        out.stderr,
        "fsync-trace: fsync-trace must run as root (it loads eBPF programs into the kernel): try `sudo fsync-trace ...`\n"
    );
    assert!(out.stdout.is_empty());
    assert!(!Path::new(&marker).exists(), "the command must not run");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn nonexistent_pid_is_an_error() {
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = (1..pid_max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let (out, report) = trace(&os(&["-p", &pid.to_string()]));
    assert_eq!(out.code, 1, "stderr: {}", out.stderr);
    assert_eq!(out.stderr, format!("fsync-trace: no such process: {pid}\n"));
    assert!(report.is_none(), "no report for a failed start");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn command_not_found_exits_127() {
    let (out, report) = trace(&os(&["--", "fsync-trace-no-such-command"]));
    assert_eq!(out.code, 127, "stderr: {}", out.stderr);
    assert_eq!(
        out.stderr,
        "fsync-trace: fsync-trace-no-such-command: command not found\n"
    );
    assert!(report.is_none(), "no report for a command that never ran");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn unwritable_output_fails_before_tracing() {
    let (_g, d) = tempdir();
    let marker = format!("{d}/marker");
    for output in ["/proc/nope/x".to_string(), d.clone()] {
        let out = run(
            Command::new(TRACER)
                .args(["--json", "-o", &output, "--", "sh", "-c"])
                .arg(format!("touch {marker}")),
            "fsync-trace -o unwritable",
        );
        assert_eq!(out.code, 1, "-o {output}: stderr: {}", out.stderr);
        let prefix = format!("fsync-trace: cannot write the report to {output}: ");
        assert!(
            out.stderr.starts_with(&prefix) && out.stderr.lines().count() == 1,
            "-o {output}: {}",
            out.stderr
        );
        assert!(
            !Path::new(&marker).exists(),
            "-o {output}: the command must not have run"
        );
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn exit_status_and_fail_on() {
    // Found: 3, and the report is still written.
    let (_g, d) = tempdir();
    let (out, r) = trace(&os(&[
        "--fail-on",
        "unsynced_write",
        "--",
        workload(),
        "unsynced",
        &d,
    ]));
    assert_eq!(out.code, 3, "stderr: {}", out.stderr);
    let r = r.expect("report");
    r.assert_complete();
    r.assert_findings(&[fid("unsynced_write", &format!("{d}/unsynced.dat"), None)]);
    // Findings of other kinds only: the command's status.
    let (_g, d) = tempdir();
    let (out, r) = trace(&os(&[
        "--fail-on",
        "fsync_error,rename_before_fsync",
        "--",
        workload(),
        "unsynced",
        &d,
    ]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(
        r.expect("report").kinds(),
        BTreeSet::from(["unsynced_write".to_string()])
    );
    // No findings: the command's status.
    let (_g, d) = tempdir();
    let (out, _) = trace(&os(&["--fail-on", "any", "--", workload(), "good", &d]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    // The command's own non-zero status is passed through, with and without --fail-on.
    for extra in [&["--fail-on", "unsynced_write"][..], &[][..]] {
        let mut args = os(extra);
        args.extend(os(&["--", "sh", "-c", "exit 7"]));
        let (out, r) = trace(&args);
        assert_eq!(out.code, 7, "{extra:?}: stderr: {}", out.stderr);
        r.expect("report").assert_findings(&[]);
    }
}
