//! `GET /events` filters.

use super::{any_or_none, labels_match, Filters};
use crate::error::Result;
use crate::events::Event;

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    kind: Vec<String>,
    /// Actions; `exec_start` also matches `exec_start: sh`.
    event: Vec<String>,
    /// Containers by id prefix or name.
    container: Vec<String>,
    image: Vec<String>,
    label: Vec<String>,
    /// Volumes by name prefix.
    volume: Vec<String>,
    /// Networks by id prefix or name.
    network: Vec<String>,
}

impl EventFilter {
    pub fn parse(raw: Option<&str>) -> Result<EventFilter> {
        let f = Filters::parse(raw)?;
        f.only(&[
            "type",
            "event",
            "container",
            "image",
            "label",
            "volume",
            "network",
        ])?;
        Ok(EventFilter {
            kind: f.get("type"),
            event: f.get("event"),
            container: f.get("container"),
            image: f.get("image"),
            label: f.get("label"),
            volume: f.get("volume"),
            network: f.get("network"),
        })
    }

    pub fn matches(&self, e: &Event) -> bool {
        let attr = |key: &str| e.actor.attributes.get(key).map(String::as_str);
        let id_or_name = |w: &str| e.actor.id.starts_with(w) || attr("name") == Some(w);
        any_or_none(&self.kind, |t| e.kind == t)
            && any_or_none(&self.event, |a| {
                e.action == a || e.action.starts_with(&format!("{a}:"))
            })
            && any_or_none(&self.container, |c| e.kind == "container" && id_or_name(c))
            && any_or_none(&self.volume, |v| {
                e.kind == "volume" && e.actor.id.starts_with(v)
            })
            && any_or_none(&self.network, |n| e.kind == "network" && id_or_name(n))
            && any_or_none(&self.image, |i| attr("image") == Some(i))
            && labels_match(
                &self.label,
                &e.actor.attributes.clone().into_iter().collect(),
            )
    }
}
