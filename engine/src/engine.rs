//! The engine's shared state, built once at start-up and handed to the API.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use berth_proto::Handshake;

use crate::build::Builder;
use crate::config::Config;
use crate::containers::{Containers, Peers};
use crate::core_client::{CoreClient, Launcher};
use crate::error::Result;
use crate::events::Events;
use crate::images::Images;
use crate::networks::Networks;
use crate::store::Store;
use crate::volumes::Volumes;

pub struct Engine {
    pub config: Config,
    pub store: Store,
    pub images: Arc<Images>,
    pub containers: Arc<Containers>,
    pub networks: Arc<Networks>,
    pub volumes: Arc<Volumes>,
    pub events: Arc<Events>,
    pub builder: Arc<Builder>,
    /// BuildKit's API on `/grpc` and `/session`, on the same builder.
    pub buildkit: Arc<crate::buildkit::BuildKit>,
    pub core: Arc<CoreClient>,
    pub launcher: Arc<Launcher>,
    pub started: Instant,
    /// What the core said in the last handshake (runtimes, version).
    pub core_info: RwLock<Option<Handshake>>,
    /// A stable id for `docker info`'s ID field.
    pub id: String,
    /// What a SIGHUP may change (`reload`).
    settings: RwLock<Arc<crate::reload::Settings>>,
    /// The configuration the last reload applied (`None`: `config`'s).
    pub(crate) reloaded: std::sync::Mutex<Option<Config>>,
}

impl Engine {
    pub async fn open(config: Config) -> Result<Arc<Engine>> {
        // Phases timed for the log: a takeover's successor opens all this
        // while the berthd it replaces serves, on the same CPUs.
        let started = Instant::now();
        let ms = |since: Instant| since.elapsed().as_secs_f64() * 1000.0;
        std::fs::create_dir_all(&config.data_root)?;
        std::fs::create_dir_all(&config.exec_root)?;
        let store = Store::open(&config.data_root.join("berth.db")).await?;
        let store_ms = ms(started);
        let id = match store.meta("engine_id").await? {
            Some(id) => id,
            None => {
                let id = crate::util::random_id();
                store.set_meta("engine_id", &id).await?;
                id
            }
        };
        let events = Arc::new(Events::open(&config.data_root.join("events.jsonl"))?);
        let images = Arc::new(Images::new(store.clone(), &config, events.clone())?);
        // Whatever an earlier run left half-made (a pull cut short) goes now.
        let gc_started = Instant::now();
        let freed = images.gc().await?;
        let gc_ms = ms(gc_started);
        if freed > 0 {
            tracing::info!(bytes = freed, "removed unreferenced layers and blobs");
        }
        let core = Arc::new(CoreClient::new(
            config
                .core_socket()
                .map_err(crate::Error::InvalidArgument)?,
            config.core_protocol,
        ));
        let launcher = Arc::new(Launcher::new(&config)?);
        let networks = Arc::new(Networks::new(
            store.clone(),
            events.clone(),
            &config.exec_root,
            &config,
        )?);
        let networks_started = Instant::now();
        networks.init().await?;
        let networks_ms = ms(networks_started);
        tokio::spawn(networks.clone().run_sweeper());
        // Chains an earlier berthd left (it stopped before sweeping).
        networks.sweep_soon.notify_one();
        let default_log =
            crate::containers::io::log_opts::daemon_default(&config.log_driver, &config.log_opts)?;
        let volumes = Arc::new(Volumes::new(
            store.clone(),
            &config.data_root,
            events.clone(),
        ));
        let peers = Peers {
            store: store.clone(),
            images: images.clone(),
            core: core.clone(),
            networks: networks.clone(),
            volumes: volumes.clone(),
            events: events.clone(),
        };
        let containers = Arc::new(
            Containers::new(peers, config.data_root.clone())
                .with_default_log(default_log)
                .with_defaults(
                    crate::containers::defaults::Defaults::from_config(&config)
                        .map_err(crate::Error::InvalidArgument)?,
                ),
        );
        let builder = Arc::new(Builder::new(containers.clone(), &config.data_root)?);
        let settings =
            crate::reload::Settings::from_config(&config).map_err(crate::Error::InvalidArgument)?;
        let for_core = crate::reload::write_runtime_scripts(&config.data_root, &settings.runtimes)
            .map_err(crate::Error::Internal)?;
        containers.set_runtimes(for_core, &settings.default_runtime);
        let buildkit = crate::buildkit::BuildKit::new(builder.clone());
        tracing::info!(
            store_ms,
            gc_ms,
            networks_ms,
            took_ms = ms(started),
            "engine state opened"
        );
        Ok(Arc::new(Engine {
            config,
            store,
            images,
            containers,
            networks,
            volumes,
            events,
            builder,
            buildkit,
            core,
            launcher,
            started: Instant::now(),
            core_info: RwLock::new(None),
            id,
            settings: RwLock::new(Arc::new(settings)),
            reloaded: std::sync::Mutex::new(None),
        }))
    }

    /// The settings a reload may change, as they are now.
    pub fn settings(&self) -> Arc<crate::reload::Settings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_settings(&self, settings: crate::reload::Settings) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(settings);
    }

    /// Handshakes with the core (starting it if needed) and remembers its answer.
    pub async fn refresh_core_info(&self) -> Result<Handshake, crate::core_client::HandshakeError> {
        let h = self.launcher.ensure(&self.core).await?;
        *self.core_info.write().unwrap_or_else(|p| p.into_inner()) = Some(h.clone());
        self.containers.learn_core_default(&h.default_runtime);
        Ok(h)
    }

    pub fn cached_core_info(&self) -> Option<Handshake> {
        self.core_info
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
