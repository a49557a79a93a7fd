//! The command run under trace (forked, stopped before exec until tracing is in place, reaped
//! on its own thread), the stop signals, and the memlock limit BPF maps need on old kernels.
use std::{
    ffi::{CString, OsString},
    os::{fd::RawFd, unix::ffi::OsStrExt},
};

use crate::error::RunError;

pub(super) fn wait_exit_status(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 1;
        }
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Kernels before 5.11 charge BPF maps (the 4 MiB ring buffer among them) to RLIMIT_MEMLOCK;
/// later ones use memory cgroups and ignore it. Raising the hard limit needs CAP_SYS_RESOURCE
/// (see deploy/README.md); without it loading fails on those kernels only. Returns the limit to
/// restore once the maps are created.
pub(super) fn raise_memlock_limit() -> Option<libc::rlimit> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to plain structs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old) != 0 {
            return None;
        }
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) != 0 {
            log::debug!(
                "cannot raise RLIMIT_MEMLOCK: {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
    }
    Some(old)
}

pub(super) fn restore_memlock_limit(old: Option<libc::rlimit>) {
    if let Some(old) = old {
        // SAFETY: valid pointer to a plain struct; lowering a limit needs no privilege.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &old) };
    }
}

pub(super) fn block_stop_signals() {
    set_stop_signals_blocked(true);
}

/// Blocks or unblocks SIGINT and SIGTERM in the calling thread (async-signal-safe).
pub(super) fn set_stop_signals_blocked(blocked: bool) {
    // SAFETY: sigset manipulation on a local; pthread_sigmask only affects this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let how = if blocked {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// A command forked and stopped before exec, so tracing is in place before its first instruction.
pub(super) struct Spawned {
    pub(super) pid: u32,
    /// Read end of a close-on-exec pipe: EOF means exec succeeded, 4 bytes are its errno.
    exec_result: RawFd,
}

pub(super) fn spawn_stopped(cmd: &[OsString]) -> Result<Spawned, RunError> {
    let argv: Vec<CString> = cmd
        .iter()
        .map(|a| {
            CString::new(a.as_bytes())
                .map_err(|_| RunError::Usage("command arguments cannot contain NUL bytes".into()))
        })
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut fds = [0 as RawFd; 2];
    // SAFETY: valid out array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(RunError::Spawn(std::io::Error::last_os_error()));
    }
    // SAFETY: fork before any other thread exists (the runtime starts later); the child only
    // calls async-signal-safe functions before exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(RunError::Spawn(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        unsafe {
            libc::close(fds[0]);
            // The command gets the signal mask we started with.
            set_stop_signals_blocked(false);
            libc::raise(libc::SIGSTOP);
            libc::execvp(argv_ptrs[0], argv_ptrs.as_ptr());
            let errno = *libc::__errno_location();
            libc::write(fds[1], &errno as *const i32 as *const libc::c_void, 4);
            libc::_exit(127);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut status = 0;
    // SAFETY: valid out pointer; wait for the child to stop itself.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED) };
    if r != pid || !libc::WIFSTOPPED(status) {
        unsafe { libc::close(fds[0]) };
        return Err(RunError::Spawn(std::io::Error::other(
            "the command did not start",
        )));
    }
    Ok(Spawned {
        pid: pid as u32,
        exec_result: fds[0],
    })
}

impl Spawned {
    /// Lets the stopped command run, and reports whether its exec worked.
    pub(super) fn resume(self, cmd: &[OsString]) -> Result<(), RunError> {
        // SAFETY: our stopped child.
        unsafe { libc::kill(self.pid as i32, libc::SIGCONT) };
        let mut errno = 0i32;
        // SAFETY: reading 4 bytes into an i32.
        let n = unsafe {
            libc::read(
                self.exec_result,
                &mut errno as *mut i32 as *mut libc::c_void,
                4,
            )
        };
        unsafe { libc::close(self.exec_result) };
        if n == 4 {
            let mut status = 0;
            unsafe { libc::waitpid(self.pid as i32, &mut status, 0) };
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
