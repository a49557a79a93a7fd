//! Processes labelled with their cgroup v2 path, container id and pod UID: the tracer runs in a
//! cgroup subtree made here with the names a kubelet (systemd driver) and containerd give.
use std::os::unix::process::CommandExt;

use super::support::*;

const ID: &str = "4f1c9b2e8d7a6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615f4e3";
const POD: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";

/// Where cgroup v2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts).
fn cgroup2_root() -> String {
    std::fs::read_to_string("/proc/mounts")
        .expect("/proc/mounts")
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_string())
        })
        .expect("a cgroup2 mount")
}

/// Removes the subtree (leaf first) when the test ends.
struct Subtree(Vec<String>);
impl Drop for Subtree {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn processes_carry_their_cgroup_container_and_pod() {
    let root = cgroup2_root();
    let top = format!("fsync-trace-test-{}", std::process::id());
    let rel = [
        top.clone(),
        "kubepods.slice".into(),
        "kubepods-besteffort.slice".into(),
        format!("kubepods-besteffort-pod{}.slice", POD.replace('-', "_")),
        format!("cri-containerd-{ID}.scope"),
    ];
    let mut dirs = Vec::new();
    let mut path = root.clone();
    for seg in &rel {
        path = format!("{path}/{seg}");
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {path}: {e}"));
        dirs.push(path.clone());
    }
    let _cleanup = Subtree(dirs);
    let procs = format!("{path}/cgroup.procs");
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
