//! SIGHUP, as dockerd takes it: the flags and the configuration file are
//! read again and what may change while running is applied (the log
//! level, insecure registries, Docker Hub's mirrors, how many layers move
//! at once, the daemon's labels, the shutdown timeout, `features`, the
//! runtimes containers may name and the default one);
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
    /// Runtimes by name (`--add-runtime`, `runtimes`).
    pub runtimes: BTreeMap<String, Runtime>,
    /// `--default-runtime` ("": the core's).
    pub default_runtime: String,
}

/// A runtime configured by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtime {
    pub path: String,
    /// daemon.json's `runtimeArgs`: given to it before each command.
    pub args: Vec<String>,
}

/// `name=path` pairs (and the file's arguments by name) as a map, refused
/// in dockerd's words.
pub fn runtimes(
    given: &[String],
    args: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, Runtime>, String> {
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
        out.insert(
            name.to_string(),
            Runtime {
                path: path.to_string(),
                args: args.get(name).cloned().unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

/// Writes, as dockerd does, a script `<data-root>/runtimes/<name>` for each
/// runtime with arguments (`#!/bin/sh`, then the path, the arguments and
/// `$@`, unquoted as dockerd writes them): the core runs a runtime as a
/// path with its own global flags, and the script puts the arguments
/// before them. The directory is made anew beside the old one and renamed
/// into place, so a start never sees half of it. Returns the path the core
/// is given for each runtime.
pub fn write_runtime_scripts(
    data_root: &std::path::Path,
    runtimes: &BTreeMap<String, Runtime>,
) -> Result<BTreeMap<String, String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = data_root.join("runtimes");
    let fresh = data_root.join("runtimes.new");
    let old = data_root.join("runtimes-old");
    let failed = |what: &std::path::Path, e: std::io::Error| {
        format!(
            "failed to generate runtime scripts in {}: {e}",
            what.display()
        )
    };
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_dir_all(&old);
    std::fs::create_dir_all(&fresh).map_err(|e| failed(&fresh, e))?;
    let mut for_core = BTreeMap::new();
    for (name, rt) in runtimes {
        if rt.args.is_empty() {
            for_core.insert(name.clone(), rt.path.clone());
            continue;
        }
        let script = fresh.join(name);
        let text = format!("#!/bin/sh\n{} {} $@\n", rt.path, rt.args.join(" "));
        std::fs::write(&script, text).map_err(|e| failed(&script, e))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| failed(&script, e))?;
        for_core.insert(name.clone(), dir.join(name).display().to_string());
    }
    if dir.exists() {
        std::fs::rename(&dir, &old).map_err(|e| failed(&dir, e))?;
    }
    std::fs::rename(&fresh, &dir).map_err(|e| failed(&dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(for_core)
}

impl Settings {
    pub fn from_config(config: &Config) -> Result<Settings, String> {
        Ok(Settings {
            labels: crate::config_file::labels(&config.labels)?,
            shutdown_timeout: config.shutdown_timeout,
            features: config.features.clone(),
            runtimes: runtimes(&config.runtimes, &config.runtime_args)?,
            default_runtime: config.runtime.clone().unwrap_or_default(),
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

/// `new` with, as dockerd 20.10 reloads, the current value of each of
/// these keys that the file no longer names: `labels`, `debug` and
/// `log-level`, `insecure-registries`, `registry-mirrors`,
/// `shutdown-timeout`, `runtimes` and `default-runtime` (the others,
/// `max-concurrent-*` and `features`, go back to their defaults).
fn with_kept(current: &Config, mut new: Config) -> Config {
    let named = |key: &str| new.file_keys.contains(key);
    if !named("labels") {
        new.labels = current.labels.clone();
    }
    if !named("debug") && !named("log-level") {
        new.log_level = current.log_level.clone();
    }
    if !named("insecure-registries") {
        new.insecure_registries = current.insecure_registries.clone();
    }
    if !named("registry-mirrors") {
        new.registry_mirrors = current.registry_mirrors.clone();
    }
    if !named("shutdown-timeout") {
        new.shutdown_timeout = current.shutdown_timeout;
    }
    if !named("runtimes") {
        new.runtimes = current.runtimes.clone();
        new.runtime_args = current.runtime_args.clone();
    }
    if !named("default-runtime") {
        new.runtime = current.runtime.clone();
    }
    new
}

/// Applies what may change of `config` and announces it.
pub fn apply(engine: &Engine, config: &Config) -> crate::error::Result<()> {
    let mut reloaded = engine.reloaded.lock().unwrap_or_else(|p| p.into_inner());
    let current = reloaded.clone().unwrap_or_else(|| engine.config.clone());
    let before = attributes(engine, &current, &engine.settings());
    let config = &with_kept(&current, config.clone());
    // Everything that can fail first, so that a bad file changes nothing.
    let settings = Settings::from_config(config).map_err(crate::Error::InvalidArgument)?;
    if !settings.default_runtime.is_empty()
        && !settings.default_runtime.starts_with('/')
        && !crate::containers::BUILT_IN_RUNTIMES.contains(&settings.default_runtime.as_str())
        && !settings.runtimes.contains_key(&settings.default_runtime)
    {
        return Err(crate::Error::InvalidArgument(format!(
            "Unknown runtime specified {}",
            settings.default_runtime
        )));
    }
    engine.images.reload(config)?;
    let for_core = write_runtime_scripts(&engine.config.data_root, &settings.runtimes)
        .map_err(crate::Error::Internal)?;
    engine.set_settings(settings.clone());
    engine
        .containers
        .set_runtimes(for_core, &settings.default_runtime);
    if let Some(h) = LOG_FILTER.get() {
        let _ = h.reload(filter(&config.log_level));
    }
    let attributes = attributes(engine, config, &settings);
    // What changed, for the log (the event carries every value).
    for (key, now) in &attributes {
        let was = before.get(key).map_or("", String::as_str);
        if was != now {
            tracing::info!(key = %key, from = %was, to = %now, "reloaded setting changed");
        }
    }
    engine
        .events
        .emit("daemon", "reload", &engine.id, attributes);
    *reloaded = Some(config.clone());
    Ok(())
}

/// The reload event's attributes, as dockerd names them, for `config`
/// and `settings`.
fn attributes(engine: &Engine, config: &Config, settings: &Settings) -> BTreeMap<String, String> {
    [
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
        ("default-runtime", default_runtime_named(engine, settings)),
        ("runtimes", runtimes_listed(engine, settings)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The default runtime's name: the configured one, else the core's.
fn default_runtime_named(engine: &Engine, settings: &Settings) -> String {
    if !settings.default_runtime.is_empty() {
        return settings.default_runtime.clone();
    }
    engine
        .cached_core_info()
        .map(|h| h.default_runtime)
        .unwrap_or_default()
}

/// Runtimes as dockerd's reload event lists them: `name:path`, sorted,
/// space-separated (the core's built-in ones and the configured ones).
fn runtimes_listed(engine: &Engine, settings: &Settings) -> String {
    let mut all: BTreeMap<String, String> = engine
        .cached_core_info()
        .map(|h| h.runtimes.into_iter().map(|r| (r.name, r.path)).collect())
        .unwrap_or_default();
    for (name, rt) in &settings.runtimes {
        all.insert(name.clone(), rt.path.clone());
    }
    let pairs: Vec<String> = all.iter().map(|(n, p)| format!("{n}:{p}")).collect();
    pairs.join(" ")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// dockerd's script for a runtime with arguments; none for one
    /// without; a second write replaces the first.
    #[test]
    fn runtime_scripts_as_dockerd_writes_them() {
        let root = std::env::temp_dir().join(format!("berth-rt-scripts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let args = BTreeMap::from([("dbg".to_string(), vec!["--debug".to_string()])]);
        let given = [
            "dbg=/usr/sbin/runc".to_string(),
            "plain=/opt/rt".to_string(),
        ];
        let for_core = write_runtime_scripts(&root, &runtimes(&given, &args).unwrap()).unwrap();
        let script = root.join("runtimes/dbg");
        assert_eq!(for_core["dbg"], script.display().to_string());
        assert_eq!(for_core["plain"], "/opt/rt");
        assert_eq!(
            std::fs::read_to_string(&script).unwrap(),
            "#!/bin/sh\n/usr/sbin/runc --debug $@\n"
        );
        write_runtime_scripts(&root, &runtimes(&given[1..], &args).unwrap()).unwrap();
        assert!(!script.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
