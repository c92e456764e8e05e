//! BuildKit's front door: what buildx (and so `docker build` since Docker
//! 23, and `docker compose build`) speaks to a daemon with the `docker`
//! driver, served by Berth's own Dockerfile engine (`crate::build`).
//!
//! - `POST /grpc` upgrades to `h2c` and carries gRPC *to* the engine:
//!   `moby.buildkit.v1.Control` (`control.rs`: Solve, Status, workers,
//!   info, disk usage, prune) and the gateway `LLBBridge` (`gateway.rs`),
//!   through which buildx's client-side build function asks for the
//!   `dockerfile.v0` frontend and returns its result.
//! - `POST /session` upgrades to `h2c` and carries gRPC *from* the engine
//!   to the caller's session services (`session.rs`): the context and
//!   Dockerfile are fetched with fsutil's DiffCopy (`filesync.rs`), local
//!   and tar exports go back the same way.
//!
//! One build is a *solve*, named by the client's ref: Control.Solve
//! names the session and the exporters; Status follows it (`status.rs`);
//! the gateway's Solve runs the Dockerfile (`frontend.rs`) and Return
//! hands its result to the exporters (`export.rs`).

pub mod build_api;
pub mod control;
pub mod export;
pub mod filesync;
pub mod frontend;
pub mod gateway;
pub mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard_buildkit_proto::moby::buildkit::v1::control_server::ControlServer;
use bollard_buildkit_proto::moby::buildkit::v1::frontend::llb_bridge_server::LlbBridgeServer;
use bollard_buildkit_proto::moby::buildkit::v1::frontend::ReturnRequest;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use crate::build::Builder;
use crate::error::{Error, Result};
use crate::store::ImageRow;

/// The BuildKit version Berth's answers claim: the API level of the
/// protocol files it was written against.
pub const BUILDKIT_VERSION: &str = "v0.13.0-berth";

/// How long a finished solve's status stays for a late Status call.
const KEEP_FINISHED: Duration = Duration::from_secs(60);

/// How long the gateway's calls wait for Control.Solve to name the
/// session; a solve that no Control.Solve claims by then is dropped.
const SESSION_NAMED_WITHIN: Duration = Duration::from_secs(30);

/// The value of a watch once it is set (the sender lives as long as the
/// solve that holds it, so the wait only ends with a value).
async fn first<T: Clone>(tx: &watch::Sender<Option<T>>) -> T {
    let mut rx = tx.subscribe();
    let value = match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone(),
        Err(_) => None,
    };
    match value {
        Some(v) => v,
        None => std::future::pending().await,
    }
}

pub struct BuildKit {
    pub(crate) builder: Arc<Builder>,
    pub sessions: session::Sessions,
    solves: Mutex<HashMap<String, Arc<Solve>>>,
}

/// One build, by the client's ref. Control.Solve, Status and the
/// gateway's calls each may come first.
pub struct Solve {
    pub reference: String,
    pub status: Arc<crate::build::status::Status>,
    /// The session Control.Solve named, once it has.
    session: watch::Sender<Option<String>>,
    /// Results of the gateway's solves, by the ref ids handed out.
    results: Mutex<HashMap<String, ImageRow>>,
    /// The client's result, once LLBBridge.Return has delivered it (which
    /// may be before Control.Solve arrives: buildx sends both at once).
    returned: watch::Sender<Option<ReturnRequest>>,
    /// What Control.Solve was granted (`--allow network.host` …).
    entitlements: Mutex<Vec<String>>,
}

impl Solve {
    /// The session id, waiting until Control.Solve has named it.
    pub async fn session_id(&self) -> Result<String> {
        tokio::time::timeout(SESSION_NAMED_WITHIN, first(&self.session))
            .await
            .map_err(|_| Error::InvalidArgument(format!("no solve {} in progress", self.reference)))
    }

    /// The result the client's build function returned.
    pub async fn returned(&self) -> ReturnRequest {
        first(&self.returned).await
    }

    pub fn entitlements(&self) -> Vec<String> {
        self.entitlements
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn result(&self, id: &str) -> Option<ImageRow> {
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
}

impl BuildKit {
    pub fn new(builder: Arc<Builder>) -> Arc<BuildKit> {
        Arc::new(BuildKit {
            builder,
            sessions: session::Sessions::default(),
            solves: Mutex::new(HashMap::new()),
        })
    }

    /// The solve `reference`, made on first mention. A Status or gateway
    /// call can name a build whose Control.Solve never comes (the client
    /// died in between): such a solve is finished once
    /// `SESSION_NAMED_WITHIN` has passed without one.
    pub fn solve(self: &Arc<Self>, reference: &str) -> Arc<Solve> {
        let mut all = self.solves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = all.get(reference) {
            return s.clone();
        }
        let solve = Arc::new(Solve {
            reference: reference.to_string(),
            status: crate::build::status::Status::new(reference),
            session: watch::channel(None).0,
            results: Mutex::new(HashMap::new()),
            returned: watch::channel(None).0,
            entitlements: Mutex::new(Vec::new()),
        });
        all.insert(reference.to_string(), solve.clone());
        let (me, unclaimed) = (self.clone(), solve.clone());
        tokio::spawn(async move {
            if tokio::time::timeout(SESSION_NAMED_WITHIN, first(&unclaimed.session))
                .await
                .is_err()
            {
                tracing::debug!(reference = %unclaimed.reference, "no Control.Solve came for this build");
                me.finished(&unclaimed);
            }
        });
        solve
    }

    /// The solve has ended: its status stream ends, and it is forgotten
    /// a while later.
    fn finished(self: &Arc<Self>, solve: &Arc<Solve>) {
        solve.status.finish();
        let me = self.clone();
        let reference = solve.reference.clone();
        tokio::spawn(async move {
            tokio::time::sleep(KEEP_FINISHED).await;
            me.solves
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&reference);
        });
    }

    /// Serves Control and LLBBridge on an upgraded `/grpc` connection
    /// until the caller closes it.
    pub async fn serve_grpc<I>(self: Arc<Self>, io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let routes = tonic::service::Routes::new(
            ControlServer::new(control::Control(self.clone())).max_decoding_message_size(64 << 20),
        )
        .add_service(
            LlbBridgeServer::new(gateway::Gateway(self.clone()))
                .max_decoding_message_size(64 << 20),
        );
        let service = hyper_util::service::TowerToHyperService::new(routes);
        if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await
        {
            tracing::debug!(error = %e, "BuildKit connection ended");
        }
    }
}

/// The worker Berth is: the host's platform and labels. No
/// `…worker.snapshotter` label: buildx reads it as "containerd image
/// store" and would then ask for OCI exports and multi-platform builds.
pub fn worker() -> bollard_buildkit_proto::moby::buildkit::v1::types::WorkerRecord {
    use bollard_buildkit_proto::moby::buildkit::v1::types::{BuildkitVersion, WorkerRecord};
    use bollard_buildkit_proto::pb::Platform;
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let labels = [
        ("org.mobyproject.buildkit.worker.executor", "oci"),
        ("org.mobyproject.buildkit.worker.network", "host"),
        ("org.mobyproject.buildkit.worker.hostname", host.as_str()),
        ("org.berth.builder", "berth"),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    WorkerRecord {
        id: host,
        labels,
        platforms: vec![Platform {
            architecture: crate::images::go_arch().to_string(),
            os: "linux".into(),
            ..Default::default()
        }],
        buildkit_version: Some(BuildkitVersion {
            package: "github.com/moby/buildkit".into(),
            version: BUILDKIT_VERSION.into(),
            revision: env!("CARGO_PKG_VERSION").into(),
        }),
        ..Default::default()
    }
}
