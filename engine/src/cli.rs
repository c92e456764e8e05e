//! Start-up of berthd: flags, logging, pidfile, state, the core, the socket.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use clap::Parser;
use tracing::{info, warn};

use crate::config::Config;
use crate::core_client::HandshakeError;
use crate::{api, containers, Engine};

pub fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(serve(config))
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let socket = config.socket_path().map_err(anyhow::Error::msg)?;
    if let Some(p) = &config.pidfile {
        std::fs::write(p, std::process::id().to_string())?;
    }
    let engine = Engine::open(config.clone()).await?;
    // The first handshake (which may start the core) happens before we
    // listen, so that the first request finds a working engine. A core we
    // cannot reach is no reason not to serve: what needs it answers 503
    // while the monitor keeps trying. A core we cannot speak to is.
    match engine.refresh_core_info().await {
        Ok(h) => info!(core_version = %h.core_version, default_runtime = %h.default_runtime, "berth-core ready"),
        Err(HandshakeError::Incompatible(msg)) => anyhow::bail!("{msg}"),
        Err(HandshakeError::Unreachable(e)) => warn!(error = %e, "berth-core is not available yet; requests that need it answer 503"),
    }
    tokio::spawn(containers::monitor::run(engine.containers.clone(), engine.launcher.clone()));

    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)?;
    secure_socket(&socket, config.group.as_deref())?;
    info!(socket = %socket.display(), version = env!("CARGO_PKG_VERSION"), "berthd listening");

    let app = api::app(engine.clone());
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    if let Some(p) = &config.pidfile {
        let _ = std::fs::remove_file(p);
    }
    info!("berthd stopped; containers keep running");
    Ok(())
}

/// Mode 0660, owned by root and the docker group (or the one given), as dockerd.
fn secure_socket(path: &Path, group: Option<&str>) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let name = group.unwrap_or("docker");
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), Some(g.gid))?,
        _ if group.is_some() => anyhow::bail!("group {name} not found"),
        _ => {}
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        warn!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
}
