//! The build cache: a step's key is a hash of the image it starts from and
//! the step as history records it (for COPY and ADD that includes a hash of
//! the copied files' content and metadata, for RUN the build args in
//! scope), so the same step on the same parent finds the image it made
//! before. Entries live in SQLite, next to the images they name, and
//! survive engine restarts.

use bollard_stubs::models::{BuildCache, BuildCacheTypeEnum};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::store::{CacheEntry, ImageRow, Store};

pub fn key(parent: &str, created_by: &str) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    h.update(b"\n");
    h.update(created_by.as_bytes());
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The image a step made before, if it still exists.
pub async fn lookup(store: &Store, key: &str) -> Result<Option<ImageRow>> {
    let Some(id) = store.cache_get(key, &crate::util::now_rfc3339()).await? else {
        return Ok(None);
    };
    store.image(&id).await
}

pub async fn remember(store: &Store, key: &str, image_id: &str, created_by: &str) -> Result<()> {
    let now = crate::util::now_rfc3339();
    store
        .cache_put(&CacheEntry {
            key: key.to_string(),
            image_id: image_id.to_string(),
            description: created_by.to_string(),
            created: now.clone(),
            last_used: now,
            usage_count: 1,
        })
        .await
}

impl super::Builder {
    /// `docker builder prune`: every cache entry goes, and with it the
    /// step images nothing else keeps (untagged, unused by containers, and
    /// parents of another image, i.e. intermediate). Final images stay:
    /// they are images, which `docker image prune` handles. Returns the
    /// entries deleted and the bytes freed. With `unused_since` (ns since
    /// the epoch: the `until`/`unused-for` filters) entries used after it
    /// stay.
    pub async fn prune(
        &self,
        _all: bool,
        unused_since: Option<i128>,
    ) -> Result<(Vec<String>, u64)> {
        let entries = self.store.cache_entries().await?;
        let mut named: std::collections::HashSet<String> = self
            .store
            .tags()
            .await?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        named.extend(
            self.store
                .repo_digests()
                .await?
                .into_iter()
                .map(|(_, id)| id),
        );
        let parents: std::collections::HashSet<String> = self
            .store
            .images()
            .await?
            .into_iter()
            .map(|i| i.parent)
            .filter(|p| !p.is_empty())
            .collect();
        let mut deleted = Vec::new();
        for e in entries {
            let last_used = crate::util::parse_rfc3339(&e.last_used)
                .map(|(s, n)| s as i128 * 1_000_000_000 + n as i128)
                .unwrap_or(0);
            if unused_since.is_some_and(|t| last_used >= t) {
                continue;
            }
            self.store.cache_delete(&e.key).await?;
            deleted.push(e.key.trim_start_matches("sha256:").to_string());
            let id = &e.image_id;
            if named.contains(id)
                || !parents.contains(id)
                || !self.store.containers_using_image(id).await?.is_empty()
                || self.store.image(id).await?.is_none()
            {
                continue;
            }
            self.store.delete_image(id).await?;
        }
        let mut freed = self.images.gc().await?;
        // RUN --mount=type=cache directories are build cache too.
        let since = unused_since
            .map(|ns| std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64));
        for (name, size) in self.cache_mounts.prune(since) {
            deleted.push(name);
            freed += size;
        }
        Ok((deleted, freed))
    }

    /// The build cache as `docker system df` lists it.
    pub async fn usage(&self) -> Result<Vec<BuildCache>> {
        let mut out = Vec::new();
        for e in self.store.cache_entries().await? {
            let Some(img) = self.store.image(&e.image_id).await? else {
                continue;
            };
            let parent_size = match img.parent.as_str() {
                "" => 0,
                p => self.store.image(p).await?.map(|p| p.size).unwrap_or(0),
            };
            out.push(BuildCache {
                id: Some(
                    e.key
                        .trim_start_matches("sha256:")
                        .get(..25)
                        .unwrap_or("")
                        .into(),
                ),
                parents: Some(Vec::new()),
                typ: Some(BuildCacheTypeEnum::REGULAR),
                description: Some(e.description),
                in_use: Some(false),
                shared: Some(false),
                size: Some((img.size - parent_size).max(0)),
                created_at: Some(e.created),
                last_used_at: Some(e.last_used),
                usage_count: Some(e.usage_count),
            });
        }
        for m in self.cache_mounts.list() {
            let used = chrono::DateTime::<chrono::Utc>::from(m.last_used)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            out.push(BuildCache {
                id: Some(m.name.get(..25).unwrap_or(&m.name).to_string()),
                parents: Some(Vec::new()),
                typ: Some(BuildCacheTypeEnum::EXEC_CACHEMOUNT),
                description: Some(format!("cached mount {}", m.target)),
                in_use: Some(false),
                shared: Some(true),
                size: Some(m.size as i64),
                created_at: Some(used.clone()),
                last_used_at: Some(used),
                usage_count: Some(1),
            });
        }
        Ok(out)
    }
}
