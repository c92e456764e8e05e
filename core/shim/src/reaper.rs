//! Child reaping. The shim is the subreaper of its container, so the
//! container's init (and anything the runtime leaves behind) becomes our
//! child; SIGCHLD arrives on a signalfd that sits in the poll loop.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

pub fn become_subreaper() -> Result<(), String> {
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("set subreaper: {e}"))
}

/// Blocks SIGCHLD and returns a signalfd that reports it.
pub fn sigchld_fd() -> Result<SignalFd, String> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| format!("block SIGCHLD: {e}"))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))
}

/// Reaps every exited child; returns the exit code of `init` when it was
/// among them, as a shell reports it (128 + signal for a signal death).
pub fn reap(init: i32) -> Option<i32> {
    let mut init_code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                if pid.as_raw() == init {
                    init_code = Some(code);
                }
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                if pid.as_raw() == init {
                    init_code = Some(128 + sig as i32);
                }
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return init_code,
            Ok(_) => {}
        }
    }
}
