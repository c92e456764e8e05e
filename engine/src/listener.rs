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

/// The API listener: from systemd, from a running berthd, or bound anew.
/// After a takeover, also the handover connection, which the old berthd
/// keeps open until it has drained and exited (end of file then).
pub fn acquire(
    socket: &Path,
    exec_root: &Path,
    takeover: bool,
) -> anyhow::Result<(UnixListener, Source, Option<UnixStream>)> {
    if let Some(l) = from_systemd()? {
        return Ok((l, Source::Systemd, None));
    }
    if takeover {
        let (l, predecessor) = take_over(&handover_path(exec_root))?;
        return Ok((l, Source::Takeover, Some(predecessor)));
    }
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(socket);
    Ok((UnixListener::bind(socket)?, Source::Bound, None))
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

/// Asks the running berthd for its listener.
fn take_over(handover: &Path) -> anyhow::Result<(UnixListener, UnixStream)> {
    let conn = UnixStream::connect(handover).map_err(|e| {
        anyhow::anyhow!(
            "--takeover: no running berthd answers at {}: {e}",
            handover.display()
        )
    })?;
    (&conn).write_all(b"takeover\n")?;
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fd = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            fd = fds.first().copied();
        }
    }
    let text = String::from_utf8_lossy(msg.iovs().next().unwrap_or_default()).into_owned();
    let fd = fd.ok_or_else(|| {
        anyhow::anyhow!(
            "--takeover: the running berthd sent no socket ({})",
            text.trim()
        )
    })?;
    info!(answer = %text.trim(), "took over the API socket");
    // SAFETY: the kernel just installed this descriptor for us.
    Ok((unsafe { UnixListener::from_raw_fd(fd) }, conn))
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

/// Serves takeover requests: sends `listener` to the asker, then resolves
/// so that the caller stops accepting and drains. The connection comes
/// back: the caller keeps it open until it exits, which tells the
/// successor when this process is gone.
pub async fn serve_handover(path: PathBuf, listener: RawFd) -> anyhow::Result<UnixStream> {
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let l = tokio::net::UnixListener::from_std({
        l.set_nonblocking(true)?;
        l
    })?;
    loop {
        let (conn, _) = l.accept().await?;
        let conn = conn.into_std()?;
        conn.set_nonblocking(false)?;
        let handed = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<UnixStream>> {
            let mut line = String::new();
            BufReader::new(&conn).read_line(&mut line)?;
            if line.trim() != "takeover" {
                (&conn).write_all(b"error unknown request\n")?;
                return Ok(None);
            }
            let reply = format!("ok {}\n", std::process::id());
            let fds = [listener];
            sendmsg::<()>(
                conn.as_raw_fd(),
                &[IoSlice::new(reply.as_bytes())],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::empty(),
                None,
            )?;
            Ok(Some(conn))
        })
        .await??;
        if let Some(conn) = handed {
            info!("handed the API socket to a new berthd; draining");
            return Ok(conn);
        }
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
