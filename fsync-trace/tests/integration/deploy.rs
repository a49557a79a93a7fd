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
