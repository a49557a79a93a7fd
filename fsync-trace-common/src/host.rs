//! Host-side helpers (std) that the tracer and xtask's benchmarks both need.
extern crate std;

use std::{format, path::Path, process::Command, string::String};

/// Where tracefs is normally mounted; the syscall tracepoints are found through it.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Makes tracefs available if it is not (a fresh VM or container may not mount it): the
/// syscall tracepoints the tracer (and bpftrace) attach to are reached through it. `Ok(true)`
/// if this call mounted it.
pub fn ensure_tracefs() -> Result<bool, String> {
    let has_events = |dir: &str| Path::new(dir).join("events/syscalls").is_dir();
    if has_events(TRACEFS) || has_events("/sys/kernel/debug/tracing") {
        return Ok(false);
    }
    let status = Command::new("mount")
        .args(["-t", "tracefs", "nodev", TRACEFS])
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() && has_events(TRACEFS) => Ok(true),
        _ => Err(format!(
            "tracefs is not mounted and mounting it on {TRACEFS} failed"
        )),
    }
}
