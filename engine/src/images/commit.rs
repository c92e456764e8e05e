//! `docker commit`: a new image made of the container's image plus one
//! layer, the container's overlay upper directory written as a tar (its
//! whiteouts and opaque directories turned back into `.wh.` entries).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::content::sha256_digest;
use super::Images;
use crate::error::{Error, Result};
use crate::store::ImageRow;
use crate::tarball::{TreeWriter, Whiteouts};

/// The diff id of a tar with no entries (two zero blocks): no layer.
const EMPTY_LAYER: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// What a commit records besides the layer.
pub struct CommitInfo {
    /// The container config the image carries (Cmd, Env, Labels…).
    pub config: Value,
    /// The container's own config, before the commit's changes (kept as
    /// the legacy `container_config`); None: the same as `config`.
    pub container_config: Option<Value>,
    pub container_id: String,
    pub comment: String,
    pub author: String,
    /// The container's command, as `docker history` shows it.
    pub created_by: String,
}

impl CommitInfo {
    /// A build step's record: `created_by` as history shows it.
    pub fn step(config: Value, container_id: &str, created_by: String) -> CommitInfo {
        // The legacy builder's step container ran the step as its command:
        // `#(nop) ` and the instruction for a step that changes the config
        // only, the shell command for RUN. Clients read it back as
        // ContainerConfig.Cmd.
        let mut container_config = config.clone();
        let cmd: Option<Vec<&str>> =
            if let Some(text) = created_by.strip_prefix("/bin/sh -c #(nop)  ") {
                Some(vec!["/bin/sh", "-c", "#(nop) ", text])
            } else {
                created_by
                    .strip_prefix("/bin/sh -c ")
                    .map(|rest| vec!["/bin/sh", "-c", rest])
            };
        if let (Some(cmd), Some(o)) = (cmd, container_config.as_object_mut()) {
            o.insert("Cmd".into(), serde_json::json!(cmd));
        }
        CommitInfo {
            config,
            container_config: Some(container_config),
            container_id: container_id.to_string(),
            comment: String::new(),
            author: String::new(),
            created_by,
        }
    }
}

impl Images {
    /// A new image: `parent` plus one layer made of `upper` (an overlay
    /// upper directory), or with `None` no layer at all (a build step that
    /// only changes the config: history marks it `empty_layer`).
    pub async fn commit(
        self: &Arc<Self>,
        parent: &ImageRow,
        upper: Option<PathBuf>,
        info: CommitInfo,
    ) -> Result<String> {
        self.commit_row(parent, upper, info).await.map(|row| row.id)
    }

    /// [`Images::commit`], returning the stored image.
    pub async fn commit_row(
        self: &Arc<Self>,
        parent: &ImageRow,
        upper: Option<PathBuf>,
        info: CommitInfo,
    ) -> Result<ImageRow> {
        let _shared = self.gc_lock.read().await;
        let this = self.clone();
        let parent_layers = parent.layers.clone();
        let unchanged = (parent.layers.clone(), parent.chains.clone(), 0, Vec::new());
        let (layers, chains, size, blobs) = match upper {
            None => unchanged,
            Some(upper) => tokio::task::spawn_blocking(move || -> Result<_> {
                let mut tree = TreeWriter::new(this.content.writer()?, Whiteouts::ToAufs);
                if upper.is_dir() {
                    tree.add_tree(&upper)?;
                }
                let diff = tree.finish()?.commit(None)?;
                if diff == EMPTY_LAYER {
                    // As dockerd: a change-less commit adds no layer, only
                    // a history entry marked empty_layer.
                    return Ok(unchanged);
                }
                let mut layers = parent_layers;
                layers.push(diff.clone());
                let chains = super::unpack::chain_ids(&layers);
                let chain = chains.last().cloned().unwrap_or_default();
                let (size, blob) = this.ensure_layer(&chain, &diff, this.content.open(&diff)?)?;
                Ok((layers, chains, size, vec![blob]))
            })
            .await
            .map_err(Error::internal)??,
        };
        let empty_layer = layers.len() == parent.layers.len();
        let mut config: Value = parent.config_value();
        let created = crate::util::now_rfc3339();
        config["created"] = json!(created);
        config["container"] = json!(info.container_id);
        config["container_config"] = info.container_config.unwrap_or_else(|| info.config.clone());
        config["config"] = info.config;
        if !info.author.is_empty() {
            config["author"] = json!(info.author);
        }
        config["comment"] = json!(info.comment);
        config["rootfs"] = json!({ "type": "layers", "diff_ids": layers });
        let mut history = config["history"].as_array().cloned().unwrap_or_default();
        let mut step = json!({ "created": created, "created_by": info.created_by });
        if !info.comment.is_empty() {
            step["comment"] = json!(info.comment);
        }
        if !info.author.is_empty() {
            step["author"] = json!(info.author);
        }
        if empty_layer {
            step["empty_layer"] = json!(true);
        }
        history.push(step);
        config["history"] = Value::Array(history);
        let bytes = serde_json::to_vec(&config).map_err(Error::internal)?;
        let id = sha256_digest(&bytes);
        let row = ImageRow {
            id: id.clone(),
            config: String::from_utf8_lossy(&bytes).into_owned(),
            layers,
            chains,
            size: parent.size + size as i64,
            created,
            manifest: String::new(),
            parent: parent.id.clone(),
        };
        self.record(&row, &blobs).await?;
        Ok(row)
    }
}

impl Images {
    /// A child of `base` with the same layers and another config (the
    /// inline cache's records added): no history entry, as BuildKit's
    /// exporter adds none.
    pub async fn derive(&self, base: &ImageRow, config: Value) -> Result<ImageRow> {
        let _shared = self.gc_lock.read().await;
        let bytes = serde_json::to_vec(&config).map_err(Error::internal)?;
        let row = ImageRow {
            id: sha256_digest(&bytes),
            config: String::from_utf8_lossy(&bytes).into_owned(),
            layers: base.layers.clone(),
            chains: base.chains.clone(),
            size: base.size,
            created: base.created.clone(),
            manifest: String::new(),
            parent: base.id.clone(),
        };
        self.record(&row, &[]).await?;
        Ok(row)
    }
}
