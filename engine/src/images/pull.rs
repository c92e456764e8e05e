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
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};
use tracing::{info, warn};

use super::content::sha256_digest;
use super::progress::Progress;
use super::reference::{familiar, Reference};
use super::registry::{manifest_error, oci_reference, oci_reference_at, registry_error};
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

/// Configs larger than this are refused (real ones are kilobytes).
const MAX_CONFIG_SIZE: i64 = 8 << 20;
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

    fn matches(&self, other: &Platform) -> bool {
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
struct Manifest {
    #[serde(rename = "schemaVersion", default)]
    schema_version: i64,
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
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
        let accepted = [
            DOCKER_MANIFEST,
            OCI_MANIFEST,
            DOCKER_MANIFEST_LIST,
            OCI_INDEX,
        ];
        // Docker Hub's mirrors first, each tried anonymously; whatever goes
        // wrong with one, the next endpoint is tried, as dockerd falls back.
        // The whole image then comes from where its manifest came from.
        let mut endpoints = self
            .registries()
            .endpoints(&r.domain)
            .into_iter()
            .peekable();
        let (client, domain, auth, top_bytes, top_digest) = loop {
            let Some(ep) = endpoints.next() else {
                return Err(Error::Internal("no registry endpoint".into()));
            };
            let client = self.registries().client(&ep.domain);
            let auth = if ep.mirror {
                oci_client::secrets::RegistryAuth::Anonymous
            } else {
                req.auth.registry_auth()
            };
            match client
                .pull_manifest_raw(&oci_reference_at(r, &ep.domain), &auth, &accepted)
                .await
            {
                Ok((bytes, digest)) => break (client, ep.domain, auth, bytes, digest),
                Err(e) if ep.mirror && endpoints.peek().is_some() => {
                    tracing::info!(mirror = %ep.domain, reference = %familiar_ref, error = %e, "pull from mirror failed, trying the next endpoint");
                }
                Err(e) => return Err(manifest_error(e, &familiar_ref, &r.repository())),
            }
        };
        let oref = oci_reference_at(r, &domain);
        check_manifest_digest(&top_bytes, &top_digest)?;
        let top: Manifest = parse_manifest(&top_bytes)?;

        let (manifest, manifest_bytes, manifest_digest) =
            if top.manifests.is_some() || is_index(&top.media_type) {
                let wanted = req.platform.clone().unwrap_or_else(Platform::host);
                let entries = top.manifests.clone().unwrap_or_default();
                let chosen = entries
                    .iter()
                    .find(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p)))
                    .ok_or_else(|| {
                        Error::NotFound(format!(
                            "no matching manifest for {wanted} in the manifest list entries"
                        ))
                    })?;
                let by_digest = Reference {
                    tag: None,
                    digest: Some(chosen.digest.clone()),
                    ..r.clone()
                };
                let (bytes, digest) = client
                    .pull_manifest_raw(
                        &oci_reference_at(&by_digest, &domain),
                        &auth,
                        &[DOCKER_MANIFEST, OCI_MANIFEST],
                    )
                    .await
                    .map_err(|e| manifest_error(e, &familiar_ref, &r.repository()))?;
                check_manifest_digest(&bytes, &digest)?;
                if digest != chosen.digest {
                    return Err(Error::InvalidArgument(format!(
                        "manifest digest mismatch: expected {}, got {digest}",
                        chosen.digest
                    )));
                }
                (parse_manifest(&bytes)?, bytes, digest)
            } else {
                (top, top_bytes.clone(), top_digest.clone())
            };
        if manifest.schema_version != 2 {
            return Err(Error::InvalidArgument(format!(
                "unsupported manifest schema version {} for {familiar_ref}: only Docker schema 2 and OCI manifests can be pulled",
                manifest.schema_version
            )));
        }
        let config_desc = manifest
            .config
            .clone()
            .ok_or_else(|| Error::InvalidArgument("manifest has no config".into()))?;
        if config_desc.size > MAX_CONFIG_SIZE {
            return Err(Error::InvalidArgument(format!(
                "image config of {} bytes is too large",
                config_desc.size
            )));
        }

        let header_id = r
            .tag
            .clone()
            .or_else(|| r.digest.clone())
            .unwrap_or_else(|| "latest".into());
        progress.header(&header_id, &format!("Pulling from {}", r.path));
        if let Some(tx) = started.take() {
            let _ = tx.send(Ok(()));
        }

        // The config: small, fetched whole and checked against its digest.
        let mut config_bytes = Vec::new();
        client
            .pull_blob(&oref, &oci_descriptor(&config_desc), &mut config_bytes)
            .await
            .map_err(registry_error)?;
        if sha256_digest(&config_bytes) != config_desc.digest {
            return Err(Error::InvalidArgument(format!(
                "config digest mismatch for {}",
                config_desc.digest
            )));
        }
        let config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| Error::InvalidArgument(format!("invalid image config: {e}")))?;
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::InvalidArgument(format!(
                "image config lists {} layers, the manifest {}",
                diff_ids.len(),
                manifest.layers.len()
            )));
        }
        let chains = unpack::chain_ids(&diff_ids);
        let image_id = config_desc.digest.clone();
        let existed = self.store.image(&image_id).await?.is_some();

        // Layers: "Already exists" or a download, at most N at once.
        let slots = Arc::new(Semaphore::new(self.max_downloads().max(1)));
        let mut jobs = Vec::new();
        for ((desc, diff), chain) in manifest.layers.iter().zip(&diff_ids).zip(&chains) {
            let id = short_digest(&desc.digest);
            if self.snapshot_exists(chain) {
                // An image already here is simply "up to date".
                if !existed {
                    progress.layer(&id, "Already exists");
                }
                continue;
            }
            progress.layer(&id, "Pulling fs layer");
            jobs.push((desc.clone(), diff.clone(), chain.clone(), id));
        }
        // On the first failure the other downloads stop; every one is
        // waited for, so that no scratch snapshot outlives the error.
        let cancel = tokio_util::sync::CancellationToken::new();
        let first_error: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
        let first_error = &first_error;
        let fetches = jobs.into_iter().map(|(desc, diff, chain, id)| {
            let this = self.clone();
            let client = &client;
            let oref = &oref;
            let slots = slots.clone();
            let progress = progress.clone();
            let cancel = cancel.clone();
            async move {
                let permit = match slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        progress.layer(&id, "Waiting");
                        tokio::select! {
                            p = slots.acquire_owned() => match p {
                                Ok(p) => p,
                                Err(_) => return, // the semaphore is never closed
                            },
                            _ = cancel.cancelled() => return,
                        }
                    }
                };
                let r = this
                    .fetch_layer(client, oref, &desc, &diff, &chain, &id, &progress, &cancel)
                    .await;
                drop(permit);
                if let Err(e) = r {
                    // The first failure is the one to report; the rest are
                    // its consequences.
                    if !cancel.is_cancelled() {
                        cancel.cancel();
                        *first_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    }
                }
            }
        });
        futures_util::future::join_all(fetches).await;
        if let Some(e) = first_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }

        let size: u64 = chains.iter().map(|c| self.snapshot_size(c)).sum();
        let created = config["created"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(crate::util::now_rfc3339);
        self.content.put(&manifest_bytes)?;
        self.store
            .insert_image(&ImageRow {
                id: image_id.clone(),
                config: String::from_utf8_lossy(&config_bytes).into_owned(),
                layers: diff_ids,
                chains,
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
    async fn fetch_layer(
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

fn is_index(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST_LIST || media_type == OCI_INDEX
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    if bytes.len() > MAX_MANIFEST_SIZE {
        return Err(Error::InvalidArgument("manifest too large".into()));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::InvalidArgument(format!("invalid manifest: {e}")))
}

fn check_manifest_digest(bytes: &[u8], digest: &str) -> Result<()> {
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
