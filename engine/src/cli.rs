//! Start-up of berthd: flags, logging, pidfile, state, the core, the socket.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tracing::{info, warn};

use crate::config::Config;
use crate::core_client::HandshakeError;
use crate::{api, containers, listener, Engine};
use std::future::IntoFuture;
use std::os::fd::AsRawFd;

pub fn main() -> anyhow::Result<()> {
    if std::env::args_os().nth(1).is_some_and(|a| a == "upgrade") {
        return crate::upgrade::main(std::env::args_os().skip(2).collect());
    }
    // Taken before anything starts a process that would inherit it.
    let _ = NOTIFY_SOCKET.set(berth_proto::notify::take_socket());
    let config = match crate::config_file::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e}");
            std::process::exit(1);
        }
    };
    if config.validate {
        println!("configuration OK");
        return Ok(());
    }
    crate::reload::init_logging(&config.log_level);
    // Registries over TLS use ring's primitives (one crypto provider for
    // the whole process; the alternative, aws-lc, needs a long C build).
    let _ = rustls::crypto::ring::default_provider().install_default();
    if config.takeover {
        // A successor prepares at a lower priority, leaving the CPU to the
        // berthd still serving (`berth_proto::priority`); before any
        // thread exists, so that they all inherit it.
        berth_proto::priority::lower_while_preparing();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(config))
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    info!(
        version = env!("CARGO_PKG_VERSION"),
        takeover = config.takeover,
        "berthd starting"
    );
    let socket = config.socket_path().map_err(anyhow::Error::msg)?;
    // TCP first: a refused TLS setup stops berthd before it opens its
    // state, starts a core or serves anything.
    let tcp_endpoints = crate::tcp::bind(&config).await?;
    let metrics = match &config.metrics_addr {
        Some(addr) => Some(crate::metrics::bind(addr)?),
        None => None,
    };
    if let Some(p) = &config.pidfile {
        std::fs::write(p, std::process::id().to_string())?;
    }
    let engine = Engine::open(config.clone()).await?;
    if config.takeover {
        // The first listing would read every container from the store;
        // read them now, while the berthd we replace still answers. Then
        // the priority goes back up (before a core may be started, which
        // would inherit it).
        let warm = std::time::Instant::now();
        match engine.containers.snapshot().await {
            Ok(s) => info!(
                containers = s.entries.len(),
                took_ms = warm.elapsed().as_secs_f64() * 1000.0,
                "container view loaded before taking over"
            ),
            Err(e) => warn!(error = %e, "loading the container view"),
        }
    }
    if let Err(e) = berth_proto::priority::take_back() {
        warn!(error = %e, "taking over at a lower priority");
    }
    // The first handshake (which may start the core) happens before we
    // listen, so that the first request finds a working engine. A core we
    // cannot reach is no reason not to serve: what needs it answers 503
    // while the monitor keeps trying. A core we cannot speak to is.
    match engine.refresh_core_info().await {
        Ok(h) => {
            info!(core_version = %h.core_version, default_runtime = %h.default_runtime, "berth-core ready")
        }
        Err(HandshakeError::Incompatible(msg)) => anyhow::bail!("{msg}"),
        Err(HandshakeError::Unreachable(e)) => {
            warn!(error = %e, "berth-core is not available yet; requests that need it answer 503")
        }
    }
    if config.takeover {
        // Until the berthd we replace has finished its requests, its starts
        // in progress are not ours to mistake for leftovers.
        engine
            .containers
            .another_berthd
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
    tokio::spawn(containers::monitor::run(
        engine.containers.clone(),
        engine.launcher.clone(),
    ));

    // What the other berthd changes from now on is announced here (see
    // monitor::announce_other_berthds_changes); taken before we serve.
    let before_overlap = if config.takeover {
        engine.containers.snapshot().await.ok()
    } else {
        None
    };
    let listener::Acquired {
        api: std_listener,
        source,
        predecessor,
        cri: inherited_cri,
    } = listener::acquire(&socket, &config.exec_root, config.takeover)?;
    if let Some(conn) = predecessor {
        if let Some(before) = before_overlap {
            tokio::spawn(containers::monitor::announce_other_berthds_changes(
                engine.containers.clone(),
                before,
            ));
        }
        let containers = engine.containers.clone();
        tokio::spawn(async move {
            listener::predecessor_exited(conn).await;
            info!("the berthd taken over has exited");
            containers
                .another_berthd
                .store(false, std::sync::atomic::Ordering::SeqCst);
            if let Err(e) = containers::monitor::remove_leftovers(&containers).await {
                warn!(error = %e, "removing what cut-short starts left behind");
            }
        });
    }
    if source == listener::Source::Bound {
        secure_socket(&socket, config.group.as_deref())?;
    }
    if source == listener::Source::Takeover {
        crate::metrics::METRICS.took_over();
    }
    std_listener.set_nonblocking(true)?;
    let raw_listener = std_listener.as_raw_fd();
    let (listener, stop_accepting) =
        listener::Switchable::new(tokio::net::UnixListener::from_std(std_listener)?);
    info!(socket = %socket.display(), source = ?source, version = env!("CARGO_PKG_VERSION"), "berthd listening");
    if let Some(socket) = NOTIFY_SOCKET.get().cloned().flatten() {
        // Accepting starts below; a connection made now waits in the backlog.
        if let Err(e) = berth_proto::notify::ready(&socket) {
            warn!(error = %e, %socket, "notifying readiness");
        }
    }
    let handovers = match listener::Handovers::bind(&listener::handover_path(&config.exec_root)) {
        Ok(h) => Some(h),
        Err(e) => {
            warn!(error = %e, "no handover socket: this berthd cannot be taken over");
            None
        }
    };

    tokio::spawn(crate::reload::on_hangup(engine.clone()));
    let app = api::app(engine.clone());
    crate::tcp::serve(tcp_endpoints, api::service(engine.clone()));
    // The listeners a successor berthd is handed: the API's, then the CRI's.
    let mut handed = vec![raw_listener];
    let cri_socket = config.cri_socket_path();
    let mut serving_cri = false;
    if let Some(l) = cri_socket
        .as_deref()
        .and_then(|p| crate::cri::listener(p, inherited_cri))
    {
        handed.push(l.as_raw_fd());
        crate::cri::serve(l, engine.clone())?;
        serving_cri = true;
    }
    if let Some(listener) = metrics {
        crate::metrics::serve(listener, engine.clone());
    }
    // Two ways to stop: SIGTERM/SIGINT (drain for a bounded time, like
    // dockerd) and a takeover (drain until every request and attached
    // stream is done: they belong to users of the old process).
    let (why_tx, why_rx) = tokio::sync::oneshot::channel();
    let taken_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let taken_over_in_stop = taken_over.clone();
    let containers_in_stop = engine.containers.clone();
    let stop = async move {
        let signal = shutdown_signal();
        tokio::pin!(signal);
        let why = loop {
            let successor = async {
                match &handovers {
                    Some(h) => h.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut signal => break Stop::Signal,
                asked = successor => {
                    taken_over_in_stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    containers_in_stop
                        .another_berthd
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    // Waits still open here end with what the successor
                    // changes. The view they start from is taken before the
                    // successor has the socket: a removal it made before our
                    // first look would otherwise never be announced here.
                    if let Ok(before) = containers_in_stop.snapshot().await {
                        tokio::spawn(containers::monitor::announce_other_berthds_changes(
                            containers_in_stop.clone(),
                            before,
                        ));
                    }
                    match asked.hand(handed.clone()).await {
                        // Kept open until this process exits: its end of
                        // file tells the successor that we are gone.
                        Ok(conn) => drop(SUCCESSOR_LINK.set(conn)),
                        Err(e) => {
                            // The successor did not get the socket (it went
                            // away): we are still the one serving.
                            warn!(error = %e, "handing the API socket over failed; serving on");
                            taken_over_in_stop.store(false, std::sync::atomic::Ordering::Relaxed);
                            containers_in_stop
                                .another_berthd
                                .store(false, std::sync::atomic::Ordering::SeqCst);
                            continue;
                        }
                    }
                    // The successor accepts from now on; what we accepted
                    // has this long to get its request read before idle
                    // connections are closed (see listener::Switchable).
                    let _ = stop_accepting.send(true);
                    tokio::time::sleep(TAKEOVER_GRACE).await;
                    break Stop::Takeover;
                }
            }
        };
        let _ = why_tx.send(why);
    };
    let serving = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .into_future();
    tokio::pin!(serving);
    let drained = async {
        (&mut serving).await?;
        // Attached clients are not requests that graceful shutdown knows about.
        engine.containers.streams.wait_idle().await;
        Ok::<_, std::io::Error>(())
    };
    // The shutdown timeout as it is when the signal comes (a reload may
    // have changed it).
    let engine_in_drain = engine.clone();
    tokio::select! {
        r = drained => r?,
        waited = async {
            if let Ok(Stop::Signal) = why_rx.await {
                let secs = engine_in_drain.settings().shutdown_timeout;
                tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                secs
            } else {
                std::future::pending::<u64>().await
            }
        } => warn!("requests still open after {waited} s (shutdown-timeout); stopping anyway"),
    }
    if !taken_over.load(std::sync::atomic::Ordering::Relaxed) {
        // Networks without containers were only kept for speed; a stopped
        // berthd leaves the host without them (a successor keeps its own).
        engine.networks.drop_keepers(true).await;
        engine.networks.sweep_if_unused().await;
    }
    if let (false, true, Some(p)) = (
        taken_over.load(std::sync::atomic::Ordering::Relaxed),
        serving_cri,
        &cri_socket,
    ) {
        // A successor serves the same socket: only a berthd that stops
        // for good takes it away.
        let _ = std::fs::remove_file(p);
    }
    if let Some(p) = &config.pidfile {
        // A successor may have written its own pid there already.
        if std::fs::read_to_string(p).ok().as_deref()
            == Some(std::process::id().to_string().as_str())
        {
            let _ = std::fs::remove_file(p);
        }
    }
    info!("berthd stopped; containers keep running");
    Ok(())
}

enum Stop {
    Signal,
    Takeover,
}

/// After a takeover, how long connections accepted before it get to send
/// their first request before idle ones are closed. Clients write their
/// request right after connecting; a second is ample.
const TAKEOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

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
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
}

/// sd_notify's socket, when a service manager or `berthd upgrade` waits
/// for us to serve.
static NOTIFY_SOCKET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The handover connection to the berthd that took over from us.
static SUCCESSOR_LINK: std::sync::OnceLock<std::os::unix::net::UnixStream> =
    std::sync::OnceLock::new();
