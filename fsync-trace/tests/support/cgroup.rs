//! cgroup v2 subtrees made for a test (root): created below the cgroup2 mount, removed
//! deepest first when the test ends. Shared by the integration and metrics suites.
use std::path::Path;

/// Where cgroup v2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts).
pub fn cgroup2_root() -> String {
    std::fs::read_to_string("/proc/mounts")
        .expect("/proc/mounts")
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_string())
        })
        .expect("a cgroup2 mount")
}

/// A cgroup subtree removed (deepest first) when the test ends.
pub struct Subtree {
    /// The cgroup2 mount.
    pub root: String,
    made: Vec<String>,
}

impl Subtree {
    /// The subtree `name` (a path relative to the cgroup2 mount), created.
    pub fn new(name: &str) -> Subtree {
        Subtree {
            root: cgroup2_root(),
            made: Vec::new(),
        }
        .with(name)
    }

    /// Also creates `rel` (relative to the cgroup2 mount) and every missing parent.
    pub fn with(mut self, rel: &str) -> Subtree {
        let mut path = self.root.clone();
        for seg in rel.split('/') {
            path = format!("{path}/{seg}");
            if !Path::new(&path).exists() {
                std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {path}: {e}"));
                self.made.push(path.clone());
            }
        }
        self
    }

    /// The absolute path of `rel`.
    pub fn dir(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root)
    }
}

impl Drop for Subtree {
    fn drop(&mut self) {
        for d in self.made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}
