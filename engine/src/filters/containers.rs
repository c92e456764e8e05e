//! `GET /containers/json` filters (the prune's are a `PruneFilter`).

use std::collections::HashMap;

use super::{any_or_none, labels_match, Filters};
use crate::error::{Error, Result};

/// A container's states, as `status=` names them.
const STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

const HEALTH: &[&str] = &["starting", "healthy", "unhealthy", "none"];

#[derive(Debug, Default, Clone)]
pub struct ContainerFilter {
    /// Prefixes of the id.
    id: Vec<String>,
    /// Regular expressions looked for in the name (see [`NamePattern`]).
    name: Vec<NamePattern>,
    label: Vec<String>,
    status: Vec<String>,
    exited: Vec<i32>,
    health: Vec<String>,
    /// Destinations or sources of a mount.
    pub volume: Vec<String>,
    /// Names or id prefixes of a network it is on.
    pub network: Vec<String>,
    /// Image names or ids it was created from (resolved by the caller).
    pub ancestor: Vec<String>,
    /// Containers created before, or since, the one named (the last given).
    pub before: Option<String>,
    pub since: Option<String>,
}

/// What a container is, as the filters look at it.
pub struct ContainerFacts<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub status: &'a str,
    pub exit_code: i32,
    /// `none` without a health check.
    pub health: &'a str,
    pub labels: &'a HashMap<String, String>,
}

impl ContainerFilter {
    pub fn parse(raw: Option<&str>) -> Result<ContainerFilter> {
        let f = Filters::parse(raw)?;
        f.only(&[
            "id", "name", "label", "status", "ancestor", "exited", "before", "since", "volume",
            "network", "health",
        ])?;
        let health = f.get("health");
        if let Some(h) = health.iter().find(|h| !HEALTH.contains(&h.as_str())) {
            return Err(Error::InvalidArgument(format!(
                "Unrecognised filter value for health: {h}"
            )));
        }
        let status = f.get("status");
        if let Some(s) = status.iter().find(|s| !STATUSES.contains(&s.as_str())) {
            return Err(Error::InvalidArgument(format!(
                "invalid filter 'status={s}'"
            )));
        }
        let exited = f
            .get("exited")
            .iter()
            .map(|e| {
                e.parse::<i32>()
                    .map_err(|_| Error::InvalidArgument(format!("invalid filter 'exited={e}'")))
            })
            .collect::<Result<_>>()?;
        Ok(ContainerFilter {
            id: f.get("id"),
            name: f.get("name").iter().map(|n| NamePattern::new(n)).collect(),
            label: f.get("label"),
            status,
            exited,
            health,
            volume: f.get("volume"),
            network: f.get("network"),
            ancestor: f.get("ancestor"),
            before: f.get("before").pop(),
            since: f.get("since").pop(),
        })
    }

    /// A status or exit code was asked for: stopped containers are listed
    /// without `all`, as Docker lists them.
    pub fn names_stopped(&self) -> bool {
        !self.status.is_empty() || !self.exited.is_empty()
    }

    /// The checks of the container's own record.
    pub fn matches(&self, c: &ContainerFacts) -> bool {
        any_or_none(&self.health, |h| h == c.health)
            && any_or_none(&self.id, |p| c.id.starts_with(p))
            && (self.name.is_empty() || self.name.iter().any(|n| n.matches(c.name)))
            && any_or_none(&self.status, |s| s == c.status)
            && (self.exited.is_empty()
                || (c.status == "exited" && self.exited.contains(&c.exit_code)))
            && labels_match(&self.label, c.labels)
    }
}

/// A `name=` value as dockerd reads it: the name itself, or a regular
/// expression found anywhere in the name, with or without its leading slash
/// (`^/web$` and `^web$` both pick `web`). A value that is not a valid
/// expression matches only the name it spells, without an error.
#[derive(Debug, Clone)]
struct NamePattern {
    text: String,
    regex: Option<regex::Regex>,
}

impl NamePattern {
    fn new(text: &str) -> NamePattern {
        NamePattern {
            text: text.to_string(),
            regex: regex::Regex::new(text).ok(),
        }
    }

    /// `name` is without the slash.
    fn matches(&self, name: &str) -> bool {
        let slashed = format!("/{name}");
        self.text == name
            || self.text == slashed
            || self
                .regex
                .as_ref()
                .is_some_and(|r| r.is_match(name) || r.is_match(&slashed))
    }
}

/// `POST /containers/prune`: `until`, `label` and `label!`.
pub fn prune_filter(raw: Option<&str>) -> Result<super::PruneFilter> {
    super::PruneFilter::of(&Filters::parse(raw)?, &["until", "label", "label!"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(labels: &'a HashMap<String, String>) -> ContainerFacts<'a> {
        ContainerFacts {
            id: "abc123",
            name: "web-1",
            status: "exited",
            exit_code: 3,
            health: "none",
            labels,
        }
    }

    #[test]
    fn values_are_checked_in_dockers_words() {
        let err = |raw: &str| ContainerFilter::parse(Some(raw)).unwrap_err().to_string();
        assert_eq!(
            err(r#"{"status":["gone"]}"#),
            "invalid filter 'status=gone'"
        );
        assert_eq!(err(r#"{"exited":["x"]}"#), "invalid filter 'exited=x'");
        assert_eq!(
            err(r#"{"health":["sick"]}"#),
            "Unrecognised filter value for health: sick"
        );
        assert_eq!(err(r#"{"colour":["red"]}"#), "invalid filter 'colour'");
    }

    #[test]
    fn a_container_matches_every_filter_given() {
        let labels = HashMap::from([("tier".to_string(), "web".to_string())]);
        let f = |raw: &str| ContainerFilter::parse(Some(raw)).unwrap();
        assert!(f("{}").matches(&facts(&labels)));
        assert!(f(r#"{"id":["abc"],"name":["/web"],"exited":["3"]}"#).matches(&facts(&labels)));
        assert!(f(r#"{"label":["tier=web"],"status":["exited"]}"#).matches(&facts(&labels)));
        assert!(!f(r#"{"exited":["0"]}"#).matches(&facts(&labels)));
        assert!(!f(r#"{"label":["tier=db"]}"#).matches(&facts(&labels)));
        assert!(!f(r#"{"health":["healthy"]}"#).matches(&facts(&labels)));
        assert!(f(r#"{"status":["exited"]}"#).names_stopped());
        assert!(!f(r#"{"name":["web"]}"#).names_stopped());
    }

    /// Answers of dockerd 20.10 for a container named `web-1`.
    #[test]
    fn names_are_regular_expressions_with_or_without_the_slash() {
        let labels = HashMap::new();
        let name = |n: &str| {
            ContainerFilter::parse(Some(&serde_json::json!({ "name": [n] }).to_string()))
                .unwrap()
                .matches(&facts(&labels))
        };
        for hit in ["web", "^web-1$", "^/web-1$", "w.b", "/web-1", "eb-"] {
            assert!(name(hit), "{hit}");
        }
        for miss in ["^web$", "^eb", "[", "x"] {
            assert!(!name(miss), "{miss}");
        }
    }

    #[test]
    fn prune_takes_until_and_labels_only() {
        let labels = HashMap::from([("keep".to_string(), "no".to_string())]);
        let old = "2020-01-01T00:00:00Z";
        let p = prune_filter(Some(
            r#"{"until":["2021-01-01T00:00:00Z"],"label!":["keep=yes"]}"#,
        ))
        .unwrap();
        assert!(p.matches(old, &labels));
        assert!(!p.matches("2022-01-01T00:00:00Z", &labels));
        let keep = HashMap::from([("keep".to_string(), "yes".to_string())]);
        assert!(!p.matches(old, &keep));
        assert!(prune_filter(Some(r#"{"until":["someday"]}"#)).is_err());
        assert!(prune_filter(Some(r#"{"status":["exited"]}"#)).is_err());
    }
}
