//! Talking to shims: starting one (and waiting for its readiness line), and
//! its line-based control socket. What the lines and flags say is
//! `berth_proto::shim`, which the shim reads with.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::debug;

use berth_proto::shim as contract;

use crate::Error;

/// Starts a shim and waits until it has created the container. The shim
/// detaches at once (its first process exits, we reap it), so it is never
/// our child; it reports "ok <init pid>" or "error <message>" on the pipe.
pub async fn spawn(shim: &Path, args: &contract::Args) -> Result<i32, Error> {
    let mut cmd = tokio::process::Command::new(shim);
    cmd.args(args.to_args());
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
pub async fn control(socket_base: &Path, request: contract::Request) -> Result<(), Error> {
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
