//! Where berthd's API socket comes from, and how it is handed over.
//!
//! Three sources, in order: systemd socket activation (`LISTEN_FDS`), a
//! running berthd (`--takeover`: it passes its listening socket over the
//! handover socket in the exec-root), or a fresh bind. Because a takeover
//! passes the very same kernel socket, connections that arrive during the
//! switch wait in its backlog and are accepted by one side or the other:
//! none is refused.

#![allow(unsafe_code)]

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use tracing::info;

/// How the listener was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Systemd,
    Takeover,
    Bound,
}

pub fn handover_path(exec_root: &Path) -> PathBuf {
    exec_root.join("berthd-handover.sock")
}

/// What [`acquire`] found.
pub struct Acquired {
    /// The API listener.
    pub api: UnixListener,
    pub source: Source,
    /// After a takeover, the handover connection, which the old berthd
    /// keeps open until it has drained and exited (end of file then).
    pub predecessor: Option<UnixStream>,
    /// After a takeover, the CRI listener of the old berthd, when it had
    /// one (a release before the CRI hands the API listener only).
    pub cri: Option<UnixListener>,
}

/// The API listener: from systemd, from a running berthd, or bound anew.
pub fn acquire(socket: &Path, exec_root: &Path, takeover: bool) -> anyhow::Result<Acquired> {
    if let Some(api) = from_systemd()? {
        return Ok(Acquired {
            api,
            source: Source::Systemd,
            predecessor: None,
            cri: None,
        });
    }
    if takeover {
        let (mut listeners, predecessor) = take_over(&handover_path(exec_root))?;
        let api = listeners.remove(0);
        return Ok(Acquired {
            api,
            source: Source::Takeover,
            predecessor: Some(predecessor),
            cri: listeners.into_iter().next(),
        });
    }
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(socket);
    Ok(Acquired {
        api: UnixListener::bind(socket)?,
        source: Source::Bound,
        predecessor: None,
        cri: None,
    })
}

/// `LISTEN_FDS`/`LISTEN_PID` (sd_listen_fds): the first passed descriptor.
fn from_systemd() -> anyhow::Result<Option<UnixListener>> {
    let pid_matches = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if !pid_matches || count == 0 {
        return Ok(None);
    }
    // The variables are for us only, not for the core we may start.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    const SD_LISTEN_FDS_START: RawFd = 3;
    // SAFETY: systemd passed descriptor 3 to us for exactly this purpose and
    // nothing else in this process owns it.
    let l = unsafe { UnixListener::from_raw_fd(SD_LISTEN_FDS_START) };
    let _ = nix::fcntl::fcntl(
        SD_LISTEN_FDS_START,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    info!("using the socket passed by systemd");
    Ok(Some(l))
}

/// Asks the running berthd for its listeners: the API's first, then the
/// CRI's if it serves one.
fn take_over(handover: &Path) -> anyhow::Result<(Vec<UnixListener>, UnixStream)> {
    let conn = UnixStream::connect(handover).map_err(|e| {
        anyhow::anyhow!(
            "--takeover: no running berthd answers at {}: {e}",
            handover.display()
        )
    })?;
    (&conn).write_all(b"takeover\n")?;
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = c {
            // SAFETY: the kernel just installed these descriptors for us.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { UnixListener::from_raw_fd(fd) }),
            );
        }
    }
    let text = String::from_utf8_lossy(msg.iovs().next().unwrap_or_default()).into_owned();
    if fds.is_empty() {
        anyhow::bail!(
            "--takeover: the running berthd sent no socket ({})",
            text.trim()
        );
    }
    info!(answer = %text.trim(), sockets = fds.len(), "took over the API socket");
    Ok((fds, conn))
}

/// Resolves once the berthd we took over from has exited (its end of the
/// handover connection closes with it).
pub async fn predecessor_exited(conn: UnixStream) {
    let _ = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 64];
        while matches!(std::io::Read::read(&mut &conn, &mut buf), Ok(n) if n > 0) {}
    })
    .await;
}

/// The handover socket in the exec-root, where a new berthd asks for the
/// API listener (`berthd --takeover`).
pub struct Handovers(tokio::net::UnixListener);

/// A berthd that asked for the listener and has not been given it yet.
/// Until [`Asked::hand`], it cannot accept a connection: what this
/// process must settle before the overlap begins (see cli.rs) is settled
/// between the two.
pub struct Asked(UnixStream);

impl Handovers {
    pub fn bind(path: &Path) -> anyhow::Result<Handovers> {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        l.set_nonblocking(true)?;
        Ok(Handovers(tokio::net::UnixListener::from_std(l)?))
    }

    /// The next takeover request (`takeover\n`); anything else is answered
    /// with an error and the wait goes on.
    pub async fn next(&self) -> Asked {
        loop {
            match self.one().await {
                Ok(Some(asked)) => return asked,
                Ok(None) => {}
                Err(e) => {
                    // Out of descriptors, or an asker that went away.
                    tracing::warn!(error = %e, "reading a takeover request");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn one(&self) -> anyhow::Result<Option<Asked>> {
        let (conn, _) = self.0.accept().await?;
        let conn = conn.into_std()?;
        conn.set_nonblocking(false)?;
        tokio::task::spawn_blocking(move || -> anyhow::Result<Option<Asked>> {
            let mut line = String::new();
            BufReader::new(&conn).read_line(&mut line)?;
            if line.trim() != "takeover" {
                (&conn).write_all(b"error unknown request\n")?;
                return Ok(None);
            }
            Ok(Some(Asked(conn)))
        })
        .await?
    }
}

impl Asked {
    /// Sends `listeners` (the API's first) to the successor, which accepts
    /// from then on. The connection comes back: the caller keeps it open
    /// until it exits, which tells the successor when this process is gone.
    pub async fn hand(self, listeners: Vec<RawFd>) -> anyhow::Result<UnixStream> {
        let conn = self.0;
        let conn = tokio::task::spawn_blocking(move || -> anyhow::Result<UnixStream> {
            let reply = format!("ok {}\n", std::process::id());
            let fds = listeners;
            sendmsg::<()>(
                conn.as_raw_fd(),
                &[IoSlice::new(reply.as_bytes())],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::empty(),
                None,
            )?;
            Ok(conn)
        })
        .await??;
        info!("handed the API socket to a new berthd; draining");
        Ok(conn)
    }
}

/// The API listener as axum serves it, with a switch that stops accepting
/// without touching the connections already accepted. A takeover flips it
/// first and tells those connections to finish only a moment later: a
/// connection accepted just before the switch may not have had its request
/// read yet, and closing it as idle would reset a client that did nothing
/// wrong (the new berthd accepts everything that arrives after the switch).
pub struct Switchable {
    inner: tokio::net::UnixListener,
    stopped: tokio::sync::watch::Receiver<bool>,
}

impl Switchable {
    /// The listener, and the switch (send `true` to stop accepting).
    pub fn new(inner: tokio::net::UnixListener) -> (Switchable, tokio::sync::watch::Sender<bool>) {
        let (tx, stopped) = tokio::sync::watch::channel(false);
        (Switchable { inner, stopped }, tx)
    }
}

impl axum::serve::Listener for Switchable {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if *self.stopped.borrow_and_update() {
                // axum stops calling accept once its shutdown fires.
                std::future::pending::<()>().await;
            }
            tokio::select! {
                r = self.inner.accept() => match r {
                    Ok(conn) => return conn,
                    Err(e) => {
                        // Out of descriptors and the like: wait, then retry.
                        tracing::warn!(error = %e, "accepting an API connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                // Accepting is cancel-safe: nothing is lost by stopping here.
                _ = self.stopped.changed() => {}
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test (removed by the test at its end).
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The old berthd settles its view of the store between the request
    /// and the hand-over (cli.rs); the successor must not be able to
    /// serve before that.
    #[tokio::test]
    async fn the_successor_gets_the_socket_only_when_handed() {
        let dir = scratch("handover");
        let api = UnixListener::bind(dir.join("api.sock")).unwrap();
        let path = dir.join("handover.sock");
        let handovers = Handovers::bind(&path).unwrap();
        let (got_tx, got_rx) = std::sync::mpsc::channel();
        let successor = std::thread::spawn(move || {
            let taken = take_over(&path);
            got_tx.send(()).unwrap();
            taken
        });
        let asked = handovers.next().await;
        // The request is read and nothing was sent back: the successor is
        // still inside take_over.
        assert!(got_rx.try_recv().is_err());
        let cri = UnixListener::bind(dir.join("cri.sock")).unwrap();
        let _link = asked
            .hand(vec![api.as_raw_fd(), cri.as_raw_fd()])
            .await
            .unwrap();
        let (listeners, _conn) = tokio::task::spawn_blocking(move || successor.join().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(listeners.len(), 2);
        let listener = &listeners[0];
        assert_eq!(
            listeners[1].local_addr().unwrap().as_pathname(),
            Some(dir.join("cri.sock").as_path())
        );
        got_rx.recv().unwrap();
        // The same kernel socket: a client of the API path reaches it.
        let client = UnixStream::connect(dir.join("api.sock")).unwrap();
        let (served, _) = listener.accept().unwrap();
        assert_eq!(
            served.peer_addr().unwrap().as_pathname(),
            client.local_addr().unwrap().as_pathname()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_request_other_than_takeover_is_refused_and_the_wait_goes_on() {
        let dir = scratch("handover-refused");
        let path = dir.join("handover.sock");
        let handovers = Handovers::bind(&path).unwrap();
        let asker = path.clone();
        let answer = std::thread::spawn(move || {
            let conn = UnixStream::connect(&asker).unwrap();
            (&conn).write_all(b"hello\n").unwrap();
            let mut line = String::new();
            BufReader::new(&conn).read_line(&mut line).unwrap();
            line
        });
        let waiting = tokio::spawn(async move {
            handovers.next().await;
        });
        let line = tokio::task::spawn_blocking(move || answer.join().unwrap())
            .await
            .unwrap();
        assert_eq!(line, "error unknown request\n");
        assert!(!waiting.is_finished());
        waiting.abort();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
