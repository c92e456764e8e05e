//! `docker push`: send an image's layer blobs (those the registry lacks),
//! its config and a manifest, with Docker's progress messages.
//!
//! An image that came from a registry is pushed as the same manifest and
//! blobs, so its digest stays the same. Otherwise a Docker schema 2
//! manifest is made; layers that exist only as plain tars (from a load, an
//! import or a commit) are gzip-compressed once and the result is kept.

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tracing::info;

use super::content::sha256_digest;
use super::progress::Progress;
use super::pull::{
    short_digest, Descriptor, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_LAYER_TAR,
    OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use super::reference::{familiar, Reference};
use super::registry::{oci_reference, registry_error, AuthConfig};
use super::Images;
use crate::error::{Error, Result};
use crate::store::{ImageRow, LayerBlob};

/// What goes to the registry.
struct Plan {
    layers: Vec<Descriptor>,
    manifest: Vec<u8>,
    media_type: String,
}

impl Images {
    /// Starts pushing `reference` (which must carry a tag); returns its
    /// progress after the first message, or the error that stopped it first.
    pub async fn push(
        self: &Arc<Self>,
        reference: Reference,
        auth: AuthConfig,
    ) -> Result<Arc<Progress>> {
        let img = self.find(&reference.normalized()).await?;
        let repo = reference.repository();
        let known_repo = img.is_some()
            || self
                .store
                .tags()
                .await?
                .iter()
                .any(|(name, _)| name.starts_with(&format!("{repo}:")));
        // A repository with no local tag is refused before the stream; a
        // missing tag of a known one is an error inside it, as in dockerd.
        if !known_repo {
            return Err(Error::NotFound(format!(
                "An image does not exist locally with the tag: {}",
                super::reference::familiar_repository(&reference.normalized())
            )));
        }
        let progress = Progress::new();
        progress.status(&format!("The push refers to repository [{repo}]"));
        let Some(img) = img else {
            progress.error(&format!(
                "tag does not exist: {}",
                familiar(&reference.normalized())
            ));
            progress.finish();
            return Ok(progress);
        };
        let this = self.clone();
        let p = progress.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run_push(&reference, &img, &auth, &p).await {
                tracing::warn!(reference = %reference.normalized(), error = %e, "push failed");
                p.error(&e.to_string());
            }
            p.finish();
        });
        Ok(progress)
    }

    /// `docker push --all-tags`: every local tag of the repository, one
    /// after the other, in one progress stream.
    pub async fn push_all_tags(
        self: &Arc<Self>,
        repository: Reference,
        auth: AuthConfig,
    ) -> Result<Arc<Progress>> {
        let repo = repository.repository();
        let tags: Vec<String> = self
            .store
            .tags()
            .await?
            .into_iter()
            .filter_map(|(name, _)| name.strip_prefix(&format!("{repo}:")).map(str::to_string))
            .collect();
        if tags.is_empty() {
            return Err(Error::NotFound(format!(
                "An image does not exist locally with the tag: {}",
                familiar(&repo)
            )));
        }
        let this = self.clone();
        Ok(Progress::sequence(tags, move |tag| {
            let r = Reference {
                tag: Some(tag),
                digest: None,
                ..repository.clone()
            };
            let (this, auth) = (this.clone(), auth.clone());
            async move { this.push(r, auth).await }
        }))
    }

    async fn run_push(
        self: &Arc<Self>,
        r: &Reference,
        img: &ImageRow,
        auth: &AuthConfig,
        progress: &Arc<Progress>,
    ) -> Result<()> {
        let _shared = self.gc_lock.read().await;
        let plan = self.plan_push(img).await?;
        let client = self.registries().client(&r.domain);
        let oref = oci_reference(r);
        client
            .auth(
                &oref,
                &auth.registry_auth(),
                oci_client::RegistryOperation::Push,
            )
            .await
            .map_err(registry_error)?;

        // Docker lists layers top first.
        for l in plan.layers.iter().rev() {
            progress.layer(&short_digest(&l.digest), "Preparing");
        }
        let slots = Arc::new(Semaphore::new(self.max_uploads().max(1)));
        let uploads = plan.layers.iter().rev().map(|layer| {
            let (client, oref, slots, progress) = (&client, &oref, slots.clone(), progress.clone());
            async move {
                let id = short_digest(&layer.digest);
                let _permit = match slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        progress.layer(&id, "Waiting");
                        slots.acquire_owned().await.map_err(Error::internal)?
                    }
                };
                if client
                    .blob_exists(oref, &layer.digest)
                    .await
                    .map_err(registry_error)?
                {
                    progress.layer(&id, "Layer already exists");
                    return Ok(());
                }
                let file = tokio::fs::File::open(self.content.path(&layer.digest)?).await?;
                let total = layer.size.max(0) as u64;
                let mut sent = 0u64;
                let p = progress.clone();
                let id2 = id.clone();
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).map(move |chunk| {
                        if let Ok(b) = &chunk {
                            sent += b.len() as u64;
                            p.bytes(&id2, "Pushing", sent, total, false);
                        }
                        chunk.map_err(oci_client::errors::OciDistributionError::IoError)
                    });
                client
                    .push_blob_stream(oref, stream, &layer.digest, Some(total))
                    .await
                    .map_err(registry_error)?;
                progress.layer(&id, "Pushed");
                Ok::<(), Error>(())
            }
        });
        futures_util::future::try_join_all(uploads).await?;

        let config = img.config.as_bytes().to_vec();
        if !client
            .blob_exists(&oref, &img.id)
            .await
            .map_err(registry_error)?
        {
            client
                .push_blob(&oref, config, &img.id)
                .await
                .map_err(registry_error)?;
        }
        let content_type = plan.media_type.parse().map_err(Error::internal)?;
        client
            .push_manifest_raw(&oref, plan.manifest.clone(), content_type)
            .await
            .map_err(registry_error)?;
        let digest = sha256_digest(&plan.manifest);
        let manifest_digest = self.content.put(&plan.manifest)?;
        self.store
            .set_image_manifest(&img.id, &manifest_digest)
            .await?;
        self.store
            .add_repo_digest(&format!("{}@{digest}", r.repository()), &img.id)
            .await?;
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        progress.status(&format!(
            "{tag}: digest: {digest} size: {}",
            plan.manifest.len()
        ));
        progress.pushed(&tag, &digest, plan.manifest.len());
        self.image_event("push", &familiar(&r.normalized()));
        info!(reference = %r.normalized(), %digest, "pushed");
        Ok(())
    }

    /// The manifest and layer blobs to push.
    async fn plan_push(self: &Arc<Self>, img: &ImageRow) -> Result<Plan> {
        // The manifest it was pulled with, when every blob is still here.
        if !img.manifest.is_empty() {
            if let Ok(bytes) = self.content.read(&img.manifest) {
                let m: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let layers: Vec<Descriptor> =
                    serde_json::from_value(m["layers"].clone()).unwrap_or_default();
                let media_type = m["mediaType"].as_str().unwrap_or(OCI_MANIFEST).to_string();
                if layers.len() == img.layers.len()
                    && layers.iter().all(|l| self.content.exists(&l.digest))
                {
                    return Ok(Plan {
                        layers,
                        manifest: bytes,
                        media_type,
                    });
                }
            }
        }
        let mut layers = Vec::new();
        for diff in &img.layers {
            let blob = self.compressed_blob(diff).await?;
            layers.push(Descriptor {
                media_type: blob.media_type,
                digest: blob.digest,
                size: blob.size,
                platform: None,
            });
        }
        let any_zstd = layers.iter().any(|l| l.media_type == OCI_LAYER_ZSTD);
        let (media_type, config_type) = if any_zstd {
            (OCI_MANIFEST, "application/vnd.oci.image.config.v1+json")
        } else {
            (DOCKER_MANIFEST, DOCKER_CONFIG)
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": { "mediaType": config_type, "size": img.config.len(), "digest": img.id },
            "layers": layers.iter().map(|l| json!({ "mediaType": l.media_type, "size": l.size, "digest": l.digest })).collect::<Vec<_>>(),
        });
        Ok(Plan {
            layers,
            manifest: serde_json::to_vec_pretty(&manifest).map_err(Error::internal)?,
            media_type: media_type.to_string(),
        })
    }

    /// A compressed blob of the layer: one already stored, or the plain
    /// tar gzip-compressed now (and kept for the next push).
    async fn compressed_blob(self: &Arc<Self>, diff_id: &str) -> Result<LayerBlob> {
        let blobs = self.store.layer_blobs(diff_id).await?;
        let present: Vec<&LayerBlob> = blobs
            .iter()
            .filter(|b| self.content.exists(&b.digest))
            .collect();
        if let Some(b) = present.iter().find(|b| b.media_type != OCI_LAYER_TAR) {
            let mut b = (*b).clone();
            if b.media_type
                .starts_with("application/vnd.oci.image.layer.v1.tar+gzip")
            {
                b.media_type = DOCKER_LAYER_GZIP.into();
            }
            return Ok(b);
        }
        let plain = present.first().ok_or_else(|| {
            Error::NotFound(format!(
                "layer {diff_id} has no stored archive to push (was it loaded by an older Berth?)"
            ))
        })?;
        let source = self.content.path(&plain.digest)?;
        let this = self.clone();
        let diff = diff_id.to_string();
        let blob = tokio::task::spawn_blocking(move || -> Result<LayerBlob> {
            let mut input = std::fs::File::open(source)?;
            let mut gz =
                flate2::write::GzEncoder::new(this.content.writer()?, flate2::Compression::fast());
            std::io::copy(&mut input, &mut gz)?;
            let writer = gz.finish()?;
            let size = writer.size() as i64;
            let digest = writer.commit(None)?;
            Ok(LayerBlob {
                diff_id: diff,
                digest,
                media_type: DOCKER_LAYER_GZIP.into(),
                size,
            })
        })
        .await
        .map_err(Error::internal)??;
        self.store.add_layer_blob(&blob).await?;
        Ok(blob)
    }
}
