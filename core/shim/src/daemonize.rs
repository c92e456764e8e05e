//! Leaving the caller's process tree.
//!
//! berth-core spawns the shim with stdout on a pipe. The shim forks; the
//! parent exits at once (berth-core reaps it), the child starts a new session
//! and so is re-parented to init: killing the core or the engine never
//! touches it. The child keeps the pipe to report "ok <pid>" or
//! "error <message>" once the container is created.

#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::unistd::{fork, setsid, ForkResult};

use crate::Args;

pub enum Half {
    Parent,
    /// The detached shim, with the pipe to report readiness on.
    Shim(File),
}

pub fn detach(args: &Args) -> Result<Half, String> {
    // SAFETY: the shim is single-threaded at this point (nothing has spawned a
    // thread), so the child may run arbitrary code after fork.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { .. } => Ok(Half::Parent),
        ForkResult::Child => {
            setsid().map_err(|e| format!("setsid: {e}"))?;
            // SAFETY: fd 1 is the readiness pipe berth-core gave us; dup gives
            // us our own descriptor that nothing else owns.
            let ready = unsafe { File::from(OwnedFd::from_raw_fd(libc::dup(1))) };
            redirect_stdio(args)?;
            Ok(Half::Shim(ready))
        }
    }
}

/// Points stdin/stdout at /dev/null and stderr at `shim.log`, so that nothing
/// keeps berth-core's pipe open and diagnostics land next to the task.
fn redirect_stdio(args: &Args) -> Result<(), String> {
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| e.to_string())?;
    let log = File::options()
        .create(true)
        .append(true)
        .open(args.file("shim.log"))
        .map_err(|e| format!("shim.log: {e}"))?;
    // SAFETY: dup2 onto the standard descriptors of this process; both sources
    // are open files owned by this function.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    Ok(())
}
