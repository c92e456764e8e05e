//! The engine's only way to reach berth-core: HTTP/1.1 + JSON over the
//! core's unix socket (see berth-proto and api-spec/core.yaml).
//!
//! Every call opens its own connection, so a core that restarted between two
//! calls needs no reconnect logic here; the long-lived event stream is
//! followed (and re-established) by `containers::monitor`.

mod launcher;

pub use launcher::Launcher;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use berth_proto::{
    CreateTaskRequest, ErrorBody, ErrorCode, Event, Handshake, KillRequest, ResizeRequest,
    TaskInfo, UpdateTaskRequest,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::error::{Error, Result};

/// The namespace the Docker API's containers live in.
pub const NAMESPACE: &str = "berth";

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Nothing answers (or not properly): the core can be (re)started.
    #[error(transparent)]
    Unreachable(Error),
    /// A core answers but shares no protocol version with us: starting
    /// another would not help; this berthd must not run against it.
    #[error("{0}")]
    Incompatible(String),
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Error {
        match e {
            HandshakeError::Unreachable(e) => e,
            HandshakeError::Incompatible(m) => Error::Unavailable(m),
        }
    }
}

pub struct CoreClient {
    socket: PathBuf,
    /// Protocol versions this engine speaks (narrowed by --core-protocol).
    range: (u32, u32),
    /// The protocol version agreed in the last handshake.
    version: AtomicU32,
}

impl CoreClient {
    pub fn new(socket: PathBuf, max_version: Option<u32>) -> CoreClient {
        let max = max_version.unwrap_or(berth_proto::VERSION);
        let min = berth_proto::MIN_VERSION.min(max);
        CoreClient {
            socket,
            range: (min, max),
            version: AtomicU32::new(max),
        }
    }

    pub fn socket(&self) -> &PathBuf {
        &self.socket
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> Error {
        Error::Unavailable(format!(
            "berth-core is not reachable at {}: {e}",
            self.socket.display()
        ))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<hyper::Response<Incoming>> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.unavailable(e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unavailable(e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(method)
            .uri(format!("http://core{path}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(Error::internal)?;
        tokio::time::timeout(timeout, sender.send_request(req))
            .await
            .map_err(|_| self.unavailable("request timed out"))?
            .map_err(|e| self.unavailable(e))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        let resp = self
            .send(method, path, body, Duration::from_secs(90))
            .await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unavailable(e))?
            .to_bytes();
        if !status.is_success() {
            let err: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
                code: ErrorCode::from_http_status(status.as_u16()),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
            return Err(map_error(err));
        }
        let bytes = if bytes.is_empty() {
            Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("bad answer from berth-core: {e}")))
    }

    fn path(&self, rest: &str) -> String {
        format!(
            "/v{}/namespaces/{NAMESPACE}{rest}",
            self.version.load(Ordering::Relaxed)
        )
    }

    /// Agrees on a protocol version. Fails with [`HandshakeError::Incompatible`]
    /// (naming both sides' versions) when there is none in common.
    pub async fn handshake(&self) -> Result<Handshake, HandshakeError> {
        let h: Handshake = self
            .call(Method::GET, "/handshake", None)
            .await
            .map_err(HandshakeError::Unreachable)?;
        let ours = self.range;
        match berth_proto::negotiate(ours, (h.min_version, h.max_version)) {
            Some(v) => {
                self.version.store(v, Ordering::Relaxed);
                Ok(h)
            }
            None => Err(HandshakeError::Incompatible(format!(
                "berth-core {} speaks protocol versions {}..={}, this berthd speaks {}..={}",
                h.core_version, h.min_version, h.max_version, ours.0, ours.1
            ))),
        }
    }

    /// The protocol version agreed in the last handshake.
    pub fn version(&self) -> u32 {
        self.version.load(Ordering::Relaxed)
    }

    pub async fn create_task(&self, req: &CreateTaskRequest) -> Result<TaskInfo> {
        self.call(
            Method::POST,
            &self.path("/tasks"),
            Some(serde_json::to_vec(req).map_err(Error::internal)?),
        )
        .await
    }

    pub async fn start_task(&self, id: &str) -> Result<TaskInfo> {
        self.call(
            Method::POST,
            &self.path(&format!("/tasks/{id}/start")),
            None,
        )
        .await
    }

    pub async fn task(&self, id: &str) -> Result<TaskInfo> {
        self.call(Method::GET, &self.path(&format!("/tasks/{id}")), None)
            .await
    }

    pub async fn tasks(&self) -> Result<Vec<TaskInfo>> {
        self.call(Method::GET, &self.path("/tasks"), None).await
    }

    /// Signals a task; `stop` tells the core a user stopped it (no restart).
    pub async fn kill(&self, id: &str, signal: i32, all: bool, stop: bool) -> Result<()> {
        let body =
            serde_json::to_vec(&KillRequest { signal, all, stop }).map_err(Error::internal)?;
        self.call::<()>(
            Method::POST,
            &self.path(&format!("/tasks/{id}/kill")),
            Some(body),
        )
        .await
    }

    pub async fn resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let body = serde_json::to_vec(&ResizeRequest { height, width }).map_err(Error::internal)?;
        self.call::<()>(
            Method::POST,
            &self.path(&format!("/tasks/{id}/resize")),
            Some(body),
        )
        .await
    }

    /// Fails unless the agreed protocol has `what` (added in `version`).
    pub fn needs(&self, version: u32, what: &str) -> Result<()> {
        if self.version() < version {
            return Err(Error::NotImplemented(format!(
                "{what} needs core protocol {version}, but the running berth-core speaks {}; restart berth-core with this build",
                self.version()
            )));
        }
        Ok(())
    }

    /// Freezes (`true`) or thaws a task's processes (protocol 4).
    pub async fn set_paused(&self, id: &str, paused: bool) -> Result<TaskInfo> {
        self.needs(4, "pause")?;
        let verb = if paused { "pause" } else { "resume" };
        self.call(
            Method::POST,
            &self.path(&format!("/tasks/{id}/{verb}")),
            None,
        )
        .await
    }

    /// New limits and/or restart policy for a task (protocol 4).
    pub async fn update_task(&self, id: &str, req: &UpdateTaskRequest) -> Result<TaskInfo> {
        self.needs(4, "update")?;
        let body = serde_json::to_vec(req).map_err(Error::internal)?;
        self.call(
            Method::POST,
            &self.path(&format!("/tasks/{id}/update")),
            Some(body),
        )
        .await
    }

    pub async fn delete_task(&self, id: &str) -> Result<()> {
        self.call::<()>(Method::DELETE, &self.path(&format!("/tasks/{id}")), None)
            .await
    }

    /// Opens the event stream after `after`; lines arrive as the core writes them.
    pub async fn events(&self, after: u64) -> Result<EventStream> {
        let path = format!(
            "/v{}/events?after={after}",
            self.version.load(Ordering::Relaxed)
        );
        let resp = self
            .send(Method::GET, &path, None, Duration::from_secs(10))
            .await?;
        if !resp.status().is_success() {
            return Err(self.unavailable(format!("events: status {}", resp.status())));
        }
        Ok(EventStream {
            body: resp.into_body(),
            buf: Vec::new(),
        })
    }
}

/// Core error classes onto the engine's.
fn map_error(err: ErrorBody) -> Error {
    match err.code {
        ErrorCode::NotFound => Error::NotFound(err.message),
        ErrorCode::AlreadyExists | ErrorCode::FailedPrecondition => Error::Conflict(err.message),
        ErrorCode::InvalidArgument => Error::InvalidArgument(err.message),
        ErrorCode::Unavailable => Error::Unavailable(err.message),
        ErrorCode::Internal | ErrorCode::Unknown => Error::Internal(err.message),
    }
}

pub struct EventStream {
    body: Incoming,
    buf: Vec<u8>,
}

impl EventStream {
    /// The next event; `None` when the core closed the stream.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(
                    serde_json::from_slice(&line)
                        .map_err(|e| Error::Internal(format!("bad event from berth-core: {e}"))),
                );
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(_)) | None => return None,
            }
        }
    }
}
