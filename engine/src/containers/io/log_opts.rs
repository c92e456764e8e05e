//! The `--log-opt`s of the json-file and local drivers, checked at create
//! as Docker checks them: rotation (`max-size`, `max-file`) is carried out
//! by the shim; `labels` and `env` name what `docker logs --details` shows.
//! `mode` and `max-buffer-size` belong to every driver (dockerd's buffer in
//! front of a driver): checked as dockerd checks them. Berth's drivers
//! write files from the shim, which reads a container's output as it
//! comes, so both modes behave alike for them. The syslog driver honours
//! them (see the shim's syslog.rs): blocking holds the container's output
//! while the receiver lags, non-blocking drops what overflows the buffer.
//! A driver that ships lines elsewhere (syslog, journald, fluentd, gelf)
//! also keeps dockerd's dual-logging cache, a `local` file `docker logs`
//! reads, with its `cache-*` options.

use std::collections::HashMap;

use bollard_stubs::models::{HostConfig, HostConfigLogConfig};

use crate::error::{Error, Result};
use crate::util::parse_size;

const KNOWN: &[&str] = &[
    "max-size",
    "max-file",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "compress",
    "tag",
];

/// The local driver's options (Docker's list).
const KNOWN_LOCAL: &[&str] = &["max-size", "max-file", "compress"];

/// The drivers Berth has.
pub const SUPPORTED: &[&str] = &[
    "fluentd",
    "gelf",
    "json-file",
    "journald",
    "local",
    "none",
    "syslog",
];

/// Whether `driver` writes its own file (else it ships lines elsewhere and
/// keeps the dual-logging cache).
fn writes_a_file(driver: &str) -> bool {
    matches!(driver, "" | "json-file" | "local" | "none")
}

/// The dual-logging cache's options, which every shipping driver takes.
const CACHE: &[&str] = &[
    "cache-disabled",
    "cache-max-size",
    "cache-max-file",
    "cache-compress",
];

/// Go's strconv.ParseBool.
pub fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The buffer in front of a shipping driver in `mode=non-blocking`, in
/// bytes (dockerd's ring buffer holds 1 MB unless told); 0: blocking.
pub fn max_buffer(opts: &HashMap<String, String>) -> u64 {
    if opts.get("mode").map(String::as_str) != Some("non-blocking") {
        return 0;
    }
    opts.get("max-buffer-size")
        .and_then(|s| parse_size(s))
        .unwrap_or(1_000_000)
}

/// Whether a shipping driver keeps the cache `docker logs` reads.
pub fn keeps_cache(driver: &str, opts: &HashMap<String, String>) -> bool {
    !writes_a_file(driver)
        && !opts
            .get("cache-disabled")
            .and_then(|v| go_bool(v))
            .unwrap_or(false)
}

/// (max size in bytes, 0 for none; files kept in all). The local driver
/// and the dual-logging cache rotate by default, as Docker's do: 20 MiB, 5
/// files. dockerd takes any cache size or count and falls back to these.
pub fn rotation(driver: &str, opts: &HashMap<String, String>) -> Result<(u64, u32)> {
    if !writes_a_file(driver) {
        let size = opts
            .get("cache-max-size")
            .and_then(|s| parse_size(s))
            .filter(|s| *s > 0)
            .unwrap_or(20 << 20);
        let files = opts
            .get("cache-max-file")
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(5);
        return Ok((size, files));
    }
    let local = driver == "local";
    let size = match opts.get("max-size").map(String::as_str) {
        None | Some("") if local => 20 << 20,
        None | Some("") | Some("-1") => 0,
        Some(s) => {
            parse_size(s).ok_or_else(|| Error::InvalidArgument(format!("invalid max-size: {s}")))?
        }
    };
    let files = match opts.get("max-file").map(String::as_str) {
        None | Some("") if local => 5,
        None | Some("") => 1,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 1 => n.min(u32::MAX as i64) as u32,
            Ok(_) => {
                return Err(Error::InvalidArgument(
                    "max-file cannot be less than 1".into(),
                ))
            }
            Err(_) => {
                return Err(Error::InvalidArgument(format!(
                    "strconv.Atoi: parsing {s:?}: invalid syntax"
                )))
            }
        },
    };
    // Without max-size nothing rotates and dockerd ignores max-file.
    Ok((size, if size == 0 { 1 } else { files }))
}

/// The logging drivers built into dockerd (other names are plugins).
pub const DOCKER_DRIVERS: &[&str] = &[
    "awslogs",
    "etwlogs",
    "fluentd",
    "gcplogs",
    "gelf",
    "journald",
    "json-file",
    "local",
    "logentries",
    "none",
    "splunk",
    "syslog",
];

/// Options of every driver, not of one.
const GENERIC: &[&str] = &["mode", "max-buffer-size"];

/// `mode` and `max-buffer-size`, in dockerd's words.
fn check_mode(opts: &HashMap<String, String>) -> Result<()> {
    let mode = opts.get("mode").map(String::as_str).unwrap_or("");
    if !matches!(mode, "" | "blocking" | "non-blocking") {
        return Err(Error::InvalidArgument(format!(
            "logger: logging mode not supported: {mode}"
        )));
    }
    if let Some(size) = opts.get("max-buffer-size") {
        if mode != "non-blocking" {
            return Err(Error::InvalidArgument(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'".into(),
            ));
        }
        parse_size(size).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "error parsing option max-buffer-size: invalid size: '{size}'"
            ))
        })?;
    }
    Ok(())
}

/// Checks the options of a driver.
pub fn check(driver: &str, opts: &HashMap<String, String>) -> Result<()> {
    check_mode(opts)?;
    // dockerd finds a bad expression when the container starts, and the
    // start fails; it is as wrong at create, where it is said at once.
    for key in ["labels-regex", "env-regex"] {
        if let Some(p) = opts.get(key).filter(|p| !p.is_empty()) {
            regex::Regex::new(p).map_err(|e| {
                Error::InvalidArgument(format!("error parsing regexp in {key} {p:?}: {e}"))
            })?;
        }
    }
    let own = |k: &&String| !GENERIC.contains(&k.as_str());
    if driver == "none" {
        return match opts.keys().find(own) {
            Some(k) => Err(Error::InvalidArgument(format!(
                "unknown log opt '{k}' for none log driver"
            ))),
            None => Ok(()),
        };
    }
    if !writes_a_file(driver) {
        // A shipping driver: its own options, the cache's, and its checks.
        let own_options = match driver {
            "journald" => super::journald::OPTIONS,
            "syslog" => super::syslog::OPTIONS,
            "fluentd" => super::fluentd::OPTIONS,
            _ => &[],
        };
        if driver != "gelf" {
            if let Some(k) = opts
                .keys()
                .filter(own)
                .find(|k| !own_options.contains(&k.as_str()) && !CACHE.contains(&k.as_str()))
            {
                return Err(Error::InvalidArgument(format!(
                    "unknown log opt '{k}' for {driver} log driver"
                )));
            }
        }
        if let Some(v) = opts.get("cache-disabled") {
            if go_bool(v).is_none() {
                return Err(Error::InvalidArgument(format!(
                    "invalid value for option cache-disabled: {v}"
                )));
            }
        }
        return match driver {
            "syslog" => super::syslog::check(opts),
            "fluentd" => super::fluentd::check(opts),
            // gelf checks every key itself, in its own words.
            "gelf" => super::gelf::check(
                &opts
                    .iter()
                    .filter(|(k, _)| own(k) && !CACHE.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => Ok(()),
        };
    }
    let local = driver == "local";
    let known = if local { KNOWN_LOCAL } else { KNOWN };
    if let Some(k) = opts
        .keys()
        .filter(own)
        .find(|k| !known.contains(&k.as_str()))
    {
        return Err(Error::InvalidArgument(if local {
            format!("unknown log opt '{k}' for log driver local")
        } else {
            format!("unknown log opt '{k}' for json-file log driver")
        }));
    }
    if opts.get("compress").is_some_and(|c| c == "true") {
        return Err(Error::InvalidArgument(format!(
            "compress of rotated {} logs is not supported by Berth",
            if local { "local" } else { "json-file" }
        )));
    }
    rotation(driver, opts).map(|_| ())
}

/// berthd's `--log-driver` and `--log-opt`s, checked as a container's
/// would be, so that a mistake stops berthd at start rather than every
/// `docker run` after.
pub fn daemon_default(driver: &str, opts: &[String]) -> Result<HostConfigLogConfig> {
    if !SUPPORTED.contains(&driver) {
        return Err(Error::InvalidArgument(format!(
            "--log-driver {driver} is not supported; use {}",
            SUPPORTED.join(", ")
        )));
    }
    let mut config = HashMap::new();
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| Error::InvalidArgument(format!("--log-opt {o}: want key=value")))?;
        config.insert(k.to_string(), v.to_string());
    }
    check(driver, &config)?;
    Ok(HostConfigLogConfig {
        typ: Some(driver.to_string()),
        config: Some(config),
    })
}

/// Docker's rule for a new container's log config: no driver means the
/// daemon's; with the daemon's driver come the daemon's options that the
/// container does not set itself.
pub fn apply_default(hc: &mut HostConfig, daemon: &HostConfigLogConfig) {
    let lc = hc.log_config.get_or_insert_with(Default::default);
    if lc.typ.as_deref().is_none_or(str::is_empty) {
        lc.typ = daemon.typ.clone();
    }
    let config = lc.config.get_or_insert_with(HashMap::new);
    if lc.typ == daemon.typ {
        for (k, v) in daemon.config.iter().flatten() {
            config.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_modes_are_every_drivers_options() {
        let opts = crate::util::string_map;
        for driver in ["json-file", "local", "none"] {
            assert!(check(
                driver,
                &opts(&[("mode", "non-blocking"), ("max-buffer-size", "4m")])
            )
            .is_ok());
        }
        let e = check("json-file", &opts(&[("mode", "bogus")])).unwrap_err();
        assert_eq!(e.to_string(), "logger: logging mode not supported: bogus");
        let e = check("local", &opts(&[("max-buffer-size", "4m")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "logger: max-buffer-size option is only supported with 'mode=non-blocking'"
        );
        let e = check(
            "json-file",
            &opts(&[("mode", "non-blocking"), ("max-buffer-size", "zz")]),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "error parsing option max-buffer-size: invalid size: 'zz'"
        );
        assert!(check("none", &opts(&[("max-size", "1m")])).is_err());
    }

    #[test]
    fn sizes_and_rotation_options() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("1.5kb"), Some(1536));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("ten"), None);
        let opts = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(
            rotation("json-file", &opts(&[("max-size", "1k"), ("max-file", "3")])).unwrap(),
            (1024, 3)
        );
        // dockerd ignores max-file without max-size: nothing rotates.
        assert_eq!(
            rotation("json-file", &opts(&[("max-file", "3")])).unwrap(),
            (0, 1)
        );
        assert_eq!(
            rotation("json-file", &opts(&[("max-file", "0")]))
                .unwrap_err()
                .to_string(),
            "max-file cannot be less than 1"
        );
        assert_eq!(rotation("json-file", &opts(&[])).unwrap(), (0, 1));
        assert_eq!(rotation("local", &opts(&[])).unwrap(), (20 << 20, 5));
        assert_eq!(
            rotation("local", &opts(&[("max-size", "1m")])).unwrap(),
            (1 << 20, 5)
        );
        assert!(check("local", &opts(&[("labels", "a")])).is_err());
        let daemon = daemon_default("local", &["max-size=1m".into()]).unwrap();
        let mut hc = HostConfig::default();
        apply_default(&mut hc, &daemon);
        let lc = hc.log_config.unwrap();
        assert_eq!(lc.typ.as_deref(), Some("local"));
        assert_eq!(lc.config.unwrap()["max-size"], "1m");
        // Another driver keeps its own options only.
        let mut hc = HostConfig {
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: None,
            }),
            ..Default::default()
        };
        apply_default(&mut hc, &daemon);
        assert!(hc.log_config.unwrap().config.unwrap().is_empty());
        assert!(daemon_default("gelf", &[]).is_err());
        assert!(daemon_default("syslog", &["syslog-format=rfc5424".into()]).is_ok());
        assert!(daemon_default("syslog", &["max-size=1m".into()]).is_err());
        // The dual-logging cache: dockerd's defaults stand in for bad values.
        assert_eq!(
            rotation("syslog", &opts(&[("cache-max-size", "zz")])).unwrap(),
            (20 << 20, 5)
        );
        assert_eq!(
            rotation(
                "syslog",
                &opts(&[("cache-max-size", "1m"), ("cache-max-file", "2")])
            )
            .unwrap(),
            (1 << 20, 2)
        );
        assert!(keeps_cache("syslog", &opts(&[])));
        assert!(!keeps_cache("syslog", &opts(&[("cache-disabled", "true")])));
        assert_eq!(
            check("syslog", &opts(&[("cache-disabled", "maybe")]))
                .unwrap_err()
                .to_string(),
            "invalid value for option cache-disabled: maybe"
        );
        assert_eq!(
            check("syslog", &opts(&[("max-size", "1m")]))
                .unwrap_err()
                .to_string(),
            "unknown log opt 'max-size' for syslog log driver"
        );
        assert!(check("json-file", &opts(&[("labels-regex", "^com\\.")])).is_ok());
        let bad = check("fluentd", &opts(&[("env-regex", "(")]))
            .unwrap_err()
            .to_string();
        assert!(
            bad.starts_with("error parsing regexp in env-regex \"(\""),
            "{bad}"
        );
        assert!(daemon_default("local", &["max-size".into()]).is_err());
        assert!(check("local", &opts(&[("max-file", "2"), ("compress", "false")])).is_ok());
        assert!(check("json-file", &opts(&[("bogus", "1")])).is_err());
        assert!(check("json-file", &opts(&[("labels", "a,b")])).is_ok());
    }
}
