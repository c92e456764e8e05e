//! Attaching clients to a container's live stdio through its shim's attach
//! socket (protocol in `berth_proto::attach`).
//!
//! An attach that arrives before start (as `docker run` sends it) waits in
//! [`Pending`]; `start` connects every waiting client to the shim after the
//! process was created and before it runs, so no output is missed.

use std::collections::HashMap;
use std::sync::Mutex;

use berth_proto::attach::{parse_header, AttachRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tracing::debug;

use crate::containers::record::Container;
use crate::containers::Containers;
use crate::error::{Error, Result};

type Waiter = (AttachRequest, oneshot::Sender<UnixStream>);

/// Counts attach sessions in progress.
#[derive(Default)]
pub struct ActiveStreams {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

pub struct StreamGuard<'a>(&'a ActiveStreams);

impl ActiveStreams {
    pub fn enter(&self) -> StreamGuard<'_> {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        StreamGuard(self)
    }

    /// Resolves once no attach session is in progress.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.0.idle.notify_waiters();
        }
    }
}

#[derive(Default)]
pub struct Pending {
    waiting: Mutex<HashMap<String, Vec<Waiter>>>,
}

impl Pending {
    fn register(&self, id: &str, req: AttachRequest) -> oneshot::Receiver<UnixStream> {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .push((req, tx));
        rx
    }

    /// Connects every waiting client of `id` to the shim at `socket`.
    pub async fn connect_all(&self, id: &str, socket: &str) {
        let waiters = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .unwrap_or_default();
        for (req, tx) in waiters {
            if tx.is_closed() {
                continue;
            }
            match connect(socket, req).await {
                Ok(conn) => {
                    let _ = tx.send(conn);
                }
                Err(e) => debug!(container_id = %id, error = %e, "connecting a waiting attach"),
            }
        }
    }

    /// Ends the waits of a container that goes away.
    pub fn drop_all(&self, id: &str) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

pub(crate) async fn connect(socket: &str, req: AttachRequest) -> std::io::Result<UnixStream> {
    let mut conn = UnixStream::connect(socket).await?;
    conn.write_all(req.to_line().as_bytes()).await?;
    Ok(conn)
}

impl Containers {
    /// Checks an attach before the connection is upgraded, so that errors
    /// still go out as HTTP statuses.
    pub async fn prepare_attach(&self, name: &str) -> Result<Container> {
        let c = self.lookup(name).await?;
        if !c.is_running() && c.state.status != "created" && c.state.status != "exited" {
            return Err(Error::Conflict(format!(
                "You cannot attach to a {} container",
                c.state.status
            )));
        }
        Ok(c)
    }

    /// Serves an upgraded attach connection until the container's output
    /// ends; `raw`: never multiplexed, even without a TTY (WebSockets).
    pub async fn run_attach<IO>(
        &self,
        c: Container,
        req: AttachRequest,
        detach: Option<DetachKeys>,
        raw: bool,
        io: IO,
    ) where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let _active = self.streams.enter();
        self.event(&c, "attach", &[]);
        let conn = if c.is_running() {
            self.connect_running(&c.id, req).await
        } else {
            let rx = self.pending.register(&c.id, req);
            // It may have started between our look and the registration.
            match self.lookup(&c.id).await {
                Ok(now) if now.is_running() => self.connect_running(&c.id, req).await,
                Ok(_) => rx.await.ok(),
                Err(_) => None,
            }
        };
        let Some(conn) = conn else {
            let mut io = io;
            let _ = io.shutdown().await;
            return;
        };
        // Only a terminal's input is scanned for the detach keys (Docker's rule).
        let detach = detach.filter(|_| c.tty() && req.stdin);
        // Docker's rule for the end of a client's input: it closes the
        // container's stdin when the container asked for StdinOnce (and has
        // no terminal); otherwise it ends the session, and the client's
        // `docker attach` returns while the container runs on.
        let stdin_once = c.config.stdin_once.unwrap_or(false);
        let ends_session =
            req.stdin && c.config.open_stdin.unwrap_or(false) && (c.tty() || !stdin_once);
        pump(conn, io, c.tty() || raw, detach, ends_session).await;
    }

    /// The output of a container about to start (a build's RUN step): the
    /// shim's attach connection once `start` has created the process.
    pub(crate) fn attach_output(&self, id: &str) -> oneshot::Receiver<UnixStream> {
        self.pending.register(
            id,
            AttachRequest {
                stdin: false,
                stdout: true,
                stderr: true,
            },
        )
    }

    async fn connect_running(&self, id: &str, req: AttachRequest) -> Option<UnixStream> {
        let task = self.core.task(id).await.ok()?;
        if task.attach_socket.is_empty() {
            return None;
        }
        connect(&task.attach_socket, req).await.ok()
    }
}

/// Copies shim frames to the client (unframed with a TTY) and the client's
/// bytes to the shim's stdin, until the shim closes its side.
pub(crate) async fn pump<IO>(
    conn: UnixStream,
    io: IO,
    tty: bool,
    detach: Option<DetachKeys>,
    input_ends_session: bool,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    pump_with(
        conn,
        io,
        tty,
        detach,
        input_ends_session,
        std::future::ready(()),
    )
    .await
}

/// [`pump`], but the client's stream is closed only once `before_close`
/// is done (an exec's client reads the exit code right after).
pub(crate) async fn pump_then<IO>(
    conn: UnixStream,
    io: IO,
    tty: bool,
    detach: Option<DetachKeys>,
    before_close: impl std::future::Future<Output = ()> + Send,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    pump_with(conn, io, tty, detach, false, before_close).await
}

/// The pump itself; with `input_ends_session`, the end of the client's
/// input ends the session too (the client's stream is closed).
async fn pump_with<IO>(
    conn: UnixStream,
    io: IO,
    tty: bool,
    detach: Option<DetachKeys>,
    input_ends_session: bool,
    before_close: impl std::future::Future<Output = ()> + Send,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut shim_r, mut shim_w) = conn.into_split();
    let (mut client_r, mut client_w) = tokio::io::split(io);
    let to_client = async move {
        let mut header = [0u8; 8];
        let mut payload = Vec::new();
        loop {
            if shim_r.read_exact(&mut header).await.is_err() {
                break;
            }
            let (_, len) = parse_header(&header);
            payload.resize(len, 0);
            if shim_r.read_exact(&mut payload).await.is_err() {
                break;
            }
            let written = if tty {
                client_w.write_all(&payload).await
            } else {
                match client_w.write_all(&header).await {
                    Ok(()) => client_w.write_all(&payload).await,
                    Err(e) => Err(e),
                }
            };
            if written.is_err() || client_w.flush().await.is_err() {
                break;
            }
        }
        before_close.await;
        let _ = client_w.shutdown().await;
    };
    // Returns true when the client typed the detach sequence.
    let from_client = async move {
        let detached = match detach {
            None => {
                let _ = tokio::io::copy(&mut client_r, &mut shim_w).await;
                false
            }
            Some(mut keys) => {
                let mut buf = vec![0u8; 8192];
                let mut out = Vec::with_capacity(8192);
                loop {
                    let n = match client_r.read(&mut buf).await {
                        Ok(0) | Err(_) => break false,
                        Ok(n) => n,
                    };
                    out.clear();
                    let hit = keys.feed(&buf[..n], &mut out);
                    if shim_w.write_all(&out).await.is_err() {
                        break false;
                    }
                    if hit {
                        break true;
                    }
                }
            }
        };
        if !detached {
            // The client closed its input: tell the shim (it closes the
            // container's stdin when the container asked for StdinOnce).
            let _ = shim_w.shutdown().await;
        }
        detached
    };
    let mut to_client = Box::pin(to_client);
    let mut from_client = Box::pin(from_client);
    let mut input_done = false;
    loop {
        tokio::select! {
            _ = &mut to_client => break,
            detached = &mut from_client, if !input_done => {
                if detached {
                    // Both connections close; the container runs on.
                    tracing::debug!("client detached");
                    break;
                }
                if input_ends_session {
                    tracing::debug!("client input ended the attach session");
                    break;
                }
                input_done = true;
            }
        }
    }
}

/// Docker's detach sequence, `ctrl-p,ctrl-q` unless the client names
/// another ("ctrl-x,y"). Only terminals detach, as in Docker.
pub struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachKeys {
    pub fn parse(spec: &str) -> Result<DetachKeys> {
        let spec = if spec.is_empty() {
            "ctrl-p,ctrl-q"
        } else {
            spec
        };
        let bad = || Error::InvalidArgument(format!("Invalid detach keys ({spec}) provided"));
        let mut keys = Vec::new();
        for key in spec.split(',') {
            let k = key.to_ascii_lowercase();
            match k.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => {
                    let c = c.as_bytes()[0];
                    keys.push(match c {
                        b'a'..=b'z' => c - b'a' + 1,
                        b'@' => 0,
                        b'[' => 27,
                        b'\\' => 28,
                        b']' => 29,
                        b'^' => 30,
                        b'_' => 31,
                        _ => return Err(bad()),
                    });
                }
                Some(_) => return Err(bad()),
                None if key.len() == 1 => keys.push(key.as_bytes()[0]),
                None => return Err(bad()),
            }
        }
        Ok(DetachKeys { keys, matched: 0 })
    }

    /// Copies `input` to `out`, holding back a partial sequence; true once
    /// the whole sequence was typed (what follows it is dropped).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return true;
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = usize::from(b == self.keys[0]);
            if self.matched == 0 {
                out.push(b);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_sequences() {
        let mut d = DetachKeys::parse("").unwrap();
        let mut out = Vec::new();
        assert!(!d.feed(b"ab\x10c\x10", &mut out));
        assert_eq!(out, b"ab\x10c");
        out.clear();
        assert!(d.feed(b"\x11rest", &mut out));
        assert!(out.is_empty());
        assert_eq!(DetachKeys::parse("ctrl-x,y").unwrap().keys, vec![24, b'y']);
        assert!(DetachKeys::parse("ctrl-").is_err());
        assert!(DetachKeys::parse("ctrl-1").is_err());
        assert!(DetachKeys::parse("abc").is_err());
    }
}
