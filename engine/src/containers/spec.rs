//! The OCI runtime spec (config.json) of a container, built with oci-spec
//! from Docker's Config and HostConfig, with Docker's defaults: its
//! capability set, masked and read-only /proc paths, and device rules.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxNamespaceBuilder, LinuxNamespaceType, Mount, MountBuilder, ProcessBuilder, RootBuilder,
    Spec, SpecBuilder, UserBuilder,
};

use super::record::{Container, Paths};
use super::user::ResolvedUser;
use crate::error::{Error, Result};

/// Docker's default capabilities (moby oci/caps/defaults.go).
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

/// Docker's masked paths (moby oci/defaults.go).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn err(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("building the OCI spec: {e}"))
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(err)
}

fn caps(names: &[&str]) -> Result<HashSet<Capability>> {
    names
        .iter()
        .map(|n| serde_json::from_value(serde_json::Value::String(n.to_string())).map_err(err))
        .collect()
}

/// The environment: the container's, plus PATH and HOSTNAME (and TERM with
/// a terminal) where it does not set them, as Docker does.
pub fn environment(c: &Container, hostname: &str) -> Vec<String> {
    let mut env = c.config.env.clone().unwrap_or_default();
    let has = |env: &[String], key: &str| env.iter().any(|e| e.split('=').next() == Some(key));
    if !has(&env, "PATH") {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    if !has(&env, "HOSTNAME") {
        env.insert(1.min(env.len()), format!("HOSTNAME={hostname}"));
    }
    if c.tty() && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    env
}

pub fn build(
    c: &Container,
    paths: &Paths,
    hostname: &str,
    user: &ResolvedUser,
    cgroup_parent: &str,
) -> Result<Spec> {
    let args = c.process_args();
    if args.is_empty() {
        return Err(Error::InvalidArgument("no command specified".into()));
    }
    let mut env = environment(c, hostname);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            if user.home.is_empty() {
                "/"
            } else {
                &user.home
            }
        ));
    }
    let cwd = c
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(Error::InvalidArgument(format!(
            "the working directory '{cwd}' is invalid, it needs to be an absolute path"
        )));
    }
    let default_caps = caps(DEFAULT_CAPS)?;
    let process = ProcessBuilder::default()
        .terminal(c.tty())
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.additional_gids.clone())
                .build()
                .map_err(err)?,
        )
        .args(args)
        .env(env)
        .cwd(cwd)
        .no_new_privileges(false)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(default_caps.clone())
                .effective(default_caps.clone())
                .permitted(default_caps)
                .build()
                .map_err(err)?,
        )
        .build()
        .map_err(err)?;

    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        )?,
    ];
    for (dest, file) in [
        ("/etc/resolv.conf", "resolv.conf"),
        ("/etc/hostname", "hostname"),
        ("/etc/hosts", "hosts"),
    ] {
        let src = paths.file(file);
        mounts.push(mount(
            dest,
            "bind",
            &src.display().to_string(),
            &["rbind", "rprivate"],
        )?);
    }

    let mut namespaces = Vec::new();
    let host_network = c.host_config.network_mode.as_deref() == Some("host");
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        // --network host: the host's network namespace, no new one.
        if host_network && t == LinuxNamespaceType::Network {
            continue;
        }
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(t)
                .build()
                .map_err(err)?,
        );
    }
    if cgroup_v2_only() {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Cgroup)
                .build()
                .map_err(err)?,
        );
    }

    // Deny every device, then allow Docker's default set (runc adds the
    // standard /dev nodes on top).
    let dev = |allow: bool,
               typ: LinuxDeviceType,
               major: Option<i64>,
               minor: Option<i64>,
               access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().map_err(err)
    };
    let devices = vec![
        dev(false, LinuxDeviceType::A, None, None, "rwm")?,
        dev(true, LinuxDeviceType::C, None, None, "m")?,
        dev(true, LinuxDeviceType::B, None, None, "m")?,
        dev(true, LinuxDeviceType::C, Some(1), Some(3), "rwm")?,
        dev(true, LinuxDeviceType::C, Some(1), Some(8), "rwm")?,
        dev(true, LinuxDeviceType::C, Some(1), Some(7), "rwm")?,
        dev(true, LinuxDeviceType::C, Some(5), Some(0), "rwm")?,
        dev(true, LinuxDeviceType::C, Some(1), Some(5), "rwm")?,
        dev(true, LinuxDeviceType::C, Some(1), Some(9), "rwm")?,
        dev(true, LinuxDeviceType::C, Some(136), None, "rwm")?,
        dev(true, LinuxDeviceType::C, Some(5), Some(2), "rwm")?,
        dev(true, LinuxDeviceType::C, Some(5), Some(1), "rwm")?,
    ];
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(Path::new(cgroup_parent).join(&c.id))
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .resources({
            let mut r: oci_spec::runtime::LinuxResources =
                serde_json::from_value(super::resources::oci_resources(&c.host_config))
                    .map_err(err)?;
            r.set_devices(Some(devices));
            r
        })
        .build()
        .map_err(err)?;

    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(paths.rootfs())
                .readonly(c.host_config.readonly_rootfs.unwrap_or(false))
                .build()
                .map_err(err)?,
        )
        .hostname(hostname)
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(err)
}

/// A pure cgroup v2 host (unified at /sys/fs/cgroup) gets a private cgroup
/// namespace, as Docker gives it; hybrid and v1 hosts keep the host's.
fn cgroup_v2_only() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}
