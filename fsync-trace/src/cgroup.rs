//! Which workload a process belongs to, from its cgroup v2 path (`/proc/<pid>/cgroup`, the
//! `0::` line): the path itself, and where the path shows them, the container id (the 64-hex
//! id container runtimes name their scopes after) and the Kubernetes pod UID (kubelet's
//! `pod<uid>` cgroup, with `_` for `-` under the systemd driver). Pure parsing, plus one read
//! of /proc per process, and [`Ids`]: the cgroup ids records carry, named by a walk of the
//! cgroup v2 tree.

/// A process's cgroup and what its path says about the container and pod it runs in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// The cgroup v2 path, e.g. `/kubepods.slice/.../cri-containerd-<id>.scope`.
    pub cgroup: String,
    /// The container id (64 lowercase hex digits), if the path names one.
    pub container: Option<String>,
    /// The Kubernetes pod UID (`8-4-4-4-12` hex), if the path names one.
    pub pod: Option<String>,
}

/// The cgroup v2 path in the text of `/proc/<pid>/cgroup` (its `0::` line), if any.
pub fn v2_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// The workload a cgroup path shows. The innermost container id and pod UID win.
pub fn workload(path: &str) -> Workload {
    let mut w = Workload {
        cgroup: path.to_string(),
        ..Workload::default()
    };
    for seg in path.split('/') {
        if let Some(id) = container_id(seg) {
            w.container = Some(id.to_string());
        }
        if let Some(uid) = pod_uid(seg) {
            w.pod = Some(uid);
        }
    }
    w
}

/// A path segment naming a container: the id itself (cgroupfs driver: `/docker/<id>`,
/// `/kubepods/besteffort/pod<uid>/<id>`) or a scope named after it (`docker-<id>.scope`,
/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`).
fn container_id(seg: &str) -> Option<&str> {
    let s = seg.strip_suffix(".scope").unwrap_or(seg);
    let id = s.rsplit(['-', ':']).next().unwrap_or(s);
    (id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(id)
}

/// A path segment naming a pod: `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid>.slice`
/// (systemd, `-` in the UID written `_`).
fn pod_uid(seg: &str) -> Option<String> {
    let s = seg.strip_suffix(".slice").unwrap_or(seg);
    let at = s.rfind("pod")?;
    if at > 0 && !s[..at].ends_with('-') {
        return None;
    }
    let uid = s[at + 3..].replace('_', "-");
    let groups: Vec<&str> = uid.split('-').collect();
    let shape = [8, 4, 4, 4, 12];
    let ok = groups.len() == shape.len()
        && groups
            .iter()
            .zip(shape)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then_some(uid)
}

/// The workload of process `pid` (None if it is gone, or has no cgroup v2 path).
pub fn of_pid(pid: u32) -> Option<Workload> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    v2_path(&text).map(workload)
}

/// Cgroup v2 ids, as the kernel puts them in every record (`RecordHeader::cgroup_id`), to the
/// workloads their paths show. A cgroup's id is the inode number of its directory under the
/// cgroup2 mount, so a walk of that tree names every id; it is walked again for an id not seen
/// yet (a cgroup made since), at most once per [`Ids::MIN_WALK_GAP`]. This is how a process
/// gone before `/proc/<pid>/cgroup` could be read, or one that moved itself into its cgroup
/// after the fork (container runtimes do), is labeled with the cgroup it acted in.
#[derive(Debug)]
pub struct Ids {
    root: Option<std::path::PathBuf>,
    known: std::collections::HashMap<u64, Workload>,
    last_walk: Option<std::time::Instant>,
}

impl Ids {
    /// The least time between two walks of the tree (a removed cgroup's id is never found:
    /// its records must not walk the tree each).
    pub const MIN_WALK_GAP: std::time::Duration = std::time::Duration::from_millis(200);
    /// A walk stops past this many cgroups (a bound on memory; no host has that many).
    const MAX_CGROUPS: usize = 200_000;

    /// Ids of this host's cgroup v2 tree (none known if cgroup v2 is not mounted).
    pub fn new() -> Ids {
        Ids::under(v2_mount().map(std::path::PathBuf::from))
    }

    /// Ids of the tree at `root` (tests use any directory tree).
    pub fn under(root: Option<std::path::PathBuf>) -> Ids {
        Ids {
            root,
            known: std::collections::HashMap::new(),
            last_walk: None,
        }
    }

    /// True if ids can be named (a cgroup v2 tree is mounted): every record's cgroup id then
    /// labels its process, and nothing needs `/proc/<pid>/cgroup` read again.
    pub fn names_ids(&self) -> bool {
        self.root.is_some()
    }

    /// The workload of cgroup `id`, if its directory exists (or existed at the last walk).
    pub fn workload(&mut self, id: u64) -> Option<&Workload> {
        if id == 0 {
            return None;
        }
        if !self.known.contains_key(&id)
            && self
                .last_walk
                .is_none_or(|t| t.elapsed() >= Self::MIN_WALK_GAP)
        {
            self.walk();
        }
        self.known.get(&id)
    }

    /// Names every cgroup under the root afresh (so removed ones are forgotten).
    fn walk(&mut self) {
        use std::os::unix::fs::MetadataExt;
        self.last_walk = Some(std::time::Instant::now());
        let Some(root) = &self.root else {
            return;
        };
        self.known.clear();
        let mut todo = vec![(root.clone(), String::from("/"))];
        while let Some((dir, path)) = todo.pop() {
            if self.known.len() >= Self::MAX_CGROUPS {
                log::debug!("cgroup walk stopped at {} cgroups", self.known.len());
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            self.known.insert(meta.ino(), workload(&path));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let child = if path == "/" {
                        format!("/{name}")
                    } else {
                        format!("{path}/{name}")
                    };
                    todo.push((e.path(), child));
                }
            }
        }
    }
}

impl Default for Ids {
    fn default() -> Self {
        Ids::new()
    }
}

/// Where cgroup v2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts).
fn v2_mount() -> Option<String> {
    std::fs::read_to_string("/proc/mounts")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_string())
        })
}

/// The processes (tgids) in cgroup `path` and every cgroup below it, for `--cgroup`. `path` is
/// a cgroup directory (`/sys/fs/cgroup/...`) or a cgroup v2 path as `/proc/<pid>/cgroup` shows
/// it (`/kubepods.slice/...`). A clear one-sentence error if it is neither, or holds no process.
pub fn processes(path: &str) -> Result<Vec<u32>, String> {
    let is_cgroup = |d: &std::path::Path| d.join("cgroup.procs").is_file();
    let dir = std::path::PathBuf::from(path);
    let dir = if is_cgroup(&dir) {
        dir
    } else {
        let root = v2_mount().ok_or("no cgroup v2 filesystem is mounted here")?;
        let joined = std::path::Path::new(&root).join(path.trim_start_matches('/'));
        if !is_cgroup(&joined) {
            return Err(format!(
                "--cgroup {path}: neither a cgroup directory nor a cgroup v2 path under {root}"
            ));
        }
        joined
    };
    let mut pids = std::collections::BTreeSet::new();
    let mut todo = vec![dir.clone()];
    while let Some(d) = todo.pop() {
        let procs = std::fs::read_to_string(d.join("cgroup.procs"))
            .map_err(|e| format!("cannot read {}/cgroup.procs: {e}", d.display()))?;
        pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        if let Ok(entries) = std::fs::read_dir(&d) {
            todo.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir() && is_cgroup(p)),
            );
        }
    }
    // The tracer itself may have been started inside the cgroup: it never traces itself.
    pids.remove(&std::process::id());
    if pids.is_empty() {
        return Err(format!(
            "--cgroup {path}: no process in {} or below it",
            dir.display()
        ));
    }
    Ok(pids.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c9b2e8d7a6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615f4e3";

    #[test]
    fn the_v2_line_is_the_path() {
        let text = "12:memory:/x\n0::/system.slice/redis.service\n";
        assert_eq!(v2_path(text), Some("/system.slice/redis.service"));
        assert_eq!(v2_path("4:memory:/x\n"), None);
        let w = workload("/system.slice/redis.service");
        assert_eq!((w.container, w.pod), (None, None));
        assert_eq!(w.cgroup, "/system.slice/redis.service");
    }

    #[test]
    fn kubernetes_systemd_driver_paths_name_the_pod_and_container() {
        let p = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/cri-containerd-{ID}.scope"
        );
        let w = workload(&p);
        assert_eq!(w.container.as_deref(), Some(ID));
        assert_eq!(
            w.pod.as_deref(),
            Some("0a1b2c3d-4e5f-6789-abcd-ef0123456789")
        );
    }

    #[test]
    fn cgroupfs_driver_and_plain_docker_paths() {
        let w = workload(&format!(
            "/kubepods/besteffort/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/{ID}"
        ));
        assert_eq!(w.container.as_deref(), Some(ID));
        assert_eq!(
            w.pod.as_deref(),
            Some("0a1b2c3d-4e5f-6789-abcd-ef0123456789")
        );
        for p in [
            format!("/docker/{ID}"),
            format!("/system.slice/docker-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/crio-{ID}.scope"),
        ] {
            let w = workload(&p);
            assert_eq!(w.container.as_deref(), Some(ID), "{p}");
            assert_eq!(w.pod, None, "{p}");
        }
    }

    #[test]
    fn look_alikes_are_not_ids() {
        // Too short, uppercase, a "pod" that is part of a word, a UID of the wrong shape.
        for p in [
            "/docker/4f1c9b2e",
            &format!("/docker/{}", ID.to_uppercase()),
            "/user.slice/ipod0a1b2c3d-4e5f-6789-abcd-ef0123456789",
            "/kubepods/pod0a1b2c3d-4e5f",
        ] {
            let w = workload(p);
            assert_eq!((w.container, w.pod), (None, None), "{p}");
        }
    }

    #[test]
    fn bad_cgroup_paths_are_one_clear_error() {
        let e = processes("/no/such/cgroup-xyz").unwrap_err();
        assert!(e.contains("--cgroup /no/such/cgroup-xyz"), "{e}");
    }

    #[test]
    fn ids_are_directory_inodes_and_new_ones_are_found_by_a_new_walk() {
        use std::os::unix::fs::MetadataExt;
        let root = std::env::temp_dir().join(format!("fsync-trace-cgids-{}", std::process::id()));
        let pod = "kubepods.slice/kubepods-pod0f2a3b4c_1d2e_4f50_8a9b_0c1d2e3f4a5b.slice";
        let id = "a".repeat(64);
        let leaf = root.join(pod).join(format!("cri-containerd-{id}.scope"));
        std::fs::create_dir_all(&leaf).unwrap();
        let ino = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino();
        let mut ids = Ids::under(Some(root.clone()));
        assert_eq!(ids.workload(ino(&root)).unwrap().cgroup, "/");
        let w = ids.workload(ino(&leaf)).unwrap().clone();
        assert_eq!(
            w.cgroup,
            format!("/{pod}/cri-containerd-{id}.scope"),
            "the path as /proc/<pid>/cgroup shows it"
        );
        assert_eq!(w.container.as_deref(), Some(id.as_str()));
        assert_eq!(
            w.pod.as_deref(),
            Some("0f2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(ids.workload(0), None, "0: no id");
        // A cgroup made after the walk: found once the gap has passed, not before.
        let late = root.join("late");
        std::fs::create_dir(&late).unwrap();
        ids.last_walk = Some(std::time::Instant::now());
        assert_eq!(ids.workload(ino(&late)), None, "no walk within the gap");
        ids.last_walk = ids.last_walk.and_then(|t| t.checked_sub(Ids::MIN_WALK_GAP));
        assert_eq!(ids.workload(ino(&late)).unwrap().cgroup, "/late");
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            Ids::under(None).workload(1),
            None,
            "no cgroup v2 mount: no ids"
        );
    }

    #[test]
    fn this_process_has_a_cgroup_v2_path() {
        let w = of_pid(std::process::id()).expect("cgroup v2 line in /proc/self/cgroup");
        assert!(w.cgroup.starts_with('/'), "{w:?}");
    }
}
