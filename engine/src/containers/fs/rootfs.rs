//! A container's root filesystem: an overlayfs mount of the image's layer
//! snapshots (read-only, top layer first) under the container's own upper
//! and work directories; plus the files Docker bind-mounts into every
//! container (/etc/hostname, /etc/hosts, /etc/resolv.conf).

use std::path::PathBuf;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use tracing::debug;

use crate::containers::record::Paths;
use crate::error::{Error, Result};

/// Mounts the overlay at `paths.rootfs()` unless it is mounted already.
pub fn mount_rootfs(paths: &Paths, lowers: &[PathBuf]) -> Result<()> {
    let target = paths.rootfs();
    for d in [&target, &paths.upper(), &paths.work()] {
        std::fs::create_dir_all(d)?;
    }
    if is_mountpoint(&target) {
        return Ok(());
    }
    let lower = if lowers.is_empty() {
        // An image without layers (an empty import) still needs a lower dir.
        let empty = paths.file("empty");
        std::fs::create_dir_all(&empty)?;
        empty.display().to_string()
    } else {
        lowers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    };
    let data = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        paths.upper().display(),
        paths.work().display()
    );
    if data.len() >= 4096 {
        return Err(Error::Internal(format!(
            "too many layers for one overlay mount ({} bytes of options)",
            data.len()
        )));
    }
    debug!(target = %target.display(), layers = lowers.len(), "mounting overlay");
    mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| Error::Internal(format!("mount overlay at {}: {e}", target.display())))
}

/// A shareable container's /dev/shm: a tmpfs the engine mounts in the
/// container's directory, so that `--ipc container:<it>` can bind the same
/// one (a mount inside another mount namespace cannot be bind-mounted).
pub fn mount_shm(paths: &Paths, size: i64) -> Result<PathBuf> {
    let target = paths.file("shm");
    std::fs::create_dir_all(&target)?;
    if !is_mountpoint(&target) {
        mount(
            Some("shm"),
            &target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("mode=1777,size={size}").as_str()),
        )
        .map_err(|e| Error::Internal(format!("mount shm at {}: {e}", target.display())))?;
    }
    Ok(target)
}

/// Unmounts the overlay (and a shareable /dev/shm) of a container that no
/// longer runs.
pub fn unmount_rootfs(paths: &Paths) -> Result<()> {
    let shm = paths.file("shm");
    if is_mountpoint(&shm) {
        umount2(&shm, MntFlags::MNT_DETACH)
            .map_err(|e| Error::Internal(format!("unmount {}: {e}", shm.display())))?;
    }
    let target = paths.rootfs();
    if !is_mountpoint(&target) {
        return Ok(());
    }
    debug!(target = %target.display(), "unmounting overlay");
    umount2(&target, MntFlags::MNT_DETACH)
        .map_err(|e| Error::Internal(format!("unmount {}: {e}", target.display())))
}

pub use crate::util::is_mountpoint;

/// What the container's hostname, hosts and resolv.conf say.
#[derive(Debug, Default)]
pub struct EtcFiles<'a> {
    pub hostname: &'a str,
    /// --add-host name:ip ("host-gateway" as the ip means `gateway`).
    pub extra_hosts: &'a [String],
    pub host_network: bool,
    /// The container's addresses on its first network.
    pub ip: Option<&'a str>,
    pub ip6: Option<&'a str>,
    pub gateway: Option<&'a str>,
    /// Name servers of its networks (aardvark-dns on user-defined ones).
    pub nameservers: &'a [String],
    /// --dns, --dns-search, --dns-option
    pub dns: &'a [String],
    pub dns_search: &'a [String],
    pub dns_options: &'a [String],
    /// Hosts lines of its links (`links::hosts_line`).
    pub links: &'a str,
}

/// Writes hostname, hosts and resolv.conf for the container.
pub fn write_etc_files(paths: &Paths, f: &EtcFiles) -> Result<()> {
    std::fs::write(paths.file("hostname"), format!("{}\n", f.hostname))?;
    let extra = |hosts: &mut String| {
        for h in f.extra_hosts {
            // name:ip, where ip may itself hold colons (IPv6).
            if let Some((name, ip)) = h.split_once(':') {
                let ip = if ip == "host-gateway" {
                    f.gateway.unwrap_or("127.0.0.1")
                } else {
                    ip
                };
                hosts.push_str(&format!("{ip}\t{name}\n"));
            }
        }
    };
    if f.host_network {
        // The host's own files: its name servers are reachable from its
        // network namespace, loopback ones included.
        let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        extra(&mut hosts);
        std::fs::write(paths.file("hosts"), hosts)?;
        return write_resolv_conf(paths, f);
    }
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    extra(&mut hosts);
    hosts.push_str(f.links);
    for ip in f.ip.iter().chain(&f.ip6) {
        hosts.push_str(&format!("{ip}\t{}\n", f.hostname));
    }
    std::fs::write(paths.file("hosts"), hosts)?;
    write_resolv_conf(paths, f)
}

/// Writes resolv.conf alone. In place (same inode), so a running
/// container, which sees the file through a bind mount, reads the new one.
pub fn write_resolv_conf(paths: &Paths, f: &EtcFiles) -> Result<()> {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    std::fs::write(
        paths.file("resolv.conf"),
        resolv_conf(&host_resolv, f, f.host_network),
    )?;
    Ok(())
}

/// resolv.conf: the networks' name servers (aardvark-dns, which asks the
/// --dns servers for other names, like Docker's embedded DNS), else --dns,
/// else the host's
/// (minus loopback ones, which would point at the container's own
/// loopback, unless it shares the host's network); search and options from
/// --dns-search/--dns-option, else the host's.
fn resolv_conf(host: &str, f: &EtcFiles, host_network: bool) -> String {
    let lines = |key: &str| -> Vec<String> {
        host.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(key)).then(|| w.collect::<Vec<_>>().join(" "))
            })
            .collect()
    };
    let servers: Vec<String> = if !f.nameservers.is_empty() {
        f.nameservers.to_vec()
    } else if !f.dns.is_empty() {
        f.dns.to_vec()
    } else {
        lines("nameserver")
            .into_iter()
            .filter(|ip| host_network || !(ip.starts_with("127.") || ip == "::1"))
            .collect()
    };
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    let search = if f.dns_search.is_empty() {
        lines("search")
    } else {
        vec![f.dns_search.join(" ")]
    };
    for s in search.iter().filter(|s| !s.is_empty() && s.as_str() != ".") {
        out.push_str(&format!("search {s}\n"));
    }
    let options = if f.dns_options.is_empty() {
        lines("options")
    } else {
        vec![f.dns_options.join(" ")]
    };
    for o in options.iter().filter(|o| !o.is_empty()) {
        out.push_str(&format!("options {o}\n"));
    }
    out
}

impl crate::containers::Containers {
    /// Mounts the container's overlay over its image's snapshots (a no-op
    /// when it is mounted).
    pub(crate) async fn mount_rootfs(
        &self,
        c: &crate::containers::record::Container,
    ) -> Result<()> {
        let image = self
            .store
            .image(&c.image_id)
            .await?
            .ok_or_else(|| Error::no_such_image(&c.image_ref))?;
        let lowers: Vec<PathBuf> = image
            .chains
            .iter()
            .map(|ch| self.images.snapshot_fs(ch))
            .collect();
        mount_rootfs(&self.paths(&c.id), &lowers)
    }
}
