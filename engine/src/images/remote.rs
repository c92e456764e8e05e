//! An image in a registry, resolved but not (yet) stored: its manifest
//! (one platform's, picked from a list), its config, and the layers it
//! names. `docker pull` stores all of it; a build's cache import adopts
//! only the layers its cached steps need, and records no pulled image.

use std::sync::Arc;

use oci_client::secrets::RegistryAuth;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::content::sha256_digest;
use super::progress::Progress;
use super::pull::{
    check_manifest_digest, is_index, oci_descriptor, parse_manifest, short_digest, Manifest,
    Platform, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};
use super::reference::{familiar, Reference};
use super::registry::{manifest_error, oci_reference_at, registry_error, AuthConfig};
use super::{unpack, Images};
use crate::error::{Error, Result};
use crate::store::ImageRow;

/// Configs larger than this are refused (real ones are kilobytes).
const MAX_CONFIG_SIZE: i64 = 8 << 20;

/// A manifest resolved at the endpoint that served it.
pub struct RemoteManifest {
    /// Holds the endpoint's token once the manifest is fetched.
    client: oci_client::Client,
    /// The reference at that endpoint's domain (a mirror's, or its own).
    oref: oci_client::Reference,
    /// What the reference named: the list's digest for a multi-platform
    /// image (what `RepoDigests` records), else the manifest's.
    pub top_digest: String,
    /// The chosen platform's manifest, its bytes and digest.
    pub digest: String,
    pub bytes: bytes::Bytes,
    manifest: Manifest,
}

/// A resolved manifest with its config, fetched and checked.
pub struct RemoteImage {
    pub manifest: RemoteManifest,
    pub config_bytes: Vec<u8>,
    pub config: Value,
    pub diff_ids: Vec<String>,
    pub chains: Vec<String>,
}

impl RemoteImage {
    /// The image's id: its config's digest.
    pub fn image_id(&self) -> &str {
        self.manifest
            .manifest
            .config
            .as_ref()
            .map(|d| d.digest.as_str())
            .unwrap_or_default()
    }
}

impl Images {
    /// Resolves `r` to one platform's manifest (the host's unless asked),
    /// Docker Hub's mirrors first, each tried anonymously: whatever goes
    /// wrong with one, the next endpoint is tried, as dockerd falls back.
    /// The whole image then comes from where its manifest came from.
    pub async fn resolve_manifest(
        &self,
        r: &Reference,
        platform: Option<Platform>,
        auth: &AuthConfig,
    ) -> Result<RemoteManifest> {
        let familiar_ref = familiar(&r.normalized());
        let accepted = [
            DOCKER_MANIFEST,
            OCI_MANIFEST,
            DOCKER_MANIFEST_LIST,
            OCI_INDEX,
        ];
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
                RegistryAuth::Anonymous
            } else {
                auth.registry_auth()
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

        let (manifest, bytes, digest) = if top.manifests.is_some() || is_index(&top.media_type) {
            let wanted = platform.unwrap_or_else(Platform::host);
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
            (top, top_bytes, top_digest.clone())
        };
        if manifest.schema_version != 2 {
            return Err(Error::InvalidArgument(format!(
                "unsupported manifest schema version {} for {familiar_ref}: only Docker schema 2 and OCI manifests can be pulled",
                manifest.schema_version
            )));
        }
        let config = manifest
            .config
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("manifest has no config".into()))?;
        if config.size > MAX_CONFIG_SIZE {
            return Err(Error::InvalidArgument(format!(
                "image config of {} bytes is too large",
                config.size
            )));
        }
        Ok(RemoteManifest {
            client,
            oref,
            top_digest,
            digest,
            bytes,
            manifest,
        })
    }

    /// Fetches the manifest's config (small, fetched whole and checked
    /// against its digest) and checks it lists as many layers.
    pub async fn fetch_config(&self, manifest: RemoteManifest) -> Result<RemoteImage> {
        let desc = manifest
            .manifest
            .config
            .clone()
            .ok_or_else(|| Error::InvalidArgument("manifest has no config".into()))?;
        let mut config_bytes = Vec::new();
        manifest
            .client
            .pull_blob(&manifest.oref, &oci_descriptor(&desc), &mut config_bytes)
            .await
            .map_err(registry_error)?;
        if sha256_digest(&config_bytes) != desc.digest {
            return Err(Error::InvalidArgument(format!(
                "config digest mismatch for {}",
                desc.digest
            )));
        }
        let config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| Error::InvalidArgument(format!("invalid image config: {e}")))?;
        let diff_ids = super::diff_ids_of(&config);
        if diff_ids.len() != manifest.manifest.layers.len() {
            return Err(Error::InvalidArgument(format!(
                "image config lists {} layers, the manifest {}",
                diff_ids.len(),
                manifest.manifest.layers.len()
            )));
        }
        let chains = unpack::chain_ids(&diff_ids);
        Ok(RemoteImage {
            manifest,
            config_bytes,
            config,
            diff_ids,
            chains,
        })
    }

    /// Makes the image's first `count` layers present: "Already exists" or
    /// a download, at most N at once. The caller holds the collector's
    /// lock (shared) until it has recorded what uses them.
    pub(super) async fn fetch_layers(
        self: &Arc<Self>,
        image: &RemoteImage,
        count: usize,
        progress: &Arc<Progress>,
        existed: bool,
    ) -> Result<()> {
        let slots = Arc::new(Semaphore::new(self.max_downloads().max(1)));
        let mut jobs = Vec::new();
        let layers = image.manifest.manifest.layers.iter();
        for ((desc, diff), chain) in layers.zip(&image.diff_ids).zip(&image.chains).take(count) {
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
        let (client, oref) = (&image.manifest.client, &image.manifest.oref);
        let fetches = jobs.into_iter().map(|(desc, diff, chain, id)| {
            let this = self.clone();
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
        let failed = first_error.lock().unwrap_or_else(|p| p.into_inner()).take();
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Images {
    /// Records an image made of the first `layers` layers of a remote one
    /// and `config` (a cached build step's, remade from the inline cache),
    /// fetching the layers not here yet. Nothing else of the remote image
    /// is recorded: no pulled image appears.
    pub async fn adopt(
        self: &Arc<Self>,
        remote: &RemoteImage,
        layers: usize,
        config: Vec<u8>,
        parent: &str,
    ) -> Result<ImageRow> {
        let (Some(diff_ids), Some(chains)) =
            (remote.diff_ids.get(..layers), remote.chains.get(..layers))
        else {
            return Err(Error::InvalidArgument(format!(
                "the image has no {layers} layers"
            )));
        };
        let _gc = self.gc_lock.read().await;
        self.fetch_layers(remote, layers, &Progress::new(), true)
            .await?;
        let chains = chains.to_vec();
        let size: u64 = chains.iter().map(|c| self.snapshot_size(c)).sum();
        let value: Value = serde_json::from_slice(&config).map_err(Error::internal)?;
        let row = ImageRow {
            id: sha256_digest(&config),
            created: value["created"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(crate::util::now_rfc3339),
            config: String::from_utf8_lossy(&config).into_owned(),
            layers: diff_ids.to_vec(),
            chains,
            size: size as i64,
            manifest: String::new(),
            parent: parent.to_string(),
        };
        self.store.insert_image(&row).await?;
        Ok(row)
    }
}
