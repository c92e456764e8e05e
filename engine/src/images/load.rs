//! `docker load` and `docker import`: images from archives. Every layer is
//! unpacked into a snapshot (unless one exists) and also kept, as the bytes
//! it came as, in the content store, so that push and save can send it on.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tracing::info;

use super::content::sha256_digest;
use super::pull::{DOCKER_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD};
use super::reference::{familiar, Reference};
use super::{archive, go_arch, unpack, Images};
use crate::error::{Error, Result};
use crate::store::{ImageRow, LayerBlob};

/// One image read from an archive, ready to be recorded.
struct Loaded {
    row: ImageRow,
    tags: Vec<String>,
    blobs: Vec<LayerBlob>,
}

/// The media type a layer blob's first bytes say it has.
fn sniff_media_type(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        DOCKER_LAYER_GZIP
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        OCI_LAYER_ZSTD
    } else {
        OCI_LAYER_TAR
    }
}

/// Copies everything read into the content store.
struct Tee<R> {
    inner: R,
    out: super::content::BlobWriter,
    head: Vec<u8>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.head.len() < 8 {
            self.head.extend_from_slice(&buf[..n.min(8)]);
        }
        std::io::Write::write_all(&mut self.out, &buf[..n])?;
        Ok(n)
    }
}

impl Images {
    /// Makes sure the snapshot of `chain` exists (unpacking the layer if
    /// not, checked against the diff id `expected`) and that the layer's
    /// blob is in the content store; returns the unpacked size and the blob.
    pub(crate) fn ensure_layer(
        &self,
        chain: &str,
        expected: &str,
        layer: std::fs::File,
    ) -> Result<(u64, LayerBlob)> {
        let mut tee = Tee {
            inner: layer,
            out: self.content.writer()?,
            head: Vec::new(),
        };
        if self.snapshot_exists(chain) {
            std::io::copy(&mut tee, &mut std::io::sink())?;
        } else {
            let tmp = self.scratch_snapshot()?;
            let unpacked = (|| {
                let diff = unpack::unpack_layer(&mut tee, &tmp.join("fs"))
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                std::io::copy(&mut tee, &mut std::io::sink())?;
                if diff != expected {
                    return Err(Error::InvalidArgument(format!(
                        "layer digest mismatch: expected {expected}, got {diff}"
                    )));
                }
                Images::record_snapshot_size(&tmp)?;
                Ok(())
            })();
            match unpacked {
                Ok(()) => self.place_snapshot(&tmp, chain)?,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(e);
                }
            }
        }
        let media_type = sniff_media_type(&tee.head).to_string();
        let size = tee.out.size() as i64;
        let digest = tee.out.commit(None)?;
        if media_type == OCI_LAYER_TAR && digest != expected {
            return Err(Error::InvalidArgument(format!(
                "layer digest mismatch: expected {expected}, got {digest}"
            )));
        }
        Ok((
            self.snapshot_size(chain),
            LayerBlob {
                diff_id: expected.to_string(),
                digest,
                media_type,
                size,
            },
        ))
    }

    /// Records a loaded, imported or committed image and its layer blobs.
    pub(crate) async fn record(&self, row: &ImageRow, blobs: &[LayerBlob]) -> Result<()> {
        for b in blobs {
            self.store.add_layer_blob(b).await?;
        }
        self.store.insert_image(row).await
    }

    /// `docker load`: returns the lines to report ("Loaded image: …").
    pub async fn load(self: &Arc<Self>, archive_path: PathBuf) -> Result<Vec<String>> {
        let this = self.clone();
        let _shared = self.gc_lock.read().await;
        let found = tokio::task::spawn_blocking(move || this.load_blocking(&archive_path))
            .await
            .map_err(Error::internal)??;
        let mut lines = Vec::new();
        for loaded in found {
            self.record(&loaded.row, &loaded.blobs).await?;
            let id = &loaded.row.id;
            if loaded.tags.is_empty() {
                lines.push(format!("Loaded image ID: {id}"));
                self.image_event("load", id);
            }
            for t in loaded.tags {
                let r = Reference::parse(&t)?.with_default_tag();
                self.store.set_tag(&r.normalized(), id).await?;
                let name = familiar(&r.normalized());
                lines.push(format!("Loaded image: {name}"));
                self.image_event("load", &name);
            }
            info!(image = %id, "image loaded");
        }
        Ok(lines)
    }

    fn load_blocking(&self, archive_path: &Path) -> Result<Vec<Loaded>> {
        let scratch = self
            .tmp_dir()
            .join(format!("load-{}", crate::util::random_id()));
        let result = (|| {
            let file = std::fs::File::open(archive_path)?;
            let extracted = archive::extract(unpack::decompress(file)?, &scratch)?;
            let mut out = Vec::new();
            for image in extracted.images()? {
                let config: Value = serde_json::from_slice(&image.config)
                    .map_err(|e| Error::InvalidArgument(format!("invalid image config: {e}")))?;
                let diff_ids = super::diff_ids_of(&config);
                if diff_ids.len() != image.layers.len() {
                    return Err(Error::InvalidArgument(format!(
                        "image config lists {} layers, the archive has {}",
                        diff_ids.len(),
                        image.layers.len()
                    )));
                }
                for t in &image.repo_tags {
                    Reference::parse(t)?;
                }
                let chains = unpack::chain_ids(&diff_ids);
                let mut size = 0;
                let mut blobs = Vec::new();
                for ((layer, diff), chain) in image.layers.iter().zip(&diff_ids).zip(&chains) {
                    let (s, blob) = self.ensure_layer(chain, diff, extracted.open(layer)?)?;
                    size += s;
                    blobs.push(blob);
                }
                let created = config["created"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(crate::util::now_rfc3339);
                let row = ImageRow {
                    id: sha256_digest(&image.config),
                    config: String::from_utf8_lossy(&image.config).into_owned(),
                    layers: diff_ids,
                    chains,
                    size: size as i64,
                    created,
                    manifest: String::new(),
                    parent: String::new(),
                };
                out.push(Loaded {
                    row,
                    tags: image.repo_tags,
                    blobs,
                });
            }
            Ok(out)
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    /// `docker import`: one layer from a root filesystem tar, with the
    /// Dockerfile-style `changes` applied to its config; returns the image id.
    pub async fn import(
        self: &Arc<Self>,
        tar_path: PathBuf,
        reference: Option<Reference>,
        message: &str,
        changes: &[String],
    ) -> Result<String> {
        let mut container_config = serde_json::json!({});
        super::changes::apply(&mut container_config, changes)?;
        let this = self.clone();
        let _shared = self.gc_lock.read().await;
        let (diff, size, blob) =
            tokio::task::spawn_blocking(move || -> Result<(String, u64, LayerBlob)> {
                // The diff id is only known after reading the tar once.
                let (diff, _) = unpack::HashingReader::new(unpack::decompress(
                    std::fs::File::open(&tar_path)?,
                )?)
                .finish()?;
                let (size, blob) =
                    this.ensure_layer(&diff, &diff, std::fs::File::open(&tar_path)?)?;
                Ok((diff, size, blob))
            })
            .await
            .map_err(Error::internal)??;
        let created = crate::util::now_rfc3339();
        let comment = if message.is_empty() {
            "Imported from -"
        } else {
            message
        };
        let config = serde_json::json!({
            "architecture": go_arch(),
            "os": "linux",
            "created": created,
            "comment": message,
            "config": container_config,
            "rootfs": {"type": "layers", "diff_ids": [diff]},
            "history": [{"created": created, "created_by": "", "comment": comment}],
        });
        let bytes = serde_json::to_vec(&config).map_err(Error::internal)?;
        let id = sha256_digest(&bytes);
        let row = ImageRow {
            id: id.clone(),
            config: String::from_utf8_lossy(&bytes).into_owned(),
            layers: vec![diff.clone()],
            chains: vec![diff],
            size: size as i64,
            created,
            manifest: String::new(),
            parent: String::new(),
        };
        self.record(&row, &[blob]).await?;
        if let Some(r) = reference {
            self.store
                .set_tag(&r.with_default_tag().normalized(), &id)
                .await?;
        }
        self.image_event("import", &id);
        Ok(id)
    }
}
