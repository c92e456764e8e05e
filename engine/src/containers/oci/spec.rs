//! The OCI runtime spec (config.json) of a container, built with oci-spec
//! from Docker's Config and HostConfig, with Docker's defaults: masked and
//! read-only /proc paths, device rules, and (from [`crate::containers::oci::security`]) the
//! capability set, seccomp filter, rlimits, sysctls and shared namespaces.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxNamespaceBuilder, LinuxNamespaceType, Mount, MountBuilder, ProcessBuilder, RootBuilder,
    Spec, SpecBuilder, UserBuilder,
};

use crate::containers::oci::security::{
    self, devices, seccomp::Profile, NamespaceMode, SeccompChoice,
};
use crate::containers::oci::user::ResolvedUser;
use crate::containers::record::{Container, Paths};
use crate::error::{Error, Result};

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

fn caps(names: &[String]) -> Result<HashSet<Capability>> {
    names
        .iter()
        .map(|n| serde_json::from_value(serde_json::Value::String(n.clone())).map_err(err))
        .collect()
}

/// Namespaces a container borrows from other running containers
/// (`--pid container:x`, `--ipc container:x`), by their init's pid.
#[derive(Debug, Default, Clone)]
pub struct Borrowed {
    pub pid_of: Option<i64>,
    pub ipc_of: Option<i64>,
    /// The /dev/shm to bind: the donor's for `--ipc container:x`, the
    /// container's own for `--ipc shareable`.
    pub shm: Option<std::path::PathBuf>,
    /// Volumes, binds and tmpfs mounts (`mounts::oci_mounts`).
    pub user_mounts: Vec<oci_spec::runtime::Mount>,
    /// The network namespace to join: the container's own as netavark set
    /// it up, or another container's (`--network container:x`). None: a
    /// new, empty one (`--network none`).
    pub netns: Option<std::path::PathBuf>,
    /// Variables the container's links give it (`<ALIAS>_PORT`…): before
    /// its own, which win on a clash, as in dockerd.
    pub link_env: Vec<String>,
    /// berthd's --default-ulimit, for the names the container does not
    /// set (`Defaults::ulimits_for`): the container's own and these.
    pub ulimits: Vec<bollard_stubs::models::ResourcesUlimits>,
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
    borrowed: Borrowed,
) -> Result<Spec> {
    let hc = &c.host_config;
    let privileged = hc.privileged.unwrap_or(false);
    let mut args = c.process_args();
    if args.is_empty() {
        return Err(Error::InvalidArgument("no command specified".into()));
    }
    let init = if hc.init.unwrap_or(false) {
        Some(security::init_binary()?)
    } else {
        None
    };
    if init.is_some() {
        // tini reaps zombies and forwards signals to the command.
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let mut env = environment(c, hostname);
    let set = |e: &String| e.split('=').next().unwrap_or("").to_string();
    let own: std::collections::HashSet<String> = env.iter().map(set).collect();
    let linked = borrowed.link_env.iter().filter(|e| !own.contains(&set(e)));
    env.splice(0..0, linked.cloned().collect::<Vec<_>>());
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
    let cap_names = security::capabilities(hc)?;
    let cap_set = caps(&cap_names)?;
    let opts = security::security_opts(hc)?;
    let mut process = ProcessBuilder::default()
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
        .no_new_privileges(opts.no_new_privileges)
        .capabilities(
            // Inheritable and ambient stay empty (oci-spec's defaults fill
            // them): ambient capabilities would survive exec into a
            // non-root user, and Docker leaves both empty.
            LinuxCapabilitiesBuilder::default()
                .bounding(cap_set.clone())
                .effective(cap_set.clone())
                .permitted(cap_set)
                .inheritable(HashSet::new())
                .ambient(HashSet::new())
                .build()
                .map_err(err)?,
        )
        .build()
        .map_err(err)?;
    let rlimits = security::rlimits(&borrowed.ulimits)?;
    if !rlimits.is_empty() {
        process.set_rlimits(Some(rlimits));
    }

    let ipc = security::ipc_mode(hc)?;
    let pid = security::pid_mode(hc)?;
    // A privileged container may write /sys and its cgroups, as in Docker.
    let sys_ro: &[&str] = if privileged { &[] } else { &["ro"] };
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
            &[&["nosuid", "noexec", "nodev"][..], sys_ro].concat(),
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[sys_ro, &["nosuid", "noexec", "nodev"][..]].concat(),
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
    ];
    // /dev/shm follows the IPC namespace: the container's own tmpfs, the
    // host's, another container's, or none at all.
    match (&ipc, &borrowed.shm) {
        (NamespaceMode::Private | NamespaceMode::Container(_), Some(shm)) => {
            mounts.push(mount(
                "/dev/shm",
                "bind",
                &shm.display().to_string(),
                &["rbind", "rprivate"],
            )?);
        }
        (NamespaceMode::Private, None) => {
            let size = format!(
                "size={}",
                hc.shm_size
                    .filter(|n| *n > 0)
                    .unwrap_or(security::DEFAULT_SHM_SIZE)
            );
            mounts.push(mount(
                "/dev/shm",
                "tmpfs",
                "shm",
                &["nosuid", "noexec", "nodev", "mode=1777", &size],
            )?);
        }
        (NamespaceMode::Host, _) => mounts.push(mount(
            "/dev/shm",
            "bind",
            "/dev/shm",
            &["rbind", "rprivate"],
        )?),
        (NamespaceMode::Container(_), None) | (NamespaceMode::None, _) => {}
    }
    // The user's mounts come next (parents first), then the files Docker
    // manages, so that a volume on /etc does not hide /etc/hosts; a user
    // mount of one of those exact paths (or of /dev/shm) replaces ours.
    let user_dests: Vec<&str> = borrowed
        .user_mounts
        .iter()
        .filter_map(|m| m.destination().to_str())
        .collect();
    mounts.retain(|m| {
        let d = m.destination().to_string_lossy();
        d != "/dev/shm" || !user_dests.contains(&"/dev/shm")
    });
    for m in &borrowed.user_mounts {
        mounts.push(m.clone());
    }
    for (dest, file) in [
        ("/etc/resolv.conf", "resolv.conf"),
        ("/etc/hostname", "hostname"),
        ("/etc/hosts", "hosts"),
    ] {
        if user_dests.contains(&dest) {
            continue;
        }
        let src = paths.file(file);
        mounts.push(mount(
            dest,
            "bind",
            &src.display().to_string(),
            &["rbind", "rprivate"],
        )?);
    }
    if let Some(init) = &init {
        mounts.push(mount(
            INIT_PATH,
            "bind",
            &init.display().to_string(),
            &["bind", "ro", "nosuid", "nodev"],
        )?);
    }

    let mut namespaces = Vec::new();
    let host_network = hc.network_mode.as_deref() == Some("host");
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        // The host's namespace: none in the spec. Another container's:
        // the path of its init's.
        let (mode, of) = match t {
            LinuxNamespaceType::Pid => (&pid, borrowed.pid_of),
            LinuxNamespaceType::Ipc => (&ipc, borrowed.ipc_of),
            LinuxNamespaceType::Network if host_network => continue,
            _ => (&NamespaceMode::Private, None),
        };
        let mut b = LinuxNamespaceBuilder::default().typ(t);
        if t == LinuxNamespaceType::Network {
            if let Some(p) = &borrowed.netns {
                b = b.path(p.clone());
            }
        }
        match mode {
            NamespaceMode::Host => continue,
            NamespaceMode::Container(id) => {
                let p =
                    of.ok_or_else(|| Error::Conflict(format!("container {id} is not running")))?;
                let kind = if t == LinuxNamespaceType::Pid {
                    "pid"
                } else {
                    "ipc"
                };
                b = b.path(format!("/proc/{p}/ns/{kind}"));
            }
            NamespaceMode::Private | NamespaceMode::None => {}
        }
        namespaces.push(b.build().map_err(err)?);
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
    // standard /dev nodes on top); --device and --privileged add more.
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
    let mut device_rules = if privileged {
        vec![dev(true, LinuxDeviceType::A, None, None, "rwm")?]
    } else {
        vec![
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
        ]
    };
    let mut extra = if privileged {
        devices::all_host()
    } else {
        Vec::new()
    };
    extra.extend(devices::custom(hc)?);
    let mut nodes: Vec<oci_spec::runtime::LinuxDevice> = Vec::new();
    for d in extra {
        let node = d.node;
        // A --device given again under --privileged is one node.
        nodes.retain(|n| n.path() != node.path());
        nodes.push(node);
        if !privileged {
            device_rules.push(d.rule);
        }
    }

    let seccomp = match opts.seccomp {
        _ if privileged => None,
        SeccompChoice::Unconfined => None,
        SeccompChoice::Default => Some(Profile::docker_default().to_oci(&cap_names)?),
        SeccompChoice::Profile(json) => Some(Profile::parse(&json)?.to_oci(&cap_names)?),
    };
    // The lists recorded at create (the defaults, or what the client sent:
    // the CLI's `--security-opt systempaths=unconfined` sends empty ones).
    let listed = |given: &Option<Vec<String>>, default: &[&str]| -> Vec<String> {
        match given {
            _ if privileged => Vec::new(),
            Some(paths) => paths.clone(),
            None => default.iter().map(|s| s.to_string()).collect(),
        }
    };
    let masked = listed(&hc.masked_paths, MASKED_PATHS);
    let readonly = listed(&hc.readonly_paths, READONLY_PATHS);
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(Path::new(cgroup_parent).join(&c.id))
        .masked_paths(masked)
        .readonly_paths(readonly)
        .resources({
            let mut r = crate::containers::oci::resources::oci_resources(hc)?;
            r.set_devices(Some(device_rules));
            r
        })
        .sysctl(
            security::sysctls(hc)
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()
        .map_err(err)?;
    if !nodes.is_empty() {
        linux.set_devices(Some(nodes));
    }
    if let Some(s) = seccomp {
        linux.set_seccomp(Some(s));
    }

    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(paths.rootfs())
                .readonly(hc.readonly_rootfs.unwrap_or(false))
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

/// Where `--init` puts its init, as Docker does.
const INIT_PATH: &str = "/sbin/docker-init";

/// A pure cgroup v2 host (unified at /sys/fs/cgroup) gets a private cgroup
/// namespace, as Docker gives it; hybrid and v1 hosts keep the host's.
fn cgroup_v2_only() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}
