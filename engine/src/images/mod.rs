//! Images: the tag table, image configs, and the layer snapshots that
//! containers' overlay mounts stack up.
//!
//! On disk (under the data-root): `snapshots/<chain-id hex>/fs` holds one
//! unpacked layer, shared by every image whose stack reaches it; a layer is
//! never unpacked twice. Image configs live in the database.

pub mod archive;
pub mod reference;
pub mod unpack;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use bollard_stubs::models::{ImageDeleteResponseItem, ImageInspect, ImageInspectRootFs, ImageSummary};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::{debug, info};

use crate::error::{Error, Result};
use crate::store::{ImageRow, Store};
use reference::{familiar, Reference};

pub struct Images {
    store: Store,
    snapshots: PathBuf,
    tmp: PathBuf,
    /// Serializes snapshot creation so that two loads never unpack the same layer.
    unpack_lock: tokio::sync::Mutex<()>,
}

/// GOARCH spelling of this machine's architecture, as image configs use it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

impl Images {
    pub fn new(store: Store, data_root: &Path) -> Result<Images> {
        let snapshots = data_root.join("snapshots");
        let tmp = data_root.join("tmp");
        std::fs::create_dir_all(&snapshots)?;
        // Scratch space of an earlier run (a load cut short by a crash) is garbage.
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        if let Ok(entries) = std::fs::read_dir(&snapshots) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(Images { store, snapshots, tmp, unpack_lock: tokio::sync::Mutex::new(()) })
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// The unpacked layer directory of a chain id.
    pub fn snapshot_fs(&self, chain: &str) -> PathBuf {
        self.snapshots.join(chain.strip_prefix("sha256:").unwrap_or(chain)).join("fs")
    }

    /// Finds an image by full or short id or by reference; 404 otherwise.
    pub async fn resolve(&self, name: &str) -> Result<ImageRow> {
        self.find(name).await?.ok_or_else(|| Error::no_such_image(name))
    }

    pub async fn find(&self, name: &str) -> Result<Option<ImageRow>> {
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        let looks_like_id = !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if let Ok(r) = Reference::parse(name) {
            if let Some(id) = self.store.tag(&r.with_default_tag().normalized()).await? {
                return self.store.image(&id).await;
            }
        }
        if looks_like_id && (name.starts_with("sha256:") || hex.len() >= 4 || hex.len() == 64) {
            let ids = self.store.image_ids_with_prefix(hex).await?;
            if ids.len() > 1 {
                return Err(Error::InvalidArgument(format!("multiple images found with provided prefix: {hex}")));
            }
            if let Some(id) = ids.first() {
                return self.store.image(id).await;
            }
        }
        Ok(None)
    }

    /// Normalized tags per image id.
    async fn tag_map(&self) -> Result<HashMap<String, Vec<String>>> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (name, id) in self.store.tags().await? {
            map.entry(id).or_default().push(name);
        }
        Ok(map)
    }

    pub async fn tags_of(&self, id: &str) -> Result<Vec<String>> {
        Ok(self.tag_map().await?.remove(id).unwrap_or_default())
    }

    pub async fn list(&self, filters: &crate::api::filters::Filters, all: bool) -> Result<Vec<ImageSummary>> {
        let _ = all; // no intermediate images exist until `docker build` does
        filters.only(&["dangling", "reference", "label", "before", "since"])?;
        let tags = self.tag_map().await?;
        let images = self.store.images().await?;
        let containers = self.store.containers().await?;
        let mut before = None;
        if let Some(b) = filters.get("before").first() {
            let img = self.resolve(b).await?;
            before = Some(img.created.clone());
        }
        let mut since = None;
        if let Some(s) = filters.get("since").first() {
            let img = self.resolve(s).await?;
            since = Some(img.created.clone());
        }
        let dangling = match filters.get("dangling").first().map(String::as_str) {
            None => None,
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            Some(v) => return Err(Error::InvalidArgument(format!("Invalid filter 'dangling=[{v}]'"))),
        };
        let mut out = Vec::new();
        for img in images {
            let mut img_tags: Vec<String> = tags.get(&img.id).cloned().unwrap_or_default();
            if let Some(d) = dangling {
                if d != img_tags.is_empty() {
                    continue;
                }
            }
            // Like Docker, a reference filter also narrows the tags shown.
            let refs = filters.get("reference");
            if !refs.is_empty() {
                img_tags.retain(|t| refs.iter().any(|pat| reference_matches(pat, t)));
                if img_tags.is_empty() {
                    continue;
                }
            }
            let config: Value = serde_json::from_str(&img.config).unwrap_or(Value::Null);
            let labels = labels_of(&config);
            if !crate::api::filters::labels_match(&filters.get("label"), &labels) {
                continue;
            }
            if before.as_ref().is_some_and(|b| img.created >= *b) || since.as_ref().is_some_and(|s| img.created <= *s) {
                continue;
            }
            let used = containers.iter().filter(|c| c.image_id == img.id).count() as i64;
            out.push(ImageSummary {
                id: img.id.clone(),
                parent_id: String::new(),
                repo_tags: img_tags.iter().map(|t| familiar(t)).collect(),
                repo_digests: vec![],
                created: crate::util::parse_rfc3339(&img.created).map(|t| t.0).unwrap_or(0),
                size: img.size,
                shared_size: -1,
                labels,
                containers: used,
                manifests: None,
                descriptor: None,
            });
        }
        Ok(out)
    }

    pub async fn inspect(&self, name: &str) -> Result<ImageInspect> {
        let img = self.resolve(name).await?;
        let config: Value = serde_json::from_str(&img.config).unwrap_or(Value::Null);
        let tags = self.tags_of(&img.id).await?;
        let mut inspect = ImageInspect {
            id: Some(img.id.clone()),
            repo_tags: Some(tags.iter().map(|t| familiar(t)).collect()),
            repo_digests: Some(vec![]),
            comment: Some(config["comment"].as_str().unwrap_or_default().to_string()),
            created: Some(img.created.clone()),
            author: Some(config["author"].as_str().unwrap_or_default().to_string()),
            architecture: Some(config["architecture"].as_str().unwrap_or(go_arch()).to_string()),
            os: Some(config["os"].as_str().unwrap_or("linux").to_string()),
            size: Some(img.size),
            root_fs: Some(ImageInspectRootFs { typ: "layers".into(), layers: Some(img.layers.clone()) }),
            ..Default::default()
        };
        inspect.config = serde_json::from_value(config["config"].clone()).ok();
        inspect.variant = config["variant"].as_str().map(str::to_string);
        Ok(inspect)
    }

    pub async fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        let img = self.resolve(source).await?;
        let full = if tag.is_empty() { repo.to_string() } else { format!("{repo}:{tag}") };
        let r = Reference::parse(&full)?;
        if r.digest.is_some() {
            return Err(Error::InvalidArgument("refusing to create a tag with a digest reference".into()));
        }
        self.store.set_tag(&r.with_default_tag().normalized(), &img.id).await?;
        Ok(())
    }

    /// `docker rmi`: untag when the name is one of several tags, else delete.
    pub async fn remove(&self, name: &str, force: bool) -> Result<Vec<ImageDeleteResponseItem>> {
        let img = self.resolve(name).await?;
        let tags = self.tags_of(&img.id).await?;
        let by_ref = Reference::parse(name).ok().map(|r| r.with_default_tag().normalized()).filter(|n| tags.contains(n));
        let users = self.store.containers_using_image(&img.id).await?;
        let mut out = Vec::new();

        if let Some(tag) = &by_ref {
            if tags.len() > 1 || (!users.is_empty() && force) {
                self.store.delete_tag(tag).await?;
                out.push(untagged(tag));
                if tags.len() > 1 {
                    return Ok(out);
                }
            } else if !users.is_empty() {
                return Err(Error::Conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    short(&users[0].id),
                    short(&img.id)
                )));
            }
        } else if tags.len() > 1 && !force {
            return Err(Error::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                short(&img.id)
            )));
        }
        if let Some(user) = users.first() {
            let running = serde_json::from_str::<Value>(&user.state).ok().and_then(|s| s["Running"].as_bool()).unwrap_or(false);
            if running {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
                    short(&img.id),
                    short(&user.id)
                )));
            }
            if !force {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
                    short(&img.id),
                    short(&user.id)
                )));
            }
            // Forced with a stopped user: Docker only untags in this case.
            for t in &tags {
                if by_ref.as_deref() != Some(t.as_str()) {
                    self.store.delete_tag(t).await?;
                    out.push(untagged(t));
                }
            }
            return Ok(out);
        }
        // Deleting: every remaining tag goes with it (one named by the
        // request may already have been reported above).
        for t in &tags {
            if !out.iter().any(|o| o.untagged.as_deref() == Some(familiar(t).as_str())) {
                out.push(untagged(t));
            }
        }
        self.store.delete_image(&img.id).await?;
        self.prune_snapshots().await?;
        out.push(ImageDeleteResponseItem { untagged: None, deleted: Some(img.id.clone()) });
        Ok(out)
    }

    /// Removes snapshots that no image refers to any more.
    async fn prune_snapshots(&self) -> Result<()> {
        let _guard = self.unpack_lock.lock().await;
        let used: HashSet<String> = self
            .store
            .images()
            .await?
            .iter()
            .flat_map(|i| i.chains.iter().map(|c| c.strip_prefix("sha256:").unwrap_or(c).to_string()))
            .collect();
        for e in std::fs::read_dir(&self.snapshots)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && !used.contains(&name) {
                debug!(snapshot = %name, "removing unused snapshot");
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(())
    }

    /// Makes sure the snapshot of `chain` exists, unpacking `open()` if not,
    /// and checks the unpacked layer against `expected` diff id.
    fn ensure_snapshot(&self, chain: &str, expected: &str, open: impl FnOnce() -> Result<std::fs::File>) -> Result<u64> {
        let dir = self.snapshots.join(chain.strip_prefix("sha256:").unwrap_or(chain));
        if dir.join("fs").is_dir() {
            return Ok(std::fs::read_to_string(dir.join("size")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0));
        }
        let tmp = self.snapshots.join(format!(".tmp-{}", crate::util::random_id()));
        std::fs::create_dir_all(tmp.join("fs"))?;
        let result = (|| {
            let (diff, size) = unpack::unpack_layer(open()?, &tmp.join("fs")).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            if diff != expected {
                return Err(Error::InvalidArgument(format!("layer digest mismatch: expected {expected}, got {diff}")));
            }
            std::fs::write(tmp.join("size"), size.to_string())?;
            std::fs::rename(&tmp, &dir)?;
            Ok(size)
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// `docker load`: returns the lines to report ("Loaded image: …").
    pub async fn load(self: &std::sync::Arc<Self>, archive_path: PathBuf) -> Result<Vec<String>> {
        let this = self.clone();
        let _guard = self.unpack_lock.lock().await;
        let found = tokio::task::spawn_blocking(move || this.load_blocking(&archive_path)).await.map_err(Error::internal)??;
        let mut lines = Vec::new();
        for (id, config, layers, chains, size, tags) in found {
            let created = serde_json::from_slice::<Value>(&config).ok().and_then(|c| c["created"].as_str().map(str::to_string)).unwrap_or_else(crate::util::now_rfc3339);
            self.store
                .insert_image(&ImageRow { id: id.clone(), config: String::from_utf8_lossy(&config).into_owned(), layers, chains, size: size as i64, created })
                .await?;
            if tags.is_empty() {
                lines.push(format!("Loaded image ID: {id}"));
            }
            for t in tags {
                let r = Reference::parse(&t)?.with_default_tag();
                self.store.set_tag(&r.normalized(), &id).await?;
                lines.push(format!("Loaded image: {}", familiar(&r.normalized())));
            }
            info!(image = %id, "image loaded");
        }
        Ok(lines)
    }

    #[allow(clippy::type_complexity)]
    fn load_blocking(&self, archive_path: &Path) -> Result<Vec<(String, Vec<u8>, Vec<String>, Vec<String>, u64, Vec<String>)>> {
        let scratch = self.tmp.join(format!("load-{}", crate::util::random_id()));
        let result = (|| {
            let file = std::fs::File::open(archive_path)?;
            let extracted = archive::extract(unpack::decompress(file)?, &scratch)?;
            let mut out = Vec::new();
            for image in extracted.images()? {
                let config: Value = serde_json::from_slice(&image.config).map_err(|e| Error::InvalidArgument(format!("invalid image config: {e}")))?;
                let diff_ids: Vec<String> = config["rootfs"]["diff_ids"].as_array().map(|a| a.iter().filter_map(|d| d.as_str().map(str::to_string)).collect()).unwrap_or_default();
                if diff_ids.len() != image.layers.len() {
                    return Err(Error::InvalidArgument(format!("image config lists {} layers, the archive has {}", diff_ids.len(), image.layers.len())));
                }
                for t in &image.repo_tags {
                    Reference::parse(t)?;
                }
                let chains = unpack::chain_ids(&diff_ids);
                let mut size = 0;
                for ((layer, diff), chain) in image.layers.iter().zip(&diff_ids).zip(&chains) {
                    size += self.ensure_snapshot(chain, diff, || extracted.open(layer))?;
                }
                let id = format!("sha256:{}", hex::encode(Sha256::digest(&image.config)));
                out.push((id, image.config, diff_ids, chains, size, image.repo_tags));
            }
            Ok(out)
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    /// `docker import`: one layer from a root filesystem tar; returns the image id.
    pub async fn import(self: &std::sync::Arc<Self>, tar_path: PathBuf, reference: Option<Reference>, message: &str) -> Result<String> {
        let this = self.clone();
        let _guard = self.unpack_lock.lock().await;
        let (diff, size) = tokio::task::spawn_blocking(move || -> Result<(String, u64)> {
            let tmp = this.snapshots.join(format!(".tmp-{}", crate::util::random_id()));
            std::fs::create_dir_all(tmp.join("fs"))?;
            let unpacked = unpack::unpack_layer(std::fs::File::open(&tar_path)?, &tmp.join("fs")).map_err(|e| Error::InvalidArgument(e.to_string()));
            let (diff, size) = match unpacked {
                Ok(v) => v,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(e);
                }
            };
            let dir = this.snapshots.join(diff.strip_prefix("sha256:").unwrap_or(&diff));
            if dir.join("fs").is_dir() {
                let _ = std::fs::remove_dir_all(&tmp);
            } else {
                std::fs::write(tmp.join("size"), size.to_string())?;
                std::fs::rename(&tmp, &dir)?;
            }
            Ok((diff, size))
        })
        .await
        .map_err(Error::internal)??;
        let created = crate::util::now_rfc3339();
        let mut history = serde_json::json!({"created": created, "created_by": "", "comment": "Imported from -"});
        if !message.is_empty() {
            history["comment"] = Value::String(message.to_string());
        }
        let config = serde_json::json!({
            "architecture": go_arch(),
            "os": "linux",
            "created": created,
            "comment": message,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff]},
            "history": [history],
        });
        let bytes = serde_json::to_vec(&config).map_err(Error::internal)?;
        let id = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        self.store
            .insert_image(&ImageRow { id: id.clone(), config: String::from_utf8_lossy(&bytes).into_owned(), layers: vec![diff.clone()], chains: vec![diff], size: size as i64, created })
            .await?;
        if let Some(r) = reference {
            self.store.set_tag(&r.with_default_tag().normalized(), &id).await?;
        }
        Ok(id)
    }

    pub async fn count(&self) -> Result<usize> {
        Ok(self.store.images().await?.len())
    }
}

fn untagged(normalized: &str) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem { untagged: Some(familiar(normalized)), deleted: None }
}

pub fn labels_of(config: &Value) -> HashMap<String, String> {
    config["config"]["Labels"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

/// `docker images --filter reference=PATTERN`: a glob on the familiar name,
/// with or without its tag.
fn reference_matches(pattern: &str, normalized: &str) -> bool {
    let fam = familiar(normalized);
    let repo = reference::familiar_repository(normalized);
    glob(pattern, &fam) || glob(pattern, &repo)
}

/// Shell-style glob as Go's path.Match: `*` and `?` do not cross `/`.
pub fn glob(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && go(p, &s[1..])),
            (Some(b'?'), Some(&c)) if c != b'/' => go(&p[1..], &s[1..]),
            (Some(&a), Some(&b)) if a == b && a != b'*' && a != b'?' => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter_globs() {
        assert!(reference_matches("busybox", "docker.io/library/busybox:latest"));
        assert!(reference_matches("busy*", "docker.io/library/busybox:latest"));
        assert!(reference_matches("busybox:lat*", "docker.io/library/busybox:latest"));
        assert!(!reference_matches("alpine", "docker.io/library/busybox:latest"));
        assert!(!glob("*", "a/b"));
    }
}
