//! `docker history`: the image config's history, newest first, with each
//! step's layer size. Steps that made no layer (`empty_layer`) are size 0.

use bollard_stubs::models::ImageHistoryResponseItem;
use serde_json::Value;

use super::reference::familiar;
use super::Images;
use crate::error::Result;

impl Images {
    pub async fn history(&self, name: &str) -> Result<Vec<ImageHistoryResponseItem>> {
        let img = self.resolve(name).await?;
        let config: Value = img.config_value();
        let tags: Vec<String> = self
            .tags_of(&img.id)
            .await?
            .iter()
            .map(|t| familiar(t))
            .collect();
        let steps: Vec<Value> = config["history"].as_array().cloned().unwrap_or_default();
        let mut out = Vec::new();
        let mut layer = 0usize;
        let time = |v: &Value| {
            v.as_str()
                .and_then(crate::util::parse_rfc3339)
                .map(|t| t.0)
                .unwrap_or(0)
        };
        if steps.is_empty() {
            // No history recorded: one line per layer.
            for chain in &img.chains {
                out.push(ImageHistoryResponseItem {
                    id: "<missing>".into(),
                    created: time(&config["created"]),
                    created_by: String::new(),
                    tags: vec![],
                    size: self.snapshot_size(chain) as i64,
                    comment: String::new(),
                });
            }
        }
        for step in &steps {
            let empty = step["empty_layer"].as_bool().unwrap_or(false);
            let size = if empty {
                0
            } else {
                let s = img
                    .chains
                    .get(layer)
                    .map(|c| self.snapshot_size(c))
                    .unwrap_or(0);
                layer += 1;
                s as i64
            };
            out.push(ImageHistoryResponseItem {
                id: "<missing>".into(),
                created: time(&step["created"]),
                created_by: step["created_by"].as_str().unwrap_or_default().to_string(),
                tags: vec![],
                size,
                comment: step["comment"].as_str().unwrap_or_default().to_string(),
            });
        }
        out.reverse();
        if let Some(top) = out.first_mut() {
            top.id = img.id.clone();
            top.tags = tags;
        }
        Ok(out)
    }
}
