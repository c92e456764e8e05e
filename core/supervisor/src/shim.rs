//! Talking to shims: starting one (and waiting for its readiness line), its
//! line-based control socket, and following it until it exits. What the
//! lines and flags say is `berth_proto::shim`, which the shim reads with.
//!
//! The tasks reach shims through [`Shims`], so that their unit tests can
//! put an in-process fake where real shim processes would be.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{debug, info, warn};

use berth_proto::shim as contract;

use crate::pidfd::{self, PidFd};
use crate::Error;

/// A shim that has created its task's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    /// The container's init process (an exec's process exists only after start).
    pub init_pid: i32,
    pub shim_pid: i32,
}

/// What the tasks ask of shims.
pub trait Shims: Send + Sync {
    /// Starts a shim for `args` and returns once it has created the process.
    fn spawn<'a>(&'a self, args: &'a contract::Args) -> BoxFuture<'a, Result<Spawned, Error>>;
    /// Sends one control request to the shim listening at `socket_base`.
    fn control<'a>(
        &'a self,
        socket_base: &'a Path,
        request: contract::Request,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// Resolves when shim `shim_pid` has exited (at once if it has already).
    fn exited(&self, shim_pid: i32) -> BoxFuture<'static, ()>;
    /// Whether `shim_pid` still is the shim of task `id` (pids are reused).
    fn is_shim_of(&self, shim_pid: i32, id: &str) -> bool;
    /// Whether `shim_pid` is alive and a shim (of any task): enough for a
    /// pid that [`Shims::is_shim_of`] vouched for moments ago, and much
    /// cheaper (it does not read the process's memory).
    fn is_a_shim(&self, shim_pid: i32) -> bool;
    /// Kills a shim that does not go by itself.
    fn kill(&self, shim_pid: i32);
}

/// Real shims: detached `berth-shim` processes.
pub struct Processes {
    /// The `berth-shim` binary.
    pub binary: PathBuf,
}

impl Shims for Processes {
    fn spawn<'a>(&'a self, args: &'a contract::Args) -> BoxFuture<'a, Result<Spawned, Error>> {
        Box::pin(async move {
            let init_pid = spawn(&self.binary, args).await?;
            let shim_pid = read_pid(&args.file(contract::files::SHIM_PID)).unwrap_or(0);
            Ok(Spawned { init_pid, shim_pid })
        })
    }

    fn control<'a>(
        &'a self,
        socket_base: &'a Path,
        request: contract::Request,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(control(socket_base, request))
    }

    fn exited(&self, shim_pid: i32) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if shim_pid <= 0 {
                return;
            }
            match PidFd::open(shim_pid) {
                Ok(fd) => {
                    if let Err(e) = fd.exited().await {
                        warn!(shim_pid, error = %e, "waiting for shim");
                    }
                }
                Err(e) => info!(shim_pid, error = %e, "shim already gone"),
            }
        })
    }

    fn is_shim_of(&self, shim_pid: i32, id: &str) -> bool {
        shim_pid > 0 && pidfd::command_line_has(shim_pid, &["berth-shim", id])
    }

    fn is_a_shim(&self, shim_pid: i32) -> bool {
        shim_pid > 0 && pidfd::command_name(shim_pid).as_deref() == Some("berth-shim")
    }

    fn kill(&self, shim_pid: i32) {
        if shim_pid > 0 {
            let _ = pidfd::kill(shim_pid, libc::SIGKILL);
        }
    }
}

/// A pid file's number (`shim.pid`, `init.pid`).
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Starts a shim and waits until it has created the container. The shim
/// detaches at once (its first process exits, we reap it), so it is never
/// our child; it reports "ok <init pid>" or "error <message>" on the pipe.
async fn spawn(shim: &Path, args: &contract::Args) -> Result<i32, Error> {
    let mut cmd = tokio::process::Command::new(shim);
    cmd.args(args.to_args());
    cmd.envs(args.environment());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    debug!(id = %args.id, "spawning shim");
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Runtime(format!("cannot start {}: {e}", shim.display())))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(60),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    let _ = child.wait().await;
    match read {
        Err(_) => Err(Error::Runtime(
            "timed out waiting for the shim to create the container".into(),
        )),
        Ok(Err(e)) => Err(Error::Runtime(format!("reading from shim: {e}"))),
        Ok(Ok(_)) => parse_ready(line.trim_end()),
    }
}

fn parse_ready(line: &str) -> Result<i32, Error> {
    match contract::Ready::parse(line) {
        Some(contract::Ready::Ok(pid)) => Ok(pid),
        Some(contract::Ready::Error(msg)) => Err(Error::Runtime(msg)),
        None if line.starts_with("ok ") => Err(Error::Runtime(format!("bad shim answer {line:?}"))),
        None => Err(Error::Runtime(
            "the shim exited without creating the container".into(),
        )),
    }
}

/// Sends one control request and returns the shim's answer.
async fn control(socket_base: &Path, request: contract::Request) -> Result<(), Error> {
    let path = contract::socket(socket_base, contract::sockets::CONTROL);
    let conn = UnixStream::connect(&path)
        .await
        .map_err(|_| Error::FailedPrecondition("container is not running".into()))?;
    let (r, mut w) = conn.into_split();
    w.write_all(format!("{request}\n").as_bytes()).await?;
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(r).read_line(&mut line),
    )
    .await
    .map_err(|_| Error::Runtime(format!("shim did not answer {:?}", request.to_string())))??;
    match contract::parse_answer(line.trim_end()) {
        Ok(()) => Ok(()),
        Err(msg) if msg.contains("not running") => Err(Error::FailedPrecondition(msg)),
        Err(msg) => Err(Error::Runtime(msg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_lines() {
        assert_eq!(parse_ready("ok 1234").unwrap(), 1234);
        assert!(
            matches!(parse_ready("error exec: nope"), Err(Error::Runtime(m)) if m == "exec: nope")
        );
        assert!(parse_ready("").is_err());
    }
}
