//! Containers as the Docker API shows them: `docker ps` summaries and
//! `docker inspect` documents.

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerInspectResponse, ContainerState, ContainerSummary, ContainerSummaryHostConfig,
    ContainerSummaryNetworkSettings, DriverData, Health, HealthcheckResult,
};

use crate::containers::memory::{Listed, Look};
use crate::containers::record::{Container, ZERO_TIME};
use crate::containers::Containers;
use crate::error::{Error, Result};
use crate::filters::containers::{ContainerFacts, ContainerFilter};
use crate::networks::settings::NetworkSettings;
use crate::util::{human_duration, parse_rfc3339, unix_now};

/// "Up 5 minutes", "Exited (0) 2 seconds ago", "Created".
pub fn status_text(c: &Container) -> String {
    let since = |t: &str| parse_rfc3339(t).map(|(s, _)| unix_now() - s).unwrap_or(0);
    match c.state.status.as_str() {
        "running" => {
            let health = match c.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)",
                Some("healthy") => " (healthy)",
                Some("unhealthy") => " (unhealthy)",
                _ => "",
            };
            format!("Up {}{health}", human_duration(since(&c.state.started_at)))
        }
        "paused" => format!("Up {} (Paused)", human_duration(since(&c.state.started_at))),
        "exited" if c.state.finished_at != ZERO_TIME => format!(
            "Exited ({}) {} ago",
            c.state.exit_code,
            human_duration(since(&c.state.finished_at))
        ),
        "exited" => format!("Exited ({})", c.state.exit_code),
        "restarting" => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            human_duration(since(&c.state.finished_at))
        ),
        "created" => "Created".into(),
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        other => other.to_string(),
    }
}

/// ps's Command as dockerd writes it: arguments with a space in single
/// quotes, nothing escaped (it is for reading, not for a shell).
fn command_text(c: &Container) -> String {
    c.process_args()
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Containers {
    /// The health of a container: the core's current view while it runs
    /// (streak and log change with every check), else the last one stored.
    async fn live_health(&self, c: &Container) -> Option<berth_proto::HealthState> {
        c.state.health.as_ref()?;
        if c.is_running() {
            if let Ok(task) = self.core.task(&c.id).await {
                if task.pid == c.state.pid && task.health.is_some() {
                    return task.health;
                }
            }
        }
        c.state.health.clone()
    }

    /// `GET /containers/json`
    pub async fn list(
        &self,
        all: bool,
        limit: Option<usize>,
        filters: &ContainerFilter,
    ) -> Result<Vec<Listed>> {
        // before= and since= name containers; theirs is the creation time
        // the others are compared with.
        let created_of = |name: String| async move {
            let c = self.lookup(&name).await?;
            Ok::<_, Error>(parse_rfc3339(&c.created).unwrap_or((0, 0)))
        };
        let before = match filters.before.clone() {
            Some(b) => Some(created_of(b).await?),
            None => None,
        };
        let since = match filters.since.clone() {
            Some(s) => Some(created_of(s).await?),
            None => None,
        };
        // Images named in ancestor= filters, as ids.
        let mut ancestors = Vec::new();
        for a in &filters.ancestor {
            if let Some(img) = self.images.find(a).await? {
                ancestors.push(img.id);
            } else {
                ancestors.push(a.clone());
            }
        }
        // As in Docker, -n/--last N counts stopped containers too.
        let all = all || filters.names_stopped() || limit.is_some_and(|l| l > 0);
        let snapshot = self.snapshot().await?;
        let tags = &snapshot.tags;
        let mut out = Vec::new();
        let mut link_names = crate::containers::links::names_by_child(snapshot.containers());
        for entry in &snapshot.entries {
            let c = &entry.container;
            let created = parse_rfc3339(&c.created).unwrap_or((0, 0));
            // Docker lists stopped containers when before/since ask for them.
            if !all && !c.is_running() && before.is_none() && since.is_none() {
                continue;
            }
            if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
                continue;
            }
            let mounts = &entry.mounts;
            let volumes = &filters.volume;
            if !volumes.is_empty()
                && !mounts.iter().any(|m| {
                    volumes
                        .iter()
                        .any(|v| *v == m.destination || (!m.source.is_empty() && *v == m.source))
                })
            {
                continue;
            }
            let health = c
                .state
                .health
                .as_ref()
                .map(|h| h.status.as_str())
                .unwrap_or("none");
            let no_labels = HashMap::new();
            let facts = ContainerFacts {
                id: &c.id,
                name: &c.name,
                status: &c.state.status,
                exit_code: c.state.exit_code,
                health,
                labels: c.config.labels.as_ref().unwrap_or(&no_labels),
            };
            if !filters.matches(&facts) {
                continue;
            }
            if !ancestors.is_empty()
                && !ancestors
                    .iter()
                    .any(|a| *a == c.image_id || *a == c.image_ref)
            {
                continue;
            }
            // Show the image as the user named it while that name still
            // points at the container's image, else the image id.
            let named = crate::images::reference::Reference::parse(&c.image_ref)
                .ok()
                .map(|r| r.with_default_tag().normalized())
                .is_some_and(|n| tags.iter().any(|(t, id)| *t == n && *id == c.image_id));
            let image = if named {
                c.image_ref.clone()
            } else {
                c.image_id.clone()
            };
            let networking = &entry.networking;
            let networks = &filters.network;
            if !networks.is_empty() && !networks.iter().any(|w| networking.on_network(w)) {
                continue;
            }
            // Its own name and the names its links give it, sorted as
            // dockerd lists them.
            let mut names = link_names.remove(&c.name).unwrap_or_default();
            names.push(format!("/{}", c.name));
            names.sort();
            out.push(Listed {
                entry: entry.clone(),
                look: Look {
                    image,
                    names,
                    status: status_text(c),
                },
            });
            if limit.is_some_and(|l| l > 0 && out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    /// The `docker ps` document of a listed container.
    pub fn summary(&self, listed: &Listed) -> ContainerSummary {
        let Listed { entry, look } = listed;
        let c = &entry.container;
        ContainerSummary {
            id: Some(c.id.clone()),
            names: Some(look.names.clone()),
            image: Some(look.image.clone()),
            image_id: Some(c.image_id.clone()),
            command: Some(command_text(c)),
            created: Some(parse_rfc3339(&c.created).map(|t| t.0).unwrap_or(0)),
            ports: Some(entry.networking.ports.clone()),
            labels: Some(c.config.labels.clone().unwrap_or_default()),
            state: serde_json::from_value(serde_json::Value::String(c.state.status.clone())).ok(),
            status: Some(look.status.clone()),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: c.host_config.network_mode.clone(),
                annotations: None,
            }),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(entry.networking.summary_networks()),
            }),
            mounts: Some(
                entry
                    .mounts
                    .iter()
                    .map(|m| {
                        crate::containers::fs::mounts::document(m, |n| self.volumes.data_path(n))
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// `GET /containers/{id}/json`
    pub async fn inspect(&self, name: &str) -> Result<Inspected> {
        let c = self.lookup(name).await?;
        let paths = self.paths(&c.id);
        let args = c.process_args();
        let image = self.store.image(&c.image_id).await?;
        let lower = image
            .map(|i| {
                i.chains
                    .iter()
                    .rev()
                    .map(|ch| self.images.snapshot_fs(ch).display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default();
        let graph = DriverData {
            name: "overlayfs".into(),
            data: HashMap::from([
                ("LowerDir".to_string(), lower),
                ("UpperDir".to_string(), paths.upper().display().to_string()),
                ("WorkDir".to_string(), paths.work().display().to_string()),
                (
                    "MergedDir".to_string(),
                    paths.rootfs().display().to_string(),
                ),
            ]),
        };
        // Docker names the file for json-file only.
        let log_path = if c.log_driver() == "json-file" {
            paths.log(&c.id).display().to_string()
        } else {
            String::new()
        };
        let doc = ContainerInspectResponse {
            id: Some(c.id.clone()),
            created: Some(c.created.clone()),
            path: Some(args.first().cloned().unwrap_or_default()),
            args: Some(args.iter().skip(1).cloned().collect()),
            state: Some(ContainerState {
                status: serde_json::from_value(serde_json::Value::String(c.state.status.clone()))
                    .ok(),
                running: Some(c.state.running),
                paused: Some(c.state.status == "paused"),
                restarting: Some(c.state.restarting),
                oom_killed: Some(c.state.oom_killed),
                dead: Some(c.state.status == "dead"),
                pid: Some(c.state.pid as i64),
                exit_code: Some(c.state.exit_code as i64),
                error: Some(c.state.error.clone()),
                started_at: Some(c.state.started_at.clone()),
                finished_at: Some(c.state.finished_at.clone()),
                health: self.live_health(&c).await.map(|h| Health {
                    status: serde_json::from_value(serde_json::Value::String(h.status.clone()))
                        .ok(),
                    failing_streak: Some(h.failing_streak as i64),
                    log: Some(
                        h.log
                            .iter()
                            .map(|r| HealthcheckResult {
                                start: Some(r.start.clone()),
                                end: Some(r.end.clone()),
                                exit_code: Some(r.exit_code as i64),
                                output: Some(r.output.clone()),
                            })
                            .collect(),
                    ),
                }),
            }),
            image: Some(c.image_id.clone()),
            resolv_conf_path: Some(paths.file("resolv.conf").display().to_string()),
            hostname_path: Some(paths.file("hostname").display().to_string()),
            hosts_path: Some(paths.file("hosts").display().to_string()),
            log_path: Some(log_path),
            name: Some(format!("/{}", c.name)),
            restart_count: Some(c.state.restart_count as i64),
            driver: Some("overlayfs".into()),
            platform: Some("linux".into()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            exec_ids: None,
            host_config: Some(c.host_config.clone()),
            graph_driver: Some(graph),
            mounts: Some(
                self.store
                    .container_mounts(&c.id)
                    .await?
                    .iter()
                    .map(|m| {
                        crate::containers::fs::mounts::document(m, |n| self.volumes.data_path(n))
                    })
                    .collect(),
            ),
            config: Some(c.config.clone()),
            ..Default::default()
        };
        Ok(Inspected {
            doc,
            network_settings: self.networks.networking(&c).await?.settings,
            // Config.MacAddress (shown below API 1.44): the address asked
            // for the first network.
            config_mac: self.networks.requested_mac(&c.id).await?,
        })
    }
}

/// `GET /containers/{id}/json`: the typed document, and what API 1.50
/// still carries that bollard's model no longer has (`api/` puts them in).
pub struct Inspected {
    pub doc: ContainerInspectResponse,
    /// NetworkSettings with its top-level addresses (IPAddress, Gateway…).
    pub network_settings: NetworkSettings,
    pub config_mac: Option<String>,
}
