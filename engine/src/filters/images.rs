//! `GET /images/json` and `POST /images/prune` filters.

use super::{Filters, PruneFilter};
use crate::error::{Error, Result};

#[derive(Debug, Default, Clone)]
pub struct ImageFilter {
    /// Without a name (`true`) or with one (`false`).
    pub dangling: Option<bool>,
    /// Patterns of `name[:tag]`; they also narrow the tags shown.
    pub reference: Vec<String>,
    pub label: Vec<String>,
    /// Images created before, or since, the one named.
    pub before: Option<String>,
    pub since: Option<String>,
}

impl ImageFilter {
    pub fn parse(raw: Option<&str>) -> Result<ImageFilter> {
        let f = Filters::parse(raw)?;
        f.only(&["dangling", "reference", "label", "before", "since"])?;
        Ok(ImageFilter {
            dangling: dangling(&f)?,
            reference: f.get("reference"),
            label: f.get("label"),
            before: f.get("before").into_iter().next(),
            since: f.get("since").into_iter().next(),
        })
    }
}

#[derive(Debug, Default, Clone)]
pub struct ImagePruneFilter {
    /// `dangling=false`: named images too.
    pub all: bool,
    pub prune: PruneFilter,
}

impl ImagePruneFilter {
    pub fn parse(raw: Option<&str>) -> Result<ImagePruneFilter> {
        let f = Filters::parse(raw)?;
        let prune = PruneFilter::of(&f, &["dangling", "until", "label", "label!"])?;
        Ok(ImagePruneFilter {
            all: dangling(&f)? == Some(false),
            prune,
        })
    }
}

/// The images' `dangling`, refused in dockerd's words when not a boolean.
fn dangling(f: &Filters) -> Result<Option<bool>> {
    match f.get("dangling").first().map(String::as_str) {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(v) => Err(Error::InvalidArgument(format!(
            "Invalid filter 'dangling=[{v}]'"
        ))),
    }
}
