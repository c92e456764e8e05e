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

/// Whether `pid` is alive and its command line mentions `needle` (guards
/// against a recycled pid when re-adopting shims).
pub fn is_process_of(pid: i32, needle: &str) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains(needle),
        Err(_) => false,
    }
}
