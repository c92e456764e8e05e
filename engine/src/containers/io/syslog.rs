//! The syslog log driver's options: checked at create in dockerd's order
//! and words, turned into the shim's [`Syslog`] target at start (the shim
//! sends the lines, so they keep flowing while berthd is down).

use std::collections::HashMap;

use berth_proto::shim::{Syslog, SyslogTls, LOGGING_FAILED};

use crate::error::{Error, Result};

/// Options dockerd's syslog driver takes (besides the dual-logging cache
/// and buffer-mode options every such driver takes).
pub const OPTIONS: &[&str] = &[
    "env",
    "env-regex",
    "labels",
    "labels-regex",
    "syslog-address",
    "syslog-facility",
    "syslog-tls-ca-cert",
    "syslog-tls-cert",
    "syslog-tls-key",
    "syslog-tls-skip-verify",
    "tag",
    "syslog-format",
];

/// Facility names, as syslog(3) numbers them.
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

const FORMATS: &[&str] = &["", "rfc3164", "rfc5424", "rfc5424micro"];

/// The checks dockerd makes when the container is created (its options
/// other than the shared ones already known to be syslog's).
pub fn check(opts: &HashMap<String, String>) -> Result<()> {
    let get = |k: &str| opts.get(k).map(String::as_str).unwrap_or("");
    address(get("syslog-address"))?;
    facility(get("syslog-facility"))?;
    if !FORMATS.contains(&get("syslog-format")) {
        return Err(Error::InvalidArgument("Invalid syslog format".into()));
    }
    Ok(())
}

/// What the shim is given at start; `tag` already filled in.
pub fn target(opts: &HashMap<String, String>, tag: String) -> Result<Syslog> {
    let get = |k: &str| opts.get(k).map(String::as_str).unwrap_or("");
    let address = address(get("syslog-address"))?;
    // dockerd takes any port at create and fails the start on a bad one.
    if let Some((proto, rest)) = address.split_once("://") {
        if matches!(proto, "tcp" | "udp" | "tcp+tls") {
            let port = rest.rsplit_once(':').map_or("", |(_, p)| p);
            if port.parse::<u16>().is_err() {
                return Err(Error::Internal(format!(
                    "{LOGGING_FAILED}: dial {proto}: address {port}: invalid port"
                )));
            }
        }
    }
    let tls = address.starts_with("tcp+tls://").then(|| SyslogTls {
        ca_cert: get("syslog-tls-ca-cert").to_string(),
        cert: get("syslog-tls-cert").to_string(),
        key: get("syslog-tls-key").to_string(),
        skip_verify: super::log_opts::go_bool(get("syslog-tls-skip-verify")).unwrap_or(false),
    });
    Ok(Syslog {
        tls,
        max_buffer: super::log_opts::max_buffer(opts),
        address,
        format: get("syslog-format").to_string(),
        facility: facility(get("syslog-facility"))?,
        tag,
    })
}

/// `proto://address`, with the port made explicit (514 when left out);
/// "" stays "" (the host's own syslog socket).
fn address(given: &str) -> Result<String> {
    if given.is_empty() {
        return Ok(String::new());
    }
    let bad = || {
        Error::InvalidArgument(format!(
            "syslog-address should be in form proto://address, got {given}"
        ))
    };
    let (proto, rest) = given.split_once("://").ok_or_else(bad)?;
    match proto {
        "unix" | "unixgram" => {
            std::fs::metadata(rest).map_err(|e| {
                Error::InvalidArgument(format!(
                    "stat {rest}: {}",
                    berth_proto::os_error::go_text(&e)
                ))
            })?;
            Ok(given.to_string())
        }
        "tcp" | "udp" | "tcp+tls" => {
            let host = rest.split('/').next().unwrap_or("");
            let has_port = match host.rsplit_once(':') {
                // "[::1]" alone is a host without a port.
                Some((h, _)) => !host.starts_with('[') || h.ends_with(']'),
                None => false,
            };
            if has_port {
                Ok(format!("{proto}://{host}"))
            } else {
                Ok(format!("{proto}://{host}:514"))
            }
        }
        _ => Err(bad()),
    }
}

/// A facility's number, by name or as 0 to 23; daemon when not given.
fn facility(given: &str) -> Result<u8> {
    if given.is_empty() {
        return Ok(3);
    }
    if let Some((_, n)) = FACILITIES.iter().find(|(name, _)| *name == given) {
        return Ok(*n);
    }
    match given.parse::<u8>() {
        Ok(n) if n <= 23 => Ok(n),
        _ => Err(Error::InvalidArgument("invalid syslog facility".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::util::string_map as opts;

    /// dockerd 20.10's answers for the same options.
    #[test]
    fn options_are_checked_as_dockerd_checks_them() {
        let err = |pairs: &[(&str, &str)]| check(&opts(pairs)).unwrap_err().to_string();
        assert_eq!(err(&[("syslog-format", "bogus")]), "Invalid syslog format");
        assert_eq!(
            err(&[("syslog-facility", "bogus")]),
            "invalid syslog facility"
        );
        assert_eq!(err(&[("syslog-facility", "24")]), "invalid syslog facility");
        assert_eq!(
            err(&[("syslog-address", "foo://x")]),
            "syslog-address should be in form proto://address, got foo://x"
        );
        assert_eq!(
            err(&[("syslog-address", "unix:///nonexistent/berth")]),
            "stat /nonexistent/berth: no such file or directory"
        );
        let t = |pairs: &[(&str, &str)]| target(&opts(pairs), "t".into()).unwrap();
        assert_eq!(
            t(&[("syslog-address", "udp://127.0.0.1")]).address,
            "udp://127.0.0.1:514"
        );
        assert_eq!(
            t(&[("syslog-address", "udp://[::1]")]).address,
            "udp://[::1]:514"
        );
        assert_eq!(
            t(&[("syslog-address", "tcp://[::1]:601")]).address,
            "tcp://[::1]:601"
        );
        assert_eq!(t(&[("syslog-facility", "local3")]).facility, 19);
        let secure = t(&[
            ("syslog-address", "tcp+tls://127.0.0.1"),
            ("syslog-tls-ca-cert", "/c/ca.pem"),
        ]);
        assert_eq!(secure.address, "tcp+tls://127.0.0.1:514");
        assert_eq!(secure.tls.unwrap().ca_cert, "/c/ca.pem");
        assert!(t(&[("syslog-address", "tcp://127.0.0.1:514")])
            .tls
            .is_none());
        assert_eq!(t(&[("syslog-facility", "7")]).facility, 7);
        assert_eq!(t(&[]).facility, 3);
        assert_eq!(t(&[]).max_buffer, 0);
        assert_eq!(t(&[("mode", "non-blocking")]).max_buffer, 1_000_000);
        assert_eq!(
            t(&[("mode", "non-blocking"), ("max-buffer-size", "4k")]).max_buffer,
            4096
        );
        assert_eq!(
            target(
                &opts(&[("syslog-address", "udp://127.0.0.1:99999")]),
                "t".into()
            )
            .unwrap_err()
            .to_string(),
            "failed to initialize logging driver: dial udp: address 99999: invalid port"
        );
    }
}
