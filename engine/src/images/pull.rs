//! `docker pull`: resolve the manifest (picking a platform from a list),
//! fetch the config, then download every missing layer, several at once,
//! unpacking each while it downloads: the bytes go through the digest check,
//! into the content store and into a fresh snapshot in one pass. Nothing is
//! recorded as an image until every layer is in place.
//!
//! Two pulls of one reference share one run (the second follows the first's
//! progress); two pulls that need the same layer take turns on it, so a
//! layer is fetched once.

use bollard_stubs::models::{self as api_models, DistributionInspect, OciPlatform};
use std::io::{self, Read};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use oci_client::manifest::OciDescriptor;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::content::sha256_digest;
use super::progress::Progress;
use super::reference::{familiar, Reference};
use super::registry::{manifest_error, oci_reference, registry_error};
use super::{unpack, Images};
use crate::error::{Error, Result};
use crate::store::{ImageRow, LayerBlob};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

const MAX_MANIFEST_SIZE: usize = 4 << 20;

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's platform.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: super::go_arch().into(),
            variant: None,
        }
    }

    /// "linux/arm64/v8", "linux/amd64", "arm64" (os defaults to linux).
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let bad = || {
            Error::InvalidArgument(format!(
                "\"{s}\": unknown operating system or architecture: invalid argument"
            ))
        };
        let (os, arch, variant) = match parts.as_slice() {
            [a] if !a.is_empty() => ("linux", *a, None),
            [o, a] => (*o, *a, None),
            [o, a, v] => (*o, *a, Some(v.to_string())),
            _ => return Err(bad()),
        };
        if os.is_empty() || arch.is_empty() {
            return Err(bad());
        }
        let arch = match arch {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        Ok(Platform {
            os: os.to_lowercase(),
            architecture: arch.to_string(),
            variant,
        })
    }

    pub(super) fn matches(&self, other: &Platform) -> bool {
        let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_string),
        };
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || norm(self) == norm(other))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Manifest {
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: i64,
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

pub struct PullRequest {
    pub reference: Reference,
    pub platform: Option<Platform>,
    pub auth: super::registry::AuthConfig,
}

/// The first 12 hex digits of a digest: how progress names a layer.
pub fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map(|(_, h)| h).unwrap_or(digest);
    hex[..hex.len().min(12)].to_string()
}

impl Images {
    /// Starts a pull (or joins the one already running for the same
    /// reference) and returns its progress once the manifest is resolved;
    /// a failure before that is returned as the error itself, which the API
    /// answers with a status code as Docker does.
    pub async fn pull(self: &Arc<Self>, req: PullRequest) -> Result<Arc<Progress>> {
        let key = format!(
            "{}|{}",
            req.reference.normalized(),
            req.platform
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default()
        );
        let (progress, started) = {
            let mut pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(p) = pulls.get(&key) {
                return Ok(p.clone());
            }
            let progress = Progress::new();
            pulls.insert(key.clone(), progress.clone());
            let (tx, rx) = tokio::sync::oneshot::channel::<Result<()>>();
            let this = self.clone();
            let p = progress.clone();
            tokio::spawn(async move {
                let mut started = Some(tx);
                let result = this.run_pull(&req, &p, &mut started).await;
                this.pulls
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                match result {
                    Ok(()) => {}
                    Err(e) => match started.take() {
                        Some(tx) => {
                            let _ = tx.send(Err(e));
                        }
                        None => {
                            warn!(reference = %req.reference.normalized(), error = %e, "pull failed");
                            p.error(&e.to_string());
                        }
                    },
                }
                if let Some(tx) = started.take() {
                    let _ = tx.send(Ok(()));
                }
                p.finish();
            });
            (progress, rx)
        };
        match started.await {
            Ok(Ok(())) => Ok(progress),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Internal("pull ended unexpectedly".into())),
        }
    }

    async fn run_pull(
        self: &Arc<Self>,
        req: &PullRequest,
        progress: &Arc<Progress>,
        started: &mut Option<tokio::sync::oneshot::Sender<Result<()>>>,
    ) -> Result<()> {
        // A garbage collection must not take layers this pull has unpacked
        // but not yet recorded.
        let _gc = self.gc_lock.read().await;
        let r = &req.reference;
        let familiar_ref = familiar(&r.normalized());
        let manifest = self
            .resolve_manifest(r, req.platform.clone(), &req.auth)
            .await?;
        let header_id = r
            .tag
            .clone()
            .or_else(|| r.digest.clone())
            .unwrap_or_else(|| "latest".into());
        progress.header(&header_id, &format!("Pulling from {}", r.path));
        if let Some(tx) = started.take() {
            let _ = tx.send(Ok(()));
        }
        let remote = self.fetch_config(manifest).await?;
        let image_id = remote.image_id().to_string();
        let existed = self.store.image(&image_id).await?.is_some();
        self.fetch_layers(&remote, remote.diff_ids.len(), progress, existed)
            .await?;

        let size: u64 = remote.chains.iter().map(|c| self.snapshot_size(c)).sum();
        let created = remote.config["created"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(crate::util::now_rfc3339);
        let top_digest = remote.manifest.top_digest.clone();
        let manifest_digest = remote.manifest.digest.clone();
        self.content.put(&remote.manifest.bytes)?;
        self.store
            .insert_image(&ImageRow {
                id: image_id.clone(),
                config: String::from_utf8_lossy(&remote.config_bytes).into_owned(),
                layers: remote.diff_ids,
                chains: remote.chains,
                size: size as i64,
                created,
                manifest: manifest_digest.clone(),
                parent: String::new(),
            })
            .await?;
        self.store
            .set_image_manifest(&image_id, &manifest_digest)
            .await?;
        self.store
            .add_repo_digest(&format!("{}@{top_digest}", r.repository()), &image_id)
            .await?;
        let mut tag_changed = false;
        if r.tag.is_some() {
            let previous = self.store.tag(&r.normalized()).await?;
            tag_changed = previous.as_deref() != Some(image_id.as_str());
            self.store.set_tag(&r.normalized(), &image_id).await?;
        }
        progress.status(&format!("Digest: {top_digest}"));
        if existed && !tag_changed {
            progress.status(&format!("Status: Image is up to date for {familiar_ref}"));
        } else {
            progress.status(&format!(
                "Status: Downloaded newer image for {familiar_ref}"
            ));
        }
        self.image_event("pull", &familiar_ref);
        info!(reference = %familiar_ref, image = %image_id, "pulled");
        Ok(())
    }

    /// Downloads one layer and unpacks it as it arrives.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fetch_layer(
        self: &Arc<Self>,
        client: &oci_client::Client,
        oref: &oci_client::Reference,
        desc: &Descriptor,
        diff_id: &str,
        chain: &str,
        id: &str,
        progress: &Progress,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<()> {
        // One pull at a time per layer; the second finds it done.
        let lock = self.layer_lock(chain);
        let _held = lock.lock().await;
        if self.snapshot_exists(chain) {
            progress.layer(id, "Already exists");
            return Ok(());
        }
        super::content::digest_hex(&desc.digest)?;
        let blob = client
            .pull_blob_stream(oref, &oci_descriptor(desc))
            .await
            .map_err(registry_error)?;
        let total = desc.size.max(0) as u64;
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(64);
        let worker = {
            let this = self.clone();
            let (chain, diff_id, digest, media_type) = (
                chain.to_string(),
                diff_id.to_string(),
                desc.digest.clone(),
                desc.media_type.clone(),
            );
            tokio::task::spawn_blocking(move || {
                this.unpack_stream(
                    ChannelReader {
                        rx,
                        current: Bytes::new(),
                    },
                    &chain,
                    &diff_id,
                    &digest,
                    &media_type,
                )
            })
        };
        let mut stream = blob.stream;
        let mut current = 0u64;
        loop {
            let chunk = tokio::select! {
                c = stream.next() => c,
                _ = cancel.cancelled() => Some(Err(io::Error::other("cancelled"))),
            };
            let Some(chunk) = chunk else { break };
            let failed = chunk.is_err();
            if let Ok(b) = &chunk {
                current += b.len() as u64;
                crate::metrics::METRICS.pulled(b.len() as u64);
                progress.bytes(id, "Downloading", current, total, false);
            }
            if tx.send(chunk).await.is_err() || failed {
                break; // the unpacker stopped (its error is reported below)
            }
        }
        drop(tx);
        progress.layer(id, "Verifying Checksum");
        let blob = worker.await.map_err(Error::internal)??;
        self.store.add_layer_blob(&blob).await?;
        progress.layer(id, "Download complete");
        progress.bytes(id, "Extracting", total, total, true);
        progress.layer(id, "Pull complete");
        Ok(())
    }

    /// The blocking half of [`Images::fetch_layer`]: tee into the content
    /// store, decompress, unpack into a scratch snapshot, check both digests,
    /// then put blob and snapshot in place.
    fn unpack_stream(
        &self,
        reader: impl Read,
        chain: &str,
        diff_id: &str,
        digest: &str,
        media_type: &str,
    ) -> Result<LayerBlob> {
        // oci-client's stream checks the blob's digest as it ends (an error
        // there fails the unpack below), so the store need not hash again.
        let mut tee = Tee {
            inner: reader,
            out: self.content.writer_verified_elsewhere()?,
        };
        let tmp = self.scratch_snapshot()?;
        let result = unpack_checked(&mut tee, &tmp, diff_id, digest);
        let placed = result.and_then(|()| {
            let size = tee.out.size();
            tee.out.commit(Some(digest))?;
            self.place_snapshot(&tmp, chain)?;
            Ok(size)
        });
        match placed {
            Ok(size) => Ok(LayerBlob {
                diff_id: diff_id.to_string(),
                digest: digest.to_string(),
                media_type: if media_type.is_empty() {
                    DOCKER_LAYER_GZIP.to_string()
                } else {
                    media_type.to_string()
                },
                size: size as i64,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }
}

/// Unpacks into `<tmp>/fs`, reads the source to its end, and checks the diff id.
fn unpack_checked(
    source: &mut impl Read,
    tmp: &std::path::Path,
    diff_id: &str,
    digest: &str,
) -> Result<()> {
    let diff = unpack::unpack_layer(&mut *source, &tmp.join("fs"))
        .map_err(|e| Error::InvalidArgument(format!("layer {digest}: {e}")))?;
    // Whatever follows the compressed stream still counts for the digest.
    io::copy(source, &mut io::sink())
        .map_err(|e| Error::InvalidArgument(format!("layer {digest}: {e}")))?;
    if diff != diff_id {
        return Err(Error::InvalidArgument(format!(
            "layer {digest}: diff id mismatch: expected {diff_id}, got {diff}"
        )));
    }
    Images::record_snapshot_size(tmp)?;
    Ok(())
}

pub(super) fn is_index(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST_LIST || media_type == OCI_INDEX
}

pub(super) fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    if bytes.len() > MAX_MANIFEST_SIZE {
        return Err(Error::InvalidArgument("manifest too large".into()));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::InvalidArgument(format!("invalid manifest: {e}")))
}

pub(super) fn check_manifest_digest(bytes: &[u8], digest: &str) -> Result<()> {
    let actual = sha256_digest(bytes);
    if digest.starts_with("sha256:") && actual != digest {
        return Err(Error::InvalidArgument(format!(
            "manifest digest mismatch: expected {digest}, got {actual}"
        )));
    }
    Ok(())
}

pub fn oci_descriptor(d: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        ..Default::default()
    }
}

/// Reads the chunks an async task sends; an error chunk is the stream's error.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => {
                    return Err(io::Error::new(e.kind(), format!("download failed: {e}")))
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Copies everything read into a writer.
struct Tee<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: io::Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl Images {
    /// `docker pull --all-tags`: every tag the registry lists for the
    /// repository, one after the other, in one progress stream.
    pub async fn pull_all_tags(
        self: &Arc<Self>,
        repository: Reference,
        platform: Option<Platform>,
        auth: super::registry::AuthConfig,
    ) -> Result<Arc<Progress>> {
        let client = self.registries().client(&repository.domain);
        let listing = Reference {
            tag: Some("latest".into()),
            digest: None,
            ..repository.clone()
        };
        let tags = client
            .list_tags(&oci_reference(&listing), &auth.registry_auth(), None, None)
            .await
            .map_err(|e| {
                manifest_error(
                    e,
                    &familiar(&listing.normalized()),
                    &repository.repository(),
                )
            })?
            .tags;
        if tags.is_empty() {
            return Err(Error::NotFound(format!(
                "repository {} has no tags",
                repository.repository()
            )));
        }
        let this = self.clone();
        Ok(Progress::sequence(tags, move |tag| {
            let req = PullRequest {
                reference: Reference {
                    tag: Some(tag),
                    digest: None,
                    ..repository.clone()
                },
                platform: platform.clone(),
                auth: auth.clone(),
            };
            let this = this.clone();
            async move { this.pull(req).await }
        }))
    }

    /// `GET /distribution/{name}/json`: the registry's descriptor of the
    /// manifest (or index) a reference names, and the platforms it covers.
    pub async fn distribution(
        &self,
        reference: &Reference,
        auth: &super::registry::AuthConfig,
    ) -> Result<DistributionInspect> {
        let familiar_ref = familiar(&reference.normalized());
        let client = self.registries().client(&reference.domain);
        let oref = oci_reference(reference);
        let accepted = [
            DOCKER_MANIFEST,
            OCI_MANIFEST,
            DOCKER_MANIFEST_LIST,
            OCI_INDEX,
        ];
        let (bytes, digest) = client
            .pull_manifest_raw(&oref, &auth.registry_auth(), &accepted)
            .await
            .map_err(|e| manifest_error(e, &familiar_ref, &reference.repository()))?;
        check_manifest_digest(&bytes, &digest)?;
        let m = parse_manifest(&bytes)?;
        let media_type = if !m.media_type.is_empty() {
            m.media_type.clone()
        } else if m.manifests.is_some() {
            OCI_INDEX.to_string()
        } else {
            OCI_MANIFEST.to_string()
        };
        let platforms: Vec<OciPlatform> = match &m.manifests {
            Some(entries) => entries
                .iter()
                .filter_map(|e| e.platform.as_ref())
                .map(|p| OciPlatform {
                    architecture: Some(p.architecture.clone()),
                    os: Some(p.os.clone()),
                    variant: p.variant.clone(),
                    ..Default::default()
                })
                .collect(),
            None => {
                let config = m
                    .config
                    .clone()
                    .ok_or_else(|| Error::InvalidArgument("manifest has no config".into()))?;
                let mut data = Vec::new();
                client
                    .pull_blob(&oref, &oci_descriptor(&config), &mut data)
                    .await
                    .map_err(registry_error)?;
                #[derive(serde::Deserialize)]
                struct ImagePlatform {
                    architecture: Option<String>,
                    os: Option<String>,
                }
                let c: Option<ImagePlatform> = serde_json::from_slice(&data).ok();
                vec![OciPlatform {
                    architecture: c.as_ref().and_then(|c| c.architecture.clone()),
                    os: c.and_then(|c| c.os),
                    ..Default::default()
                }]
            }
        };
        Ok(DistributionInspect {
            descriptor: api_models::OciDescriptor {
                media_type: Some(media_type),
                digest: Some(digest),
                size: Some(bytes.len() as i64),
                ..Default::default()
            },
            platforms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        assert!(arm.matches(&Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None
        }));
        let amd = Platform::parse("linux/amd64").unwrap();
        assert!(amd.matches(&Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None
        }));
        assert!(!amd.matches(&Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None
        }));
        assert!(Platform::parse("linux/").is_err());
        assert_eq!(
            Platform::parse("aarch64").unwrap().to_string(),
            "linux/arm64"
        );
    }
}
