//! What a container may do: its capabilities, seccomp filter, the
//! no-new-privileges bit, rlimits, sysctls, extra devices, and which
//! namespaces it shares (`--pid`, `--ipc`). Docker's rules and messages,
//! applied in two places: [`check`] at create (bad input is a 400 and
//! nothing is stored) and [`Security::of`] when the OCI spec is written.

pub mod devices;
pub mod seccomp;

use std::collections::{BTreeMap, BTreeSet};

use bollard_stubs::models::{HostConfig, ResourcesUlimits};
use oci_spec::runtime::{PosixRlimit, PosixRlimitBuilder, PosixRlimitType};

use crate::error::{Error, Result};

/// Every capability by its number (linux/capability.h). The kernel knows
/// those up to /proc/sys/kernel/cap_last_cap.
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capabilities (a subset of [`ALL_CAPS`]).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The capabilities Berth can give: those the kernel has and the engine's
/// own bounding set holds (a sandboxed host may lack some, and runc fails
/// with "unable to apply caps" when asked for one). `--privileged` gets
/// them all; `--cap-add` of another is refused rather than dropped.
pub fn kernel_caps() -> Vec<&'static str> {
    // Read once: neither the kernel's list nor our bounding set changes
    // while berthd runs, and this is on every container start.
    static CAPS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    CAPS.get_or_init(read_kernel_caps).clone()
}

fn read_kernel_caps() -> Vec<&'static str> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS[..=last.min(ALL_CAPS.len() - 1)]
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1 << bit) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN" all name CAP_NET_ADMIN.
fn normalize_cap(name: &str) -> Result<String> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(Error::InvalidArgument(format!(
            "unknown capability: {name:?}"
        )))
    }
}

/// The container's capability set, by Docker's rules: `--privileged` has
/// every one; `--cap-add ALL` is every one but the dropped; `--cap-drop ALL`
/// keeps only the added; otherwise the defaults minus drops plus adds.
pub fn capabilities(hc: &HostConfig) -> Result<Vec<String>> {
    let kernel: Vec<String> = kernel_caps().iter().map(|s| s.to_string()).collect();
    if hc.privileged.unwrap_or(false) {
        return Ok(kernel);
    }
    let norm = |list: &Option<Vec<String>>| -> Result<BTreeSet<String>> {
        list.iter().flatten().map(|n| normalize_cap(n)).collect()
    };
    let add = norm(&hc.cap_add)?;
    let drop = norm(&hc.cap_drop)?;
    let mut set: BTreeSet<String> = if add.contains("ALL") {
        kernel.iter().cloned().collect()
    } else if drop.contains("ALL") {
        BTreeSet::new()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if !add.contains("ALL") {
        for c in &add {
            if !kernel.contains(c) {
                return Err(Error::InvalidArgument(format!(
                    "capability {c} is not available: the kernel or the engine's own bounding set lacks it"
                )));
            }
            set.insert(c.clone());
        }
    }
    for c in &drop {
        if !add.contains(c) {
            set.remove(c);
        }
    }
    // Keep the kernel's order: inspect and /proc/self/status read the same.
    Ok(kernel.into_iter().filter(|c| set.contains(c)).collect())
}

/// `--security-opt`, parsed. The docker CLI reads a seccomp profile file
/// itself and sends its JSON in `seccomp=<json>`, so no path is opened here.
#[derive(Debug, Default)]
pub struct SecurityOpts {
    pub seccomp: SeccompChoice,
    pub no_new_privileges: bool,
}

#[derive(Debug, Default)]
pub enum SeccompChoice {
    #[default]
    Default,
    Unconfined,
    Profile(String),
}

pub fn security_opts(hc: &HostConfig) -> Result<SecurityOpts> {
    let mut out = SecurityOpts::default();
    for opt in hc.security_opt.iter().flatten() {
        // Docker accepts "key=value" and the older "key:value".
        let (key, value) = match opt.split_once('=') {
            Some(kv) => kv,
            None => opt.split_once(':').unwrap_or((opt.as_str(), "")),
        };
        match key {
            "no-new-privileges" => {
                out.no_new_privileges = match value {
                    "" | "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "invalid --security-opt 2: {opt:?}"
                        )))
                    }
                }
            }
            "seccomp" => {
                out.seccomp = match value {
                    "unconfined" => SeccompChoice::Unconfined,
                    "" | "builtin" => SeccompChoice::Default,
                    json => {
                        // Parse now, so a bad profile fails create, not start.
                        seccomp::Profile::parse(json)?;
                        SeccompChoice::Profile(json.to_string())
                    }
                }
            }
            // No AppArmor or SELinux here: Docker accepts these options on
            // hosts without them too, and so do we.
            "apparmor" | "label" => {}
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "invalid --security-opt 1: {opt:?}"
                )))
            }
        }
    }
    Ok(out)
}

/// The namespace a sysctl belongs to, among those a container (or a pod)
/// may own and so set: IPC and network (Docker's list). Others would
/// change the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlNamespace {
    Ipc,
    Net,
}

pub fn sysctl_namespace(key: &str) -> Option<SysctlNamespace> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(SysctlNamespace::Ipc)
    } else if key.starts_with("net.") {
        Some(SysctlNamespace::Net)
    } else {
        None
    }
}

/// Sysctls a container may set: those of the IPC and network namespaces
/// it owns.
pub fn check_sysctls(hc: &HostConfig) -> Result<()> {
    for key in hc.sysctls.iter().flat_map(|m| m.keys()) {
        match sysctl_namespace(key) {
            None => {
                return Err(Error::InvalidArgument(format!(
                    "sysctl '{key}' is not allowed"
                )))
            }
            Some(SysctlNamespace::Ipc) if hc.ipc_mode.as_deref() == Some("host") => {
                return Err(Error::InvalidArgument(format!(
                    "sysctl '{key}' is not allowed in host IPC mode"
                )))
            }
            Some(SysctlNamespace::Net) if hc.network_mode.as_deref() == Some("host") => {
                return Err(Error::InvalidArgument(format!(
                    "sysctl '{key}' is not allowed in host network mode"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `--ulimit name=soft:hard` as OCI rlimits. -1 is "unlimited".
pub fn rlimits(ulimits: &[ResourcesUlimits]) -> Result<Vec<PosixRlimit>> {
    const NAMES: &[&str] = &[
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    let limit = |v: Option<i64>, name: &str| -> Result<u64> {
        match v.unwrap_or(0) {
            -1 => Ok(u64::MAX),
            n if n < 0 => Err(Error::InvalidArgument(format!(
                "invalid ulimit {name}: a limit cannot be negative: {n}"
            ))),
            n => Ok(n as u64),
        }
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for u in ulimits {
        let name = u.name.clone().unwrap_or_default();
        if !NAMES.contains(&name.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "invalid ulimit type: {name}"
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(Error::InvalidArgument(format!(
                "ulimit {name} is given more than once"
            )));
        }
        let soft = limit(u.soft, &name)?;
        let hard = limit(u.hard, &name)?;
        if soft > hard {
            return Err(Error::InvalidArgument(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft.unwrap_or(0),
                u.hard.unwrap_or(0)
            )));
        }
        let kind = format!("RLIMIT_{}", name.to_ascii_uppercase())
            .parse::<PosixRlimitType>()
            .map_err(|_| Error::InvalidArgument(format!("invalid ulimit type: {name}")))?;
        let rlimit = PosixRlimitBuilder::default()
            .typ(kind)
            .soft(soft)
            .hard(hard)
            .build()
            .map_err(Error::internal)?;
        out.push(rlimit);
    }
    Ok(out)
}

/// How a container uses the PID or IPC namespace: its own, the host's, or
/// another container's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceMode {
    Private,
    Host,
    /// No IPC at all: no /dev/shm (IPC only).
    None,
    Container(String),
}

pub fn pid_mode(hc: &HostConfig) -> Result<NamespaceMode> {
    parse_mode(hc.pid_mode.as_deref().unwrap_or(""), "pid", &[""])
}

pub fn ipc_mode(hc: &HostConfig) -> Result<NamespaceMode> {
    parse_mode(
        hc.ipc_mode.as_deref().unwrap_or(""),
        "ipc",
        &["", "private", "shareable"],
    )
}

fn parse_mode(mode: &str, what: &str, private: &[&str]) -> Result<NamespaceMode> {
    if private.contains(&mode) {
        return Ok(NamespaceMode::Private);
    }
    match mode {
        "host" => Ok(NamespaceMode::Host),
        "none" if what == "ipc" => Ok(NamespaceMode::None),
        m => match m.strip_prefix("container:") {
            Some(id) if !id.is_empty() => Ok(NamespaceMode::Container(id.to_string())),
            _ => Err(Error::InvalidArgument(format!(
                "invalid {} mode: {m}",
                what.to_uppercase()
            ))),
        },
    }
}

/// Everything above, checked at create so that bad input stores nothing.
/// Normalizes what Docker shows in inspect (IpcMode "private", ShmSize:
/// berthd's default one, `default_shm_size`, when none is given).
pub fn check(hc: &mut HostConfig, default_shm_size: i64) -> Result<()> {
    capabilities(hc)?;
    security_opts(hc)?;
    check_sysctls(hc)?;
    rlimits(hc.ulimits.as_deref().unwrap_or_default())?;
    pid_mode(hc)?;
    ipc_mode(hc)?;
    devices::check(hc)?;
    match hc.shm_size {
        Some(n) if n < 0 => {
            return Err(Error::InvalidArgument(
                "SHM size can not be less than 0".into(),
            ))
        }
        None | Some(0) => hc.shm_size = Some(default_shm_size),
        _ => {}
    }
    if hc.ipc_mode.as_deref().unwrap_or("").is_empty() {
        hc.ipc_mode = Some("private".into());
    }
    if hc.init.unwrap_or(false) {
        init_binary()?;
    }
    Ok(())
}

/// Docker's default /dev/shm size: 64 MiB.
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;

/// The init that `--init` puts in front of the command, mounted at
/// /sbin/docker-init as Docker does: a static binary, since the image's
/// libc (if any) cannot be relied on. Debian's `tini` package ships one.
pub fn init_binary() -> Result<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for name in ["docker-init", "tini-static", "catatonit"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::InvalidArgument(
        "--init needs docker-init, tini-static or catatonit on the engine's PATH (Debian: apt-get install tini)".into(),
    ))
}

/// The sysctls as the OCI spec wants them.
pub fn sysctls(hc: &HostConfig) -> BTreeMap<String, String> {
    hc.sysctls.clone().unwrap_or_default().into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(add: &[&str], drop: &[&str]) -> HostConfig {
        HostConfig {
            cap_add: Some(add.iter().map(|s| s.to_string()).collect()),
            cap_drop: Some(drop.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn capability_rules_follow_docker() {
        let default = capabilities(&hc(&[], &[])).unwrap();
        assert_eq!(default.len(), DEFAULT_CAPS.len());
        let c = capabilities(&hc(&["net_admin"], &["CAP_CHOWN"])).unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(
            capabilities(&hc(&["SYS_ADMIN"], &["ALL"])).unwrap(),
            vec!["CAP_SYS_ADMIN"]
        );
        let all = capabilities(&hc(&["ALL"], &["MKNOD"])).unwrap();
        assert_eq!(all.len(), kernel_caps().len() - 1);
        assert!(capabilities(&hc(&["CAP_BOGUS"], &[])).is_err());
    }

    #[test]
    fn security_opts_and_modes() {
        let mut h = HostConfig {
            security_opt: Some(vec![
                "no-new-privileges".into(),
                "seccomp=unconfined".into(),
            ]),
            ..Default::default()
        };
        let o = security_opts(&h).unwrap();
        assert!(o.no_new_privileges);
        assert!(matches!(o.seccomp, SeccompChoice::Unconfined));
        h.security_opt = Some(vec!["bogus=1".into()]);
        assert!(security_opts(&h).is_err());
        h.security_opt = Some(vec!["seccomp={not json".into()]);
        assert!(security_opts(&h).is_err());
        h.ipc_mode = Some("container:".into());
        assert!(ipc_mode(&h).is_err());
        h.ipc_mode = Some("shareable".into());
        assert_eq!(ipc_mode(&h).unwrap(), NamespaceMode::Private);
        h.pid_mode = Some("none".into());
        assert!(pid_mode(&h).is_err());
    }

    #[test]
    fn only_namespaced_sysctls() {
        let mut h = HostConfig {
            sysctls: Some([("net.ipv4.ip_forward".to_string(), "1".to_string())].into()),
            ..Default::default()
        };
        assert!(check_sysctls(&h).is_ok());
        h.network_mode = Some("host".into());
        assert!(check_sysctls(&h).is_err());
        h.sysctls = Some([("vm.swappiness".to_string(), "1".to_string())].into());
        assert!(check_sysctls(&h).is_err());
    }

    #[test]
    fn ulimits() {
        let u = |name: &str, soft, hard| ResourcesUlimits {
            name: Some(name.into()),
            soft: Some(soft),
            hard: Some(hard),
        };
        let r = serde_json::to_value(rlimits(&[u("nofile", 100, 200), u("core", -1, -1)]).unwrap())
            .unwrap();
        assert_eq!(r[0]["type"], "RLIMIT_NOFILE");
        assert_eq!(r[1]["hard"], u64::MAX);
        for bad in [u("bogus", 1, 1), u("nofile", 3, 2), u("nofile", -5, 2)] {
            assert!(rlimits(&[bad]).is_err());
        }
    }
}
