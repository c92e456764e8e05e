//! Command line and start-up of berth-core.

use std::future::IntoFuture;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tracing::{info, warn};

use crate::generation::{Generation, Setup};
use crate::serving::Serving;
use crate::{api, handover, runtimes::Runtimes};

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
    /// Take over from the core running on this state directory (an
    /// upgrade): its socket, its tasks and its event log, refusing nothing.
    #[arg(long)]
    pub takeover: bool,
    /// Oldest protocol version to serve (default: every supported one);
    /// for testing what an upgrade does with a core that dropped one.
    #[arg(long, hide = true)]
    pub min_protocol: Option<u32>,
}

impl Config {
    /// The protocol versions this core serves.
    pub fn protocol_range(&self) -> (u32, u32) {
        let min = self
            .min_protocol
            .unwrap_or(berth_proto::MIN_VERSION)
            .max(berth_proto::MIN_VERSION);
        (min, berth_proto::VERSION)
    }
}

pub fn main() -> anyhow::Result<()> {
    // Taken before anything starts a process that would inherit it.
    let _ = NOTIFY_SOCKET.set(berth_proto::notify::take_socket());
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
    if config.takeover {
        // A successor prepares at a lower priority, leaving the CPU to the
        // core still serving (`berth_proto::priority`); before any thread
        // exists, so that they all inherit it.
        berth_proto::priority::lower_while_preparing();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(config))
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir)?;
    let shim = match &config.shim {
        Some(p) => p.clone(),
        None => berth_proto::locate::sibling_or_path("berth-shim")
            .ok_or_else(|| anyhow::anyhow!("berth-shim not found next to berth-core or on PATH"))?,
    };
    let handover_path = handover::path(&config.state_dir);
    let (listener, serving, setup, successor) = if config.takeover {
        let (listener, serving, setup, successor) =
            take_over(&config, shim, &handover_path).await?;
        (listener, serving, setup, Some(successor))
    } else {
        let (listener, serving, setup) = start_fresh(&config, shim).await?;
        (listener, serving, setup, None)
    };
    let raw_listener = listener.as_raw_fd();
    let app = api::router(serving.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(serving.listener(listener), app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .into_future(),
    );
    info!(address = %config.address.display(), version = env!("CARGO_PKG_VERSION"), "berth-core listening");
    if let Some(s) = successor {
        s.serving().await;
        info!("took over: the old berth-core passes on what it held and exits");
    }
    if let Some(socket) = NOTIFY_SOCKET.get().cloned().flatten() {
        if let Err(e) = berth_proto::notify::ready(&socket) {
            warn!(error = %e, %socket, "notifying readiness");
        }
    }
    let handed_over = tokio::select! {
        _ = shutdown_signal() => false,
        r = handover::serve(handover_path, raw_listener, serving.clone(), setup) => {
            if let Err(e) = r {
                warn!(error = %e, "the handover socket failed; a takeover is no longer possible");
                shutdown_signal().await;
                false
            } else {
                // No longer accepting; a connection accepted just before
                // may not have had its request read yet, and shutting down
                // now would close it as idle (a failed request for the
                // client). It gets this long.
                tokio::time::sleep(HANDOVER_GRACE).await;
                true
            }
        }
    };
    if !handed_over {
        // Event streams never end by themselves, and a graceful shutdown
        // waits for every response: end them (subscribers come back, to
        // whichever core answers next, with their cursors).
        serving.close_event_streams().await;
    }
    let _ = stop_tx.send(());
    server.await??;
    if handed_over {
        info!("berth-core handed over; exiting");
    } else {
        // Deletions run in the background; finish them rather than leave
        // runtime state behind (a next core would clean up, but there may be none).
        serving.drain_deletes().await;
    }
    Ok(())
}

type Started = (tokio::net::UnixListener, Arc<Serving>, Setup);

/// A core on its own: adopt what the state directory holds, bind the socket.
async fn start_fresh(config: &Config, shim: PathBuf) -> anyhow::Result<Started> {
    let setup = prepare(config, shim)?;
    let generation = Generation::open(&setup).await?;
    if let Some(dir) = config.address.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&config.address);
    let listener = tokio::net::UnixListener::bind(&config.address)?;
    set_mode(&config.address, 0o600)?;
    let serving = Serving::new(generation, config.address.clone());
    Ok((listener, serving, setup))
}

/// `--takeover`: the running core's socket, then (once it froze) its state
/// directory. Any error before the caller says `serving` drops the
/// connection, and the running core takes everything back.
async fn take_over(
    config: &Config,
    shim: PathBuf,
    handover_path: &std::path::Path,
) -> anyhow::Result<(
    tokio::net::UnixListener,
    Arc<Serving>,
    Setup,
    handover::Successor,
)> {
    let range = config.protocol_range();
    let mut successor = handover::Successor::connect(handover_path, range).await?;
    let old = &successor.predecessor;
    info!(old_version = %old.core_version, old_pid = old.pid, "taking over from the running berth-core");
    if let Some(v) = old
        .versions_used
        .iter()
        .find(|v| !(range.0..=range.1).contains(v))
    {
        let reason = format!(
            "this berth-core serves protocol versions {}..={}, but the running berthd uses version {v}",
            range.0, range.1
        );
        successor.abort(&reason).await;
        anyhow::bail!("--takeover refused: {reason}");
    }
    let inherited = old.versions_used.clone();
    // Everything that needs no state is done before the running core
    // holds requests off: the probe runs a container.
    let setup = prepare(config, shim)?;
    let census = std::time::Instant::now();
    let vouched = crate::tasks::Vouched::census(&setup.state_dir, &setup.shims());
    info!(
        took_ms = census.elapsed().as_secs_f64() * 1000.0,
        "checked the running shims before the old core freezes"
    );
    if let Err(e) = berth_proto::priority::take_back() {
        warn!(error = %e, "the takeover goes on at a lower priority");
    }
    let last_seq = successor.freeze().await?;
    let generation = Generation::open_vouched(&setup, &vouched).await?;
    let ours = generation.events.last_seq();
    if ours < last_seq {
        anyhow::bail!("--takeover: the event log ends at {ours}, the running core's at {last_seq}");
    }
    let listener = successor.listener.try_clone()?;
    listener.set_nonblocking(true)?;
    let serving = Serving::new(generation, config.address.clone());
    serving.inherit_versions(&inherited);
    Ok((
        tokio::net::UnixListener::from_std(listener)?,
        serving,
        setup,
        successor,
    ))
}

/// What every generation of this process is opened from; the runtime probe
/// runs here, once.
fn prepare(config: &Config, shim: PathBuf) -> anyhow::Result<Setup> {
    let runtimes = Runtimes::detect(&config.state_dir, config.default_runtime.as_deref())?;
    info!(default_runtime = %runtimes.default_name(), "runtime selected");
    Ok(Setup {
        state_dir: config.state_dir.clone(),
        runtimes,
        shim,
    })
}

/// How long a core that handed over keeps serving what it had accepted.
const HANDOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    info!("berth-core stopping; containers keep running");
}

pub(crate) fn set_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// sd_notify's socket, when a service manager or `berthd upgrade` waits
/// for us to serve.
static NOTIFY_SOCKET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
