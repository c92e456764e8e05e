//! Who answers the core's API: this process's [`Generation`], or, once a
//! successor took over, the successor, to which requests that reached us
//! are passed on.
//!
//! Every request holds the mode for reading while its handler runs, so a
//! handover (which takes it for writing) waits for the requests in
//! progress, and requests arriving meanwhile wait instead of failing. When
//! the handover is done they are forwarded over the same socket, which only
//! the successor still accepts from; when it failed they are served here by
//! a generation opened anew.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::{watch, OwnedRwLockWriteGuard, RwLock};
use tracing::{info, warn};

use crate::generation::{Generation, Setup};
use crate::Error;

pub struct Serving {
    mode: Arc<RwLock<Mode>>,
    /// The API socket's path, where a successor answers after a handover.
    address: PathBuf,
    /// Protocol versions the clients of this core used (bit n: `/vn/…`);
    /// a successor must serve all of them.
    versions_used: AtomicU32,
    stop_accepting: watch::Sender<bool>,
}

enum Mode {
    Local(Generation),
    HandedOver,
}

impl Serving {
    pub fn new(generation: Generation, address: PathBuf) -> Arc<Serving> {
        Arc::new(Serving {
            mode: Arc::new(RwLock::new(Mode::Local(generation))),
            address,
            versions_used: AtomicU32::new(0),
            stop_accepting: watch::channel(false).0,
        })
    }

    /// Versions a predecessor's clients used: they are this core's clients now.
    pub fn inherit_versions(&self, versions: &[u32]) {
        for v in versions {
            self.versions_used
                .fetch_or(1 << (v % 32), Ordering::Relaxed);
        }
    }

    /// Ends every event subscriber's stream (at shutdown).
    pub async fn close_event_streams(&self) {
        if let Mode::Local(generation) = &*self.mode.read().await {
            generation.events.close();
        }
    }

    /// Waits for deletions still cleaning up (at shutdown).
    pub async fn drain_deletes(&self) {
        if let Mode::Local(generation) = &*self.mode.read().await {
            generation.tasks.drain_deletes().await;
        }
    }

    /// The protocol versions named in request paths so far.
    pub fn versions_used(&self) -> Vec<u32> {
        let bits = self.versions_used.load(Ordering::Relaxed);
        (1..32).filter(|v| bits & (1 << v) != 0).collect()
    }

    fn note_version(&self, path: &str) {
        let version = path
            .strip_prefix("/v")
            .and_then(|rest| rest.split('/').next())
            .and_then(|v| v.parse::<u32>().ok());
        if let Some(v) = version.filter(|v| (1..32).contains(v)) {
            self.versions_used.fetch_or(1 << v, Ordering::Relaxed);
        }
    }

    /// Holds every request off, waits for those in progress, and gives the
    /// generation up (see [`Generation::retire`]).
    pub async fn freeze(self: &Arc<Self>) -> Frozen {
        let started = std::time::Instant::now();
        let guard = self.mode.clone().write_owned().await;
        info!(
            waited_ms = started.elapsed().as_secs_f64() * 1000.0,
            "requests in progress done; holding new ones"
        );
        let last_seq = match &*guard {
            Mode::Local(generation) => generation.retire().await,
            Mode::HandedOver => 0,
        };
        Frozen {
            guard,
            serving: self.clone(),
            last_seq,
        }
    }

    /// The API listener, which stops accepting once handed over.
    pub fn listener(&self, inner: tokio::net::UnixListener) -> Accepting {
        Accepting {
            inner,
            stopped: self.stop_accepting.subscribe(),
        }
    }
}

/// Requests held off while a successor takes over.
pub struct Frozen {
    guard: OwnedRwLockWriteGuard<Mode>,
    serving: Arc<Serving>,
    /// The last event of the log given up.
    pub last_seq: u64,
}

impl Frozen {
    /// The successor serves: stop accepting first, so that what is passed
    /// on can only reach it, then pass the held requests on.
    pub fn hand_over(mut self) {
        self.serving.stop_accepting.send_replace(true);
        *self.guard = Mode::HandedOver;
        info!("handed over to the new berth-core; passing held requests on");
    }

    /// The successor failed before serving: take everything back, as a
    /// core starting on this state directory would.
    pub async fn thaw(mut self, setup: &Setup) {
        loop {
            match Generation::open(setup).await {
                Ok(generation) => {
                    *self.guard = Mode::Local(generation);
                    info!("the takeover failed; serving again");
                    return;
                }
                // The successor may still be letting the lock go.
                Err(e) => {
                    warn!(error = %e, "taking the tasks back; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// The middleware in front of every route: the request runs against this
/// process's generation (given to handlers as an extension), or is passed
/// on to the successor.
pub async fn gate(State(serving): State<Arc<Serving>>, mut req: Request, next: Next) -> Response {
    serving.note_version(req.uri().path());
    let mode = serving.mode.read().await;
    match &*mode {
        Mode::Local(generation) => {
            req.extensions_mut().insert(generation.clone());
            // The guard lives until the handler returned: a handover waits.
            next.run(req).await
        }
        Mode::HandedOver => {
            drop(mode);
            if req.uri().path().ends_with("/events") {
                // Not proxied: it would keep this process alive forever.
                // The subscriber sees the stream end and comes back, to
                // the successor, with its cursor.
                return Response::new(Body::empty());
            }
            forward(&serving.address, req)
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
    }
}

async fn forward(address: &Path, req: Request) -> Result<Response, Error> {
    let unavailable = |e: &dyn std::fmt::Display| {
        Error::Unavailable(format!(
            "berth-core handed over and cannot reach its successor: {e}"
        ))
    };
    let stream = tokio::net::UnixStream::connect(address)
        .await
        .map_err(|e| unavailable(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unavailable(&e))?;
    tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(resp.map(Body::new))
}

/// The API listener as axum serves it; it stops accepting for good after a
/// handover, without touching the connections accepted before.
pub struct Accepting {
    inner: tokio::net::UnixListener,
    stopped: watch::Receiver<bool>,
}

impl axum::serve::Listener for Accepting {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if *self.stopped.borrow_and_update() {
                std::future::pending::<()>().await;
            }
            tokio::select! {
                r = self.inner.accept() => match r {
                    Ok(conn) => return conn,
                    Err(e) => {
                        warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                _ = self.stopped.changed() => {}
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
