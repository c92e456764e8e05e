//! Image references ("busybox", "localhost:5000/team/app:1.2",
//! "busybox@sha256:…") parsed and normalized the way Docker's
//! distribution/reference grammar does. Hand-written because the crates
//! that parse them come with a registry client attached; the grammar is small.

use crate::error::Error;

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub domain: String,
    /// Repository path without domain ("library/busybox").
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// dockerd's words (docker/distribution's reference errors), which name
/// neither the reference nor what is wrong with it.
fn invalid(_s: &str) -> Error {
    Error::InvalidArgument("invalid reference format".into())
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, Error> {
        if s.is_empty() || s.len() > 512 {
            return Err(invalid(s));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let (algo, hex) = d.split_once(':').ok_or_else(|| invalid(s))?;
                if algo != "sha256"
                    || hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return Err(invalid(s));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(invalid(s));
            }
        }
        if name.is_empty() || name.len() > 255 {
            return Err(invalid(s));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if !valid_domain(&domain) {
            return Err(invalid(s));
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            // The wording of dockerd 23 and later, which names it.
            return Err(Error::InvalidArgument(format!(
                "invalid reference format: repository name ({path}) must be lowercase"
            )));
        }
        if !path.split('/').all(valid_component) {
            return Err(invalid(s));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        // Docker limits the normalized name ("docker.io/library/x"), so a
        // name that fits only in its short form is refused (found by
        // `contrib/fuzz.sh`: it parsed, and its normalized form did not).
        if domain.len() + 1 + path.len() > 255 {
            return Err(Error::InvalidArgument(
                "repository name must not be more than 255 characters".into(),
            ));
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The repository, fully qualified ("docker.io/library/busybox").
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// What the tag table is keyed by: repository plus tag (default latest),
    /// or repository plus digest.
    pub fn normalized(&self) -> String {
        match (&self.tag, &self.digest) {
            (_, Some(d)) if self.tag.is_none() => format!("{}@{d}", self.repository()),
            (Some(t), _) => format!("{}:{t}", self.repository()),
            (None, _) => format!("{}:{DEFAULT_TAG}", self.repository()),
        }
    }

    /// With the default tag filled in.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.into());
        }
        self
    }
}

/// How dockerd names an image it did not find: the familiar reference with
/// its tag ("nosuch:latest"), or what was asked as it was (an id, or
/// something that is no reference).
pub fn as_asked(name: &str) -> String {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if name.starts_with("sha256:")
        || (hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return name.to_string();
    }
    Reference::parse(name)
        .map(|r| familiar(&r.with_default_tag().normalized()))
        .unwrap_or_else(|_| name.to_string())
}

/// The short form users see ("busybox:latest", "localhost:5000/app:1").
pub fn familiar(normalized: &str) -> String {
    let s = normalized.strip_prefix("docker.io/").unwrap_or(normalized);
    if normalized.starts_with("docker.io/") {
        if let Some(rest) = s.strip_prefix("library/") {
            return rest.to_string();
        }
    }
    s.to_string()
}

/// The familiar repository name without tag or digest.
pub fn familiar_repository(normalized: &str) -> String {
    let f = familiar(normalized);
    if let Some((r, _)) = f.split_once('@') {
        return r.to_string();
    }
    let last_slash = f.rfind('/').map(|i| i + 1).unwrap_or(0);
    match f[last_slash..].rfind(':') {
        Some(i) => f[..last_slash + i].to_string(),
        None => f,
    }
}

fn valid_domain(d: &str) -> bool {
    let host = match d.rsplit_once(':') {
        Some((h, port)) => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            h
        }
        None => d,
    };
    !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_too_long_once_normalized_are_refused() {
        let short = "a".repeat(240);
        assert!(Reference::parse(&short).is_err());
        let r = Reference::parse(&"a".repeat(200)).unwrap();
        assert!(Reference::parse(&r.normalized()).is_ok());
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(
            Reference::parse("busybox").unwrap().normalized(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            Reference::parse("user/app:1.0").unwrap().normalized(),
            "docker.io/user/app:1.0"
        );
        assert_eq!(
            Reference::parse("localhost:5000/a/b:t")
                .unwrap()
                .normalized(),
            "localhost:5000/a/b:t"
        );
        let d = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(
            Reference::parse(&d).unwrap().normalized(),
            format!("docker.io/library/busybox@sha256:{}", "a".repeat(64))
        );
    }

    #[test]
    fn familiar_names() {
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("docker.io/user/app:1"), "user/app:1");
        assert_eq!(familiar("localhost:5000/app:1"), "localhost:5000/app:1");
        assert_eq!(
            familiar_repository("localhost:5000/app:1"),
            "localhost:5000/app"
        );
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "UPPER",
            "a::b",
            "a:",
            "-a",
            "a/../b",
            "a b",
            "busybox@sha256:xyz",
            ":tag",
            "a:-x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?}");
        }
    }
}
