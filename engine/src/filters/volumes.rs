//! `GET /volumes` and `POST /volumes/prune` filters.

use std::collections::HashMap;

use super::{any_or_none, labels_match, Filters, LabelFilter};
use crate::error::Result;

#[derive(Debug, Default, Clone)]
pub struct VolumeFilter {
    /// Substrings of the name.
    name: Vec<String>,
    label: Vec<String>,
    driver: Vec<String>,
    /// Used by no container (`true`) or used by one (`false`).
    pub dangling: Option<bool>,
}

impl VolumeFilter {
    pub fn parse(raw: Option<&str>) -> Result<VolumeFilter> {
        let f = Filters::parse(raw)?;
        f.only(&["name", "label", "dangling", "driver"])?;
        Ok(VolumeFilter {
            name: f.get("name"),
            label: f.get("label"),
            driver: f.get("driver"),
            dangling: f.bool("dangling")?,
        })
    }

    /// Name, labels and driver (dangling needs the store: the caller's).
    pub fn matches(&self, name: &str, labels: &HashMap<String, String>, driver: &str) -> bool {
        any_or_none(&self.name, |n| name.contains(n))
            && labels_match(&self.label, labels)
            && any_or_none(&self.driver, |d| d == driver)
    }
}

#[derive(Debug, Default, Clone)]
pub struct VolumePruneFilter {
    /// Named volumes too (API 1.42); unset, the API version decides.
    pub all: Option<bool>,
    pub labels: LabelFilter,
}

impl VolumePruneFilter {
    pub fn parse(raw: Option<&str>) -> Result<VolumePruneFilter> {
        let f = Filters::parse(raw)?;
        f.only(&["label", "label!", "all"])?;
        Ok(VolumePruneFilter {
            all: f.bool("all")?,
            labels: LabelFilter::of(&f),
        })
    }
}
