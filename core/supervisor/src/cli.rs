//! Command line and start-up of berth-core.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tracing::info;

use crate::{api, event_log::EventLog, runtimes::Runtimes, tasks::Tasks};

#[derive(Debug, Parser)]
#[command(name = "berth-core", version, about = "Berth's container supervisor")]
pub struct Config {
    /// The socket the engine talks to.
    #[arg(long, default_value = "/run/berth/core.sock")]
    pub address: PathBuf,
    /// Task state: bundles, shim sockets, pid and exit files, the event log.
    #[arg(long, default_value = "/run/berth/core")]
    pub state_dir: PathBuf,
    /// The shim binary; default: berth-shim next to this executable, else on PATH.
    #[arg(long)]
    pub shim: Option<PathBuf>,
    /// Runtime for tasks that name none (crun, runc or a path); default: the
    /// fastest installed runtime that works on this host.
    #[arg(long)]
    pub default_runtime: Option<String>,
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

pub fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log_level)
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs usually go to a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(config))
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir)?;
    // One core per state directory: two would both adopt the same shims.
    let _lock = crate::lock::exclusive(&config.state_dir.join("core.lock")).map_err(|e| {
        anyhow::anyhow!(
            "another berth-core is using {}: {e}",
            config.state_dir.display()
        )
    })?;
    let shim = match &config.shim {
        Some(p) => p.clone(),
        None => berth_proto::locate::sibling_or_path("berth-shim")
            .ok_or_else(|| anyhow::anyhow!("berth-shim not found next to berth-core or on PATH"))?,
    };
    let runtimes = Runtimes::detect(&config.state_dir, config.default_runtime.as_deref())?;
    info!(default_runtime = %runtimes.default_name(), "runtime selected");
    let events = Arc::new(EventLog::open(&config.state_dir)?);
    let tasks = Tasks::new(
        config.state_dir.clone(),
        runtimes,
        Arc::new(berth_runtime::CliFactory),
        Arc::new(crate::shim::Processes { binary: shim }),
        events.clone(),
    );
    tasks.adopt_existing().await;

    if let Some(dir) = config.address.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&config.address);
    let listener = tokio::net::UnixListener::bind(&config.address)?;
    set_mode(&config.address, 0o600)?;
    info!(address = %config.address.display(), version = env!("CARGO_PKG_VERSION"), "berth-core listening");
    let app = api::router(tasks.clone(), events);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // Deletions run in the background; finish them rather than leave
    // runtime state behind (a next core would clean up, but there may be none).
    tasks.drain_deletes().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    info!("berth-core stopping; containers keep running");
}

fn set_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
