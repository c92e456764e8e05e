//! Query parameters the way Docker reads them.

use std::collections::HashMap;

use crate::error::{Error, Result};

pub type Query = HashMap<String, String>;

/// Docker's boolean values: "1"/"true"/"True" are true; absent, "", "0",
/// "false" are false.
pub fn flag(q: &Query, key: &str) -> bool {
    matches!(
        q.get(key).map(|s| s.to_ascii_lowercase()).as_deref(),
        Some("1" | "true" | "yes")
    )
}

pub fn int(q: &Query, key: &str) -> Result<Option<i64>> {
    match q.get(key).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Error::InvalidArgument(format!("invalid value for {key}: {v:?}"))),
    }
}
