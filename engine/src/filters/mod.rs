//! The `filters` query parameter: JSON, either `{"key":["v1","v2"]}` or the
//! older `{"key":{"v1":true}}` that the docker CLI still sends.
//!
//! `api/` parses it into the typed filter of the resource asked about
//! (`containers::ContainerFilter`, `images::ImageFilter`…), which refuses
//! keys the resource does not know with Docker's words and checks values;
//! services take those types. [`Filters`] is the raw form they are read
//! from; [`LabelFilter`] and [`PruneFilter`] are what several share.

pub mod containers;
pub mod events;
pub mod images;
pub mod networks;
pub mod volumes;

use std::collections::HashMap;

use crate::error::{Error, Result};

#[derive(Debug, Default, Clone)]
pub struct Filters(HashMap<String, Vec<String>>);

impl Filters {
    pub fn parse(raw: Option<&str>) -> Result<Filters> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Filters::default());
        };
        let v = crate::go_json::first_value(raw.as_bytes())
            .map_err(|e| Error::InvalidArgument(format!("invalid filter: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::InvalidArgument("invalid filter: not an object".into()))?;
        let mut out = HashMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(k, _)| k.clone())
                    .collect(),
                _ => return Err(Error::InvalidArgument(format!("invalid filter '{k}'"))),
            };
            out.insert(k.clone(), list);
        }
        Ok(Filters(out))
    }

    pub fn get(&self, key: &str) -> Vec<String> {
        self.0.get(key).cloned().unwrap_or_default()
    }

    /// The keys given, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.0.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// A boolean filter ("true"/"1"/"false"/"0"), if given.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key).first().map(String::as_str) {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(v) => Err(Error::InvalidArgument(format!(
                "invalid filter '{key}={v}'"
            ))),
        }
    }

    /// Rejects keys outside `allowed` with Docker's wording.
    pub fn only(&self, allowed: &[&str]) -> Result<()> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(Error::InvalidArgument(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }
}

/// `label` filters (every one must hold) and, for prunes, `label!` ones
/// (none may).
#[derive(Debug, Default, Clone)]
pub struct LabelFilter {
    wanted: Vec<String>,
    unwanted: Vec<String>,
}

impl LabelFilter {
    pub fn of(f: &Filters) -> LabelFilter {
        LabelFilter {
            wanted: f.get("label"),
            unwanted: f.get("label!"),
        }
    }

    pub fn matches(&self, labels: &HashMap<String, String>) -> bool {
        labels_match(&self.wanted, labels)
            && !self
                .unwanted
                .iter()
                .any(|l| labels_match(std::slice::from_ref(l), labels))
    }
}

/// What the prunes of containers, networks and images share: `until`
/// (created before a time or a duration ago) and the label filters.
#[derive(Debug, Default, Clone)]
pub struct PruneFilter {
    /// Nanoseconds since the epoch.
    until: Option<i128>,
    pub labels: LabelFilter,
}

impl PruneFilter {
    /// Reads `until`, `label` and `label!`, refusing keys outside `allowed`.
    pub fn of(f: &Filters, allowed: &[&str]) -> Result<PruneFilter> {
        f.only(allowed)?;
        let until = match f.get("until").first() {
            Some(u) => Some(
                crate::util::parse_until(u)
                    .ok_or_else(|| Error::InvalidArgument(format!("invalid filter 'until={u}'")))?,
            ),
            None => None,
        };
        Ok(PruneFilter {
            until,
            labels: LabelFilter::of(f),
        })
    }

    /// Whether something created at `created` (RFC 3339) with `labels` is
    /// to be pruned, as far as the filters say.
    pub fn matches(&self, created: &str, labels: &HashMap<String, String>) -> bool {
        let created = crate::util::parse_rfc3339(created)
            .map(|(s, n)| s as i128 * 1_000_000_000 + n as i128)
            .unwrap_or(0);
        self.labels.matches(labels) && self.until.is_none_or(|u| created < u)
    }
}

/// No value given, or one of them satisfies `pred`.
pub fn any_or_none(values: &[String], pred: impl Fn(&str) -> bool) -> bool {
    values.is_empty() || values.iter().any(|v| pred(v))
}

/// `label=key` needs the key, `label=key=value` the exact value.
pub fn labels_match(wanted: &[String], labels: &HashMap<String, String>) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(w),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_parse() {
        let a = Filters::parse(Some(r#"{"status":["exited"]}"#)).unwrap();
        let b = Filters::parse(Some(r#"{"status":{"exited":true}}"#)).unwrap();
        assert_eq!(a.get("status"), b.get("status"));
        assert!(Filters::parse(Some("{")).is_err());
        assert!(a.only(&["name"]).is_err());
    }

    #[test]
    fn label_matching() {
        let l = HashMap::from([("a".to_string(), "1".to_string())]);
        assert!(labels_match(&["a".into()], &l));
        assert!(labels_match(&["a=1".into()], &l));
        assert!(!labels_match(&["a=2".into()], &l));
        assert!(!labels_match(&["b".into()], &l));
    }
}
