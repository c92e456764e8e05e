//! `berth-core --takeover`: a new core takes over from the running one
//! without refusing a request.
//!
//! The running core listens on `<state-dir>/handover.sock` (0600). A
//! successor connects and the two exchange JSON lines:
//!
//! 1. successor: `takeover` (its version and protocol range);
//! 2. running core: `listener`, with the API socket's descriptor attached,
//!    its version, pid and the protocol versions its clients use. The
//!    successor refuses (`abort`) if it does not serve all of them, then
//!    prepares what needs no state (the runtime probe);
//! 3. successor: `freeze`. The running core holds new requests off, waits
//!    for those in progress and for its background work, closes its event
//!    subscribers and releases the state directory's lock;
//! 4. running core: `frozen`, with the last event's sequence number;
//! 5. successor: takes the lock, opens the event log (which continues that
//!    sequence), adopts every task, accepts on the socket, then `serving`;
//! 6. the running core stops accepting, passes the requests it held on to
//!    the successor, drains and exits.
//!
//! If the successor goes away (or says `abort`) before `serving`, the
//! running core takes the state directory back as a restarted core would,
//! and serves the requests it held itself. Exits that happen while frozen
//! are left in their exit files and recorded once, by whichever core
//! adopts the tasks.

mod fd;

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{info, warn};

use crate::generation::Setup;
use crate::serving::Serving;

/// Where a running core listens for a successor.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("handover.sock")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Message {
    Takeover {
        core_version: String,
        min_version: u32,
        max_version: u32,
    },
    Listener {
        core_version: String,
        pid: u32,
        versions_used: Vec<u32>,
    },
    Freeze,
    Frozen {
        last_seq: u64,
    },
    Serving,
    Abort {
        reason: String,
    },
}

/// One side of a handover connection: JSON lines.
struct Channel {
    stream: BufReader<UnixStream>,
}

impl Channel {
    async fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        let line = line(msg);
        self.stream.get_mut().write_all(&line).await
    }

    async fn recv(&mut self) -> std::io::Result<Message> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        parse(line.as_bytes())
    }
}

fn line(msg: &Message) -> Vec<u8> {
    let mut line = serde_json::to_vec(msg).unwrap_or_default();
    line.push(b'\n');
    line
}

fn parse(bytes: &[u8]) -> std::io::Result<Message> {
    serde_json::from_slice(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad handover message: {e}"),
        )
    })
}

/// The running core's side: serves successors until one has taken over
/// (then it returns, and the caller drains and exits).
pub async fn serve(
    path: PathBuf,
    listener: RawFd,
    serving: Arc<Serving>,
    setup: Setup,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(&path);
    let l = tokio::net::UnixListener::bind(&path)?;
    crate::cli::set_mode(&path, 0o600)?;
    loop {
        let (conn, _) = l.accept().await?;
        let mut chan = Channel {
            stream: BufReader::new(conn),
        };
        match attend(&mut chan, listener, &serving, &setup).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => warn!(error = %e, "a takeover failed; still serving"),
        }
    }
}

/// One successor's attempt; `true` once it serves.
async fn attend(
    chan: &mut Channel,
    listener: RawFd,
    serving: &Arc<Serving>,
    setup: &Setup,
) -> std::io::Result<bool> {
    let Message::Takeover { core_version, .. } = chan.recv().await? else {
        return Ok(false);
    };
    info!(successor_version = %core_version, "a new berth-core is taking over");
    let offer = Message::Listener {
        core_version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        versions_used: serving.versions_used(),
    };
    fd::send(chan.stream.get_ref(), &line(&offer), listener).await?;
    match chan.recv().await? {
        Message::Freeze => {}
        Message::Abort { reason } => {
            warn!(%reason, "the new berth-core gave up");
            return Ok(false);
        }
        other => {
            warn!(message = ?other, "unexpected handover message");
            return Ok(false);
        }
    }
    let since = std::time::Instant::now();
    let frozen = serving.freeze().await;
    let last_seq = frozen.last_seq;
    let answer = match chan.send(&Message::Frozen { last_seq }).await {
        Ok(()) => chan.recv().await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(Message::Serving) => {
            frozen.hand_over();
            info!(
                held_ms = since.elapsed().as_secs_f64() * 1000.0,
                "requests were held while the new berth-core took over"
            );
            Ok(true)
        }
        other => {
            warn!(outcome = ?other, "the new berth-core failed before serving; taking the tasks back");
            frozen.thaw(setup).await;
            Ok(false)
        }
    }
}

/// What the running core told its successor.
#[derive(Debug)]
pub struct Predecessor {
    pub core_version: String,
    pub pid: u32,
    pub versions_used: Vec<u32>,
}

/// The new core's side of a takeover.
pub struct Successor {
    chan: Channel,
    pub predecessor: Predecessor,
    /// The API socket, as the running core listens on it.
    pub listener: std::os::unix::net::UnixListener,
}

impl Successor {
    /// Asks the running core for its socket.
    pub async fn connect(path: &Path, range: (u32, u32)) -> anyhow::Result<Successor> {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            anyhow::anyhow!(
                "--takeover: no running berth-core answers at {}: {e}",
                path.display()
            )
        })?;
        let mut chan = Channel {
            stream: BufReader::new(stream),
        };
        chan.send(&Message::Takeover {
            core_version: env!("CARGO_PKG_VERSION").to_string(),
            min_version: range.0,
            max_version: range.1,
        })
        .await?;
        // Nothing was read through the buffer yet: the first answer (and
        // its descriptor) is read from the socket itself.
        let (bytes, fd) = fd::recv(chan.stream.get_ref()).await?;
        let predecessor = match parse(&bytes)? {
            Message::Listener {
                core_version,
                pid,
                versions_used,
            } => Predecessor {
                core_version,
                pid,
                versions_used,
            },
            other => anyhow::bail!("--takeover: the running berth-core answered {other:?}"),
        };
        let fd =
            fd.ok_or_else(|| anyhow::anyhow!("--takeover: the running berth-core sent no socket"))?;
        Ok(Successor {
            chan,
            predecessor,
            listener: std::os::unix::net::UnixListener::from(fd),
        })
    }

    /// Gives up before freezing; the running core carries on.
    pub async fn abort(mut self, reason: &str) {
        let _ = self
            .chan
            .send(&Message::Abort {
                reason: reason.to_string(),
            })
            .await;
    }

    /// Asks the running core to hold requests off and give the tasks up;
    /// returns the last event's sequence number.
    pub async fn freeze(&mut self) -> anyhow::Result<u64> {
        self.chan.send(&Message::Freeze).await?;
        match self.chan.recv().await? {
            Message::Frozen { last_seq } => Ok(last_seq),
            other => anyhow::bail!("--takeover: the running berth-core answered {other:?}"),
        }
    }

    /// Tells the running core that this one serves; it passes on what it
    /// held and exits.
    pub async fn serving(mut self) {
        if let Err(e) = self.chan.send(&Message::Serving).await {
            // It is gone: nobody else serves, which is what we want.
            warn!(error = %e, "telling the old berth-core");
        }
    }
}
