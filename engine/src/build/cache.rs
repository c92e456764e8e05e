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

/// How BuildKit's prune filter compares a field (`type==regular`,
/// `inuse!=true`, `id~=ab12`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Equal,
    NotEqual,
    /// A regular expression in BuildKit; here the value must occur in the
    /// field (what buildx sends for `--filter id=…`, a prefix, is one).
    Contains,
}

/// One condition of a prune filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFilter {
    pub key: String,
    pub op: FilterOp,
    pub value: String,
}

impl CacheFilter {
    /// BuildKit's wire form: conditions joined by commas; a bare key means
    /// "is true" (`inuse`).
    pub fn parse_list(text: &str) -> Result<Vec<CacheFilter>> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, op, value) = if let Some((k, v)) = part.split_once("==") {
                (k, FilterOp::Equal, v)
            } else if let Some((k, v)) = part.split_once("!=") {
                (k, FilterOp::NotEqual, v)
            } else if let Some((k, v)) = part.split_once("~=") {
                (k, FilterOp::Contains, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, FilterOp::Equal, v)
            } else {
                (part, FilterOp::Equal, "true")
            };
            out.push(CacheFilter {
                key: key.trim().to_string(),
                op,
                value: value.trim().to_string(),
            });
        }
        Ok(out)
    }

    /// Whether a record passes. A field BuildKit has and Berth's records
    /// lack (`parents`) or an unknown one matches nothing, so a filter
    /// never prunes more than asked.
    pub fn matches(&self, r: &BuildCache) -> bool {
        let flag = |b: Option<bool>| b.unwrap_or(false).to_string();
        let field = match self.key.as_str() {
            "id" => r.id.clone().unwrap_or_default(),
            "description" => r.description.clone().unwrap_or_default(),
            "type" => r.typ.map(|t| t.to_string()).unwrap_or_default(),
            "inuse" => flag(r.in_use),
            "shared" => flag(r.shared),
            "private" => (!r.shared.unwrap_or(false)).to_string(),
            // Step records are immutable images; cache mounts are written to.
            "mutable" => (r.typ == Some(BuildCacheTypeEnum::EXEC_CACHEMOUNT)).to_string(),
            "immutable" => (r.typ != Some(BuildCacheTypeEnum::EXEC_CACHEMOUNT)).to_string(),
            _ => return false,
        };
        match self.op {
            FilterOp::Equal => field == self.value,
            FilterOp::NotEqual => field != self.value,
            FilterOp::Contains => field.contains(&self.value),
        }
    }
}

/// What a prune takes: BuildKit's PruneInfo, shared by `POST /build/prune`
/// and Control.Prune.
#[derive(Debug, Default, Clone)]
pub struct PrunePolicy {
    /// Records used after this (ns since the epoch) stay (`until`).
    pub unused_since: Option<i128>,
    /// Every condition must hold for a record to go.
    pub filters: Vec<CacheFilter>,
    /// Bytes of cache always kept (`--reserved-space`, `--keep-storage`).
    pub reserved_space: u64,
    /// Prune, oldest first, until the cache is at most this.
    pub max_used_space: u64,
    /// Prune, oldest first, until the disk has this much free.
    pub min_free_space: u64,
}

impl PrunePolicy {
    fn limits_size(&self) -> bool {
        self.reserved_space > 0 || self.max_used_space > 0 || self.min_free_space > 0
    }

    /// Whether more must go, with `total` bytes of cache left and `free`
    /// bytes free on the disk. Only `reserved` given: down to it (what
    /// `--keep-storage` always meant).
    fn wants_less(&self, total: u64, free: u64) -> bool {
        if total <= self.reserved_space {
            return false;
        }
        if self.max_used_space == 0 && self.min_free_space == 0 {
            return true;
        }
        (self.max_used_space > 0 && total > self.max_used_space)
            || (self.min_free_space > 0 && free < self.min_free_space)
    }
}

/// A record and how it is removed.
enum Item {
    Step { key: String, image_id: String },
    Mount { name: String },
}

fn nanos(rfc3339: &str) -> i128 {
    crate::util::parse_rfc3339(rfc3339)
        .map(|(s, n)| s as i128 * 1_000_000_000 + n as i128)
        .unwrap_or(0)
}

impl super::Builder {
    /// `docker builder prune`: the records the policy selects go, oldest
    /// first, and with a step record the image it made when nothing else
    /// keeps it (untagged, unused by containers, and a parent of another
    /// image, i.e. intermediate): final images are images, which `docker
    /// image prune` handles. Returns the records removed and the bytes
    /// freed.
    pub async fn prune(&self, policy: &PrunePolicy) -> Result<(Vec<BuildCache>, u64)> {
        let records = self.records().await?;
        let mut total: u64 = records
            .iter()
            .map(|(r, _)| r.size.unwrap_or(0) as u64)
            .sum();
        let mut chosen: Vec<&(BuildCache, Item)> = records
            .iter()
            .filter(|(r, _)| {
                let used = nanos(r.last_used_at.as_deref().unwrap_or(""));
                policy.unused_since.is_none_or(|t| used < t)
                    && policy.filters.iter().all(|f| f.matches(r))
            })
            .collect();
        chosen.sort_by_key(|(r, _)| nanos(r.last_used_at.as_deref().unwrap_or("")));
        let free = nix::sys::statvfs::statvfs(&self.root)
            .map(|s| s.blocks_available() * s.fragment_size())
            .unwrap_or(0);
        let mut freed_estimate = 0u64;
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
        let mut mounts_freed = 0u64;
        for (record, item) in chosen {
            if policy.limits_size() && !policy.wants_less(total, free + freed_estimate) {
                break;
            }
            let size = record.size.unwrap_or(0) as u64;
            match item {
                Item::Mount { name } => {
                    if !self.cache_mounts.remove(name) {
                        continue;
                    }
                    mounts_freed += size;
                }
                Item::Step { key, image_id } => {
                    self.store.cache_delete(key).await?;
                    let id = image_id;
                    let kept = named.contains(id)
                        || !parents.contains(id)
                        || !self.store.containers_using_image(id).await?.is_empty()
                        || self.store.image(id).await?.is_none();
                    if !kept {
                        self.store.delete_image(id).await?;
                    }
                }
            }
            total = total.saturating_sub(size);
            freed_estimate += size;
            deleted.push(record.clone());
        }
        let freed = self.images.gc().await? + mounts_freed;
        Ok((deleted, freed))
    }

    /// The build cache as `docker system df` lists it.
    pub async fn usage(&self) -> Result<Vec<BuildCache>> {
        Ok(self.records().await?.into_iter().map(|(r, _)| r).collect())
    }

    /// Every record of the build cache: each step's image (its own
    /// layer's size), and each RUN cache mount.
    async fn records(&self) -> Result<Vec<(BuildCache, Item)>> {
        let mut out = Vec::new();
        for e in self.store.cache_entries().await? {
            let Some(img) = self.store.image(&e.image_id).await? else {
                continue;
            };
            let parent_size = match img.parent.as_str() {
                "" => 0,
                p => self.store.image(p).await?.map(|p| p.size).unwrap_or(0),
            };
            let record = BuildCache {
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
            };
            out.push((
                record,
                Item::Step {
                    key: e.key,
                    image_id: e.image_id,
                },
            ));
        }
        for m in self.cache_mounts.list() {
            let used = chrono::DateTime::<chrono::Utc>::from(m.last_used)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let record = BuildCache {
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
            };
            out.push((record, Item::Mount { name: m.name }));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(typ: BuildCacheTypeEnum, id: &str) -> BuildCache {
        BuildCache {
            id: Some(id.into()),
            typ: Some(typ),
            shared: Some(typ == BuildCacheTypeEnum::EXEC_CACHEMOUNT),
            in_use: Some(false),
            ..Default::default()
        }
    }

    #[test]
    fn prune_filters_read_as_buildx_writes_them() {
        let f = CacheFilter::parse_list("type==exec.cachemount,id~=ab12").unwrap();
        assert_eq!(f.len(), 2);
        let mount = record(BuildCacheTypeEnum::EXEC_CACHEMOUNT, "xxab12yy");
        let step = record(BuildCacheTypeEnum::REGULAR, "ab12");
        assert!(f.iter().all(|c| c.matches(&mount)));
        assert!(!f.iter().all(|c| c.matches(&step)));
        let not_regular = CacheFilter::parse_list("type!=regular").unwrap();
        assert!(not_regular[0].matches(&mount) && !not_regular[0].matches(&step));
        let private = CacheFilter::parse_list("private").unwrap();
        assert!(private[0].matches(&step) && !private[0].matches(&mount));
        // Fields Berth's records lack match nothing: nothing extra goes.
        assert!(!CacheFilter::parse_list("parents==x").unwrap()[0].matches(&step));
    }

    #[test]
    fn size_limits_say_when_to_stop() {
        let keep = PrunePolicy {
            reserved_space: 100,
            ..Default::default()
        };
        assert!(keep.wants_less(150, 0));
        assert!(!keep.wants_less(100, 0));
        let max = PrunePolicy {
            reserved_space: 10,
            max_used_space: 100,
            ..Default::default()
        };
        assert!(max.wants_less(101, 0) && !max.wants_less(100, 0));
        let free = PrunePolicy {
            min_free_space: 1000,
            ..Default::default()
        };
        assert!(free.wants_less(50, 999) && !free.wants_less(50, 1000));
        assert!(!PrunePolicy::default().limits_size());
    }
}
