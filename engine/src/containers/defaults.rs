//! What berthd gives containers that do not say, as dockerd's daemon-wide
//! settings do: /dev/shm's size (`--default-shm-size`), ulimits
//! (`--default-ulimit`), DNS search domains and resolver options
//! (`--dns-search`, `--dns-opt`). The name servers (`--dns`) belong to
//! `networks`, which also serves them to aardvark-dns.
//!
//! dockerd records the shm size and the merged ulimits in the container's
//! HostConfig at create (and merges the ulimits again at start), but
//! applies the DNS settings when the container starts, leaving those of
//! HostConfig as the client sent them; Berth does the same, so that
//! `docker inspect` reads alike.

use bollard_stubs::models::{HostConfig, ResourcesUlimits};

use crate::config::Config;

#[derive(Debug, Clone)]
pub struct Defaults {
    pub shm_size: i64,
    pub ulimits: Vec<ResourcesUlimits>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            shm_size: super::oci::security::DEFAULT_SHM_SIZE,
            ulimits: Vec::new(),
            dns_search: Vec::new(),
            dns_options: Vec::new(),
        }
    }
}

impl Defaults {
    /// From berthd's flags and configuration file; the error names the
    /// setting, in dockerd's words where it has them.
    pub fn from_config(config: &Config) -> Result<Defaults, String> {
        let shm_size = crate::util::parse_size(&config.default_shm_size)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| {
                format!(
                    "invalid default-shm-size {:?}: a size such as 64M",
                    config.default_shm_size
                )
            })?;
        let ulimits = config
            .default_ulimits
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<Result<Vec<_>, String>>()?;
        // The same checks as a container's own --ulimit (known names, no
        // name twice, soft ≤ hard).
        super::oci::security::rlimits(&ulimits).map_err(|e| format!("default-ulimits: {e}"))?;
        Ok(Defaults {
            shm_size,
            ulimits,
            dns_search: config.dns_search.clone(),
            dns_options: config.dns_opts.clone(),
        })
    }

    /// The container's ulimits, then ours for the names it does not set.
    pub fn ulimits_for(&self, hc: &HostConfig) -> Vec<ResourcesUlimits> {
        let own = hc.ulimits.clone().unwrap_or_default();
        let mut all = own.clone();
        for u in &self.ulimits {
            if !own.iter().any(|o| o.name == u.name) {
                all.push(u.clone());
            }
        }
        all
    }

    /// The container's DNS search domains, else ours.
    pub fn dns_search_for<'a>(&'a self, hc: &'a HostConfig) -> &'a [String] {
        match hc.dns_search.as_deref() {
            Some(own) if !own.is_empty() => own,
            _ => &self.dns_search,
        }
    }

    /// The container's resolver options, else ours.
    pub fn dns_options_for<'a>(&'a self, hc: &'a HostConfig) -> &'a [String] {
        match hc.dns_options.as_deref() {
            Some(own) if !own.is_empty() => own,
            _ => &self.dns_options,
        }
    }
}

/// `name=soft[:hard]` (go-units' ParseUlimit): one number sets both.
fn parse_ulimit(text: &str) -> Result<ResourcesUlimits, String> {
    let bad = || format!("invalid ulimit argument: {text}");
    let (name, limits) = text.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (s, h),
        None => (limits, limits),
    };
    let number = |s: &str| s.trim().parse::<i64>().map_err(|_| bad());
    Ok(ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(number(soft)?),
        hard: Some(number(hard)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(flags: &[&str]) -> Config {
        use clap::Parser;
        Config::parse_from(std::iter::once("berthd").chain(flags.iter().copied()))
    }

    #[test]
    fn flags_become_defaults() {
        let d = Defaults::from_config(&config(&[
            "--default-shm-size",
            "128m",
            "--default-ulimit",
            "nofile=100:200",
            "--default-ulimit",
            "core=0",
        ]))
        .unwrap();
        assert_eq!(d.shm_size, 128 << 20);
        assert_eq!(d.ulimits[0].soft, Some(100));
        assert_eq!(d.ulimits[0].hard, Some(200));
        assert_eq!((d.ulimits[1].soft, d.ulimits[1].hard), (Some(0), Some(0)));
        assert_eq!(
            Defaults::from_config(&config(&[])).unwrap().shm_size,
            64 << 20
        );
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (flags, says) in [
            (
                &["--default-shm-size", "lots"][..],
                "invalid default-shm-size",
            ),
            (
                &["--default-ulimit", "nofile"][..],
                "invalid ulimit argument",
            ),
            (
                &["--default-ulimit", "nosuch=1"][..],
                "invalid ulimit type: nosuch",
            ),
            (
                &["--default-ulimit", "nofile=9:1"][..],
                "soft limit must be less",
            ),
        ] {
            let e = Defaults::from_config(&config(flags)).unwrap_err();
            assert!(e.contains(says), "{flags:?}: {e}");
        }
    }

    #[test]
    fn a_container_setting_wins() {
        let d = Defaults::from_config(&config(&[
            "--default-ulimit",
            "nofile=100:200",
            "--default-ulimit",
            "nproc=5",
            "--dns-search",
            "example.org",
        ]))
        .unwrap();
        let own = ResourcesUlimits {
            name: Some("nofile".into()),
            soft: Some(1),
            hard: Some(2),
        };
        let hc = HostConfig {
            ulimits: Some(vec![own.clone()]),
            dns_search: Some(vec!["mine.test".into()]),
            ..Default::default()
        };
        let merged = d.ulimits_for(&hc);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0], own);
        assert_eq!(merged[1].name.as_deref(), Some("nproc"));
        assert_eq!(d.dns_search_for(&hc), ["mine.test"]);
        assert_eq!(d.dns_search_for(&HostConfig::default()), ["example.org"]);
        assert!(d.dns_options_for(&HostConfig::default()).is_empty());
    }
}
