//! SIGHUP, as dockerd takes it: the flags and the configuration file are
//! read again and what may change while running is applied (the log
//! level, insecure registries, Docker Hub's mirrors, how many layers move
//! at once, the daemon's labels, the shutdown timeout, `features` and the
//! runtimes containers may name);
//! the rest waits for a restart. A reload is announced as a
//! `daemon` `reload` event; a file that does not read leaves everything as
//! it was, and says why in the log.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::Config;
use crate::Engine;

/// The settings a reload may change that requests read as they come
/// ([`Engine::settings`]); replaced whole by a reload.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `docker info`'s Labels.
    pub labels: Vec<String>,
    /// How long a SIGTERM waits for open requests, in seconds.
    pub shutdown_timeout: u64,
    /// daemon.json's `features`.
    pub features: BTreeMap<String, bool>,
    /// Runtimes by name (`--add-runtime`, `runtimes`): their paths.
    pub runtimes: BTreeMap<String, String>,
}

/// `name=path` pairs as a map, refused in dockerd's words.
pub fn runtimes(given: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for r in given {
        let (name, path) = r
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| format!("invalid runtime {r:?}: use name=path"))?;
        // Berth's own names: a configured runtime may not take them
        // (dockerd reserves runc's).
        if crate::containers::BUILT_IN_RUNTIMES.contains(&name) {
            return Err(format!("runtime name '{name}' is reserved"));
        }
        out.insert(name.to_string(), path.to_string());
    }
    Ok(out)
}

impl Settings {
    pub fn from_config(config: &Config) -> Result<Settings, String> {
        Ok(Settings {
            labels: crate::config_file::labels(&config.labels)?,
            shutdown_timeout: config.shutdown_timeout,
            features: config.features.clone(),
            runtimes: runtimes(&config.runtimes)?,
        })
    }
}

/// A map as dockerd's reload event prints one (Go's `%v`: keys sorted).
fn go_map(map: &BTreeMap<String, bool>) -> String {
    let pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", pairs.join(" "))
}

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

/// A list as dockerd's reload event prints one: JSON.
fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Applies what may change of `config` and announces it.
pub fn apply(engine: &Engine, config: &Config) -> crate::error::Result<()> {
    // Everything that can fail first, so that a bad file changes nothing.
    let settings = Settings::from_config(config).map_err(crate::Error::InvalidArgument)?;
    engine.images.reload(config)?;
    engine.set_settings(settings.clone());
    engine.containers.set_runtimes(settings.runtimes.clone());
    if let Some(h) = LOG_FILTER.get() {
        let _ = h.reload(filter(&config.log_level));
    }
    let attributes: BTreeMap<String, String> = [
        ("debug", (config.log_level == "debug").to_string()),
        ("log-level", config.log_level.clone()),
        (
            "insecure-registries",
            json_list(&config.insecure_registries),
        ),
        // As the file gives them (`docker info` shows them normalized).
        ("registry-mirrors", json_list(&config.registry_mirrors)),
        (
            "max-concurrent-downloads",
            config.max_concurrent_downloads.to_string(),
        ),
        (
            "max-concurrent-uploads",
            config.max_concurrent_uploads.to_string(),
        ),
        ("labels", json_list(&settings.labels)),
        ("shutdown-timeout", settings.shutdown_timeout.to_string()),
        ("features", go_map(&settings.features)),
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
