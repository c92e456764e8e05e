//! berth-shim: the per-container monitor.
//!
//! Started by berth-core, it detaches itself (so that it is never a child of
//! the core or the engine), becomes the subreaper of its container, runs
//! `<runtime> create`, and then sits in a poll loop: it drains the
//! container's stdout and stderr into the json-file log and to attach
//! clients, feeds stdin, answers control requests (start, kill, resize,
//! close stdin), and when the container's init exits it records the exit
//! status in `exit.json` (write then rename) and exits itself. Deleting the
//! container from the runtime is left to the core (when the task is deleted).
//!
//! The state directory it is given holds everything another process needs to
//! find it again: `shim.pid`, `init.pid`, `attach.sock`, `control.sock`,
//! `exit.json`, and `shim.log` with its own diagnostics; its sockets
//! (`<base>.attach`, `<base>.ctl`) live at a short path given by the core.

#![deny(unsafe_code)]

mod attach;
mod daemonize;
mod event_loop;
mod fluentd;
mod gelf;
mod journald;
mod lines;
mod log_writer;
mod oom;
mod reaper;
mod ship;
mod stdio;
mod syslog;
mod tls;

pub use berth_proto::shim::Args;
use berth_proto::shim::Ready;

use std::io::Write;

/// Entry point; returns the process exit code.
pub fn run(argv: Vec<String>) -> i32 {
    let args = match Args::parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berth-shim: {e}");
            return 2;
        }
    };
    // Read; the runtime and the container's processes need not see it.
    // (Single-threaded still, so changing the environment is sound.)
    std::env::remove_var(berth_proto::shim::LOG_FIELDS_ENV);
    // From here on the parent half returns at once and the detached half
    // carries on; `ready` is the pipe back to berth-core.
    let mut ready = match daemonize::detach(&args) {
        Ok(daemonize::Half::Parent) => return 0,
        Ok(daemonize::Half::Shim(ready)) => ready,
        Err(e) => {
            eprintln!("berth-shim: {e}");
            return 1;
        }
    };
    match event_loop::Shim::setup(&args) {
        Ok(mut shim) => {
            let _ = writeln!(ready, "{}", Ready::Ok(shim.init_pid()));
            drop(ready);
            shim.run();
            0
        }
        Err(e) => {
            let _ = writeln!(ready, "{}", Ready::Error(e));
            // Leave no half-created container behind.
            event_loop::cleanup_failed_create(&args);
            1
        }
    }
}
