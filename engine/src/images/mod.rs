//! Images: the tag table, image configs, and the layer snapshots that
//! containers' overlay mounts stack up.
//!
//! On disk (under the data-root): `snapshots/<chain-id hex>/fs` holds one
//! unpacked layer, shared by every image whose stack reaches it; a layer is
//! never unpacked twice. `content/sha256/<hex>` holds the blobs the layers
//! came as (compressed from a registry, plain tar from a load), manifests,
//! and nothing else. Image configs live in the database.

pub mod archive;
pub mod changes;
pub mod commit;
pub mod content;
pub mod history;
pub mod load;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod remote;
pub mod save;
pub mod unpack;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bollard_stubs::models::{
    ContainerConfig, ImageDeleteResponseItem, ImageInspect, ImageInspectRootFs, ImageSummary,
};
use serde_json::Value;
use tracing::debug;

use crate::error::{Error, Result};
use crate::filters::images::{ImageFilter, ImagePruneFilter};
use crate::store::{ImageRow, Store};
use reference::{familiar, Reference};

/// `GET /images/{name}/json`: the spec's document plus the fields older
/// API versions still show and the typed model no longer has.
#[derive(serde::Serialize)]
pub struct ImageView {
    #[serde(flatten)]
    pub inspect: ImageInspect,
    /// The image it was committed or built from ("" if pulled or loaded).
    #[serde(rename = "Parent")]
    pub parent: String,
    /// The container a commit was made from (shown up to API 1.44).
    #[serde(rename = "Container")]
    pub container: String,
    #[serde(rename = "ContainerConfig")]
    pub container_config: Option<ContainerConfig>,
}

/// An image and the names it has (see [`Images::named`]).
pub struct NamedImage {
    pub row: ImageRow,
    pub tags: Vec<String>,
    pub digests: Vec<String>,
}

pub struct Images {
    store: Store,
    snapshots: PathBuf,
    tmp: PathBuf,
    pub(crate) content: content::ContentStore,
    /// Which registries are plain HTTP, and Docker Hub's mirrors: replaced
    /// whole when the configuration is reloaded.
    registries: std::sync::RwLock<registry::Registries>,
    pub events: Arc<crate::events::Events>,
    /// Operations that add layers hold it shared; garbage collection holds
    /// it exclusively, so it never takes a layer that is about to be used.
    gc_lock: tokio::sync::RwLock<()>,
    /// Pulls under way, by reference and platform, for sharing.
    pulls: Mutex<HashMap<String, Arc<progress::Progress>>>,
    /// One lock per layer being fetched or unpacked.
    layer_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    max_downloads: std::sync::atomic::AtomicUsize,
    max_uploads: std::sync::atomic::AtomicUsize,
}

fn registries_of(config: &crate::config::Config) -> Result<registry::Registries> {
    let mirrors = config
        .registry_mirrors
        .iter()
        .map(|m| registry::Mirror::parse(m))
        .collect::<std::result::Result<_, _>>()
        .map_err(Error::InvalidArgument)?;
    Ok(registry::Registries::new(
        config.insecure_registries.clone(),
        mirrors,
    ))
}

impl Images {
    /// The registry settings now (a copy: a reload may replace them).
    pub fn registries(&self) -> registry::Registries {
        self.registries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Takes what a configuration reload may change: insecure registries,
    /// mirrors, and how many layers move at once.
    pub fn reload(&self, config: &crate::config::Config) -> Result<()> {
        let registries = registries_of(config)?;
        *self.registries.write().unwrap_or_else(|p| p.into_inner()) = registries;
        use std::sync::atomic::Ordering::Relaxed;
        self.max_downloads
            .store(config.max_concurrent_downloads, Relaxed);
        self.max_uploads
            .store(config.max_concurrent_uploads, Relaxed);
        Ok(())
    }

    fn max_downloads(&self) -> usize {
        self.max_downloads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn max_uploads(&self) -> usize {
        self.max_uploads.load(std::sync::atomic::Ordering::Relaxed)
    }
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
    pub fn new(
        store: Store,
        config: &crate::config::Config,
        events: Arc<crate::events::Events>,
    ) -> Result<Images> {
        let data_root = &config.data_root;
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
        Ok(Images {
            store,
            snapshots,
            tmp,
            content: content::ContentStore::new(data_root)?,
            registries: std::sync::RwLock::new(registries_of(config)?),
            events,
            gc_lock: tokio::sync::RwLock::new(()),
            pulls: Mutex::new(HashMap::new()),
            layer_locks: Mutex::new(HashMap::new()),
            max_downloads: config.max_concurrent_downloads.into(),
            max_uploads: config.max_concurrent_uploads.into(),
        })
    }

    pub fn snapshot_exists(&self, chain: &str) -> bool {
        self.snapshot_fs(chain).is_dir()
    }

    /// Unpacked size of a snapshot, as recorded when it was made.
    pub fn snapshot_size(&self, chain: &str) -> u64 {
        let dir = self
            .snapshots
            .join(chain.strip_prefix("sha256:").unwrap_or(chain));
        std::fs::read_to_string(dir.join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Records the size of an unpacked scratch snapshot as dockerd counts
    /// a layer's: the bytes of its files and symlinks, each inode once,
    /// not the length of its tar (`docker images` shows the sum).
    pub(crate) fn record_snapshot_size(tmp: &Path) -> Result<()> {
        let size = crate::util::dir_size(&tmp.join("fs"));
        std::fs::write(tmp.join("size"), size.to_string())?;
        Ok(())
    }

    /// A fresh scratch snapshot directory (with an empty `fs`), which
    /// [`Images::place_snapshot`] moves into place; left-overs of a crash
    /// are deleted at the next start.
    pub(crate) fn scratch_snapshot(&self) -> Result<PathBuf> {
        let tmp = self
            .snapshots
            .join(format!(".tmp-{}", crate::util::random_id()));
        std::fs::create_dir_all(tmp.join("fs"))?;
        Ok(tmp)
    }

    /// Renames a scratch snapshot to its chain id; if another operation
    /// made the same snapshot meanwhile, the scratch copy goes.
    pub(crate) fn place_snapshot(&self, tmp: &Path, chain: &str) -> Result<()> {
        let dir = self
            .snapshots
            .join(chain.strip_prefix("sha256:").unwrap_or(chain));
        if let Err(e) = std::fs::rename(tmp, &dir) {
            let _ = std::fs::remove_dir_all(tmp);
            if !dir.join("fs").is_dir() {
                return Err(e.into());
            }
        }
        Ok(())
    }

    pub(crate) fn layer_lock(&self, chain: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.layer_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(chain.to_string()).or_default().clone()
    }

    /// An image event: `Actor.ID` is the reference or id, `name` the same.
    pub fn image_event(&self, action: &str, name: &str) {
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("name".to_string(), name.to_string());
        self.events.emit("image", action, name, attrs);
    }

    /// Where image layers are unpacked (the CRI's image filesystem).
    pub fn snapshots_dir(&self) -> &Path {
        &self.snapshots
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Where an image's layers are unpacked, in overlay2's terms: the top
    /// layer as UpperDir, the others (top first) as LowerDir. dockerd adds
    /// MergedDir and WorkDir, directories an image never has (see
    /// api-spec/divergences.md).
    fn layer_dirs(&self, img: &ImageRow) -> bollard_stubs::models::DriverData {
        let mut dirs = img
            .chains
            .iter()
            .rev()
            .map(|ch| self.snapshot_fs(ch).display().to_string());
        let mut data = std::collections::HashMap::new();
        if let Some(upper) = dirs.next() {
            data.insert("UpperDir".to_string(), upper);
        }
        let lower: Vec<String> = dirs.collect();
        if !lower.is_empty() {
            data.insert("LowerDir".to_string(), lower.join(":"));
        }
        bollard_stubs::models::DriverData {
            name: "overlay2".into(),
            data,
        }
    }

    /// The unpacked layer directory of a chain id.
    pub fn snapshot_fs(&self, chain: &str) -> PathBuf {
        self.snapshots
            .join(chain.strip_prefix("sha256:").unwrap_or(chain))
            .join("fs")
    }

    /// Finds an image by full or short id or by reference; 404 otherwise.
    pub async fn resolve(&self, name: &str) -> Result<ImageRow> {
        self.find(name)
            .await?
            .ok_or_else(|| Error::no_such_image(&reference::as_asked(name)))
    }

    pub async fn find(&self, name: &str) -> Result<Option<ImageRow>> {
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        let looks_like_id = !hex.is_empty()
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if let Ok(r) = Reference::parse(name) {
            if let Some(d) = &r.digest {
                if let Some(id) = self
                    .store
                    .repo_digest(&format!("{}@{d}", r.repository()))
                    .await?
                {
                    return self.store.image(&id).await;
                }
            } else if let Some(id) = self.store.tag(&r.with_default_tag().normalized()).await? {
                return self.store.image(&id).await;
            }
        }
        if looks_like_id && (name.starts_with("sha256:") || hex.len() >= 4 || hex.len() == 64) {
            let ids = self.store.image_ids_with_prefix(hex).await?;
            if ids.len() > 1 {
                return Err(Error::InvalidArgument(format!(
                    "multiple images found with provided prefix: {hex}"
                )));
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

    /// Familiar repo digests per image id ("127.0.0.1:5000/app@sha256:…").
    async fn digest_map(&self) -> Result<HashMap<String, Vec<String>>> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (name, id) in self.store.repo_digests().await? {
            map.entry(id).or_default().push(familiar(&name));
        }
        Ok(map)
    }

    /// Every image with its tags and repo digests, fully qualified
    /// (`docker.io/library/busybox:latest`), as the CRI names images.
    /// Build steps (unnamed images) are left out.
    pub async fn named(&self) -> Result<Vec<NamedImage>> {
        let mut tags = self.tag_map().await?;
        let mut digests: HashMap<String, Vec<String>> = HashMap::new();
        for (name, id) in self.store.repo_digests().await? {
            digests.entry(id).or_default().push(name);
        }
        Ok(self
            .store
            .images()
            .await?
            .into_iter()
            .filter_map(|row| {
                let tags = tags.remove(&row.id).unwrap_or_default();
                let digests = digests.remove(&row.id).unwrap_or_default();
                (!tags.is_empty() || !digests.is_empty()).then_some(NamedImage {
                    row,
                    tags,
                    digests,
                })
            })
            .collect())
    }

    pub async fn list(&self, filters: &ImageFilter, all: bool) -> Result<Vec<ImageSummary>> {
        let tags = self.tag_map().await?;
        let digests = self.digest_map().await?;
        let images = self.store.images().await?;
        // Intermediate images (a build's steps: unnamed parents of another
        // image) show only with `all`, as in Docker.
        let parents: HashSet<&str> = images
            .iter()
            .map(|i| i.parent.as_str())
            .filter(|p| !p.is_empty())
            .collect();
        let intermediate: HashSet<String> = images
            .iter()
            .filter(|i| {
                parents.contains(i.id.as_str())
                    && !tags.contains_key(&i.id)
                    && !digests.contains_key(&i.id)
            })
            .map(|i| i.id.clone())
            .collect();
        // Counted in SQL: decoding every container to count them made
        // `docker images` slow on hosts with many containers.
        let containers = self.store.containers_per_image().await?;
        let mut before = None;
        if let Some(b) = &filters.before {
            let img = self.resolve(b).await?;
            before = Some(img.created.clone());
        }
        let mut since = None;
        if let Some(s) = &filters.since {
            let img = self.resolve(s).await?;
            since = Some(img.created.clone());
        }
        let dangling = filters.dangling;
        let mut out = Vec::new();
        for img in images {
            if !all && intermediate.contains(&img.id) {
                continue;
            }
            let mut img_tags: Vec<String> = tags.get(&img.id).cloned().unwrap_or_default();
            if let Some(d) = dangling {
                if d != (img_tags.is_empty() && !digests.contains_key(&img.id)) {
                    continue;
                }
            }
            // Like Docker, a reference filter also narrows the tags shown.
            let refs = &filters.reference;
            if !refs.is_empty() {
                img_tags.retain(|t| refs.iter().any(|pat| reference_matches(pat, t)));
                if img_tags.is_empty() {
                    continue;
                }
            }
            let config: Value = img.config_value();
            let labels = labels_of(&config);
            if !crate::filters::labels_match(&filters.label, &labels) {
                continue;
            }
            if before.as_ref().is_some_and(|b| img.created >= *b)
                || since.as_ref().is_some_and(|s| img.created <= *s)
            {
                continue;
            }
            let used = containers.get(&img.id).copied().unwrap_or(0);
            out.push(ImageSummary {
                id: img.id.clone(),
                parent_id: img.parent.clone(),
                repo_tags: img_tags.iter().map(|t| familiar(t)).collect(),
                repo_digests: digests.get(&img.id).cloned().unwrap_or_default(),
                created: crate::util::parse_rfc3339(&img.created)
                    .map(|t| t.0)
                    .unwrap_or(0),
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

    pub async fn inspect(&self, name: &str) -> Result<ImageView> {
        let img = self.resolve(name).await?;
        let config: Value = img.config_value();
        let tags = self.tags_of(&img.id).await?;
        let mut inspect = ImageInspect {
            id: Some(img.id.clone()),
            repo_tags: Some(tags.iter().map(|t| familiar(t)).collect()),
            repo_digests: Some(self.digest_map().await?.remove(&img.id).unwrap_or_default()),
            // As dockerd shows it: the config's comment, else the newest
            // history entry's.
            comment: Some(
                config["comment"]
                    .as_str()
                    .or_else(|| config["history"].as_array()?.last()?["comment"].as_str())
                    .unwrap_or_default()
                    .to_string(),
            ),
            created: Some(img.created.clone()),
            author: Some(config["author"].as_str().unwrap_or_default().to_string()),
            architecture: Some(
                config["architecture"]
                    .as_str()
                    .unwrap_or(go_arch())
                    .to_string(),
            ),
            os: Some(config["os"].as_str().unwrap_or("linux").to_string()),
            size: Some(img.size),
            root_fs: Some(ImageInspectRootFs {
                typ: "layers".into(),
                layers: Some(img.layers.clone()),
            }),
            graph_driver: Some(self.layer_dirs(&img)),
            ..Default::default()
        };
        inspect.config = serde_json::from_value(config["config"].clone()).ok();
        inspect.variant = config["variant"].as_str().map(str::to_string);
        Ok(ImageView {
            inspect,
            parent: img.parent.clone(),
            container: config["container"].as_str().unwrap_or_default().to_string(),
            // dockerd shows a zero config where the image has none.
            container_config: Some(
                serde_json::from_value(config["container_config"].clone()).unwrap_or_default(),
            ),
        })
    }

    pub async fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        let img = self.resolve(source).await?;
        let full = if tag.is_empty() {
            repo.to_string()
        } else {
            format!("{repo}:{tag}")
        };
        let r = Reference::parse(&full)?;
        if r.digest.is_some() {
            return Err(Error::InvalidArgument(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        let normalized = r.with_default_tag().normalized();
        self.store.set_tag(&normalized, &img.id).await?;
        self.image_event("tag", &familiar(&normalized));
        Ok(())
    }

    /// `docker rmi`: untag when the name is one of several tags, else
    /// delete; either way with Docker's untag and delete events.
    pub async fn remove(&self, name: &str, force: bool) -> Result<Vec<ImageDeleteResponseItem>> {
        let items = self.remove_quietly(name, force).await?;
        for item in &items {
            if let Some(t) = &item.untagged {
                self.image_event("untag", t);
            }
            if let Some(d) = &item.deleted {
                self.image_event("delete", d);
            }
        }
        Ok(items)
    }

    /// `docker image prune`: images no container uses that have no name
    /// (or, with `dangling=false`, all of them), filtered by `until` and
    /// `label`. Returns the deleted items and the bytes freed.
    pub async fn prune(
        &self,
        filters: &ImagePruneFilter,
    ) -> Result<(Vec<ImageDeleteResponseItem>, u64)> {
        let all = filters.all;
        let tags = self.tag_map().await?;
        let digests = self.digest_map().await?;
        let mut deleted = Vec::new();
        let images = self.store.images().await?;
        let parents: HashSet<String> = images.iter().map(|i| i.parent.clone()).collect();
        for img in images {
            let gone = |id: &str| {
                deleted
                    .iter()
                    .any(|d: &ImageDeleteResponseItem| d.deleted.as_deref() == Some(id))
            };
            if gone(&img.id) || !self.store.containers_using_image(&img.id).await?.is_empty() {
                continue;
            }
            // Dangling means top-level: a build's intermediate steps stay
            // while the image built on them does.
            if !all && parents.contains(&img.id) {
                continue;
            }
            let named = tags.contains_key(&img.id) || digests.contains_key(&img.id);
            if named && !all {
                continue;
            }
            let config: Value = img.config_value();
            let labels = labels_of(&config);
            if !filters.prune.matches(&img.created, &labels) {
                continue;
            }
            for t in tags.get(&img.id).into_iter().flatten() {
                deleted.push(untagged(t));
                self.image_event("untag", &familiar(t));
            }
            for d in digests.get(&img.id).into_iter().flatten() {
                deleted.push(ImageDeleteResponseItem {
                    untagged: Some(d.clone()),
                    deleted: None,
                });
            }
            self.store.delete_image(&img.id).await?;
            self.image_event("delete", &img.id);
            deleted.push(ImageDeleteResponseItem {
                untagged: None,
                deleted: Some(img.id.clone()),
            });
            if !all {
                // The dangling image's unnamed steps go with it.
                deleted.extend(self.delete_unused_parents(&img.parent).await?);
            }
        }
        let freed = self.gc().await?;
        Ok((deleted, freed))
    }

    async fn remove_quietly(
        &self,
        name: &str,
        force: bool,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let img = self.resolve(name).await?;
        let tags = self.tags_of(&img.id).await?;
        let by_ref = Reference::parse(name)
            .ok()
            .map(|r| r.with_default_tag().normalized())
            .filter(|n| tags.contains(n));
        let users = self.store.containers_using_image(&img.id).await?;
        let mut out = Vec::new();

        // A digest reference of an image that has other names: only it goes.
        if let Some(r) = Reference::parse(name).ok().filter(|r| r.digest.is_some()) {
            let full = format!("{}@{}", r.repository(), r.digest.as_deref().unwrap_or(""));
            let digests = self.digest_map().await?.remove(&img.id).unwrap_or_default();
            if self.store.repo_digest(&full).await?.is_some()
                && (!tags.is_empty() || digests.len() > 1)
            {
                self.store.delete_repo_digest(&full).await?;
                return Ok(vec![untagged(&full)]);
            }
        }

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
            let running = user.state.running;
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
            if !out
                .iter()
                .any(|o| o.untagged.as_deref() == Some(familiar(t).as_str()))
            {
                out.push(untagged(t));
            }
        }
        for d in self.digest_map().await?.remove(&img.id).unwrap_or_default() {
            out.push(ImageDeleteResponseItem {
                untagged: Some(d),
                deleted: None,
            });
        }
        self.store.delete_image(&img.id).await?;
        out.push(ImageDeleteResponseItem {
            untagged: None,
            deleted: Some(img.id.clone()),
        });
        out.extend(self.delete_unused_parents(&img.parent).await?);
        self.gc().await?;
        Ok(out)
    }

    /// Deletes `parent` and its ancestors while each is unnamed and unused
    /// (no child image, no container): a build's step images go with the
    /// image built on them, in rmi and in prune, as in dockerd.
    async fn delete_unused_parents(&self, parent: &str) -> Result<Vec<ImageDeleteResponseItem>> {
        let mut out = Vec::new();
        let mut parent = parent.to_string();
        while !parent.is_empty() {
            let Some(p) = self.store.image(&parent).await? else {
                break;
            };
            let children = self
                .store
                .images()
                .await?
                .iter()
                .filter(|i| i.parent == p.id)
                .count();
            if children > 0
                || !self.tags_of(&p.id).await?.is_empty()
                || self.digest_map().await?.contains_key(&p.id)
                || !self.store.containers_using_image(&p.id).await?.is_empty()
            {
                break;
            }
            self.store.delete_image(&p.id).await?;
            self.image_event("delete", &p.id);
            out.push(ImageDeleteResponseItem {
                untagged: None,
                deleted: Some(p.id.clone()),
            });
            parent = p.parent.clone();
        }
        Ok(out)
    }

    /// Removes what no image refers to any more: snapshots, layer blobs,
    /// manifests, and records of blobs. Returns the bytes freed. Runs at
    /// start-up too, which is how a pull cut short by a crash is cleaned up.
    pub async fn gc(&self) -> Result<u64> {
        let _exclusive = self.gc_lock.write().await;
        let images = self.store.images().await?;
        let chains: HashSet<String> = images
            .iter()
            .flat_map(|i| {
                i.chains
                    .iter()
                    .map(|c| c.strip_prefix("sha256:").unwrap_or(c).to_string())
            })
            .collect();
        let diffs: HashSet<&String> = images.iter().flat_map(|i| i.layers.iter()).collect();
        let mut live: HashSet<String> = images
            .iter()
            .filter(|i| !i.manifest.is_empty())
            .map(|i| i.manifest.clone())
            .collect();
        for blob in self.store.all_layer_blobs().await? {
            if diffs.contains(&blob.diff_id) {
                live.insert(blob.digest);
            } else {
                self.store.delete_layer_blob(&blob.digest).await?;
            }
        }
        let mut freed = 0;
        for e in std::fs::read_dir(&self.snapshots)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && !chains.contains(&name) {
                debug!(snapshot = %name, "removing unused snapshot");
                freed += self.snapshot_size(&name);
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        for digest in self.content.list() {
            if !live.contains(&digest) {
                freed += self.content.size(&digest);
                self.content.remove(&digest);
            }
        }
        Ok(freed)
    }

    /// Total bytes of all snapshots, and per image the bytes of its layers
    /// that other images use too (`docker system df`).
    pub async fn layer_usage(&self) -> Result<(u64, HashMap<String, u64>)> {
        let images = self.store.images().await?;
        let mut users: HashMap<&String, usize> = HashMap::new();
        for img in &images {
            for c in &img.chains {
                *users.entry(c).or_default() += 1;
            }
        }
        let total = users.keys().map(|c| self.snapshot_size(c)).sum();
        let shared = images
            .iter()
            .map(|img| {
                (
                    img.id.clone(),
                    img.chains
                        .iter()
                        .filter(|c| users.get(c).copied().unwrap_or(0) > 1)
                        .map(|c| self.snapshot_size(c))
                        .sum(),
                )
            })
            .collect();
        Ok((total, shared))
    }

    pub async fn count(&self) -> Result<usize> {
        Ok(self.store.images().await?.len())
    }
}

fn untagged(normalized: &str) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem {
        untagged: Some(familiar(normalized)),
        deleted: None,
    }
}

/// An image config's layer diff ids (`rootfs.diff_ids`), in order.
pub fn diff_ids_of(config: &Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn labels_of(config: &Value) -> HashMap<String, String> {
    config["config"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
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
        assert!(reference_matches(
            "busybox",
            "docker.io/library/busybox:latest"
        ));
        assert!(reference_matches(
            "busy*",
            "docker.io/library/busybox:latest"
        ));
        assert!(reference_matches(
            "busybox:lat*",
            "docker.io/library/busybox:latest"
        ));
        assert!(!reference_matches(
            "alpine",
            "docker.io/library/busybox:latest"
        ));
        assert!(!glob("*", "a/b"));
    }
}
