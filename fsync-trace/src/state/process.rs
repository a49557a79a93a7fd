//! What the state knows of the traced processes: names, roles, parents and workloads (from
//! records and /proc).
use super::{DurabilityState, ProcessInfo, Resolver};

impl<R: Resolver> DurabilityState<R> {
    /// Registers a process traced from the start (`-p PID` or the command).
    pub fn add_process(&mut self, pid: u32, comm: &str) {
        self.processes.entry(pid).or_insert_with(|| ProcessInfo {
            pid,
            comm: comm.to_string(),
            ..Default::default()
        });
    }

    /// What /proc says of process `pid` while it lives: its name, role and parent (each only
    /// if known).
    pub fn describe_process(
        &mut self,
        pid: u32,
        comm: Option<String>,
        role: Option<String>,
        parent: Option<u32>,
    ) {
        let p = self.processes.entry(pid).or_insert_with(|| ProcessInfo {
            pid,
            ..Default::default()
        });
        if let Some(c) = comm.filter(|c| !c.is_empty()) {
            p.comm = c;
        }
        if role.is_some() {
            p.role = role;
        }
        if p.parent.is_none() {
            p.parent = parent;
        }
    }

    /// Process `pid`'s cgroup, container and pod (from /proc while it lives).
    pub fn label_process(&mut self, pid: u32, workload: Option<crate::cgroup::Workload>) {
        if let (Some(p), Some(w)) = (self.processes.get_mut(&pid), workload) {
            p.workload = Some(w);
        }
    }

    /// True if a record of process `pid` (known) carries a cgroup id other than the one its
    /// labels came from (the caller then names the id and labels it again).
    pub fn cgroup_differs(&self, pid: u32, id: u64) -> bool {
        id != 0 && self.processes.get(&pid).is_some_and(|p| p.cgroup_id != id)
    }

    /// Labels process `pid` with `workload`, the cgroup of id `id` it was seen acting in. Only
    /// a named id is noted: an id not named yet (a cgroup made since the last walk of the
    /// tree) is tried again at the process's next record.
    pub fn label_process_in(&mut self, pid: u32, id: u64, workload: crate::cgroup::Workload) {
        if let Some(p) = self.processes.get_mut(&pid) {
            p.cgroup_id = id;
            p.workload = Some(workload);
        }
    }

    /// Process `pid`'s cgroup, container and pod, if known (metric labels); else its nearest
    /// known ancestor's (a child gone before /proc was read started in its parent's cgroup).
    pub fn workload_of(&self, pid: u32) -> Option<&crate::cgroup::Workload> {
        let mut p = self.processes.get(&pid)?;
        // Bounded: a parent chain read from /proc cannot loop, but pids are reused.
        for _ in 0..8 {
            if let Some(w) = &p.workload {
                return Some(w);
            }
            p = self.processes.get(&p.parent?)?;
        }
        None
    }

    /// True if the caller should read process `pid` from /proc: it is unknown, or (once) it is
    /// known with no role yet (a forked server process renames itself just after the fork, so
    /// its first description may predate its role). One map lookup: this runs per event.
    pub fn wants_description(&mut self, pid: u32) -> bool {
        match self.processes.get_mut(&pid) {
            None => true,
            Some(p) if p.role.is_none() && !p.role_rechecked => {
                p.role_rechecked = true;
                true
            }
            Some(_) => false,
        }
    }

    /// True if process `pid` is known.
    pub fn knows_process(&self, pid: u32) -> bool {
        self.processes.contains_key(&pid)
    }
}
