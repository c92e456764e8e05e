//! The gelf log driver's options: checked at create in dockerd's words,
//! turned into the shim's [`Gelf`] settings at start (the shim sends the
//! messages, so they keep flowing while berthd is down). `docker logs`
//! reads the dual-logging cache, as for syslog.

use std::collections::HashMap;

use berth_proto::shim::{Gelf, LOGGING_FAILED};

use crate::containers::record::Container;
use crate::error::{Error, Result};

/// go-gelf's defaults: gzip at its fastest level; over TCP three new
/// connections a second apart before a message is given up.
const DEFAULT_LEVEL: i32 = 1;
const DEFAULT_MAX_RECONNECT: u32 = 3;
const DEFAULT_RECONNECT_DELAY_S: u32 = 1;

/// The checks dockerd makes when the container is created (every option;
/// the shared cache and buffer options are left out by the caller).
pub fn check(opts: &HashMap<String, String>) -> Result<()> {
    let invalid = |m: String| Error::InvalidArgument(m);
    let (scheme, _) = address(opts.get("gelf-address").map_or("", String::as_str))?;
    let mut keys: Vec<&String> = opts.keys().collect();
    keys.sort();
    for key in keys {
        let value = &opts[key];
        let unknown_value = || {
            invalid(format!(
                "unknown value {value:?} for log opt {key:?} for gelf log driver"
            ))
        };
        match key.as_str() {
            "gelf-address" | "tag" | "labels" | "labels-regex" | "env" | "env-regex" => {}
            "gelf-compression-level" | "gelf-compression-type" if scheme != "udp" => {
                return Err(invalid("compression is only supported on UDP".into()));
            }
            "gelf-compression-level" => match value.parse::<i32>() {
                Ok(-1..=9) => {}
                _ => return Err(unknown_value()),
            },
            "gelf-compression-type" => {
                if !matches!(value.as_str(), "gzip" | "zlib" | "none") {
                    return Err(unknown_value());
                }
            }
            "gelf-tcp-max-reconnect" | "gelf-tcp-reconnect-delay" => {
                if scheme != "tcp" {
                    return Err(invalid(format!("{key:?} is only valid for TCP")));
                }
                if !value.parse::<i64>().is_ok_and(|n| n >= 0) {
                    return Err(invalid(format!("{key:?} must be a positive integer")));
                }
            }
            _ => {
                return Err(invalid(format!(
                    "unknown log opt {key:?} for gelf log driver"
                )))
            }
        }
    }
    Ok(())
}

/// `gelf-address` as dockerd takes it: (scheme, host:port).
fn address(given: &str) -> Result<(&str, &str)> {
    let invalid = |m: String| Error::InvalidArgument(m);
    if given.is_empty() {
        return Err(invalid("gelf-address is a required parameter".into()));
    }
    let Some((scheme, rest)) = given
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "tcp" | "tcp+tls" | "udp" | "unix" | "unixgram"))
    else {
        return Err(invalid(format!(
            "gelf-address should be in form proto://address, got {given}"
        )));
    };
    if scheme != "udp" && scheme != "tcp" {
        return Err(invalid("gelf: endpoint needs to be TCP or UDP".into()));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let has_port = host
        .rsplit_once(']')
        .map_or(host, |(_, p)| p)
        .rsplit_once(':')
        .is_some_and(|(h, _)| !h.contains(':') || host.starts_with('['));
    if !has_port {
        return Err(invalid(
            "gelf: please provide gelf-address as proto://host:port".into(),
        ));
    }
    Ok((scheme, host))
}

/// What the shim is given at start; `tag` already filled in.
pub fn settings(
    c: &Container,
    opts: &HashMap<String, String>,
    tag: String,
    max_buffer: u64,
) -> Result<Gelf> {
    let get = |k: &str| opts.get(k).map(String::as_str).unwrap_or("");
    let (scheme, endpoint) = address(get("gelf-address"))?;
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .map_err(|_| {
            Error::Internal(format!(
                "{LOGGING_FAILED}: gelf: cannot access hostname to set source field"
            ))
        })?;
    let mut fields = vec![
        ("_command".to_string(), c.process_args().join(" ")),
        ("_container_id".to_string(), c.id.clone()),
        ("_container_name".to_string(), c.name.clone()),
        ("_created".to_string(), c.created.clone()),
        ("_image_id".to_string(), c.image_id.clone()),
        ("_image_name".to_string(), c.image_ref.clone()),
        ("_tag".to_string(), tag),
    ];
    // dockerd names an attribute with a leading `_` (unless it has one);
    // one of the same name as a field above wins, as in its map.
    for (key, value) in c.log_attributes() {
        let key = if key.starts_with('_') {
            key
        } else {
            format!("_{key}")
        };
        match fields.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => fields.push((key, value)),
        }
    }
    // Go's JSON encoder writes a map's keys in byte order.
    fields.sort();
    let number = |k: &str, default: u32| get(k).parse().unwrap_or(default);
    Ok(Gelf {
        address: format!("{scheme}://{endpoint}"),
        host,
        compression: match get("gelf-compression-type") {
            "" => "gzip".into(),
            other => other.into(),
        },
        level: get("gelf-compression-level")
            .parse()
            .unwrap_or(DEFAULT_LEVEL),
        max_reconnect: number("gelf-tcp-max-reconnect", DEFAULT_MAX_RECONNECT),
        reconnect_delay_s: number("gelf-tcp-reconnect-delay", DEFAULT_RECONNECT_DELAY_S),
        max_buffer,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(pairs: &[(&str, &str)]) -> String {
        check(&crate::util::string_map(pairs))
            .unwrap_err()
            .to_string()
    }

    /// Each as dockerd 20.10 answered it.
    #[test]
    fn bad_options_in_dockerds_words() {
        assert_eq!(err(&[]), "gelf-address is a required parameter");
        assert_eq!(
            err(&[("gelf-address", "udp://127.0.0.1")]),
            "gelf: please provide gelf-address as proto://host:port"
        );
        assert_eq!(
            err(&[("gelf-address", "127.0.0.1:1")]),
            "gelf-address should be in form proto://address, got 127.0.0.1:1"
        );
        let udp = ("gelf-address", "udp://127.0.0.1:1");
        let tcp = ("gelf-address", "tcp://127.0.0.1:1");
        assert_eq!(
            err(&[udp, ("gelf-compression-type", "lz")]),
            r#"unknown value "lz" for log opt "gelf-compression-type" for gelf log driver"#
        );
        assert_eq!(
            err(&[udp, ("gelf-compression-level", "12")]),
            r#"unknown value "12" for log opt "gelf-compression-level" for gelf log driver"#
        );
        assert_eq!(
            err(&[tcp, ("gelf-compression-type", "gzip")]),
            "compression is only supported on UDP"
        );
        assert_eq!(
            err(&[tcp, ("gelf-tcp-max-reconnect", "-2")]),
            r#""gelf-tcp-max-reconnect" must be a positive integer"#
        );
        assert_eq!(
            err(&[udp, ("gelf-tcp-reconnect-delay", "1")]),
            r#""gelf-tcp-reconnect-delay" is only valid for TCP"#
        );
        assert_eq!(
            err(&[udp, ("foo", "1")]),
            r#"unknown log opt "foo" for gelf log driver"#
        );
    }
}
