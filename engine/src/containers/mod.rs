//! Containers: create, start, stop, kill, wait, remove, and the state kept
//! for each. Knows nothing of HTTP; the `api` module calls it.
//!
//! A container's process belongs to berth-core (a task of the same id in
//! the core's "berth" namespace). The engine learns about exits from the
//! core's event stream (`monitor`), so an exit that happened while the
//! engine was down is applied when it comes back.

pub mod defaults;
pub mod fs;
pub mod io;
pub mod lifecycle;
pub mod links;
pub mod memory;
pub mod monitor;
pub mod names;
pub mod observe;
pub mod oci;
pub mod pause;
pub mod prune;
pub mod record;
pub mod rename;
pub mod update;
pub mod view;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bollard_stubs::models::{ContainerConfig, HostConfig};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::core_client::CoreClient;
use crate::error::{Error, Result};
use crate::images::Images;
use crate::store::Store;
use record::{Container, State};

/// What waiters and followers hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Started(String),
    Exited(String),
    /// Gone from the store. `exit_code` is how it ended when the notifier
    /// knows and the waiter may not: during a takeover's overlap the other
    /// berthd may apply an exit and the removal that follows (`--rm`)
    /// before this one reads the row. `None`: not known here (a removal
    /// seen in the store only); the waiter's own view then stands.
    Removed {
        id: String,
        exit_code: Option<i64>,
    },
}

impl Change {
    pub fn id(&self) -> &str {
        match self {
            Change::Started(id) | Change::Exited(id) | Change::Removed { id, .. } => id,
        }
    }
}

/// The services containers use, built beside them by the engine.
pub struct Peers {
    pub store: Store,
    pub images: Arc<Images>,
    pub core: Arc<CoreClient>,
    pub networks: Arc<crate::networks::Networks>,
    pub volumes: Arc<crate::volumes::Volumes>,
    pub events: Arc<crate::events::Events>,
}

pub struct Containers {
    pub(crate) store: Store,
    pub(crate) images: Arc<Images>,
    pub(crate) core: Arc<CoreClient>,
    pub(crate) data_root: PathBuf,
    /// `--runtime` of this berthd; empty means the core's default.
    default_runtime: std::sync::RwLock<String>,
    /// The core's default runtime as of its last handshake: recorded in
    /// HostConfig.Runtime at create (dockerd records the name it will use).
    pub(crate) core_default_runtime: std::sync::RwLock<String>,
    /// Runtimes configured by name (`--add-runtime`): name → path. A
    /// container records the name; the core is given the path.
    runtimes: std::sync::RwLock<Arc<std::collections::BTreeMap<String, String>>>,
    /// One lock per container so that start and exit handling never interleave.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) changes: broadcast::Sender<Change>,
    pub(crate) pending: io::attach::Pending,
    /// Attach sessions being served, which a draining berthd waits for.
    pub streams: io::attach::ActiveStreams,
    pub events: Arc<crate::events::Events>,
    pub(crate) execs: io::exec::Execs,
    pub volumes: Arc<crate::volumes::Volumes>,
    pub networks: Arc<crate::networks::Networks>,
    /// berthd's --log-driver and --log-opt.
    pub(crate) default_log: bollard_stubs::models::HostConfigLogConfig,
    /// berthd's other container defaults (shm size, ulimits, DNS search
    /// and options).
    pub(crate) defaults: defaults::Defaults,
    /// What listings read instead of the store.
    memory: memory::Memory,
    /// Set while another berthd serves the same containers (during a
    /// takeover, the one taken over, until it exits; in that one, from the
    /// handover on): its container locks are not ours, so a start it is in
    /// the middle of would look like a network left behind (see
    /// `monitor::remove_leftovers`).
    pub(crate) another_berthd: std::sync::atomic::AtomicBool,
    /// Generated names that creates in progress hold.
    name_picks: names::Picks,
}

impl Containers {
    pub fn new(peers: Peers, data_root: PathBuf) -> Containers {
        let (changes, _) = broadcast::channel(256);
        Containers {
            volumes: peers.volumes,
            networks: peers.networks,
            store: peers.store,
            core: peers.core,
            data_root,
            default_runtime: Default::default(),
            core_default_runtime: Default::default(),
            runtimes: Default::default(),
            locks: Mutex::new(HashMap::new()),
            changes,
            pending: io::attach::Pending::default(),
            streams: io::attach::ActiveStreams::default(),
            events: peers.events,
            execs: io::exec::Execs::default(),
            images: peers.images,
            default_log: io::log_opts::daemon_default("json-file", &[]).unwrap_or_default(),
            defaults: defaults::Defaults::default(),
            memory: memory::Memory::default(),
            another_berthd: Default::default(),
            name_picks: Default::default(),
        }
    }

    /// Containers that name no logging driver get this one.
    pub fn with_default_log(mut self, log: bollard_stubs::models::HostConfigLogConfig) -> Self {
        self.default_log = log;
        self
    }

    /// Containers get these where they do not say.
    pub fn with_defaults(mut self, defaults: defaults::Defaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// A container event with Docker's attributes (name, image, labels).
    pub(crate) fn event(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        let mut attrs: std::collections::BTreeMap<String, String> = c
            .config
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        attrs.insert("name".into(), c.name.clone());
        attrs.insert("image".into(), c.image_ref.clone());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.emit("container", action, &c.id, attrs);
    }

    pub(crate) fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    pub(crate) fn forget_lock(&self, id: &str) {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub fn paths(&self, id: &str) -> record::Paths {
        record::Paths::new(&self.data_root, id)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub(crate) fn notify(&self, change: Change) {
        let _ = self.changes.send(change);
    }

    /// Finds a container by full id, name, or unique id prefix.
    pub async fn lookup(&self, name_or_id: &str) -> Result<Container> {
        let c = self.find(name_or_id).await?;
        // The request's span (api::request_span) names the container by its
        // id, whatever name the client used: `container_id` in every line.
        tracing::Span::current().record("container_id", c.id.as_str());
        Ok(c)
    }

    async fn find(&self, name_or_id: &str) -> Result<Container> {
        if name_or_id.is_empty() {
            return Err(Error::no_such_container(name_or_id));
        }
        if let Some(row) = self.store.container(name_or_id).await? {
            return Ok(Container::from_row(row));
        }
        let name = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        if let Some(id) = self.store.container_id_by_name(name).await? {
            if let Some(row) = self.store.container(&id).await? {
                return Ok(Container::from_row(row));
            }
        }
        if let Some(child) = self.link_target(name).await? {
            return Ok(child);
        }
        if name_or_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            let ids = self.store.container_ids_with_prefix(name_or_id).await?;
            if ids.len() > 1 {
                return Err(Error::InvalidArgument(format!(
                    "multiple IDs found with provided prefix: {name_or_id}"
                )));
            }
            if let Some(id) = ids.first() {
                if let Some(row) = self.store.container(id).await? {
                    return Ok(Container::from_row(row));
                }
            }
        }
        Err(Error::no_such_container(name_or_id))
    }

    /// Stores a container's HostConfig as it now is.
    pub(crate) async fn save_host_config(&self, c: &Container) -> Result<()> {
        self.store
            .update_container_host_config(&c.id, &c.host_config)
            .await
    }

    pub(crate) async fn save_state(&self, c: &Container) -> Result<()> {
        self.store.update_container_state(&c.id, &c.state).await
    }

    /// `POST /containers/create`: returns the new id and warnings.
    pub async fn create(
        &self,
        name: Option<&str>,
        req: CreateRequest,
    ) -> Result<(String, Vec<String>)> {
        let CreateRequest {
            mut config,
            mut host_config,
            host_config_given,
            networking,
            mac_address,
        } = req;
        let image_ref = config
            .image
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::InvalidArgument("config.Image must be set".into()))?;
        let image = self.images.find(&image_ref).await?.ok_or_else(|| {
            // The CLI pulls and retries on exactly this 404.
            Error::no_such_image(&crate::images::reference::as_asked(&image_ref))
        })?;
        let image_config: Value = image.config_value();
        merge_image_defaults(&mut config, &image_config["config"]);
        if config.entrypoint.as_ref().is_none_or(|e| e.is_empty())
            && config.cmd.as_ref().is_none_or(|c| c.is_empty())
        {
            return Err(Error::InvalidArgument("no command specified".into()));
        }
        io::log_opts::apply_default(&mut host_config, &self.default_log);
        let driver = host_config
            .log_config
            .as_ref()
            .and_then(|l| l.typ.clone())
            .unwrap_or_default();
        if !driver.is_empty() && !io::log_opts::SUPPORTED.contains(&driver.as_str()) {
            return Err(Error::InvalidArgument(
                if io::log_opts::DOCKER_DRIVERS.contains(&driver.as_str()) {
                    format!(
                        "logging driver {driver} is not supported; use {}",
                        io::log_opts::SUPPORTED.join(", ")
                    )
                } else {
                    // What dockerd says of a name that is no driver of its own.
                    format!(
                        "error looking up logging plugin {driver}: plugin \"{driver}\" not found"
                    )
                },
            ));
        }
        io::log_opts::check(
            &driver,
            &host_config
                .log_config
                .as_ref()
                .and_then(|l| l.config.clone())
                .unwrap_or_default(),
        )?;
        if let Some(p) = &host_config.restart_policy {
            use bollard_stubs::models::RestartPolicyNameEnum as N;
            let retries = p.maximum_retry_count.unwrap_or(0);
            if retries < 0 {
                return Err(Error::InvalidArgument(
                    "invalid restart policy: maximum retry count cannot be negative".into(),
                ));
            }
            if retries > 0 && p.name != Some(N::ON_FAILURE) {
                return Err(Error::InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'".into()));
            }
            if host_config.auto_remove.unwrap_or(false)
                && !matches!(p.name, None | Some(N::NO) | Some(N::EMPTY))
            {
                return Err(Error::InvalidArgument(
                    "can't create 'AutoRemove' container with restart policy".into(),
                ));
            }
        }
        self.check_runtime(host_config.runtime.as_deref().unwrap_or(""))?;
        disable_labels_when_shared(&mut host_config);
        // dockerd names the default runtime at create only when the body
        // has a HostConfig; without one it is chosen at start, unrecorded.
        if host_config.runtime.as_deref().unwrap_or("").is_empty() && host_config_given {
            // Unknown while the core is away: then it is named at start.
            host_config.runtime = Some(self.default_runtime_name()).filter(|r| !r.is_empty());
        }
        let (network_mode, mut endpoints) = self
            .networks
            .plan_endpoints(
                host_config.network_mode.as_deref().unwrap_or(""),
                networking.as_ref(),
                name.unwrap_or(""),
            )
            .await
            // A 404 from create makes the docker CLI pull the image and
            // retry; an unknown network is the request's fault.
            .map_err(|e| match e {
                Error::NotFound(m) => Error::InvalidArgument(m),
                other => other,
            })?;
        if let Some(other) = network_mode.strip_prefix("container:") {
            check_container_network_mode(&config, &host_config)?;
            self.lookup(other).await.map_err(|e| match e {
                Error::NotFound(m) => Error::InvalidArgument(m),
                other => other,
            })?;
        }
        // dockerd records "default" when the client named no network (and
        // readers such as compose tell the two apart); mode_of maps it back.
        let asked = host_config.network_mode.as_deref().unwrap_or("");
        host_config.network_mode = Some(if asked.is_empty() || asked == "default" {
            "default".to_string()
        } else {
            network_mode
        });

        let warnings = oci::resources::check(&mut host_config)?;
        oci::security::check(&mut host_config, self.defaults.shm_size)?;
        if !self.defaults.ulimits.is_empty() {
            host_config.ulimits = Some(self.defaults.ulimits_for(&host_config));
        }
        if !host_config.privileged.unwrap_or(false) {
            // dockerd records the paths it will mask in HostConfig.
            let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            host_config
                .masked_paths
                .get_or_insert_with(|| owned(oci::spec::MASKED_PATHS));
            host_config
                .readonly_paths
                .get_or_insert_with(|| owned(oci::spec::READONLY_PATHS));
        }
        let image_volumes: Vec<String> = image_config["config"]["Volumes"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let mount_plan = fs::mounts::plan(
            &config,
            &host_config,
            &image_volumes,
            &self.volumes_from(&host_config).await?,
        )?;

        let id = crate::util::random_id();
        if config.hostname.as_deref().unwrap_or("").is_empty() {
            config.hostname = Some(if host_config.network_mode.as_deref() == Some("host") {
                // Docker gives a host-network container the host's name.
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| id[..12].to_string())
            } else {
                id[..12].to_string()
            });
        }
        // A generated name stays held (`_pick`) until the row is stored.
        let (name, _pick) = match name.filter(|n| !n.is_empty()) {
            Some(n) => (names::validate(n)?, None),
            None => {
                let pick = self.free_generated_name().await?;
                (pick.name.clone(), Some(pick))
            }
        };
        self.plan_links(&name, &mut host_config, &mut endpoints)
            .await?;
        if let Some(mac) = mac_address {
            // The container-level MacAddress (deprecated in API 1.44, still
            // honoured) is its first endpoint's unless that names its own.
            if let Some((_, e)) = endpoints.first_mut() {
                if e.mac.is_none() {
                    e.mac = Some(mac);
                    e.mac_from_config = true;
                }
            }
        }
        let c = Container {
            id: id.clone(),
            name: name.clone(),
            image_id: image.id.clone(),
            image_ref,
            created: crate::util::now_rfc3339(),
            config,
            host_config,
            state: State::created(),
        };
        std::fs::create_dir_all(self.paths(&id).dir)?;
        if let Err(e) = self.store.insert_container(&c.to_row()).await {
            let _ = std::fs::remove_dir_all(self.paths(&id).dir);
            if e.to_string().contains("UNIQUE") {
                let holder = self
                    .store
                    .container_id_by_name(&name)
                    .await?
                    .unwrap_or_default();
                return Err(Error::Conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            return Err(e);
        }
        let attached = match self.attach_mounts(&id, mount_plan).await {
            Ok(()) => self.networks.attach_endpoints(&id, &endpoints).await,
            Err(e) => Err(e),
        };
        if let Err(e) = attached {
            let _ = self.store.delete_container(&id).await;
            let _ = std::fs::remove_dir_all(self.paths(&id).dir);
            return Err(e);
        }
        tracing::info!(container_id = %id, name = %name, "container created");
        self.event(&c, "create", &[]);
        Ok((id, warnings))
    }

    /// The runtime a container gets when it names none: berthd's
    /// `--default-runtime`, else the core's default ("" while that is
    /// unknown).
    pub(crate) fn default_runtime_name(&self) -> String {
        let configured = self
            .default_runtime
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !configured.is_empty() {
            return configured;
        }
        self.core_default_runtime
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The runtimes configured by name, each with the path the core runs
    /// (a wrapper script for one with arguments), and the default runtime
    /// ("": the core's); a reload replaces them.
    pub fn set_runtimes(
        &self,
        runtimes: std::collections::BTreeMap<String, String>,
        default_runtime: &str,
    ) {
        *self.runtimes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(runtimes);
        *self
            .default_runtime
            .write()
            .unwrap_or_else(|p| p.into_inner()) = default_runtime.to_string();
    }

    /// What the core is told to run `name` with: a configured runtime's
    /// path, else the name itself (crun, runc or a path, which the core
    /// resolves).
    pub(crate) fn runtime_for_core(&self, name: &str) -> String {
        self.runtimes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    /// Refuses at create what no start could run, as dockerd does: a
    /// runtime neither configured, nor one the core knows by name, nor a
    /// path.
    fn check_runtime(&self, name: &str) -> Result<()> {
        let known = name.is_empty()
            || name.starts_with('/')
            || BUILT_IN_RUNTIMES.contains(&name)
            || self
                .runtimes
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(name);
        if known {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "Unknown runtime specified {name}"
            )))
        }
    }

    /// Remembers the core's default runtime (from a handshake), the name
    /// create records when neither the request nor berthd names one.
    pub fn learn_core_default(&self, runtime: &str) {
        *self
            .core_default_runtime
            .write()
            .unwrap_or_else(|p| p.into_inner()) = runtime.to_string();
    }

    /// A generated name no container has and no other create holds.
    async fn free_generated_name(&self) -> Result<names::Pick<'_>> {
        for attempt in 0..10 {
            let Some(pick) = self.name_picks.take(names::generate(attempt)) else {
                continue;
            };
            if self.store.container_id_by_name(&pick.name).await?.is_none() {
                return Ok(pick);
            }
        }
        let fallback = format!("berth_{}", &crate::util::random_id()[..12]);
        self.name_picks
            .take(fallback)
            .ok_or_else(|| Error::Internal("no free container name".into()))
    }

    /// `docker info`'s (containers, running, paused, stopped), counted from
    /// the listings' snapshot rather than by decoding every row again.
    pub async fn count_by_state(&self) -> Result<(usize, usize, usize, usize)> {
        let snapshot = self.snapshot().await?;
        let (mut running, mut paused, mut stopped) = (0, 0, 0);
        for c in snapshot.containers() {
            match c.state.status.as_str() {
                "paused" => paused += 1,
                _ if c.state.running => running += 1,
                _ => stopped += 1,
            }
        }
        Ok((snapshot.entries.len(), running, paused, stopped))
    }
}

/// The body of `POST /containers/create`, decoded as Docker decodes it
/// (unknown fields ignored, wrong types refused), its environment checked.
/// Pure, so that it can be fuzzed (engine/fuzz) together with
/// `oci::resources::check` and `oci::security::check`, which come after the image
/// lookup in `create`.
/// dockerd records `label=disable` (no SELinux labels) for a privileged
/// container and for one sharing the host's IPC or PID namespace, unless
/// the client set a label option itself; it does so with or without
/// SELinux on the host, and clients see it in inspect.
fn disable_labels_when_shared(host_config: &mut HostConfig) {
    let labelled = host_config
        .security_opt
        .iter()
        .flatten()
        .any(|o| o.split(['=', ':']).next() == Some("label"));
    let shares_host = host_config.privileged.unwrap_or(false)
        || host_config.ipc_mode.as_deref() == Some("host")
        || host_config.pid_mode.as_deref() == Some("host");
    if shares_host && !labelled {
        host_config
            .security_opt
            .get_or_insert_with(Vec::new)
            .push("label=disable".into());
    }
}

/// `POST /containers/create`'s body, decoded once (by
/// `api::create_body::decode`; the build's RUN step builds one itself).
#[derive(Debug, Default)]
pub struct CreateRequest {
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    /// The body gave a host config (under `HostConfig` or at its top
    /// level): dockerd then records the default runtime at create.
    pub host_config_given: bool,
    pub networking: Option<bollard_stubs::models::NetworkingConfig>,
    /// The container-level MacAddress (deprecated in API 1.44).
    pub mac_address: Option<String>,
}

/// Fills what the client left out from the image's config, as Docker does:
/// env merged by key, labels merged, Cmd/Entrypoint/WorkingDir/User/
/// StopSignal taken from the image when not given (an Entrypoint given
/// without Cmd drops the image's Cmd).
fn merge_image_defaults(config: &mut ContainerConfig, image: &Value) {
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array().map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
    };
    let mut env = strings(&image["Env"]).unwrap_or_default();
    for e in config.env.clone().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or_default().to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    config.env = Some(env);
    let user_entrypoint = config.entrypoint.as_ref().is_some_and(|e| !e.is_empty());
    if !user_entrypoint {
        config.entrypoint = strings(&image["Entrypoint"]);
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            config.cmd = strings(&image["Cmd"]);
        }
    }
    if config.working_dir.as_deref().unwrap_or("").is_empty() {
        config.working_dir = image["WorkingDir"].as_str().map(str::to_string);
    }
    if config.user.as_deref().unwrap_or("").is_empty() {
        config.user = image["User"].as_str().map(str::to_string);
    }
    if config.stop_signal.as_deref().unwrap_or("").is_empty() {
        config.stop_signal = image["StopSignal"].as_str().map(str::to_string);
    }
    if config
        .healthcheck
        .as_ref()
        .is_none_or(|h| h.test.as_ref().is_none_or(|t| t.is_empty()))
        && image["Healthcheck"].is_object()
    {
        config.healthcheck = serde_json::from_value(image["Healthcheck"].clone()).ok();
    }
    let mut labels: HashMap<String, String> = image["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    labels.extend(config.labels.clone().unwrap_or_default());
    config.labels = Some(labels);
    if let Some(ports) = image["ExposedPorts"].as_object() {
        let mut merged = config.exposed_ports.clone().unwrap_or_default();
        for k in ports.keys() {
            if !merged.contains(k) {
                merged.push(k.clone());
            }
        }
        config.exposed_ports = Some(merged);
    }
}

impl Containers {
    /// `docker network connect`: under the container's lock, so that it
    /// does not race its start or stop.
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        cfg: &bollard_stubs::models::EndpointSettings,
    ) -> Result<()> {
        let id = self.lookup(container).await?.id;
        let lock = self.lock_of(&id);
        let _guard = lock.lock().await;
        let c = self.lookup(&id).await?;
        self.networks.connect(&c, network, cfg).await?;
        if c.is_running() {
            // Docker starts its embedded DNS server when a running container
            // joins a user-defined network and points resolv.conf at it; so
            // a container from the default bridge learns its new network's
            // names. (A disconnect leaves the file alone, as in Docker.)
            let nameservers = self.networks.nameservers_of(&id).await?;
            if !nameservers.is_empty() {
                let hc = &c.host_config;
                let dns = self.networks.dns_of(&c);
                fs::rootfs::write_resolv_conf(
                    &self.paths(&id),
                    &fs::rootfs::EtcFiles {
                        nameservers: &nameservers,
                        dns: &dns,
                        dns_search: self.defaults.dns_search_for(hc),
                        dns_options: self.defaults.dns_options_for(hc),
                        ..Default::default()
                    },
                )?;
            }
        }
        Ok(())
    }

    /// `docker network disconnect`
    pub async fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        let id = self.lookup(container).await?.id;
        let lock = self.lock_of(&id);
        let _guard = lock.lock().await;
        let c = self.lookup(&id).await?;
        self.networks.disconnect(&c, network).await
    }
}

/// What a container that joins another one's network namespace cannot
/// have of its own (Docker refuses the same combinations, same words).
fn check_container_network_mode(config: &ContainerConfig, hc: &HostConfig) -> Result<()> {
    let conflict = |what: &str| {
        Err(Error::InvalidArgument(format!(
            "conflicting options: {what}"
        )))
    };
    if config.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
        return conflict("hostname and the network mode");
    }
    if hc.dns.as_ref().is_some_and(|d| !d.is_empty()) {
        return conflict("dns and the network mode");
    }
    if hc.extra_hosts.as_ref().is_some_and(|h| !h.is_empty()) {
        return conflict("custom host-to-IP mapping and the network mode");
    }
    if hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
        || hc.publish_all_ports.unwrap_or(false)
    {
        return conflict("port publishing and the container type network mode");
    }
    Ok(())
}

/// The runtimes berth-core knows by name (its probe's candidates).
pub const BUILT_IN_RUNTIMES: &[&str] = &["crun", "runc"];
