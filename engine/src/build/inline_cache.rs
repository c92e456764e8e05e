//! Inline cache (`--cache-to type=inline`, `--cache-from type=registry`):
//! a built image carries the records of its own steps, so that another
//! engine, or this one after a prune, takes those steps from the pushed
//! image instead of running them again.
//!
//! Berth's cache keys are its own (the parent image's id and the step as
//! history records it, [`super::cache::key`]), so the records are Berth's
//! own too, in the config's [`FIELD`]. BuildKit's `moby.buildkit.cache.v0`
//! is keyed by BuildKit's LLB digests, which Berth does not compute: an
//! image made by dockerd gives no hits here, nor one of Berth's there.
//!
//! A record holds its step image's config without `history` and `rootfs`,
//! which are prefixes of the carrying image's. Put back together the
//! config has the same bytes (serde_json writes keys sorted), hence the
//! same id, so the keys of the steps after it hold too. The id is checked:
//! a record that does not come out exactly is a miss, never a wrong hit.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::images::content::sha256_digest;
use crate::images::reference::Reference;
use crate::images::registry::AuthConfig;
use crate::images::remote::RemoteImage;
use crate::images::Images;
use crate::store::{ImageRow, Store};

/// The image config's field holding the records.
pub const FIELD: &str = "berth.cache.v0";

/// One cached step of the carrying image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The step's cache key.
    pub key: String,
    /// The step image's id, and its parent's (the image the step ran on).
    pub id: String,
    pub parent: String,
    /// How many of the carrying image's layers and history entries the
    /// step image has.
    pub layers: usize,
    pub history: usize,
    /// The step image's config without `history` and `rootfs`.
    pub config: Value,
}

/// The records of `image`'s own steps: every ancestor a cache entry names,
/// oldest first. Steps of other stages are not among its ancestors, so
/// they are not exported (BuildKit's inline cache does the same).
pub async fn records(store: &Store, image: &ImageRow) -> Result<Vec<Record>> {
    let mut keys: HashMap<String, Vec<String>> = HashMap::new();
    for e in store.cache_entries().await? {
        keys.entry(e.image_id).or_default().push(e.key);
    }
    let full = image.config_value();
    let full_history = full["history"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    let mut current = Some(image.clone());
    while let Some(step) = current {
        if let Some(step_keys) = keys.get(&step.id) {
            let mut config = step.config_value();
            let history = config["history"].as_array().cloned().unwrap_or_default();
            let is_prefix =
                image.layers.starts_with(&step.layers) && full_history.starts_with(&history);
            if let (true, Some(o)) = (is_prefix, config.as_object_mut()) {
                o.remove("history");
                o.remove("rootfs");
                for key in step_keys {
                    out.push(Record {
                        key: key.clone(),
                        id: step.id.clone(),
                        parent: step.parent.clone(),
                        layers: step.layers.len(),
                        history: history.len(),
                        config: config.clone(),
                    });
                }
            }
        }
        current = match step.parent.as_str() {
            "" => None,
            parent => store.image(parent).await?,
        };
    }
    out.reverse();
    Ok(out)
}

/// `image` with its records in its config: a child image with the same
/// layers, which the exporters then name and push.
pub async fn attach(images: &Arc<Images>, store: &Store, image: &ImageRow) -> Result<ImageRow> {
    let list = records(store, image).await?;
    let mut config = image.config_value();
    config[FIELD] = serde_json::to_value(&list).map_err(Error::internal)?;
    images.derive(image, config).await
}

/// A step image's config remade from a record and the history and layers
/// of the image carrying it.
fn step_config(record: &Record, history: &[Value], diff_ids: &[String]) -> Option<Vec<u8>> {
    let mut config = record.config.clone();
    let o = config.as_object_mut()?;
    o.insert(
        "history".into(),
        Value::Array(history.get(..record.history)?.to_vec()),
    );
    o.insert(
        "rootfs".into(),
        serde_json::json!({ "type": "layers", "diff_ids": diff_ids.get(..record.layers)? }),
    );
    let bytes = serde_json::to_vec(&config).ok()?;
    (sha256_digest(&bytes) == record.id).then_some(bytes)
}

/// The records of the `--cache-from` images, by key.
#[derive(Clone, Default)]
pub struct Imports {
    by_key: HashMap<String, (Arc<RemoteImage>, Record)>,
}

impl Imports {
    /// Reads an image's records from the registry (its manifest and
    /// config; layers only when a step is taken). Returns how many it had.
    pub async fn add(
        &mut self,
        images: &Arc<Images>,
        reference: &Reference,
        auth: &AuthConfig,
    ) -> Result<usize> {
        let manifest = images.resolve_manifest(reference, None, auth).await?;
        let carrier = Arc::new(images.fetch_config(manifest).await?);
        let list: Vec<Record> = match carrier.config.get(FIELD) {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                Error::InvalidArgument(format!(
                    "invalid inline cache in {}: {e}",
                    reference.normalized()
                ))
            })?,
            None => Vec::new(),
        };
        let n = list.len();
        for r in list {
            self.by_key
                .entry(r.key.clone())
                .or_insert_with(|| (carrier.clone(), r));
        }
        Ok(n)
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The step image for `key`, made from an imported record: its layers
    /// fetched (those not here yet), its config put back together, the
    /// image recorded. None when no record has the key, or when the record
    /// does not come out as the image it names.
    pub async fn take(&self, images: &Arc<Images>, key: &str) -> Result<Option<ImageRow>> {
        let Some((carrier, record)) = self.by_key.get(key) else {
            return Ok(None);
        };
        let history = carrier.config["history"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        let Some(config) = step_config(record, history, &carrier.diff_ids) else {
            tracing::warn!(key, image = %record.id, "an imported cache record does not match its image; the step runs");
            return Ok(None);
        };
        let image = images
            .adopt(carrier, record.layers, config, &record.parent)
            .await?;
        Ok(Some(image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_must_remake_the_image_it_names() {
        let history = vec![json!({"created_by": "a"}), json!({"created_by": "b"})];
        let layers = vec!["sha256:1".to_string(), "sha256:2".to_string()];
        let mut step = json!({
            "architecture": "amd64",
            "config": {"Env": ["X=1"]},
            "history": [{"created_by": "a"}],
            "rootfs": {"type": "layers", "diff_ids": ["sha256:1"]},
        });
        let id = sha256_digest(&serde_json::to_vec(&step).unwrap());
        step.as_object_mut().unwrap().remove("history");
        step.as_object_mut().unwrap().remove("rootfs");
        let mut record = Record {
            key: "k".into(),
            id,
            parent: String::new(),
            layers: 1,
            history: 1,
            config: step,
        };
        assert!(step_config(&record, &history, &layers).is_some());
        // Another history before the step: another image, no hit.
        let other = vec![json!({"created_by": "z"}), json!({"created_by": "b"})];
        assert!(step_config(&record, &other, &layers).is_none());
        // Counts beyond the carrier's: no hit, no panic.
        record.layers = 3;
        assert!(step_config(&record, &history, &layers).is_none());
    }
}
