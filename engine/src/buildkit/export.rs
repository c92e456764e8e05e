//! Exporters: what happens to a solve's image. `moby` (buildx's default
//! with the docker driver) and `image` name it in Berth's store; `image`
//! with `push=true` also pushes it with the session's registry credentials
//! (buildx pushes a `moby` export itself); `local` and `tar` send its files
//! back to the caller over the session.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use bollard_buildkit_proto::moby::filesync::v1::auth_client::AuthClient;
use bollard_buildkit_proto::moby::filesync::v1::file_send_client::FileSendClient;
use bollard_buildkit_proto::moby::filesync::v1::{BytesMessage, CredentialsRequest};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::session::{origin, Session};
use super::{filesync, BuildKit, Solve};
use crate::build::workspace::Workspace;
use crate::error::{Error, Result};
use crate::images::reference::{familiar, Reference};
use crate::images::registry::AuthConfig;
use crate::store::ImageRow;
use crate::tarball::{TreeWriter, Whiteouts};

#[derive(Debug, Clone)]
pub struct Exporter {
    pub kind: String,
    pub attrs: HashMap<String, String>,
}

/// Refuses exporters Berth lacks before anything is built.
pub fn check(exporters: &[Exporter]) -> Result<()> {
    for e in exporters {
        match e.kind.as_str() {
            "moby" | "image" | "local" | "tar" => {}
            other => {
                return Err(Error::InvalidArgument(format!(
                    "exporter {other:?} could not be found: this builder exports moby, image, local and tar"
                )))
            }
        }
    }
    Ok(())
}

/// Runs every exporter in order; returns the exporter response (what
/// `--metadata-file` shows).
pub async fn run(
    bk: &Arc<BuildKit>,
    solve: &Arc<Solve>,
    image: &ImageRow,
    exporters: &[Exporter],
    session_id: &str,
) -> Result<HashMap<String, String>> {
    let mut response = HashMap::new();
    for (index, e) in exporters.iter().enumerate() {
        match e.kind.as_str() {
            "moby" | "image" => {
                to_store(bk, solve, image, e, session_id).await?;
                response.insert("containerimage.digest".to_string(), image.id.clone());
            }
            "local" | "tar" => {
                let session = bk.sessions.get(session_id).await?;
                let v = solve.status.vertex("exporting to client");
                let dir = bk.builder.new_dir();
                std::fs::create_dir_all(&dir)?;
                let result = async {
                    let ws = Workspace::mount(&bk.builder.images, image, dir.clone())?;
                    if e.kind == "local" {
                        let n = filesync::send(&session, index, &ws.rootfs()).await?;
                        // The client prints the size ("copying files 1.99MB"), as
                        // BuildKit's local exporter leaves it to it.
                        v.item("copying files", n as i64, 0);
                    } else {
                        send_tar(&session, index, &ws.rootfs()).await?;
                        v.item("sending tarball", 0, 0);
                    }
                    Ok::<(), Error>(())
                }
                .await;
                let _ = std::fs::remove_dir_all(&dir);
                match result {
                    Ok(()) => v.done(),
                    Err(e) => {
                        v.error(&e.to_string());
                        return Err(e);
                    }
                }
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "exporter {other:?} could not be found"
                )))
            }
        }
    }
    Ok(response)
}

/// The `moby` and `image` exporters: tags (`name=a,b`), then, for
/// `image`, pushes when asked.
async fn to_store(
    bk: &Arc<BuildKit>,
    solve: &Arc<Solve>,
    image: &ImageRow,
    e: &Exporter,
    session_id: &str,
) -> Result<()> {
    let v = solve.status.vertex("exporting to image");
    v.item("exporting layers", 0, 0);
    v.item(&format!("writing image {}", image.id), 0, 0);
    let names: Vec<&str> = e
        .attrs
        .get("name")
        .map(|n| {
            n.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut references = Vec::new();
    for name in names {
        let given = Reference::parse(name)?;
        let shown = shown_name(&given);
        let r = given.with_default_tag();
        let normalized = r.normalized();
        bk.builder.store.set_tag(&normalized, &image.id).await?;
        bk.builder.images.image_event("tag", &familiar(&normalized));
        v.item(&format!("naming to {shown}"), 0, 0);
        references.push(r);
    }
    v.done();
    // buildx pushes a `moby` export itself, through `POST /images/push`
    // ("pushing … with docker"), after the solve: dockerd's moby exporter
    // ignores `push`, and pushing here too sent every image twice.
    let push = e.kind == "image" && e.attrs.get("push").is_some_and(|p| p == "true");
    if push {
        if references.is_empty() {
            return Err(Error::InvalidArgument(
                "tag is needed when pushing to registry".into(),
            ));
        }
        let session = bk.sessions.get(session_id).await?;
        for r in references {
            push_one(bk, solve, &session, r).await?;
        }
    }
    Ok(())
}

/// A name as BuildKit's "naming to …" shows it: in full, without a
/// `:latest` the name did not have.
fn shown_name(r: &Reference) -> String {
    if r.tag.is_none() && r.digest.is_none() {
        r.repository()
    } else {
        r.normalized()
    }
}

async fn push_one(
    bk: &Arc<BuildKit>,
    solve: &Arc<Solve>,
    session: &Session,
    r: Reference,
) -> Result<()> {
    let v = solve.status.vertex(&format!(
        "pushing {} with docker",
        familiar(&r.normalized())
    ));
    let auth = credentials(session, &r.domain).await;
    let progress = bk.builder.images.push(r.clone(), auth).await?;
    let mut s = std::pin::pin!(progress.follow());
    let mut failed = None;
    while let Some(Ok(chunk)) = s.next().await {
        for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let m: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
            if let Some(msg) = m["errorDetail"]["message"].as_str() {
                failed = Some(msg.to_string());
            }
        }
    }
    match failed {
        Some(msg) => {
            v.error(&msg);
            Err(Error::Internal(msg))
        }
        None => {
            v.item(
                &format!("pushing layers and manifest for {}", r.normalized()),
                0,
                0,
            );
            v.done();
            Ok(())
        }
    }
}

/// The caller's credentials for a registry, through the session's Auth
/// service (none when it has none for that host).
pub(super) async fn credentials(session: &Session, host: &str) -> AuthConfig {
    if !session.serves("/moby.filesync.v1.Auth/Credentials") {
        return AuthConfig::default();
    }
    let host = if host == "docker.io" {
        "registry-1.docker.io"
    } else {
        host
    };
    let mut client = AuthClient::with_origin(session.channel(), origin());
    match client
        .credentials(CredentialsRequest {
            host: host.to_string(),
        })
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            AuthConfig {
                username: r.username,
                password: r.secret,
                server_address: host.to_string(),
                ..Default::default()
            }
        }
        Err(e) => {
            tracing::debug!(host, error = %e, "no registry credentials from the session");
            AuthConfig::default()
        }
    }
}

/// `type=tar`: the files as one tar, streamed to the caller's FileSend.
async fn send_tar(session: &Session, exporter: usize, root: &Path) -> Result<()> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(16);
    let root = root.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(64 << 10, ChannelWriter(tx));
        let mut tree = TreeWriter::new(out, Whiteouts::Keep);
        tree.add_tree(&root)?;
        tree.finish()?.flush()
    });
    let outgoing = crate::util::channel_stream(rx).map(|data| BytesMessage { data });
    let mut req = tonic::Request::new(outgoing);
    req.metadata_mut().insert(
        "buildkit-attachable-exporter-id",
        exporter.to_string().parse().expect("digits"),
    );
    let mut client = FileSendClient::with_origin(session.channel(), origin());
    let mut incoming = client.diff_copy(req).await?.into_inner();
    while let Some(m) = incoming.next().await {
        m?;
    }
    writer.await.map_err(|e| Error::Internal(e.to_string()))??;
    Ok(())
}

/// Hands a blocking tar writer's output to the async side in chunks.
struct ChannelWriter(mpsc::Sender<Vec<u8>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(buf.to_vec()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the caller went away")
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_exporters_are_refused_up_front() {
        let e = |k: &str| Exporter {
            kind: k.into(),
            attrs: HashMap::new(),
        };
        assert!(check(&[e("moby"), e("local"), e("tar")]).is_ok());
        let err = check(&[e("oci")]).unwrap_err().to_string();
        assert!(err.contains("\"oci\""), "{err}");
    }
}
