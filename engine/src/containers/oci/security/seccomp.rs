//! Seccomp profiles in Docker's file format (the one `--security-opt
//! seccomp=profile.json` takes and Docker's default is written in), turned
//! into the OCI spec's filter for this machine: the rules for other
//! architectures, for capabilities the container lacks, or for newer
//! kernels are left out, as Docker does.
//!
//! The default profile is data, in `default-seccomp.json` beside this file.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};

const DEFAULT_PROFILE: &str = include_str!("default-seccomp.json");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    /// The old form: a flat list of architectures.
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    /// The old form: one name per rule.
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Value>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// The machine, as the profile's conditions name it.
struct Host {
    /// Go's name for the architecture ("amd64"), used in includes/excludes.
    go_arch: &'static str,
    /// libseccomp's name ("SCMP_ARCH_X86_64"), used in archMap.
    scmp_arch: &'static str,
    kernel: (u32, u32),
}

impl Host {
    fn this() -> Host {
        let (go_arch, scmp_arch) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
            "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
            "s390x" => ("s390x", "SCMP_ARCH_S390X"),
            "powerpc64" => ("ppc64le", "SCMP_ARCH_PPC64LE"),
            "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
            other => (other, "SCMP_ARCH_NATIVE"),
        };
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Host {
            go_arch,
            scmp_arch,
            kernel: parse_version(&release).unwrap_or((0, 0)),
        }
    }
}

/// "6.1.0-13-amd64" → (6, 1).
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

impl Profile {
    pub fn parse(json: &str) -> Result<Profile> {
        let p: Profile = serde_json::from_str(json)
            .map_err(|e| Error::InvalidArgument(format!("Decoding seccomp profile failed: {e}")))?;
        // Check the whole profile converts (actions, operators, arches),
        // with every capability so that no rule is skipped.
        let all: Vec<String> = super::kernel_caps().iter().map(|s| s.to_string()).collect();
        p.to_oci(&all)?;
        Ok(p)
    }

    /// Parsed once; every start converts it for its capability set.
    pub fn docker_default() -> &'static Profile {
        static DEFAULT: std::sync::OnceLock<Profile> = std::sync::OnceLock::new();
        DEFAULT.get_or_init(|| {
            serde_json::from_str(DEFAULT_PROFILE)
                .expect("the built-in seccomp profile is valid JSON")
        })
    }

    /// The OCI `linux.seccomp` for a container with capabilities `caps`.
    pub fn to_oci(&self, caps: &[String]) -> Result<oci_spec::runtime::LinuxSeccomp> {
        self.to_oci_on(&Host::this(), caps)
    }

    fn to_oci_on(&self, host: &Host, caps: &[String]) -> Result<oci_spec::runtime::LinuxSeccomp> {
        let mut arches = self.architectures.clone();
        for m in &self.arch_map {
            if m.architecture == host.scmp_arch {
                arches.push(m.architecture.clone());
                arches.extend(m.sub_architectures.clone().unwrap_or_default());
            }
        }
        let has_cap = |c: &String| caps.contains(c);
        let mut syscalls = Vec::new();
        for r in &self.syscalls {
            let inc = &r.includes;
            if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == host.go_arch) {
                continue;
            }
            if !inc.caps.iter().all(has_cap) {
                continue;
            }
            if let Some(min) = inc.min_kernel.as_deref().and_then(parse_version) {
                if host.kernel < min {
                    continue;
                }
            }
            let exc = &r.excludes;
            if exc.arches.iter().any(|a| a == host.go_arch) || exc.caps.iter().any(has_cap) {
                continue;
            }
            let mut names = r.names.clone();
            names.extend(r.name.clone());
            let mut rule = json!({ "names": names, "action": r.action });
            if let Some(e) = r.errno_ret {
                rule["errnoRet"] = e.into();
            }
            if let Some(args) = &r.args {
                rule["args"] = args.clone().into();
            }
            syscalls.push(rule);
        }
        let mut out = json!({
            "defaultAction": self.default_action,
            "architectures": arches,
            "syscalls": syscalls,
        });
        if let Some(e) = self.default_errno_ret {
            out["defaultErrnoRet"] = e.into();
        }
        serde_json::from_value(out)
            .map_err(|e| Error::InvalidArgument(format!("invalid seccomp profile: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_on(host: &Host, caps: &[&str]) -> Vec<String> {
        let caps: Vec<String> = caps.iter().map(|s| s.to_string()).collect();
        let oci = Profile::docker_default().to_oci_on(host, &caps).unwrap();
        oci.syscalls()
            .iter()
            .flatten()
            .filter(|s| s.action() == oci_spec::runtime::LinuxSeccompAction::ScmpActAllow)
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn the_default_profile_follows_capabilities_arch_and_kernel() {
        let amd64 = Host {
            go_arch: "amd64",
            scmp_arch: "SCMP_ARCH_X86_64",
            kernel: (6, 1),
        };
        let plain = names_on(&amd64, &["CAP_CHOWN"]);
        assert!(plain.contains(&"read".to_string()));
        assert!(plain.contains(&"arch_prctl".to_string()));
        assert!(plain.contains(&"ptrace".to_string()), "minKernel 4.8 met");
        assert!(!plain.contains(&"mount".to_string()));
        assert!(!plain.contains(&"s390_runtime_instr".to_string()));
        let admin = names_on(&amd64, &["CAP_SYS_ADMIN"]);
        assert!(admin.contains(&"mount".to_string()));
        let old = Host {
            kernel: (4, 4),
            ..amd64
        };
        assert!(!names_on(&old, &[]).contains(&"ptrace".to_string()));
        let oci = Profile::docker_default().to_oci_on(&old, &[]).unwrap();
        assert_eq!(oci.architectures().as_ref().unwrap().len(), 3);
        assert_eq!(oci.default_errno_ret(), Some(1));
    }

    #[test]
    fn user_profiles_are_checked() {
        assert!(Profile::parse(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).is_ok());
        assert!(Profile::parse(r#"{"defaultAction":"SCMP_ACT_BOGUS"}"#).is_err());
        assert!(Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"mkdir","action":"SCMP_ACT_ERRNO"}]}"#
        )
        .is_ok());
        assert!(Profile::parse("[]").is_err());
        assert_eq!(parse_version("6.18.44-fc-v657"), Some((6, 18)));
    }
}
