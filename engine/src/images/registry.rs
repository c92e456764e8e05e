//! Talking to registries: which ones are plain HTTP, the credentials a
//! client sends in X-Registry-Auth, `docker login`'s check, and turning
//! registry failures into the errors Docker reports.
//!
//! The registry protocol itself (manifests, blobs, chunked uploads, token
//! auth) is oci-client's.

use std::net::IpAddr;

use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::reference::Reference;
use crate::error::Error;

/// Docker Hub's registry, where `docker.io/...` references are pulled from.
const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";

/// Which registries are spoken to over plain HTTP: those named by
/// `--insecure-registry` (host[:port] or a CIDR) and, as in Docker, every
/// registry on 127.0.0.0/8.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    insecure: Vec<String>,
    /// `--registry-mirror`s: tried in order for Docker Hub's images.
    mirrors: Vec<Mirror>,
}

/// A pull-through mirror of Docker Hub (dockerd's `registry-mirrors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// As `docker info` shows it: the URL with a trailing `/`.
    pub url: String,
    /// host[:port], what clients and references name.
    pub domain: String,
    /// Given as `http://`: spoken to over plain HTTP.
    pub plain_http: bool,
}

impl Mirror {
    /// A mirror as dockerd accepts one: an http or https URL of a host,
    /// with no path, query or credentials.
    pub fn parse(text: &str) -> Result<Mirror, String> {
        let bad = || format!("invalid mirror: {text:?} is not a valid URI");
        let (plain_http, rest) = match text.split_once("://") {
            Some(("http", r)) => (true, r),
            Some(("https", r)) => (false, r),
            Some((scheme, _)) => {
                return Err(format!(
                    "invalid mirror: unsupported scheme {scheme:?} in {text:?}"
                ))
            }
            None => return Err(bad()),
        };
        let domain = rest.trim_end_matches('/');
        if domain.is_empty() || domain.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "invalid mirror: path, query, fragment or credentials are not allowed in {text:?}"
            ));
        }
        let scheme = if plain_http { "http" } else { "https" };
        Ok(Mirror {
            url: format!("{scheme}://{domain}/"),
            domain: domain.to_string(),
            plain_http,
        })
    }
}

/// Where one pull may fetch an image from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// host[:port] spoken to.
    pub domain: String,
    /// A mirror: tried anonymously, and on any failure the next endpoint
    /// is tried (dockerd's fallback).
    pub mirror: bool,
}

impl Registries {
    pub fn new(insecure: Vec<String>, mirrors: Vec<Mirror>) -> Registries {
        Registries { insecure, mirrors }
    }

    pub fn mirrors(&self) -> &[Mirror] {
        &self.mirrors
    }

    /// The endpoints of a pull from `domain`: Docker Hub's mirrors first,
    /// then the registry itself.
    pub fn endpoints(&self, domain: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if domain == "docker.io" {
            out.extend(self.mirrors.iter().map(|m| Endpoint {
                domain: m.domain.clone(),
                mirror: true,
            }));
        }
        out.push(Endpoint {
            domain: domain.to_string(),
            mirror: false,
        });
        out
    }

    pub fn is_insecure(&self, domain: &str) -> bool {
        if self
            .mirrors
            .iter()
            .any(|m| m.plain_http && m.domain == domain)
        {
            return true;
        }
        let host = host_of(domain);
        if host == "localhost" {
            return true;
        }
        let ip: Option<IpAddr> = host.trim_matches(['[', ']']).parse().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.insecure.iter().any(|entry| {
            let entry = entry
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            if entry == domain || entry == host {
                return true;
            }
            match (entry.split_once('/'), ip) {
                (Some((net, bits)), Some(ip)) => cidr_contains(net, bits, ip),
                _ => false,
            }
        })
    }

    /// A client for one registry; `platform` picks from manifest lists.
    pub fn client(&self, domain: &str) -> oci_client::Client {
        let protocol = if self.is_insecure(domain) {
            ClientProtocol::HttpsExcept(vec![domain.to_string()])
        } else {
            ClientProtocol::Https
        };
        oci_client::Client::new(ClientConfig {
            protocol,
            // Berth selects the platform itself (it reports which one).
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        })
    }

    /// The base URL of a registry's API ("http://127.0.0.1:5000").
    pub fn base_url(&self, domain: &str) -> String {
        let host = if domain == "docker.io" {
            DOCKER_HUB_REGISTRY
        } else {
            domain
        };
        let scheme = if self.is_insecure(domain) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }
}

fn host_of(domain: &str) -> &str {
    if domain.starts_with('[') {
        return domain
            .split_once(']')
            .map(|(h, _)| &h[1..])
            .unwrap_or(domain);
    }
    domain.rsplit_once(':').map(|(h, _)| h).unwrap_or(domain)
}

fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// The reference in oci-client's terms.
pub fn oci_reference(r: &Reference) -> oci_client::Reference {
    oci_reference_at(r, &r.domain)
}

/// The reference as fetched from `domain` (a mirror of its registry, or
/// the registry itself).
pub fn oci_reference_at(r: &Reference, domain: &str) -> oci_client::Reference {
    let registry = if domain == "docker.io" {
        DOCKER_HUB_REGISTRY.to_string()
    } else {
        domain.to_string()
    };
    match (&r.tag, &r.digest) {
        (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
            registry,
            r.path.clone(),
            t.clone(),
            d.clone(),
        ),
        (_, Some(d)) => oci_client::Reference::with_digest(registry, r.path.clone(), d.clone()),
        (t, None) => oci_client::Reference::with_tag(
            registry,
            r.path.clone(),
            t.clone().unwrap_or_else(|| "latest".into()),
        ),
    }
}

/// Docker's AuthConfig, as the CLI sends it (base64url JSON) in
/// X-Registry-Auth and as the body of POST /auth.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// "user:password" in base64, an alternative to the two fields above.
    #[serde(default)]
    pub auth: String,
    #[serde(default, rename = "serveraddress")]
    pub server_address: String,
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

impl AuthConfig {
    pub fn credentials(&self) -> Option<(String, String)> {
        if !self.username.is_empty() {
            return Some((self.username.clone(), self.password.clone()));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&self.auth)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    pub fn registry_auth(&self) -> RegistryAuth {
        if !self.registry_token.is_empty() {
            return RegistryAuth::Bearer(self.registry_token.clone());
        }
        match self.credentials() {
            Some((u, p)) => RegistryAuth::Basic(u, p),
            None => RegistryAuth::Anonymous,
        }
    }
}

/// The registry's own words from an error envelope ("manifest unknown: …").
fn envelope_text(e: &OciDistributionError) -> Option<String> {
    if let OciDistributionError::RegistryError { envelope, .. } = e {
        let parts: Vec<String> = envelope
            .errors
            .iter()
            .map(|x| {
                format!(
                    "{}: {}",
                    code_str(&x.code).to_lowercase().replace('_', " "),
                    x.message
                )
            })
            .collect();
        return Some(parts.join(", "));
    }
    None
}

/// "MANIFEST_UNKNOWN" and the like, as the registry sent it.
fn code_str(code: &oci_client::errors::OciErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn is_code(e: &OciDistributionError, code: &str) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|x| code_str(&x.code).eq_ignore_ascii_case(code)),
        _ => false,
    }
}

/// A failure fetching a manifest, as Docker words it.
pub fn manifest_error(e: OciDistributionError, familiar_ref: &str, repo: &str) -> Error {
    let status = match &e {
        OciDistributionError::ServerError { code, .. } => Some(*code),
        _ => None,
    };
    if matches!(e, OciDistributionError::ImageManifestNotFoundError(_))
        || is_code(&e, "MANIFEST_UNKNOWN")
        || status == Some(404)
    {
        let why = envelope_text(&e).unwrap_or_else(|| "manifest unknown".into());
        return Error::NotFound(format!("manifest for {familiar_ref} not found: {why}"));
    }
    if is_code(&e, "NAME_UNKNOWN") {
        return Error::NotFound(format!(
            "repository {repo} not found: {}",
            envelope_text(&e).unwrap_or_default()
        ));
    }
    registry_error(e)
}

/// Any other registry failure. Refused credentials are a 500 here, as in
/// Docker: a 401 would make the CLI prompt for a password mid-pull.
pub fn registry_error(e: OciDistributionError) -> Error {
    match &e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            Error::Internal(format!("unauthorized: authentication required ({e})"))
        }
        _ if is_code(&e, "UNAUTHORIZED") || is_code(&e, "DENIED") => Error::Internal(format!(
            "unauthorized: {}",
            envelope_text(&e).unwrap_or_default()
        )),
        OciDistributionError::ServerError { code: 401, url, .. } => {
            Error::Internal(format!("unauthorized: authentication required ({url})"))
        }
        OciDistributionError::RequestError(re)
            if re.status() == Some(reqwest::StatusCode::UNAUTHORIZED) =>
        {
            Error::Internal(format!(
                "unauthorized: authentication required ({})",
                re.url().map(|u| u.as_str()).unwrap_or("")
            ))
        }
        OciDistributionError::RequestError(re)
            if re.status() == Some(reqwest::StatusCode::FORBIDDEN) =>
        {
            Error::Internal(format!(
                "denied: requested access to the resource is denied ({})",
                re.url().map(|u| u.as_str()).unwrap_or("")
            ))
        }
        OciDistributionError::RequestError(re) => Error::Internal(describe_request_error(re)),
        _ => Error::Internal(e.to_string()),
    }
}

fn describe_request_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    // A refused connection in Go's words, as dockerd reports it (clients
    // and users match on "connection refused").
    let refused = {
        let mut src = e.source();
        let mut found = false;
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                found |= io.kind() == std::io::ErrorKind::ConnectionRefused;
            }
            src = s.source();
        }
        found
    };
    if let (true, Some(url)) = (refused, e.url()) {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(0);
        return format!("Get \"{url}\": dial tcp {host}:{port}: connect: connection refused");
    }
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    text
}

/// `docker login`: checks the credentials against the registry's /v2/
/// endpoint, following a Bearer challenge to its token server. Written here
/// because oci-client authenticates only for a repository scope.
pub async fn login(registries: &Registries, auth: &AuthConfig) -> Result<(), Error> {
    let domain = server_domain(&auth.server_address);
    let base = registries.base_url(&domain);
    let url = format!("{base}/v2/");
    let client = reqwest::Client::builder()
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(Error::internal)?;
    let first = client
        .get(&url)
        .send()
        .await
        .map_err(|e| Error::Internal(describe_request_error(&e)))?;
    if first.status().is_success() {
        return Ok(()); // a registry without authentication accepts anyone
    }
    // Asked only now: dockerd reaches the registry before it looks at
    // the credentials.
    let Some((user, pass)) = auth.credentials() else {
        return Err(Error::Unauthorized("login attempt without username".into()));
    };
    let failed = |status: reqwest::StatusCode| {
        Error::Unauthorized(format!(
            "login attempt to {url} failed with status: {status}"
        ))
    };
    if first.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(failed(first.status()));
    }
    let challenge = first
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let resp = if let Some(params) = challenge
        .strip_prefix("Bearer ")
        .or_else(|| challenge.strip_prefix("bearer "))
    {
        let params = challenge_params(params);
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| failed(first.status()))?;
        let mut req = client
            .get(&realm)
            .basic_auth(&user, Some(&pass))
            .query(&[("account", user.as_str()), ("client_id", "berth")]);
        if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
            req = req.query(&[("service", service.as_str())]);
        }
        req.send()
            .await
            .map_err(|e| Error::Internal(describe_request_error(&e)))?
    } else {
        client
            .get(&url)
            .basic_auth(&user, Some(&pass))
            .send()
            .await
            .map_err(|e| Error::Internal(describe_request_error(&e)))?
    };
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(failed(resp.status()))
    }
}

/// "https://index.docker.io/v1/", "http://127.0.0.1:5000", "127.0.0.1:5000" → domain.
pub fn server_domain(address: &str) -> String {
    let a = address.trim();
    if a.is_empty() || a.contains("index.docker.io") || a == "docker.io" {
        return "docker.io".into();
    }
    let a = a
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    a.split('/').next().unwrap_or(a).to_string()
}

/// `realm="…",service="…"` → pairs.
fn challenge_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.split_once('"') {
                Some((v, t)) => (v.to_string(), t),
                None => (q.to_string(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, t)) => (v.to_string(), t),
                None => (after.to_string(), ""),
            }
        };
        out.push((key, value));
        rest = tail.trim_start_matches(',').trim();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_plain_http() {
        let r = Registries::new(vec!["10.1.0.0/16".into(), "myreg:5000".into()], Vec::new());
        assert!(r.is_insecure("127.0.0.1:5000"));
        assert!(r.is_insecure("127.3.4.5"));
        assert!(r.is_insecure("localhost:5000"));
        assert!(r.is_insecure("10.1.2.3:443"));
        assert!(r.is_insecure("myreg:5000"));
        assert!(!r.is_insecure("10.2.0.1"));
        assert!(!r.is_insecure("docker.io"));
    }

    #[test]
    fn mirrors_are_checked_and_tried_before_docker_hub() {
        let m = Mirror::parse("http://10.9.9.9:5000").unwrap();
        assert_eq!(m.url, "http://10.9.9.9:5000/");
        assert!(Mirror::parse("ftp://x").is_err());
        assert!(Mirror::parse("https://x/path").is_err());
        assert!(Mirror::parse("mirror.example").is_err());
        let r = Registries::new(Vec::new(), vec![m]);
        assert!(r.is_insecure("10.9.9.9:5000"));
        let eps = r.endpoints("docker.io");
        assert_eq!(eps.len(), 2);
        assert!(eps[0].mirror && eps[0].domain == "10.9.9.9:5000");
        assert_eq!(r.endpoints("ghcr.io").len(), 1);
    }

    #[test]
    fn bearer_challenge_parameters() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="a,b""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[1], ("service".into(), "registry.example".into()));
        assert_eq!(p[2], ("scope".into(), "a,b".into()));
    }
}
