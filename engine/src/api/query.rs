//! Query parameters the way Docker reads them.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// A request's query parameters. A key given twice keeps its first value,
/// as Go's `URL.Query().Get` reads it (docker-py sends `dockerfile=` twice
/// for a Dockerfile outside the context, the first being the right one).
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl std::ops::Deref for Query {
    type Target = HashMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Query {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl FromIterator<(String, String)> for Query {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Query {
        let mut q = HashMap::new();
        for (k, v) in pairs {
            q.entry(k).or_insert(v);
        }
        Query(q)
    }
}

impl<'de> serde::Deserialize<'de> for Query {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Query, D::Error> {
        let pairs: Vec<(String, String)> = serde::Deserialize::deserialize(d)?;
        Ok(pairs.into_iter().collect())
    }
}

/// Docker's boolean values: "1"/"true"/"True" are true; absent, "", "0",
/// "false" are false.
pub fn flag(q: &Query, key: &str) -> bool {
    matches!(
        q.get(key).map(|s| s.to_ascii_lowercase()).as_deref(),
        Some("1" | "true" | "yes")
    )
}

/// An integer parameter, refused with Go's strconv.Atoi words as a 400
/// (what dockerd answers for resize's h and w).
pub fn int(q: &Query, key: &str) -> Result<Option<i64>> {
    atoi(q, key).map_err(Error::InvalidArgument)
}

/// An integer parameter whose bad value dockerd passes up unwrapped, as a
/// 500 (list's limit, stop's and restart's t).
pub fn int_unchecked(q: &Query, key: &str) -> Result<Option<i64>> {
    atoi(q, key).map_err(Error::Internal)
}

fn atoi(q: &Query, key: &str) -> std::result::Result<Option<i64>, String> {
    use std::num::IntErrorKind;
    match q.get(key).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|e: std::num::ParseIntError| {
            let why = match e.kind() {
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "value out of range",
                _ => "invalid syntax",
            };
            format!("strconv.Atoi: parsing {v:?}: {why}")
        }),
    }
}
