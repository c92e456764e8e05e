//! Container names: Docker's rules for user-given names, and generated
//! "adjective_surname" names for the rest.

use crate::error::{Error, Result};

/// `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`, Docker's container name pattern.
pub fn validate(name: &str) -> Result<String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let ok = n.len() >= 2
        && n.len() <= 255
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(Error::InvalidArgument(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(n.to_string())
}

const LEFT: &[&str] = &[
    "admiring",
    "brave",
    "calm",
    "clever",
    "dazzling",
    "eager",
    "elegant",
    "focused",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "kind",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
    "bold",
];
const RIGHT: &[&str] = &[
    "babbage", "curie", "darwin", "euler", "fermat", "galileo", "hopper", "hypatia", "kepler",
    "lovelace", "meitner", "newton", "noether", "pascal", "ritchie", "shannon", "tesla",
    "thompson", "turing", "wozniak", "yalow", "zuse", "bohr", "dijkstra", "feynman", "goodall",
    "knuth", "lamport", "mccarthy", "torvalds",
];

/// A random "adjective_surname"; `attempt` > 0 appends a number, as Docker
/// does after a clash.
pub fn generate(attempt: u32) -> String {
    let l = LEFT[rand::random::<u32>() as usize % LEFT.len()];
    let r = RIGHT[rand::random::<u32>() as usize % RIGHT.len()];
    if attempt == 0 {
        format!("{l}_{r}")
    } else {
        format!("{l}_{r}{}", rand::random::<u32>() % 10)
    }
}

/// Generated names handed to creates that have not stored them yet. The
/// store's "is it free" alone cannot see what another create picked a
/// moment ago: with creates at once (`docker run -d` in parallel) two
/// would take the same name and the second fail with a conflict over a
/// name nobody asked for.
#[derive(Default)]
pub struct Picks(std::sync::Mutex<std::collections::HashSet<String>>);

/// A generated name held for one create, released when dropped (stored by
/// then, or given up).
pub struct Pick<'a> {
    picks: &'a Picks,
    pub name: String,
}

impl Picks {
    /// Holds `name` unless another create holds it.
    pub fn take(&self, name: String) -> Option<Pick<'_>> {
        let fresh = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone());
        // Made only when fresh: a Pick made and dropped here would give up
        // the holder's name (and lock again while locked).
        fresh.then(|| Pick { picks: self, name })
    }
}

impl Drop for Pick<'_> {
    fn drop(&mut self) {
        self.picks
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picked_name_is_not_picked_again_until_given_up() {
        let picks = Picks::default();
        let first = picks.take("eager_turing".into()).expect("free");
        assert!(picks.take("eager_turing".into()).is_none());
        assert!(picks.take("eager_curie".into()).is_some());
        drop(first);
        assert!(picks.take("eager_turing".into()).is_some());
    }

    #[test]
    fn names_follow_docker_rules() {
        assert_eq!(validate("/web-1").unwrap(), "web-1");
        for bad in ["a", "-ab", "a b", "a/b", "ab!", ""] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert!(validate(&generate(0)).is_ok());
        assert!(validate(&generate(3)).is_ok());
    }
}
