//! What /proc says about processes: identity, names, roles, children. Used while the processes
//! live (a process's role and name are gone with it); and what /sys says of block devices.
use std::collections::BTreeSet;

/// `task_struct.flags` bit of kernel threads (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

/// Fields of /proc/PID/stat after the command name (which may hold spaces and parentheses).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Thread-group id of `pid` (a thread id is accepted and mapped to its process).
pub fn tgid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Parent process id.
pub fn ppid(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// True for kernel threads (they have no user-space I/O to trace).
pub fn is_kernel_thread(pid: u32) -> bool {
    stat_fields(pid)
        .and_then(|f| f.get(6)?.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// The process's name (its main thread's `comm`).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The role a process gives itself in its command line where that says more than its name:
/// servers that rewrite their argv (setproctitle), as PostgreSQL does (`postgres: checkpointer`)
/// and Redis (`redis-server 127.0.0.1:6379`), have a first argument with spaces or a colon.
pub fn role(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    role_of_cmdline(&raw)
}

/// See [`role`]: the rewritten title in a raw NUL-separated command line.
pub fn role_of_cmdline(raw: &[u8]) -> Option<String> {
    let first = raw.split(|&b| b == 0).next()?;
    let title = String::from_utf8_lossy(first).trim().to_string();
    if title.is_empty() || title.starts_with('/') || !(title.contains(' ') || title.contains(':')) {
        return None;
    }
    let mut t: String = title.chars().take(120).collect();
    if t.len() < title.len() {
        t.push('…');
    }
    Some(t)
}

/// Alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    stat_fields(pid)
        .and_then(|f| f.first().cloned())
        .is_some_and(|state| state != "Z")
}

/// Child processes of process `pid` (of any of its threads).
pub fn children(pid: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let tasks = format!("/proc/{pid}/task");
    let Ok(dir) = std::fs::read_dir(&tasks) else {
        return out;
    };
    let mut have_children_files = false;
    for t in dir.flatten() {
        let path = t.path().join("children");
        if let Ok(s) = std::fs::read_to_string(&path) {
            have_children_files = true;
            out.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    if !have_children_files {
        // Kernels without CONFIG_PROC_CHILDREN: every process's parent, from its stat.
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let Some(child) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                if ppid(child) == Some(pid) {
                    out.insert(child);
                }
            }
        }
    }
    out
}

/// Name and write cache mode of block device `dev` (kernel `dev_t`) from sysfs; a partition's
/// cache is its disk's. (None, None) for a device that is not a block device.
pub fn block_device(dev: u32) -> (Option<String>, Option<crate::state::device::WriteCache>) {
    let sys = format!(
        "/sys/dev/block/{}:{}",
        fsync_trace_common::kdev_major(dev),
        fsync_trace_common::kdev_minor(dev)
    );
    let name = std::fs::read_link(&sys)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let cache = ["queue/write_cache", "../queue/write_cache"]
        .iter()
        .find_map(|q| std::fs::read_to_string(format!("{sys}/{q}")).ok())
        .and_then(|s| crate::state::device::WriteCache::parse(&s));
    (name, cache)
}

/// The whole disk of block device `dev` (itself unless it is a partition), from sysfs.
pub fn whole_disk(dev: u32) -> u32 {
    let sys = format!(
        "/sys/dev/block/{}:{}",
        fsync_trace_common::kdev_major(dev),
        fsync_trace_common::kdev_minor(dev)
    );
    if !std::path::Path::new(&format!("{sys}/partition")).exists() {
        return dev;
    }
    std::fs::read_to_string(format!("{sys}/../dev"))
        .ok()
        .and_then(|s| {
            let (maj, min) = s.trim().split_once(':')?;
            Some((maj.parse::<u32>().ok()? << 20) | min.parse::<u32>().ok()?)
        })
        .unwrap_or(dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_rewritten_titles_only() {
        assert_eq!(
            role_of_cmdline(b"postgres: checkpointer \0\0\0"),
            Some("postgres: checkpointer".into())
        );
        assert_eq!(
            role_of_cmdline(b"redis-server 127.0.0.1:6379\0"),
            Some("redis-server 127.0.0.1:6379".into())
        );
        assert_eq!(role_of_cmdline(b"/usr/bin/python3\0-c\0x\0"), None);
        assert_eq!(role_of_cmdline(b"git\0commit\0"), None);
        assert_eq!(role_of_cmdline(b""), None);
    }

    #[test]
    fn this_process_is_alive_and_has_a_parent() {
        let me = std::process::id();
        assert!(alive(me));
        assert_eq!(tgid(me), Some(me));
        assert!(ppid(me).is_some_and(|p| p > 0));
        assert!(!is_kernel_thread(me));
        assert!(!comm(me).is_empty());
    }

    #[test]
    fn children_of_this_process_are_found() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let kids = children(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(kids.contains(&child.id()), "{kids:?}");
    }
}
