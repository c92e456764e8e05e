//! The `filters` query parameter: JSON, either `{"key":["v1","v2"]}` or the
//! older `{"key":{"v1":true}}` that the docker CLI still sends.

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

    /// No values for `key`, or one of them is part of `value`.
    pub fn matches_substring(&self, key: &str, value: &str) -> bool {
        let wanted = self.get(key);
        wanted.is_empty() || wanted.iter().any(|w| value.contains(w.as_str()))
    }

    /// No values for `key`, or one of them is `value`.
    pub fn matches_exact(&self, key: &str, value: &str) -> bool {
        let wanted = self.get(key);
        wanted.is_empty() || wanted.iter().any(|w| w == value)
    }

    /// The prune rule: every `label` filter holds and no `label!` one does.
    pub fn matches_prune_labels(&self, labels: &HashMap<String, String>) -> bool {
        self.matches_labels("label", labels)
            && !self
                .get("label!")
                .iter()
                .any(|l| labels_match(std::slice::from_ref(l), labels))
    }

    /// Every `key` filter (`k` or `k=v`) holds for `labels`.
    pub fn matches_labels(&self, key: &str, labels: &HashMap<String, String>) -> bool {
        labels_match(&self.get(key), labels)
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
