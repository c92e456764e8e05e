//! SIGHUP, as dockerd takes it: the flags and the configuration file are
//! read again and what may change while running is applied (the log
//! level, insecure registries, Docker Hub's mirrors, how many layers move
//! at once); the rest waits for a restart. A reload is announced as a
//! `daemon` `reload` event; a file that does not read leaves everything as
//! it was, and says why in the log.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::Config;
use crate::Engine;

/// Changes the level of the logger installed by `init_logging`.
static LOG_FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_new(level).unwrap_or_else(|_| "info".into())
}

/// Logs to stderr at `level`, changeable by a reload.
pub fn init_logging(level: &str) {
    let (layer, handle) = reload::Layer::new(filter(level));
    tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only on a terminal: logs usually go to a file.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    let _ = LOG_FILTER.set(handle);
}

/// A list as dockerd's reload event prints one (Go's `%v`).
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Applies what may change of `config` and announces it.
pub fn apply(engine: &Engine, config: &Config) -> crate::error::Result<()> {
    engine.images.reload(config)?;
    if let Some(h) = LOG_FILTER.get() {
        let _ = h.reload(filter(&config.log_level));
    }
    let mirrors: Vec<String> = engine
        .images
        .registries()
        .mirrors()
        .iter()
        .map(|m| m.url.clone())
        .collect();
    let attributes: BTreeMap<String, String> = [
        ("debug", (config.log_level == "debug").to_string()),
        ("log-level", config.log_level.clone()),
        ("insecure-registries", go_list(&config.insecure_registries)),
        ("registry-mirrors", go_list(&mirrors)),
        (
            "max-concurrent-downloads",
            config.max_concurrent_downloads.to_string(),
        ),
        (
            "max-concurrent-uploads",
            config.max_concurrent_uploads.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    engine
        .events
        .emit("daemon", "reload", &engine.id, attributes);
    Ok(())
}

/// Reloads on every SIGHUP until berthd stops.
pub async fn on_hangup(engine: Arc<Engine>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler: no configuration reloads");
        return;
    };
    while hup.recv().await.is_some() {
        let result = crate::config_file::reread()
            .map_err(crate::error::Error::InvalidArgument)
            .and_then(|c| apply(&engine, &c));
        match result {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(e) => tracing::error!(error = %e, "configuration not reloaded"),
        }
    }
}
