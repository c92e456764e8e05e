//! `docker save`: images as one tar archive in the layout Docker 25+
//! writes, which every `docker load` reads: an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…` with uncompressed layer
//! tars) plus the classic `manifest.json` and `repositories`.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use super::content::{digest_hex, sha256_digest};
use super::pull::OCI_LAYER_TAR;
use super::reference::{familiar, familiar_repository, Reference};
use super::Images;
use crate::error::{Error, Result};
use crate::store::{ImageRow, LayerBlob};

/// One image to save, with the names it is saved under.
struct Entry {
    image: ImageRow,
    names: Vec<String>,
    /// Per layer: the stored blob to read it from.
    blobs: Vec<LayerBlob>,
}

impl Images {
    /// Writes the archive of `names` to a scratch file and returns it
    /// opened, already unlinked: the response streams from it.
    pub async fn save(self: &Arc<Self>, names: &[String]) -> Result<std::fs::File> {
        if names.is_empty() {
            return Err(Error::InvalidArgument("no images to save".into()));
        }
        let _shared = self.gc_lock.read().await;
        let mut entries: Vec<Entry> = Vec::new();
        let all_tags = self.store.tags().await?;
        for name in names {
            // A bare repository name saves every tag of it, as Docker does.
            let parsed = Reference::parse(name)
                .ok()
                .filter(|r| r.tag.is_none() && r.digest.is_none());
            let repo_tags: Vec<(String, String)> = match &parsed {
                Some(r) => all_tags
                    .iter()
                    .filter(|(t, _)| {
                        familiar_repository(t)
                            == familiar_repository(&r.clone().with_default_tag().normalized())
                    })
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            let picks: Vec<(ImageRow, Option<String>)> = if repo_tags.is_empty() {
                // dockerd's save names the image as asked, no tag added.
                let img = self
                    .find(name)
                    .await?
                    .ok_or_else(|| Error::no_such_image(name))?;
                let tag = Reference::parse(name)
                    .ok()
                    .filter(|r| r.digest.is_none())
                    .map(|r| r.with_default_tag().normalized());
                let tag = tag.filter(|t| all_tags.iter().any(|(n, id)| n == t && *id == img.id));
                vec![(img, tag)]
            } else {
                let mut v = Vec::new();
                for (t, id) in repo_tags {
                    v.push((self.resolve(&id).await?, Some(t)));
                }
                v
            };
            for (img, tag) in picks {
                let tag = tag.map(|t| familiar(&t));
                if let Some(e) = entries.iter_mut().find(|e| e.image.id == img.id) {
                    if let Some(t) = tag {
                        if !e.names.contains(&t) {
                            e.names.push(t);
                        }
                    }
                    continue;
                }
                let mut blobs = Vec::new();
                for diff in &img.layers {
                    let stored = self.store.layer_blobs(diff).await?;
                    let blob = stored
                        .iter()
                        .find(|b| b.media_type == OCI_LAYER_TAR && self.content.exists(&b.digest))
                        .or_else(|| stored.iter().find(|b| self.content.exists(&b.digest)))
                        .cloned()
                        .ok_or_else(|| {
                            Error::NotFound(format!(
                                "layer {diff} of {} has no stored archive",
                                img.id
                            ))
                        })?;
                    blobs.push(blob);
                }
                entries.push(Entry {
                    image: img,
                    names: tag.into_iter().collect(),
                    blobs,
                });
            }
        }
        let this = self.clone();
        let path = self
            .tmp_dir()
            .join(format!("save-{}", crate::util::random_id()));
        let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
            let result = this.write_archive(&entries, &path);
            let opened = result.and_then(|()| Ok(std::fs::File::open(&path)?));
            let _ = std::fs::remove_file(&path);
            opened
        })
        .await
        .map_err(Error::internal)??;
        for n in names {
            self.image_event("save", n);
        }
        Ok(file)
    }

    fn write_archive(&self, entries: &[Entry], path: &Path) -> Result<()> {
        let mut ar = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(path)?));
        let mut written: HashSet<String> = HashSet::new();
        let mut layer_sizes: std::collections::HashMap<String, u64> =
            std::collections::HashMap::new();
        let mut manifest_json = Vec::new();
        let mut index = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        add(&mut ar, "blobs/", None)?;
        add(&mut ar, "blobs/sha256/", None)?;
        for e in entries {
            let config = e.image.config.as_bytes();
            let config_hex = digest_hex(&e.image.id)?.to_string();
            if written.insert(config_hex.clone()) {
                add(&mut ar, &format!("blobs/sha256/{config_hex}"), Some(config))?;
            }
            let mut layer_paths = Vec::new();
            let mut descriptors = Vec::new();
            for (diff, blob) in e.image.layers.iter().zip(&e.blobs) {
                let hex = digest_hex(diff)?.to_string();
                let name = format!("blobs/sha256/{hex}");
                let size = match layer_sizes.get(&hex) {
                    Some(s) => *s,
                    None => {
                        let s = self.append_plain_layer(&mut ar, &name, blob, diff)?;
                        layer_sizes.insert(hex.clone(), s);
                        s
                    }
                };
                layer_paths.push(name);
                descriptors
                    .push(json!({ "mediaType": OCI_LAYER_TAR, "digest": diff, "size": size }));
            }
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": e.image.id, "size": config.len() },
                "layers": descriptors,
            }))
            .map_err(Error::internal)?;
            let manifest_digest = sha256_digest(&manifest);
            let manifest_hex = digest_hex(&manifest_digest)?.to_string();
            if written.insert(manifest_hex.clone()) {
                add(
                    &mut ar,
                    &format!("blobs/sha256/{manifest_hex}"),
                    Some(&manifest),
                )?;
            }
            let desc = |name: Option<&str>| {
                let mut d = json!({ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len() });
                if let Some(n) = name {
                    let full = Reference::parse(n)
                        .map(|r| r.with_default_tag().normalized())
                        .unwrap_or_else(|_| n.to_string());
                    d["annotations"] = json!({
                        "io.containerd.image.name": full,
                        "org.opencontainers.image.ref.name": n.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest"),
                    });
                }
                d
            };
            if e.names.is_empty() {
                index.push(desc(None));
            }
            for n in &e.names {
                index.push(desc(Some(n)));
                if let Some((repo, tag)) = n.rsplit_once(':').filter(|(r, _)| !r.is_empty()) {
                    repositories
                        .entry(repo.to_string())
                        .or_default()
                        .insert(tag.to_string(), config_hex.clone());
                }
            }
            manifest_json.push(json!({ "Config": format!("blobs/sha256/{config_hex}"), "RepoTags": e.names, "Layers": layer_paths }));
        }
        let index = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index });
        add(
            &mut ar,
            "index.json",
            Some(&serde_json::to_vec(&index).map_err(Error::internal)?),
        )?;
        add(
            &mut ar,
            "manifest.json",
            Some(&serde_json::to_vec(&Value::Array(manifest_json)).map_err(Error::internal)?),
        )?;
        add(
            &mut ar,
            "oci-layout",
            Some(br#"{"imageLayoutVersion":"1.0.0"}"#),
        )?;
        add(
            &mut ar,
            "repositories",
            Some(&serde_json::to_vec(&repositories).map_err(Error::internal)?),
        )?;
        ar.into_inner()?.flush()?;
        Ok(())
    }

    /// Appends a layer as a plain tar, decompressing a stored compressed
    /// blob into scratch space first (a tar entry needs its size up front).
    fn append_plain_layer<W: Write>(
        &self,
        ar: &mut tar::Builder<W>,
        name: &str,
        blob: &LayerBlob,
        diff: &str,
    ) -> Result<u64> {
        if blob.media_type == OCI_LAYER_TAR {
            let f = self.content.open(&blob.digest)?;
            let len = f.metadata()?.len();
            append_reader(ar, name, len, f)?;
            return Ok(len);
        }
        let scratch: PathBuf = self
            .tmp_dir()
            .join(format!("layer-{}", crate::util::random_id()));
        let result = (|| {
            let mut out = std::fs::File::create(&scratch)?;
            let mut hashing = super::unpack::HashingReader::new(super::unpack::decompress(
                self.content.open(&blob.digest)?,
            )?);
            let len = std::io::copy(&mut hashing, &mut out)?;
            let (got, _) = hashing.finish()?;
            if got != diff {
                return Err(Error::Internal(format!(
                    "stored layer {} does not match its diff id {diff}",
                    blob.digest
                )));
            }
            append_reader(ar, name, len, std::fs::File::open(&scratch)?)?;
            Ok(len)
        })();
        let _ = std::fs::remove_file(&scratch);
        result
    }
}

fn append_reader<W: Write>(
    ar: &mut tar::Builder<W>,
    name: &str,
    len: u64,
    data: impl Read,
) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(len);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    ar.append_data(&mut h, name, data)?;
    Ok(())
}

fn add<W: Write>(ar: &mut tar::Builder<W>, name: &str, data: Option<&[u8]>) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    match data {
        Some(d) => {
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            ar.append_data(&mut h, name, d)?;
        }
        None => {
            h.set_size(0);
            h.set_mode(0o755);
            h.set_entry_type(tar::EntryType::Directory);
            h.set_cksum();
            ar.append_data(&mut h, name, std::io::empty())?;
        }
    }
    Ok(())
}
