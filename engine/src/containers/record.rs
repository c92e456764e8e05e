//! A container as the engine keeps it: Docker's Config and HostConfig as the
//! client sent them (merged with the image's defaults), plus its State.

use std::path::PathBuf;

use bollard_stubs::models::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};

use crate::store::ContainerRow;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    /// created, running, paused, restarting, removing, exited, dead
    pub status: String,
    pub running: bool,
    pub pid: u32,
    pub exit_code: i32,
    #[serde(default)]
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(default)]
    pub oom_killed: bool,
    /// Exited, and about to be started again by its restart policy.
    #[serde(default)]
    pub restarting: bool,
    /// How often the restart policy started it again.
    #[serde(default)]
    pub restart_count: u32,
    /// Stopped or killed by a user: `unless-stopped` does not bring it back.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Last known health (kept current by the core's health events).
    #[serde(default)]
    pub health: Option<berth_proto::HealthState>,
}

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl State {
    pub fn created() -> State {
        State {
            status: "created".into(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Container {
    pub id: String,
    /// Without Docker's leading slash.
    pub name: String,
    pub image_id: String,
    /// The image as the user named it.
    pub image_ref: String,
    pub created: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: State,
}

impl Container {
    pub fn from_row(row: ContainerRow) -> Container {
        Container {
            id: row.id,
            name: row.name,
            image_id: row.image_id,
            image_ref: row.image_ref,
            created: row.created,
            config: row.config,
            host_config: row.host_config,
            state: row.state,
        }
    }

    pub fn to_row(&self) -> ContainerRow {
        ContainerRow {
            id: self.id.clone(),
            name: self.name.clone(),
            image_id: self.image_id.clone(),
            image_ref: self.image_ref.clone(),
            created: self.created.clone(),
            config: self.config.clone(),
            host_config: self.host_config.clone(),
            state: self.state.clone(),
        }
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }

    pub fn auto_remove(&self) -> bool {
        self.host_config.auto_remove.unwrap_or(false)
    }

    pub fn is_running(&self) -> bool {
        self.state.running
    }

    /// Entrypoint followed by Cmd: what the container runs.
    pub fn process_args(&self) -> Vec<String> {
        let mut args = self.config.entrypoint.clone().unwrap_or_default();
        args.extend(self.config.cmd.clone().unwrap_or_default());
        args
    }

    /// The health check for the core, `None` when there is none (or NONE).
    pub fn health_check(&self) -> Option<berth_proto::HealthCheck> {
        const SECOND_NS: i64 = 1_000_000_000;
        let h = self.config.healthcheck.as_ref()?;
        let test = h.test.clone().unwrap_or_default();
        let argv = match test.first().map(String::as_str) {
            Some("CMD") => test[1..].to_vec(),
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")],
            _ => return None, // NONE, empty, or inherited and absent
        };
        if argv.is_empty() {
            return None;
        }
        let ms = |ns: Option<i64>, default_s: i64| {
            (ns.filter(|n| *n > 0).unwrap_or(default_s * SECOND_NS) / 1_000_000) as u64
        };
        Some(berth_proto::HealthCheck {
            test: argv,
            interval_ms: ms(h.interval, 30),
            timeout_ms: ms(h.timeout, 30),
            retries: h.retries.filter(|r| *r > 0).unwrap_or(3) as u32,
            start_period_ms: ms(h.start_period, 0),
        })
    }

    /// The restart policy for the core, `None` for "no".
    pub fn restart_policy(&self) -> Option<berth_proto::RestartPolicy> {
        use bollard_stubs::models::RestartPolicyNameEnum as N;
        let p = self.host_config.restart_policy.as_ref()?;
        match p.name? {
            N::ALWAYS => Some(berth_proto::RestartPolicy::Always),
            N::UNLESS_STOPPED => Some(berth_proto::RestartPolicy::UnlessStopped),
            N::ON_FAILURE => Some(berth_proto::RestartPolicy::OnFailure {
                max_retries: p.maximum_retry_count.unwrap_or(0).max(0) as u32,
            }),
            N::NO | N::EMPTY => None,
        }
    }

    /// (max size, files kept) of json-file rotation; checked at create.
    pub fn log_rotation(&self) -> (u64, u32) {
        crate::containers::io::log_opts::rotation(&self.log_driver(), &self.log_options())
            .unwrap_or((0, 1))
    }

    /// The log driver's options.
    pub fn log_options(&self) -> std::collections::HashMap<String, String> {
        self.host_config
            .log_config
            .as_ref()
            .and_then(|l| l.config.clone())
            .unwrap_or_default()
    }

    /// The attributes the `labels` and `env` log options name, and those
    /// whose names `labels-regex` and `env-regex` match, with their values
    /// (sorted by key, each once): what `docker logs --details` shows and
    /// the shipping drivers add to each message. The expressions were
    /// checked at create ([`crate::containers::io::log_opts::check`]).
    pub fn log_attributes(&self) -> Vec<(String, String)> {
        let opts = self.log_options();
        let named = |key: &str| -> Vec<String> {
            opts.get(key)
                .filter(|s| !s.is_empty())
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default()
        };
        let pattern = |key: &str| {
            opts.get(key)
                .filter(|s| !s.is_empty())
                .and_then(|p| regex::Regex::new(p).ok())
        };
        let mut attrs: std::collections::BTreeMap<String, String> = Default::default();
        let labels = self.config.labels.clone().unwrap_or_default();
        for key in named("labels") {
            if let Some(v) = labels.get(&key) {
                attrs.insert(key, v.clone());
            }
        }
        if let Some(re) = pattern("labels-regex") {
            for (k, v) in labels.iter().filter(|(k, _)| re.is_match(k)) {
                attrs.insert(k.clone(), v.clone());
            }
        }
        let env: Vec<(String, String)> = self
            .config
            .env
            .clone()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for key in named("env") {
            if let Some((_, v)) = env.iter().find(|(k, _)| *k == key) {
                attrs.insert(key, v.clone());
            }
        }
        if let Some(re) = pattern("env-regex") {
            for (k, v) in env.iter().filter(|(k, _)| re.is_match(k)) {
                attrs.insert(k.clone(), v.clone());
            }
        }
        attrs.into_iter().collect()
    }

    /// Where the shim writes the log: json-file's `<id>-json.log`, the
    /// local driver's `local-logs/container.log`, a shipping driver's
    /// dual-logging cache `container-cached.log` (Docker's places); none
    /// for the none driver or a disabled cache.
    pub fn log_file(&self, paths: &Paths) -> Option<PathBuf> {
        let driver = self.log_driver();
        match driver.as_str() {
            "none" => None,
            "json-file" => Some(paths.log(&self.id)),
            "local" => Some(paths.local_log()),
            _ if crate::containers::io::log_opts::keeps_cache(&driver, &self.log_options()) => {
                Some(paths.cached_log())
            }
            _ => None,
        }
    }

    /// The format of [`Self::log_file`]: json-file's own, else `local`.
    pub fn log_format(&self) -> berth_proto::shim::LogFormat {
        if self.log_driver() == "json-file" {
            berth_proto::shim::LogFormat::JsonFile
        } else {
            berth_proto::shim::LogFormat::Local
        }
    }

    pub fn log_driver(&self) -> String {
        self.host_config
            .log_config
            .as_ref()
            .and_then(|l| l.typ.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "json-file".into())
    }
}

/// Where a container's files live under the data-root.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(data_root: &std::path::Path, id: &str) -> Paths {
        Paths {
            dir: data_root.join("containers").join(id),
        }
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn log(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}-json.log"))
    }
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn local_log(&self) -> PathBuf {
        self.dir.join("local-logs").join("container.log")
    }
    /// The dual-logging cache of a driver that ships lines elsewhere.
    pub fn cached_log(&self) -> PathBuf {
        self.dir.join("container-cached.log")
    }
}
