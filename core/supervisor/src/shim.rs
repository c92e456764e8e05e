//! Talking to shims: starting one (and waiting for its readiness line), and
//! its line-based control socket.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::debug;

use crate::Error;

pub struct SpawnOpts<'a> {
    pub shim: &'a Path,
    pub id: &'a str,
    /// Run `bundle` (a process.json) in container `id` on start, instead of
    /// creating container `id` from the bundle directory.
    pub exec: bool,
    pub state_dir: &'a Path,
    pub bundle: &'a Path,
    pub runtime: &'a Path,
    pub runtime_root: &'a Path,
    pub log_path: &'a str,
    pub log_max_size: u64,
    pub log_max_files: u32,
    pub log_format: &'a str,
    pub socket_base: &'a Path,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
}

/// Starts a shim and waits until it has created the container. The shim
/// detaches at once (its first process exits, we reap it), so it is never
/// our child; it reports "ok <init pid>" or "error <message>" on the pipe.
pub async fn spawn(o: SpawnOpts<'_>) -> Result<i32, Error> {
    let mut cmd = tokio::process::Command::new(o.shim);
    cmd.arg("--id")
        .arg(o.id)
        .arg("--state-dir")
        .arg(o.state_dir)
        .arg("--bundle")
        .arg(o.bundle);
    cmd.arg("--runtime")
        .arg(o.runtime)
        .arg("--runtime-root")
        .arg(o.runtime_root);
    cmd.arg("--socket-base").arg(o.socket_base);
    if o.exec {
        cmd.arg("--exec");
    }
    if !o.log_path.is_empty() {
        cmd.arg("--log-path").arg(o.log_path);
        if !o.log_format.is_empty() {
            cmd.arg("--log-format").arg(o.log_format);
        }
        if o.log_max_size > 0 {
            cmd.arg("--log-max-size").arg(o.log_max_size.to_string());
            cmd.arg("--log-max-files")
                .arg(o.log_max_files.max(1).to_string());
        }
    }
    for (on, flag) in [
        (o.stdin, "--stdin"),
        (o.stdin_once, "--stdin-once"),
        (o.tty, "--tty"),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    debug!(id = o.id, "spawning shim");
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Runtime(format!("cannot start {}: {e}", o.shim.display())))?;
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
    if let Some(pid) = line.strip_prefix("ok ") {
        return pid
            .parse()
            .map_err(|_| Error::Runtime(format!("bad shim answer {line:?}")));
    }
    match line.strip_prefix("error ") {
        Some(msg) => Err(Error::Runtime(msg.to_string())),
        None => Err(Error::Runtime(
            "the shim exited without creating the container".into(),
        )),
    }
}

/// The shim's sockets: `base` plus a suffix.
pub fn socket(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Sends one control request and returns the shim's answer.
pub async fn control(socket_base: &Path, request: &str) -> Result<(), Error> {
    let path = socket(socket_base, ".ctl");
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
    .map_err(|_| Error::Runtime(format!("shim did not answer {request:?}")))??;
    let line = line.trim_end();
    if line == "ok" {
        return Ok(());
    }
    let msg = line
        .strip_prefix("error ")
        .unwrap_or("the shim closed the connection")
        .to_string();
    if msg.contains("not running") {
        return Err(Error::FailedPrecondition(msg));
    }
    Err(Error::Runtime(msg))
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
