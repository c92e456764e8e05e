//! `GET /networks` and `POST /networks/prune` filters.

use std::collections::HashMap;

use super::{any_or_none, labels_match, Filters, PruneFilter};
use crate::error::Result;

#[derive(Debug, Default, Clone)]
pub struct NetworkFilter {
    /// Substrings of the name.
    name: Vec<String>,
    /// Prefixes of the id.
    id: Vec<String>,
    driver: Vec<String>,
    label: Vec<String>,
    /// `builtin` (bridge, host, none) or `custom`.
    kind: Vec<String>,
    scope: Vec<String>,
    /// A custom network no container is connected to.
    pub dangling: Option<bool>,
}

/// What a network is, as the filters look at it.
pub struct NetworkFacts<'a> {
    pub name: &'a str,
    pub id: &'a str,
    pub driver: &'a str,
    pub labels: &'a HashMap<String, String>,
    pub builtin: bool,
}

impl NetworkFilter {
    pub fn parse(raw: Option<&str>) -> Result<NetworkFilter> {
        let f = Filters::parse(raw)?;
        f.only(&["name", "id", "driver", "label", "type", "scope", "dangling"])?;
        Ok(NetworkFilter {
            name: f.get("name"),
            id: f.get("id"),
            driver: f.get("driver"),
            label: f.get("label"),
            kind: f.get("type"),
            scope: f.get("scope"),
            dangling: f.bool("dangling")?,
        })
    }

    /// Everything but `dangling`, which needs to know the endpoints.
    pub fn matches(&self, n: &NetworkFacts) -> bool {
        let kind = if n.builtin { "builtin" } else { "custom" };
        any_or_none(&self.name, |w| n.name.contains(w))
            && any_or_none(&self.id, |w| n.id.starts_with(w))
            && any_or_none(&self.driver, |w| w == n.driver)
            && labels_match(&self.label, n.labels)
            && any_or_none(&self.kind, |w| w == kind)
            && any_or_none(&self.scope, |w| w == "local")
    }
}

/// `until`, `label` and `label!`.
pub fn prune_filter(raw: Option<&str>) -> Result<PruneFilter> {
    PruneFilter::of(&Filters::parse(raw)?, &["label", "label!", "until"])
}
