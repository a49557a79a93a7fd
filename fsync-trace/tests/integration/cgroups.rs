//! Processes labelled with their cgroup v2 path, container id and pod UID: the tracer runs in a
//! cgroup subtree made here with the names a kubelet (systemd driver) and containerd give.
use std::os::unix::process::CommandExt;

use super::support::*;

const ID: &str = "4f1c9b2e8d7a6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615f4e3";
const POD: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn processes_carry_their_cgroup_container_and_pod() {
    let top = format!("fsync-trace-test-{}", std::process::id());
    let rel = [
        top.clone(),
        "kubepods.slice".into(),
        "kubepods-besteffort.slice".into(),
        format!("kubepods-besteffort-pod{}.slice", POD.replace('-', "_")),
        format!("cri-containerd-{ID}.scope"),
    ];
    let tree = Subtree::new(&rel.join("/"));
    let procs = format!("{}/cgroup.procs", tree.dir(&rel.join("/")));
    let (_g, d) = tempdir();
    let args = os(&["--", workload(), "good", &d]);
    let (out, report) = trace_with(&args, |cmd| {
        // The tracer (and so the command it starts) joins the leaf cgroup before it runs.
        unsafe {
            cmd.pre_exec(move || std::fs::write(&procs, std::process::id().to_string()));
        }
    });
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = report.expect("report");
    r.assert_complete();
    let rows = r.0["processes"].as_array().expect("processes");
    assert_eq!(rows.len(), 1, "{}", r.pretty());
    let p = &rows[0];
    assert_eq!(p["cgroup"], format!("/{}", rel.join("/")), "{}", r.pretty());
    assert_eq!(p["container"], ID, "{}", r.pretty());
    assert_eq!(p["pod"], POD, "{}", r.pretty());
}

/// `--cgroup PATH` traces the processes in a cgroup (and their children): a shell waiting in a
/// cgroup subtree, then exec'ing a workload, is traced; the tracer itself runs outside it.
#[test]
#[ignore = "needs root: cargo xtask integration"]
fn cgroup_option_traces_the_processes_in_it() {
    let top_rel = format!("fsync-trace-test-cg-{}", std::process::id());
    let tree = Subtree::new(&format!("{top_rel}/app"));
    let (root, top, leaf) = (
        tree.root.clone(),
        tree.dir(&top_rel),
        tree.dir(&format!("{top_rel}/app")),
    );
    let (_g, d) = tempdir();
    // Joins the leaf, waits for the tracer to attach (loading takes a second or two on a busy
    // host), then becomes the workload (same pid).
    let script = format!(
        "echo $$ > {leaf}/cgroup.procs && sleep 5 && exec {} good {d}",
        workload()
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .expect("sh");
    std::thread::sleep(std::time::Duration::from_millis(500));
    // The top of the subtree: its sub-cgroups' processes are traced too.
    let rel = top.trim_start_matches(&root).to_string();
    let (out, report) = trace(&os(&["--cgroup", &rel]));
    let status = child.wait().expect("wait sh");
    assert!(status.success(), "workload: {status}");
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let r = report.expect("report");
    r.assert_complete();
    let f = format!("{d}/good.dat");
    r.assert_file(
        &f,
        "file",
        &[("writes", 3), ("bytes_written", 300), ("fsyncs", 1)],
    );
    // The shell (become the workload) and the `sleep` it forked (followed), both in the leaf.
    let rows = r.0["processes"].as_array().expect("processes");
    let comms: Vec<&str> = rows.iter().filter_map(|p| p["comm"].as_str()).collect();
    assert!(comms.contains(&"fsync-trace-wor"), "{}", r.pretty());
    assert_eq!(rows.len(), 2, "{}", r.pretty());
    for p in rows {
        assert_eq!(p["cgroup"], format!("{rel}/app"), "{}", r.pretty());
    }
    // An empty or unknown cgroup is a usage error, not an empty report.
    let (out, _) = trace(&os(&["--cgroup", "/no-such-cgroup-here"]));
    assert_eq!(out.code, 2, "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("--cgroup /no-such-cgroup-here"),
        "{}",
        out.stderr
    );
}
