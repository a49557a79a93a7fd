//! The DaemonSet in deploy/kubernetes validates against the Kubernetes API schemas
//! (`kubernetes-validate --strict`, installed by scripts/setup.sh).
use std::process::Command;

use super::support::*;

fn validate(path: &str) -> (bool, String) {
    let out = run(
        Command::new("kubernetes-validate").args(["--strict", path]),
        "kubernetes-validate",
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    (out.code == 0 && !text.contains("ERROR"), text)
}

#[test]
#[ignore = "needs kubernetes-validate: scripts/setup.sh"]
fn daemonset_manifest_is_valid_kubernetes() {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kubernetes/daemonset.yaml"
    );
    let (ok, text) = validate(manifest);
    assert!(ok, "{text}");
    assert!(text.contains("daemonset/fsync-trace"), "{text}");
    let yaml = std::fs::read_to_string(manifest).expect("manifest");
    assert!(
        yaml.contains("- --metrics-labels=container,pod\n"),
        "the DaemonSet labels its metrics by container and pod"
    );
    // The container's args are ones this binary accepts (clap checks every value before
    // --help answers).
    let args: Vec<&str> = yaml
        .split_once("args:\n")
        .expect("args")
        .1
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("env:"))
        .filter_map(|l| l.strip_prefix("- "))
        .collect();
    assert!(args.contains(&"--metrics-labels=container,pod"), "{args:?}");
    let out = run(
        Command::new(TRACER).args(&args).arg("--help"),
        "fsync-trace with the DaemonSet's args",
    );
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    let bad_args = args.iter().map(|a| {
        if a.starts_with("--metrics-labels=") {
            "--metrics-labels=container,node"
        } else {
            a
        }
    });
    let bad = run(
        Command::new(TRACER).args(bad_args).arg("--help"),
        "fsync-trace with a bad label",
    );
    assert_eq!(bad.code, 2, "a bad label is a usage error: {}", bad.stderr);
    assert!(
        bad.stderr.contains("unknown metric label \"node\""),
        "{}",
        bad.stderr
    );
    // The validator does reject a field the API does not have.
    let (_g, d) = tempdir();
    let bad = format!("{d}/bad.yaml");
    let yaml = std::fs::read_to_string(manifest)
        .expect("manifest")
        .replace("hostPID: true", "hostPID: true\n      hostPIDs: true");
    std::fs::write(&bad, yaml).expect("write");
    let (ok, text) = validate(&bad);
    assert!(!ok, "an unknown field passed: {text}");
}
