//! The fluentd log driver's options: checked at create in dockerd's order
//! and words, turned into the shim's [`Fluentd`] settings at start (the
//! shim sends the records, so they keep flowing while berthd is down).
//! `docker logs` reads the dual-logging cache, as for syslog.

use std::collections::HashMap;
use std::time::Duration;

use berth_proto::shim::{Fluentd, LOGGING_FAILED};

use super::log_opts::go_bool;
use crate::containers::record::Container;
use crate::error::{Error, Result};
use crate::util::parse_size;

/// Options dockerd's fluentd driver takes (besides the dual-logging cache
/// and buffer-mode options every such driver takes).
pub const OPTIONS: &[&str] = &[
    "env",
    "env-regex",
    "labels",
    "labels-regex",
    "tag",
    "fluentd-address",
    "fluentd-async",
    "fluentd-async-connect",
    "fluentd-buffer-limit",
    "fluentd-max-retries",
    "fluentd-request-ack",
    "fluentd-retry-wait",
    "fluentd-sub-second-precision",
];

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 24224;
/// fluent-logger's buffer in async mode, 1 MiB, and its first wait.
const DEFAULT_BUFFER_LIMIT: u64 = 1024 * 1024;
const DEFAULT_RETRY_WAIT_MS: u64 = 1000;
/// dockerd's "retry for ever" (2^31 - 1 dials).
const DEFAULT_MAX_RETRIES: u64 = i32::MAX as u64;

/// The options, read as dockerd reads them.
struct Config {
    /// `tcp://host:port`, `unix:///path`, or another network dockerd takes
    /// at create and refuses at start (udp, unixgram).
    address: String,
    buffer_limit: u64,
    retry_wait_ms: u64,
    max_retries: u64,
    is_async: bool,
    async_connect: bool,
    sub_second: bool,
    request_ack: bool,
}

/// The checks dockerd makes when the container is created.
pub fn check(opts: &HashMap<String, String>) -> Result<()> {
    config(opts).map(|_| ())
}

fn config(opts: &HashMap<String, String>) -> Result<Config> {
    let get = |k: &str| opts.get(k).map(String::as_str).unwrap_or("");
    let invalid = |m: String| Error::InvalidArgument(m);
    let address = address(get("fluentd-address"))?;
    let buffer_limit = match get("fluentd-buffer-limit") {
        "" => DEFAULT_BUFFER_LIMIT,
        v => parse_size(v).ok_or_else(|| invalid(format!("invalid size: '{v}'")))?,
    };
    let retry_wait_ms = match get("fluentd-retry-wait") {
        "" => DEFAULT_RETRY_WAIT_MS,
        v => go_duration(v).map_err(invalid)?.as_millis() as u64,
    };
    let max_retries = match get("fluentd-max-retries") {
        "" => DEFAULT_MAX_RETRIES,
        v => v.parse().map_err(|_| {
            invalid(format!(
                "strconv.ParseUint: parsing \"{v}\": invalid syntax"
            ))
        })?,
    };
    if !get("fluentd-async").is_empty() && !get("fluentd-async-connect").is_empty() {
        // dockerd's message lacks its last quote.
        return Err(invalid(
            "conflicting options: cannot specify both 'fluentd-async' and 'fluentd-async-connect"
                .into(),
        ));
    }
    let flag = |k: &str| match get(k) {
        "" => Ok(false),
        v => go_bool(v).ok_or_else(|| {
            invalid(format!(
                "strconv.ParseBool: parsing \"{v}\": invalid syntax"
            ))
        }),
    };
    Ok(Config {
        address,
        buffer_limit,
        retry_wait_ms,
        max_retries,
        is_async: flag("fluentd-async")?,
        async_connect: flag("fluentd-async-connect")?,
        sub_second: flag("fluentd-sub-second-precision")?,
        request_ack: flag("fluentd-request-ack")?,
    })
}

/// What the shim is given at start; `tag` already filled in.
/// `max_buffer` is the buffer of `mode=non-blocking` (0: blocking).
pub fn settings(
    c: &Container,
    opts: &HashMap<String, String>,
    tag: String,
    max_buffer: u64,
) -> Result<Fluentd> {
    let cfg = config(opts)?;
    if let Some((network, _)) = cfg.address.split_once("://") {
        if !matches!(network, "tcp" | "unix") {
            return Err(Error::Internal(format!(
                "{LOGGING_FAILED}: unknown network {network}"
            )));
        }
    }
    let mut fields = vec![
        ("container_id".to_string(), c.id.clone()),
        ("container_name".to_string(), format!("/{}", c.name)),
    ];
    // An attribute of the same name wins, as in dockerd's record.
    for (key, value) in c.log_attributes() {
        match fields.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => fields.push((key, value)),
        }
    }
    // fluentd-async: fluent-logger keeps what the receiver has not taken
    // in its buffer and drops what does not fit, without blocking.
    let max_buffer = match (cfg.is_async, max_buffer) {
        (false, m) => m,
        (true, 0) => cfg.buffer_limit,
        (true, m) => m.min(cfg.buffer_limit),
    };
    Ok(Fluentd {
        address: cfg.address,
        tag,
        sub_second: cfg.sub_second,
        lazy: cfg.is_async || cfg.async_connect,
        retry_wait_ms: cfg.retry_wait_ms,
        max_retries: cfg.max_retries,
        request_ack: cfg.request_ack,
        max_buffer,
        fields,
    })
}

/// `fluentd-address` as dockerd reads it: empty for 127.0.0.1:24224;
/// `unix:///path`; `[tcp://]host[:port]`, where a missing port means 24224
/// and, a quirk of dockerd's, the host is then dropped (127.0.0.1).
fn address(given: &str) -> Result<String> {
    let bad =
        |why: String| Error::InvalidArgument(format!("invalid fluentd-address {given}: {why}"));
    if given.is_empty() {
        return Ok(format!("tcp://{DEFAULT_HOST}:{DEFAULT_PORT}"));
    }
    let mut network = "tcp";
    let mut rest = given;
    if let Some((scheme, after)) = given.split_once("://") {
        if matches!(scheme, "tcp" | "tcp+tls" | "udp" | "unix" | "unixgram") {
            if matches!(scheme, "unix" | "unixgram") {
                let path = after.find('/').map_or("", |i| &after[i..]);
                return Ok(format!("{scheme}://{path}"));
            }
            network = scheme;
            let host = after.split(['/', '?', '#']).next().unwrap_or("");
            url_host_check(given, host).map_err(bad)?;
            rest = host;
        }
    }
    let (host, port) = match split_host_port(rest) {
        Ok(hp) => hp,
        Err(e) if e == "missing port in address" => ("", DEFAULT_PORT.to_string()),
        Err(e) => return Err(bad(format!("address {rest}: {e}"))),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| bad(format!("strconv.Atoi: parsing \"{port}\": invalid syntax")))?;
    let host = if host.is_empty() { DEFAULT_HOST } else { host };
    let port = if port == 0 { DEFAULT_PORT } else { port };
    Ok(if host.contains(':') {
        format!("{network}://[{host}]:{port}")
    } else {
        format!("{network}://{host}:{port}")
    })
}

/// The two errors Go's url.Parse gives for a URL's host that users meet.
fn url_host_check(given: &str, host: &str) -> std::result::Result<(), String> {
    if host.starts_with('[') && !host.contains(']') {
        return Err(format!("parse \"{given}\": missing ']' in host"));
    }
    let after_bracket = host.rsplit_once(']').map_or(host, |(_, p)| p);
    if let Some((_, port)) = after_bracket.rsplit_once(':') {
        if !port.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "parse \"{given}\": invalid port \":{port}\" after host"
            ));
        }
    }
    Ok(())
}

/// Go's net.SplitHostPort, for the cases addresses take.
fn split_host_port(s: &str) -> std::result::Result<(&str, String), String> {
    if let Some(inner) = s.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or("missing ']' in address")?;
        let port = after.strip_prefix(':').ok_or("missing port in address")?;
        return Ok((host, port.to_string()));
    }
    let (host, port) = s.rsplit_once(':').ok_or("missing port in address")?;
    if host.contains(':') {
        return Err("too many colons in address".into());
    }
    Ok((host, port.to_string()))
}

/// Go's time.ParseDuration ("1.5s", "300ms", "1m30s"), in its words.
fn go_duration(s: &str) -> std::result::Result<Duration, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') || body.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        let n: f64 = num.parse().map_err(|_| invalid())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            other => {
                return Err(format!(
                    "time: unknown unit \"{other}\" in duration \"{s}\""
                ))
            }
        };
        total += n * nanos;
        rest = tail;
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::util::string_map as opts;

    #[test]
    fn addresses_as_dockerd_reads_them() {
        assert_eq!(address("").unwrap(), "tcp://127.0.0.1:24224");
        assert_eq!(address("127.0.0.1:1").unwrap(), "tcp://127.0.0.1:1");
        assert_eq!(address("myhost").unwrap(), "tcp://127.0.0.1:24224");
        assert_eq!(address("tcp://example:7").unwrap(), "tcp://example:7");
        assert_eq!(address("udp://127.0.0.1:1").unwrap(), "udp://127.0.0.1:1");
        assert_eq!(address("unix:///run/f.sock").unwrap(), "unix:///run/f.sock");
        assert_eq!(address("[::1]:5").unwrap(), "tcp://[::1]:5");
        let err = |a: &str| address(a).unwrap_err().to_string();
        assert_eq!(
            err("tcp://127.0.0.1:x"),
            "invalid fluentd-address tcp://127.0.0.1:x: parse \"tcp://127.0.0.1:x\": invalid port \":x\" after host"
        );
        assert_eq!(
            err("tcp://[::1"),
            "invalid fluentd-address tcp://[::1: parse \"tcp://[::1\": missing ']' in host"
        );
        assert_eq!(
            err("127.0.0.1:x"),
            "invalid fluentd-address 127.0.0.1:x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn bad_options_in_dockerds_words() {
        let err = |pairs: &[(&str, &str)]| check(&opts(pairs)).unwrap_err().to_string();
        assert_eq!(err(&[("fluentd-buffer-limit", "zz")]), "invalid size: 'zz'");
        assert_eq!(
            err(&[("fluentd-retry-wait", "zz")]),
            "time: invalid duration \"zz\""
        );
        assert_eq!(
            err(&[("fluentd-max-retries", "-1")]),
            "strconv.ParseUint: parsing \"-1\": invalid syntax"
        );
        assert_eq!(
            err(&[("fluentd-async", "maybe")]),
            "strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        assert_eq!(
            err(&[("fluentd-async", "true"), ("fluentd-async-connect", "true")]),
            "conflicting options: cannot specify both 'fluentd-async' and 'fluentd-async-connect"
        );
        assert!(check(&opts(&[
            ("fluentd-retry-wait", "1m30s"),
            ("fluentd-async", "1")
        ]))
        .is_ok());
    }

    #[test]
    fn durations_as_go_parses_them() {
        assert_eq!(go_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            go_duration("1").unwrap_err(),
            "time: missing unit in duration \"1\""
        );
    }
}
