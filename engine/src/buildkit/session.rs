//! `POST /session`: the client's side of a build. The caller upgrades the
//! connection to `h2c` and then *serves* gRPC on it (file sync of the
//! context and Dockerfile, secrets, SSH agents, registry auth, the
//! targets of local and tar exports); the engine is the gRPC client.
//! Sessions are found by the UUID the caller sent in
//! `X-Docker-Expose-Session-Uuid`, which a Solve names.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use crate::error::{Error, Result};

/// How long a Solve waits for the session it names to connect: buildx
/// dials it at the same time as it sends the Solve.
const SESSION_WAIT: Duration = Duration::from_secs(30);

/// A connected session: a gRPC channel to the caller's services.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    channel: H2Channel,
    /// The gRPC methods the caller serves (`/moby.filesync.v1.FileSync/DiffCopy`…),
    /// lower-cased, from `X-Docker-Expose-Session-Grpc-Method`.
    methods: std::sync::Arc<HashSet<String>>,
}

impl Session {
    pub fn channel(&self) -> H2Channel {
        self.channel.clone()
    }

    pub fn serves(&self, method: &str) -> bool {
        self.methods.contains(&method.to_ascii_lowercase())
    }
}

#[derive(Default)]
pub struct Sessions {
    /// Bumped whenever a session comes or goes, so waiters look again.
    changed: watch::Sender<u64>,
    live: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Runs a session on an upgraded connection until the caller closes it.
    pub async fn serve<I>(&self, io: I, id: String, methods: Vec<String>) -> Result<()>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(|e| Error::Internal(format!("session {id}: {e}")))?;
        let session = Session {
            id: id.clone(),
            channel: H2Channel(send),
            methods: std::sync::Arc::new(methods.iter().map(|m| m.to_ascii_lowercase()).collect()),
        };
        {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if live.contains_key(&id) {
                return Err(Error::Internal(format!("session {id} already exists")));
            }
            live.insert(id.clone(), session);
        }
        self.changed.send_modify(|n| *n += 1);
        tracing::debug!(session = %id, "build session connected");
        if let Err(e) = conn.await {
            tracing::debug!(session = %id, error = %e, "build session ended");
        }
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.changed.send_modify(|n| *n += 1);
        Ok(())
    }

    /// The session `id`, waiting a while for it to connect.
    pub async fn get(&self, id: &str) -> Result<Session> {
        if id.is_empty() {
            return Err(Error::Internal("no session given".into()));
        }
        let mut rx = self.changed.subscribe();
        let found = || {
            self.live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
                .cloned()
        };
        let wait = async {
            // Looked at now and after every connect or disconnect.
            rx.wait_for(|_| found().is_some()).await.ok()?;
            found()
        };
        match tokio::time::timeout(SESSION_WAIT, wait).await {
            Ok(Some(s)) => Ok(s),
            _ => Err(Error::Internal(format!(
                "no active session for {id}: context deadline exceeded"
            ))),
        }
    }
}

/// The HTTP/2 side of a session as a tower service, which tonic's
/// generated clients take. (tonic's own `Channel` dials connections; this
/// one already exists.)
#[derive(Clone)]
pub struct H2Channel(SendRequest<tonic::body::Body>);

type H2Future = Pin<
    Box<
        dyn Future<Output = Result<axum::http::Response<hyper::body::Incoming>, hyper::Error>>
            + Send,
    >,
>;

impl tower::Service<axum::http::Request<tonic::body::Body>> for H2Channel {
    type Response = axum::http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = H2Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// The origin requests on a session carry (`:authority`); the caller's
/// server does not look at it.
pub fn origin() -> axum::http::Uri {
    axum::http::Uri::from_static("http://session")
}
