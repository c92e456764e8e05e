//! Device nodes a container gets beyond runc's standard /dev: `--device`
//! (a host node or a directory of them, optionally renamed, with cgroup
//! permissions) and, for `--privileged`, every node the host has.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use bollard_stubs::models::HostConfig;
use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
};

use crate::error::{Error, Result};

/// A node for the OCI spec's `linux.devices` and the cgroup rule allowing it.
#[derive(Debug, Clone)]
pub struct Device {
    pub node: LinuxDevice,
    pub rule: LinuxDeviceCgroup,
}

fn permissions(p: &str) -> Result<String> {
    let p = if p.is_empty() { "rwm" } else { p };
    if p.len() > 3 || !p.chars().all(|c| "rwm".contains(c)) {
        return Err(Error::InvalidArgument(format!(
            "invalid device cgroup permissions: {p:?} (use a combination of r, w and m)"
        )));
    }
    Ok(p.to_string())
}

/// Syntax only at create: whether the host nodes exist is checked at start,
/// as Docker does (a device can appear between the two).
pub fn check(hc: &HostConfig) -> Result<()> {
    for d in hc.devices.iter().flatten() {
        let host = d.path_on_host.as_deref().unwrap_or("");
        if !host.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "invalid device path {host:?}: it needs to be an absolute path"
            )));
        }
        let inside = d.path_in_container.as_deref().unwrap_or("");
        if !inside.is_empty() && !inside.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "invalid device path in container {inside:?}: it needs to be an absolute path"
            )));
        }
        permissions(d.cgroup_permissions.as_deref().unwrap_or(""))?;
    }
    Ok(())
}

/// One host node as a device, or None when `path` is not a device node.
fn node(path: &Path, inside: &Path, perms: &str) -> std::io::Result<Option<Device>> {
    let md = std::fs::symlink_metadata(path)?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Ok(None);
    };
    let rdev = md.rdev();
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    let node = LinuxDeviceBuilder::default()
        .path(inside)
        .typ(typ)
        .major(major as i64)
        .minor(minor as i64)
        .file_mode(md.mode() & 0o7777)
        .uid(md.uid())
        .gid(md.gid())
        .build()
        .map_err(std::io::Error::other)?;
    let rule = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .major(major as i64)
        .minor(minor as i64)
        .access(perms)
        .build()
        .map_err(std::io::Error::other)?;
    Ok(Some(Device { node, rule }))
}

/// Nodes under a directory, recursively; `skip` names subdirectories left
/// out (the container has its own /dev/pts, /dev/shm and /dev/mqueue).
fn walk(
    dir: &Path,
    inside: &Path,
    perms: &str,
    skip: &[&str],
    out: &mut Vec<Device>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            if !skip.iter().any(|s| name == *s) {
                walk(&entry.path(), &inside.join(&name), perms, skip, out)?;
            }
        } else if let Some(d) = node(&entry.path(), &inside.join(&name), perms)? {
            out.push(d);
        }
    }
    Ok(())
}

/// `--device` mappings, read from the host now.
pub fn custom(hc: &HostConfig) -> Result<Vec<Device>> {
    let mut out = Vec::new();
    for d in hc.devices.iter().flatten() {
        let host = d.path_on_host.clone().unwrap_or_default();
        let inside = d
            .path_in_container
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| host.clone());
        let perms = permissions(d.cgroup_permissions.as_deref().unwrap_or(""))?;
        let gather = |e: std::io::Error| {
            Error::InvalidArgument(format!(
                "error gathering device information while adding custom device {host:?}: {}",
                berth_proto::os_error::go_text(&e)
            ))
        };
        // Follow a symlink given by the user (/dev/disk/by-id/...), as Docker does.
        let md = std::fs::metadata(&host).map_err(gather)?;
        if md.is_dir() {
            walk(Path::new(&host), Path::new(&inside), &perms, &[], &mut out).map_err(gather)?;
        } else {
            let real = std::fs::canonicalize(&host).map_err(gather)?;
            match node(&real, Path::new(&inside), &perms).map_err(gather)? {
                Some(dev) => out.push(dev),
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "error gathering device information while adding custom device {host:?}: not a device node"
                    )))
                }
            }
        }
    }
    Ok(out)
}

/// Every device node of the host, for `--privileged`.
pub fn all_host() -> Vec<Device> {
    let mut out = Vec::new();
    // A node that vanishes while we walk is simply not included.
    let _ = walk(
        Path::new("/dev"),
        Path::new("/dev"),
        "rwm",
        &["pts", "shm", "mqueue", "fd", ".udev", ".lxc"],
        &mut out,
    );
    // /dev/console belongs to the container's terminal, not the host's.
    out.retain(|d| d.node.path() != Path::new("/dev/console"));
    out
}
