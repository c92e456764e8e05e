//! The json-file driver's `--log-opt`s, checked at create as Docker checks
//! them: rotation (`max-size`, `max-file`) is carried out by the shim;
//! `labels` and `env` name what `docker logs --details` shows.

use std::collections::HashMap;

use crate::error::{Error, Result};

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

/// (max size in bytes, 0 for none; files kept in all).
pub fn rotation(opts: &HashMap<String, String>) -> Result<(u64, u32)> {
    let size = match opts.get("max-size").map(String::as_str) {
        None | Some("") | Some("-1") => 0,
        Some(s) => {
            parse_size(s).ok_or_else(|| Error::InvalidArgument(format!("invalid max-size: {s}")))?
        }
    };
    let files = match opts.get("max-file").map(String::as_str) {
        None | Some("") => 1,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "invalid value for max-file: {s}"
                )))
            }
        },
    };
    if files > 1 && size == 0 {
        return Err(Error::InvalidArgument(
            "max-file cannot be set without max-size".into(),
        ));
    }
    Ok((size, files))
}

/// Checks the options of the json-file (or none) driver.
pub fn check(driver: &str, opts: &HashMap<String, String>) -> Result<()> {
    if driver == "none" {
        return match opts.keys().next() {
            Some(k) => Err(Error::InvalidArgument(format!(
                "unknown log opt '{k}' for none log driver"
            ))),
            None => Ok(()),
        };
    }
    if let Some(k) = opts.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(Error::InvalidArgument(format!(
            "unknown log opt '{k}' for json-file log driver"
        )));
    }
    if opts.get("compress").is_some_and(|c| c == "true") {
        return Err(Error::InvalidArgument(
            "compress of rotated json-file logs is not supported by Berth".into(),
        ));
    }
    rotation(opts).map(|_| ())
}

/// go-units' RAMInBytes: "10m", "1.5g", "512k", "100" (1024-based).
pub fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let v = n * mult as f64;
    (v >= 1.0).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            rotation(&opts(&[("max-size", "1k"), ("max-file", "3")])).unwrap(),
            (1024, 3)
        );
        assert!(rotation(&opts(&[("max-file", "3")])).is_err());
        assert!(check("json-file", &opts(&[("bogus", "1")])).is_err());
        assert!(check("json-file", &opts(&[("labels", "a,b")])).is_ok());
    }
}
