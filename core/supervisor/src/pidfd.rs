//! Waiting for a process that is not our child (a shim) to exit, with a
//! pidfd in tokio's reactor. A pidfd becomes readable when the process exits,
//! before anyone reaps it, so init's slow reaping does not delay us.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;

pub struct PidFd(OwnedFd);

impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl PidFd {
    /// Fails with ESRCH when the process is already gone.
    pub fn open(pid: i32) -> std::io::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a fresh descriptor that we now own.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
    }

    /// Resolves when the process has exited.
    pub async fn exited(self) -> std::io::Result<()> {
        // SAFETY: PidFd owns its descriptor and returns the same one from
        // as_raw_fd for as long as the AsyncFd holds it.
        let fd = unsafe { AsyncFd::register_with_interest(self, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        let _guard = fd.readable().await?;
        Ok(())
    }
}

/// Sends a signal to a process.
pub fn kill(pid: i32, signal: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `pid` is alive and its command line mentions every needle
/// (guards against a recycled pid when re-adopting shims). Reading a
/// command line reads the process's memory: one read for all needles.
pub fn command_line_has(pid: i32, needles: &[&str]) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let cmdline = String::from_utf8_lossy(&cmdline);
            needles.iter().all(|n| cmdline.contains(n))
        }
        Err(_) => false,
    }
}

/// The process's name (`comm`, at most 15 bytes), if it is alive.
pub fn command_name(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|n| n.trim_end().to_string())
}
