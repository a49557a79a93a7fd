//! The command run under trace (forked, stopped before exec until tracing is in place, reaped
//! on its own thread), the stop signals, and the memlock limit BPF maps need on old kernels.
use std::{
    ffi::{CString, OsString},
    os::{fd::OwnedFd, unix::ffi::OsStrExt},
};

use nix::{
    errno::Errno,
    fcntl::OFlag,
    sys::{
        resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY},
        signal::{kill, pthread_sigmask, raise, SigSet, SigmaskHow, Signal},
        wait::{waitpid, WaitPidFlag, WaitStatus},
    },
    unistd::{execvp, fork, pipe2, ForkResult, Pid},
};

use crate::error::RunError;

/// Waits for process `pid` to end: its exit status, or 128 + the signal that killed it.
pub(super) fn wait_exit_status(pid: i32) -> i32 {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            // Stopped / continued: it has not ended yet.
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return 1,
        }
    }
}

/// Kernels before 5.11 charge BPF maps (the 4 MiB ring buffer among them) to RLIMIT_MEMLOCK;
/// later ones use memory cgroups and ignore it. Raising the hard limit needs CAP_SYS_RESOURCE
/// (see deploy/README.md); without it loading fails on those kernels only. Returns the limit to
/// restore once the maps are created.
pub(super) fn raise_memlock_limit() -> Option<(u64, u64)> {
    let old = getrlimit(Resource::RLIMIT_MEMLOCK).ok()?;
    if let Err(e) = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY) {
        log::debug!("cannot raise RLIMIT_MEMLOCK: {e}");
        return None;
    }
    Some(old)
}

pub(super) fn restore_memlock_limit(old: Option<(u64, u64)>) {
    if let Some((soft, hard)) = old {
        // Lowering a limit needs no privilege.
        let _ = setrlimit(Resource::RLIMIT_MEMLOCK, soft, hard);
    }
}

pub(super) fn block_stop_signals() {
    set_stop_signals_blocked(true);
}

/// Blocks or unblocks SIGINT and SIGTERM in the calling thread (async-signal-safe).
pub(super) fn set_stop_signals_blocked(blocked: bool) {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    let how = if blocked {
        SigmaskHow::SIG_BLOCK
    } else {
        SigmaskHow::SIG_UNBLOCK
    };
    let _ = pthread_sigmask(how, Some(&set), None);
}

/// A command forked and stopped before exec, so tracing is in place before its first instruction.
pub(super) struct Spawned {
    pub(super) pid: u32,
    /// Read end of a close-on-exec pipe: EOF means exec succeeded, 4 bytes are its errno.
    exec_result: OwnedFd,
}

pub(super) fn spawn_stopped(cmd: &[OsString]) -> Result<Spawned, RunError> {
    let argv: Vec<CString> = cmd
        .iter()
        .map(|a| {
            CString::new(a.as_bytes())
                .map_err(|_| RunError::Usage("command arguments cannot contain NUL bytes".into()))
        })
        .collect::<Result<_, _>>()?;
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(|e| RunError::Spawn(e.into()))?;
    // SAFETY: fork before any other thread exists (the runtime starts later), so the child may
    // allocate; it only execs or exits.
    let pid = match unsafe { fork() }.map_err(|e| RunError::Spawn(e.into()))? {
        ForkResult::Parent { child } => child,
        ForkResult::Child => {
            drop(read_end);
            // The command gets the signal mask we started with.
            set_stop_signals_blocked(false);
            let _ = raise(Signal::SIGSTOP);
            let errno = match execvp(&argv[0], &argv) {
                Err(e) => e as i32,
                Ok(never) => match never {},
            };
            let _ = nix::unistd::write(&write_end, &errno.to_ne_bytes());
            // SAFETY: leaving the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(127) };
        }
    };
    // Our copy of the write end: the child's closes on exec.
    drop(write_end);
    // Wait for the child to stop itself.
    match waitpid(pid, Some(WaitPidFlag::WUNTRACED)) {
        Ok(WaitStatus::Stopped(..)) => Ok(Spawned {
            pid: pid.as_raw() as u32,
            exec_result: read_end,
        }),
        _ => Err(RunError::Spawn(std::io::Error::other(
            "the command did not start",
        ))),
    }
}

impl Spawned {
    /// Lets the stopped command run, and reports whether its exec worked.
    pub(super) fn resume(self, cmd: &[OsString]) -> Result<(), RunError> {
        let pid = Pid::from_raw(self.pid as i32);
        let _ = kill(pid, Signal::SIGCONT);
        let mut errno = [0u8; 4];
        let n = nix::unistd::read(&self.exec_result, &mut errno).unwrap_or(0);
        if n == 4 {
            let errno = i32::from_ne_bytes(errno);
            let _ = waitpid(pid, None);
            let command = cmd[0].to_string_lossy().into_owned();
            if errno == libc::ENOENT {
                return Err(RunError::CommandNotFound { command });
            }
            if errno == libc::EACCES && std::path::Path::new(&cmd[0]).is_dir() {
                return Err(RunError::CommandIsDirectory { command });
            }
            return Err(RunError::Exec {
                command,
                source: std::io::Error::from_raw_os_error(errno),
            });
        }
        Ok(())
    }
}
