//! Starting berth-core when nothing answers on its socket.
//!
//! The core runs in its own process group (and session), so signals meant
//! for berthd's group never reach it and it outlives berthd. While this
//! berthd is its parent it reaps it; a later berthd finds it by its socket.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tracing::{info, warn};

use crate::config::Config;
use crate::error::{Error, Result};

use super::{CoreClient, HandshakeError};

pub struct Launcher {
    /// Only one caller at a time may decide that no core runs and start one.
    spawning: tokio::sync::Mutex<()>,
    binary: Option<PathBuf>,
    args: Vec<String>,
    log: PathBuf,
}

impl Launcher {
    pub fn new(config: &Config) -> Result<Launcher> {
        Ok(Launcher {
            spawning: tokio::sync::Mutex::new(()),
            binary: berth_proto::locate::sibling_or_path("berth-core"),
            args: Launcher::args(config)?,
            log: Launcher::log(config),
        })
    }

    /// The flags a core for this configuration is started with (also by
    /// `berthd upgrade`, adding `--takeover`).
    pub fn args(config: &Config) -> Result<Vec<String>> {
        let socket = config.core_socket().map_err(Error::InvalidArgument)?;
        let mut args = vec![
            "--address".to_string(),
            socket.display().to_string(),
            "--state-dir".to_string(),
            config.core_state_dir().display().to_string(),
            "--log-level".to_string(),
            config.log_level.clone(),
        ];
        if let Some(rt) = &config.runtime {
            args.push("--default-runtime".into());
            args.push(rt.clone());
        }
        Ok(args)
    }

    /// Where a core started for this configuration writes its log.
    pub fn log(config: &Config) -> PathBuf {
        config.exec_root.join("berth-core.log")
    }

    /// Makes sure a core answers: handshake, else start one and wait for it.
    pub async fn ensure(
        &self,
        client: &CoreClient,
    ) -> Result<berth_proto::Handshake, HandshakeError> {
        match client.handshake().await {
            Err(HandshakeError::Unreachable(_)) => {}
            other => return other,
        }
        let _one_at_a_time = self.spawning.lock().await;
        // Someone else may have started it while we waited for the lock.
        match client.handshake().await {
            Err(HandshakeError::Unreachable(_)) => {}
            other => return other,
        }
        self.spawn().map_err(HandshakeError::Unreachable)?;
        // Wait for the new core's socket; it probes runtimes first (tens of ms).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match client.handshake().await {
                Err(HandshakeError::Unreachable(e)) if tokio::time::Instant::now() > deadline => {
                    return Err(HandshakeError::Unreachable(e))
                }
                Err(HandshakeError::Unreachable(_)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                other => return other,
            }
        }
    }

    fn spawn(&self) -> Result<()> {
        let binary = self.binary.clone().ok_or_else(|| {
            Error::Unavailable("berth-core not found next to berthd or on PATH".into())
        })?;
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = tokio::process::Command::new(&binary);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Unavailable(format!("cannot start {}: {e}", binary.display())))?;
        info!(pid = child.id(), binary = %binary.display(), "started berth-core");
        tokio::spawn(async move {
            match child.wait().await {
                Ok(status) => warn!(%status, "berth-core exited"),
                Err(e) => warn!(error = %e, "waiting for berth-core"),
            }
        });
        Ok(())
    }
}
