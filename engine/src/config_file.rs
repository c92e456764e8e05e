//! `--config-file` (default `/etc/berth/daemon.json`): dockerd's
//! `daemon.json`, for the settings berthd has. Operators keep their file:
//! keys are dockerd's, and so are the rules: a setting given both as a
//! flag and in the file is an error, as is a key that matches nothing; a
//! missing default file is fine, a missing named one is not. A few keys
//! describe what Berth always does (`live-restore`) and are accepted.
//!
//! Written against `serde_json::Value` rather than a derived struct: each
//! key must be told apart as "given" or "not given" to find conflicts with
//! the flags, and values arrive in dockerd's shapes (objects for address
//! pools and log options) that the flags spell as `key=value` words.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use serde_json::Value;

use crate::config::Config;

/// Where berthd looks when `--config-file` is not given.
pub const DEFAULT_PATH: &str = "/etc/berth/daemon.json";

/// Keys of dockerd's that state what Berth always does; accepted so that
/// an operator's file needs no editing.
const ALWAYS_SO: &[(&str, &str)] = &[
    (
        "live-restore",
        "containers always outlive berthd (they run under berth-core)",
    ),
    ("storage-driver", "images are always stored on overlayfs"),
];

/// The flags, then the configuration file over what they left unset.
/// Exits like clap for `--help`, `--version` and bad flags.
pub fn load() -> Result<Config, String> {
    let matches = Config::command().get_matches();
    let config = Config::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    let config = with_file(config, &matches)?;
    check(&config)?;
    Ok(config)
}

/// The flags berthd started with and the configuration file as it is now
/// (a SIGHUP's reload).
pub fn reread() -> Result<Config, String> {
    from_args(std::env::args_os())
}

/// `args` (the program's name first) as berthd would take them, with the
/// configuration file they name (`berthd upgrade` reads the flags of the
/// berthd it replaces so).
pub fn from_args(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<Config, String> {
    let matches = Config::command()
        .try_get_matches_from(args)
        .map_err(|e| e.to_string())?;
    let config = Config::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    let config = with_file(config, &matches)?;
    check(&config)?;
    Ok(config)
}

/// Checks what the flags and file say beyond their shapes, before
/// anything starts (and for `--validate`).
pub fn check(config: &Config) -> Result<(), String> {
    for m in &config.registry_mirrors {
        crate::images::registry::Mirror::parse(m)?;
    }
    crate::containers::defaults::Defaults::from_config(config)?;
    labels(&config.labels)?;
    crate::reload::runtimes(&config.runtimes, &config.runtime_args)?;
    if let Some(a) = &config.metrics_addr {
        a.parse::<std::net::SocketAddr>()
            .map_err(|_| format!("invalid metrics-addr {a:?}: use ip:port"))?;
    }
    Ok(())
}

/// The daemon's labels as dockerd 20.10 takes them: each `key=value`, a
/// key given twice with different values is a conflict, the same pair
/// twice counts once. Unlike dockerd, whose order is a Go map's (random),
/// they stay in the order given.
pub fn labels(given: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for l in given {
        let Some((key, _)) = l.split_once('=') else {
            return Err(format!("bad attribute format: {l}"));
        };
        if let Some(other) = out
            .iter()
            .find(|o| o.split_once('=').map(|(k, _)| k) == Some(key))
        {
            if other != l {
                // dockerd's words: the later one first.
                return Err(format!("conflict labels for {l} and {other}"));
            }
            continue;
        }
        out.push(l.clone());
    }
    Ok(out)
}

/// Applies the file the flags name (or the default one) to `config`.
pub fn with_file(mut config: Config, matches: &ArgMatches) -> Result<Config, String> {
    let (path, named) = match &config.config_file {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    };
    let fail = |e: String| {
        format!(
            "unable to configure the daemon with file {}: {e}",
            path.display()
        )
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => return Ok(config),
        Err(e) => {
            return Err(fail(format!(
                "open {}: {}",
                path.display(),
                berth_proto::os_error::go_text(&e)
            )))
        }
    };
    apply(&mut config, matches, &text).map_err(fail)?;
    Ok(config)
}

/// One setting of the file: its flag (clap's id; empty for a key that has
/// none) and how it is set.
struct Setting {
    key: &'static str,
    arg: &'static str,
    set: fn(&mut Config, &Value) -> Result<(), String>,
}

fn string(key: &str, v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{key}: a string is expected, not {v}"))
}

fn strings(key: &str, v: &Value) -> Result<Vec<String>, String> {
    v.as_array()
        .ok_or_else(|| format!("{key}: a list is expected, not {v}"))?
        .iter()
        .map(|s| string(key, s))
        .collect()
}

fn boolean(key: &str, v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("{key}: true or false is expected, not {v}"))
}

fn count(key: &str, v: &Value) -> Result<usize, String> {
    v.as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| format!("{key}: a whole number is expected, not {v}"))
}

const SETTINGS: &[Setting] = &[
    Setting {
        key: "hosts",
        arg: "hosts",
        set: |c, v| {
            c.hosts = strings("hosts", v)?;
            Ok(())
        },
    },
    Setting {
        key: "tls",
        arg: "tls",
        set: |c, v| {
            c.tls = Some(boolean("tls", v)?);
            Ok(())
        },
    },
    Setting {
        key: "tlsverify",
        arg: "tlsverify",
        set: |c, v| {
            c.tlsverify = boolean("tlsverify", v)?;
            Ok(())
        },
    },
    Setting {
        key: "tlscacert",
        arg: "tlscacert",
        set: |c, v| {
            c.tlscacert = Some(string("tlscacert", v)?.into());
            Ok(())
        },
    },
    Setting {
        key: "tlscert",
        arg: "tlscert",
        set: |c, v| {
            c.tlscert = Some(string("tlscert", v)?.into());
            Ok(())
        },
    },
    Setting {
        key: "tlskey",
        arg: "tlskey",
        set: |c, v| {
            c.tlskey = Some(string("tlskey", v)?.into());
            Ok(())
        },
    },
    Setting {
        key: "data-root",
        arg: "data_root",
        set: |c, v| {
            c.data_root = string("data-root", v)?.into();
            Ok(())
        },
    },
    Setting {
        key: "exec-root",
        arg: "exec_root",
        set: |c, v| {
            c.exec_root = string("exec-root", v)?.into();
            Ok(())
        },
    },
    Setting {
        key: "pidfile",
        arg: "pidfile",
        set: |c, v| {
            c.pidfile = Some(string("pidfile", v)?.into());
            Ok(())
        },
    },
    Setting {
        key: "group",
        arg: "group",
        set: |c, v| {
            c.group = Some(string("group", v)?);
            Ok(())
        },
    },
    Setting {
        key: "log-level",
        arg: "log_level",
        set: |c, v| {
            c.log_level = string("log-level", v)?;
            Ok(())
        },
    },
    Setting {
        key: "debug",
        arg: "log_level",
        set: |c, v| {
            if boolean("debug", v)? {
                c.log_level = "debug".into();
            }
            Ok(())
        },
    },
    Setting {
        key: "default-runtime",
        arg: "runtime",
        set: |c, v| {
            c.runtime = Some(string("default-runtime", v)?);
            Ok(())
        },
    },
    Setting {
        key: "insecure-registries",
        arg: "insecure_registries",
        set: |c, v| {
            c.insecure_registries = strings("insecure-registries", v)?;
            Ok(())
        },
    },
    Setting {
        key: "registry-mirrors",
        arg: "registry_mirrors",
        set: |c, v| {
            c.registry_mirrors = strings("registry-mirrors", v)?;
            Ok(())
        },
    },
    Setting {
        key: "max-concurrent-downloads",
        arg: "max_concurrent_downloads",
        set: |c, v| {
            c.max_concurrent_downloads = count("max-concurrent-downloads", v)?;
            Ok(())
        },
    },
    Setting {
        key: "max-concurrent-uploads",
        arg: "max_concurrent_uploads",
        set: |c, v| {
            c.max_concurrent_uploads = count("max-concurrent-uploads", v)?;
            Ok(())
        },
    },
    Setting {
        key: "bridge",
        arg: "bridge",
        set: |c, v| {
            c.bridge = string("bridge", v)?;
            Ok(())
        },
    },
    Setting {
        key: "bip",
        arg: "bip",
        set: |c, v| {
            c.bip = string("bip", v)?;
            Ok(())
        },
    },
    Setting {
        key: "default-address-pools",
        arg: "default_address_pools",
        set: |c, v| {
            // dockerd's file takes objects: {"base": "10.0.0.0/8", "size": 24}.
            let list = v
                .as_array()
                .ok_or_else(|| format!("default-address-pools: a list is expected, not {v}"))?;
            c.default_address_pools = list
                .iter()
                .map(|p| match (p["base"].as_str(), p["size"].as_u64()) {
                    (Some(base), Some(size)) => Ok(format!("base={base},size={size}")),
                    _ => Err(format!(
                        "default-address-pools: {p} needs a \"base\" and a \"size\""
                    )),
                })
                .collect::<Result<_, _>>()?;
            Ok(())
        },
    },
    Setting {
        key: "dns",
        arg: "dns",
        set: |c, v| {
            c.dns = strings("dns", v)?;
            Ok(())
        },
    },
    Setting {
        key: "dns-search",
        arg: "dns_search",
        set: |c, v| {
            c.dns_search = strings("dns-search", v)?;
            Ok(())
        },
    },
    Setting {
        key: "dns-opts",
        arg: "dns_opts",
        set: |c, v| {
            c.dns_opts = strings("dns-opts", v)?;
            Ok(())
        },
    },
    Setting {
        key: "default-shm-size",
        arg: "default_shm_size",
        set: |c, v| {
            c.default_shm_size = string("default-shm-size", v)?;
            Ok(())
        },
    },
    Setting {
        key: "default-ulimits",
        arg: "default_ulimits",
        set: |c, v| {
            // dockerd's file takes objects keyed by name:
            // {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}.
            let map = v
                .as_object()
                .ok_or_else(|| format!("default-ulimits: an object is expected, not {v}"))?;
            c.default_ulimits = map
                .iter()
                .map(|(name, u)| {
                    let n = |field: &str| {
                        u[field].as_i64().ok_or_else(|| {
                            format!("default-ulimits: {name} needs a whole number {field:?}")
                        })
                    };
                    Ok(format!("{name}={}:{}", n("Soft")?, n("Hard")?))
                })
                .collect::<Result<_, String>>()?;
            Ok(())
        },
    },
    Setting {
        key: "runtimes",
        arg: "runtimes",
        set: |c, v| {
            // dockerd's file: {"name": {"path": "...", "runtimeArgs": [...]}}.
            let map = v
                .as_object()
                .ok_or_else(|| format!("runtimes: an object is expected, not {v}"))?;
            c.runtimes = map
                .iter()
                .map(|(name, rt)| {
                    let path = rt["path"]
                        .as_str()
                        .ok_or_else(|| format!("runtimes: {name} needs a \"path\""))?;
                    Ok(format!("{name}={path}"))
                })
                .collect::<Result<_, String>>()?;
            c.runtime_args = map
                .iter()
                .filter_map(|(name, rt)| {
                    let args = rt.get("runtimeArgs")?;
                    Some(strings("runtimeArgs", args).map(|a| (name.clone(), a)))
                })
                .collect::<Result<_, String>>()?;
            Ok(())
        },
    },
    Setting {
        key: "labels",
        arg: "labels",
        set: |c, v| {
            c.labels = strings("labels", v)?;
            Ok(())
        },
    },
    Setting {
        key: "shutdown-timeout",
        arg: "shutdown_timeout",
        set: |c, v| {
            c.shutdown_timeout = count("shutdown-timeout", v)? as u64;
            Ok(())
        },
    },
    Setting {
        key: "features",
        // No flag in dockerd 20.10 either: the file only.
        arg: "",
        set: |c, v| {
            let map = v
                .as_object()
                .ok_or_else(|| format!("features: an object is expected, not {v}"))?;
            c.features = map
                .iter()
                .map(|(k, v)| Ok((k.clone(), boolean(&format!("features.{k}"), v)?)))
                .collect::<Result<_, String>>()?;
            Ok(())
        },
    },
    Setting {
        key: "ip",
        arg: "ip",
        set: |c, v| {
            c.ip = string("ip", v)?;
            Ok(())
        },
    },
    Setting {
        key: "metrics-addr",
        arg: "metrics_addr",
        set: |c, v| {
            c.metrics_addr = Some(string("metrics-addr", v)?);
            Ok(())
        },
    },
    Setting {
        key: "cri-socket",
        arg: "cri_socket",
        set: |c, v| {
            c.cri_socket = Some(string("cri-socket", v)?);
            Ok(())
        },
    },
    Setting {
        key: "cni-conf-dir",
        arg: "cni_conf_dir",
        set: |c, v| {
            c.cni_conf_dir = string("cni-conf-dir", v)?.into();
            Ok(())
        },
    },
    Setting {
        key: "cni-bin-dir",
        arg: "cni_bin_dir",
        set: |c, v| {
            c.cni_bin_dir = string("cni-bin-dir", v)?;
            Ok(())
        },
    },
    Setting {
        key: "log-driver",
        arg: "log_driver",
        set: |c, v| {
            c.log_driver = string("log-driver", v)?;
            Ok(())
        },
    },
    Setting {
        key: "log-opts",
        arg: "log_opts",
        set: |c, v| {
            let map = v
                .as_object()
                .ok_or_else(|| format!("log-opts: an object is expected, not {v}"))?;
            c.log_opts = map
                .iter()
                .map(|(k, v)| Ok(format!("{k}={}", string(&format!("log-opts.{k}"), v)?)))
                .collect::<Result<_, String>>()?;
            Ok(())
        },
    },
];

/// How a flag's value reads in a conflict message.
fn flag_text(matches: &ArgMatches, arg: &str) -> String {
    matches
        .get_raw(arg)
        .map(|vals| {
            vals.map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Applies the file's JSON text over `config`, refusing what dockerd
/// refuses: a key the flags also set, a key that matches nothing.
pub fn apply(config: &mut Config, matches: &ArgMatches, text: &str) -> Result<(), String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Value::Object(map) = doc else {
        return Err("the file must hold a JSON object".into());
    };
    let mut unknown = Vec::new();
    let mut conflicts = Vec::new();
    for (key, value) in &map {
        if let Some((_, why)) = ALWAYS_SO.iter().find(|(k, _)| k == key) {
            tracing::info!(key = %key, "{why}: nothing to configure");
            continue;
        }
        let Some(setting) = SETTINGS.iter().find(|s| s.key == key) else {
            unknown.push(key.clone());
            continue;
        };
        if !setting.arg.is_empty()
            && matches.value_source(setting.arg) == Some(ValueSource::CommandLine)
        {
            conflicts.push(format!(
                "{key}: (from flag: {}, from file: {})",
                flag_text(matches, setting.arg),
                value_text(value)
            ));
            continue;
        }
        (setting.set)(config, value)?;
        config.file_keys.insert(key.clone());
    }
    if !conflicts.is_empty() {
        return Err(format!(
            "the following directives are specified both as a flag and in the configuration file: {}",
            conflicts.join(", ")
        ));
    }
    if !unknown.is_empty() {
        unknown.sort();
        return Err(format!(
            "the following directives don't match any configuration option: {}",
            unknown.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(flags: &[&str], file: &str) -> Result<Config, String> {
        let matches = Config::command()
            .try_get_matches_from(std::iter::once("berthd").chain(flags.iter().copied()))
            .unwrap();
        let mut c = Config::from_arg_matches(&matches).unwrap();
        apply(&mut c, &matches, file).map(|()| c)
    }

    #[test]
    fn file_settings_fill_what_the_flags_left() {
        let c = parse(
            &["--bridge", "br-x"],
            r#"{"data-root": "/srv/berth", "log-opts": {"max-size": "5m"},
                "default-address-pools": [{"base": "10.9.0.0/16", "size": 24}],
                "insecure-registries": ["reg:5000"], "debug": true, "live-restore": true,
                "metrics-addr": "127.0.0.1:9323"}"#,
        )
        .unwrap();
        assert_eq!(c.metrics_addr.as_deref(), Some("127.0.0.1:9323"));
        assert_eq!(c.data_root, PathBuf::from("/srv/berth"));
        assert_eq!(c.bridge, "br-x");
        assert_eq!(c.log_opts, ["max-size=5m"]);
        assert_eq!(c.default_address_pools, ["base=10.9.0.0/16,size=24"]);
        assert_eq!(c.insecure_registries, ["reg:5000"]);
        assert_eq!(c.log_level, "debug");
    }

    #[test]
    fn conflicts_and_unknown_keys_are_refused_in_dockerds_words() {
        let e = parse(&["--data-root", "/a"], r#"{"data-root": "/b"}"#).unwrap_err();
        assert_eq!(
            e,
            "the following directives are specified both as a flag and in the configuration file: data-root: (from flag: /a, from file: /b)"
        );
        let e = parse(&[], r#"{"frobnicate": 1, "bogus": 2}"#).unwrap_err();
        assert_eq!(
            e,
            "the following directives don't match any configuration option: bogus, frobnicate"
        );
        assert!(parse(&[], r#"{"dns": "1.1.1.1"}"#)
            .unwrap_err()
            .contains("a list is expected"));
        assert!(parse(&[], "[1]").is_err());
    }

    #[test]
    fn container_defaults_labels_and_features_from_the_file() {
        let c = parse(
            &["--dns-search", "flag.test"],
            r#"{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 10, "Hard": 20}},
                "default-shm-size": "1g", "labels": ["a=1"], "shutdown-timeout": 3,
                "features": {"buildkit": false}, "dns-opts": ["ndots:2"]}"#,
        )
        .unwrap();
        assert_eq!(c.default_ulimits, ["nofile=10:20"]);
        assert_eq!(c.default_shm_size, "1g");
        assert_eq!(c.labels, ["a=1"]);
        assert_eq!(c.shutdown_timeout, 3);
        assert_eq!(c.features.get("buildkit"), Some(&false));
        assert_eq!(
            (c.dns_search, c.dns_opts),
            (vec!["flag.test".to_string()], vec!["ndots:2".to_string()])
        );
        // A key also given as a flag is refused, labels too.
        assert!(parse(&["--label", "x=1"], r#"{"labels": ["y=2"]}"#)
            .unwrap_err()
            .contains("labels: (from flag: x=1, from file: y=2)"));
        assert!(parse(&[], r#"{"features": {"buildkit": "yes"}}"#)
            .unwrap_err()
            .contains("features.buildkit: true or false"));
    }

    #[test]
    fn labels_as_dockerd_takes_them() {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            labels(&owned(&["a=1", "b=2", "a=1"])).unwrap(),
            ["a=1", "b=2"]
        );
        assert_eq!(
            labels(&owned(&["a=1", "a=2"])).unwrap_err(),
            "conflict labels for a=2 and a=1"
        );
        assert_eq!(
            labels(&owned(&["a"])).unwrap_err(),
            "bad attribute format: a"
        );
    }

    #[test]
    fn runtimes_by_name_as_dockerd_takes_them() {
        let c = parse(
            &[],
            r#"{"runtimes": {"mine": {"path": "/opt/rt/bin/runc"}}}"#,
        )
        .unwrap();
        assert_eq!(c.runtimes, ["mine=/opt/rt/bin/runc"]);
        let c = parse(
            &[],
            r#"{"runtimes": {"mine": {"path": "/x", "runtimeArgs": ["--debug"]}}}"#,
        )
        .unwrap();
        assert_eq!(c.runtime_args["mine"], ["--debug"]);
        let e = parse(
            &[],
            r#"{"runtimes": {"mine": {"path": "/x", "runtimeArgs": "-d"}}}"#,
        )
        .unwrap_err();
        assert!(e.contains("runtimeArgs: a list is expected"), "{e}");
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none = Default::default();
        assert_eq!(
            crate::reload::runtimes(&owned(&["runc=/x"]), &none).unwrap_err(),
            "runtime name 'runc' is reserved"
        );
        assert!(crate::reload::runtimes(&owned(&["nopath"]), &none).is_err());
        assert_eq!(
            crate::reload::runtimes(&owned(&["a=/x", "b=/y"]), &none)
                .unwrap()
                .len(),
            2
        );
    }
}
