//! The local driver's options (`docker volume create -o type=.. -o
//! device=.. -o o=..`): a filesystem mounted on the volume's `_data`
//! directory while a container uses the volume, as `mount -t type -o o
//! device _data` would. The `o` string mixes flags (ro, nosuid, bind, ...),
//! which become mount(2) flags, with filesystem data (size=, uid=, ...),
//! which is passed through to the filesystem.

use std::collections::HashMap;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use tracing::info;

use crate::error::{Error, Result};

/// The options Docker's local driver knows, and which others each needs.
const VALID: &[&str] = &["type", "device", "o", "size"];
const REQUIRED: &[(&str, &[&str])] = &[
    ("device", &["type"]),
    ("type", &["device"]),
    ("o", &["device", "type"]),
];

/// Checks options at `volume create`, with Docker's messages.
pub fn validate(opts: &HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<&String> = opts.keys().collect();
    keys.sort();
    for k in &keys {
        if !VALID.contains(&k.as_str()) {
            return Err(Error::InvalidArgument(format!("invalid option: \"{k}\"")));
        }
    }
    if opts.contains_key("size") {
        // Docker supports size only with project quotas on xfs data roots.
        return Err(Error::InvalidArgument(
            "quota size requested but no quota support".into(),
        ));
    }
    for (opt, needs) in REQUIRED {
        if opts.contains_key(*opt) {
            if let Some(missing) = needs.iter().find(|n| !opts.contains_key(**n)) {
                return Err(Error::InvalidArgument(format!(
                    "missing required option: \"{missing}\""
                )));
            }
        }
    }
    Ok(())
}

/// Whether a volume with these options is a mount rather than a directory.
pub fn needs_mount(opts: &HashMap<String, String>) -> bool {
    opts.contains_key("type") || opts.contains_key("device")
}

/// Splits `o` into mount(2) flags and the data string for the filesystem.
fn parse_o(o: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        let (set, clear) = match opt {
            "defaults" | "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            _ => {
                data.push(opt);
                continue;
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    (flags, data.join(","))
}

/// Mounts the volume's filesystem on `target` unless something is mounted
/// there already (an earlier engine may have done it for a container that
/// still runs).
pub fn mount_on(name: &str, opts: &HashMap<String, String>, target: &Path) -> Result<()> {
    if crate::util::is_mountpoint(target) {
        return Ok(());
    }
    let device = opts.get("device").map(String::as_str).unwrap_or_default();
    let fstype = opts.get("type").map(String::as_str).unwrap_or_default();
    let (flags, data) = parse_o(opts.get("o").map(String::as_str).unwrap_or_default());
    let failed = |e: nix::Error| {
        Error::Internal(format!(
            "error while mounting volume '{}': failed to mount local volume: mount {device}:{}, data: {}: {}",
            target.display(),
            target.display(),
            redact_password(&data),
            e.desc().to_lowercase()
        ))
    };
    // A bind ignores its type, and the kernel ignores flags such as ro on
    // the bind itself, so those are applied by a remount after it.
    let bind = flags.contains(MsFlags::MS_BIND);
    let first = if bind {
        flags & (MsFlags::MS_BIND | MsFlags::MS_REC)
    } else {
        flags
    };
    let data_arg = (!data.is_empty()).then_some(data.as_str());
    mount(
        Some(device),
        target,
        (!bind && !fstype.is_empty() && fstype != "none").then_some(fstype),
        first,
        data_arg,
    )
    .map_err(failed)?;
    let extra = flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
    if bind && !extra.is_empty() {
        if let Err(e) = mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra,
            None::<&str>,
        ) {
            let _ = umount2(target, MntFlags::MNT_DETACH);
            return Err(failed(e));
        }
    }
    info!(volume = %name, device, fstype, "volume filesystem mounted");
    Ok(())
}

/// Unmounts the volume's filesystem (nothing when it is not mounted).
pub fn unmount_from(name: &str, target: &Path) -> Result<()> {
    while crate::util::is_mountpoint(target) {
        umount2(target, MntFlags::MNT_DETACH).map_err(|e| {
            Error::Internal(format!(
                "unmounting volume {name} at {}: {e}",
                target.display()
            ))
        })?;
        info!(volume = %name, "volume filesystem unmounted");
    }
    Ok(())
}

/// Keeps a CIFS password out of error messages, as Docker does.
fn redact_password(data: &str) -> String {
    data.split(',')
        .map(|o| {
            if o.starts_with("password=") {
                "password=********"
            } else {
                o
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::util::string_map as opts;

    #[test]
    fn options_are_checked_like_dockers_local_driver() {
        assert!(validate(&opts(&[])).is_ok());
        assert!(validate(&opts(&[("type", "tmpfs"), ("device", "tmpfs")])).is_ok());
        let err = |o: &[(&str, &str)]| validate(&opts(o)).unwrap_err().to_string();
        assert_eq!(err(&[("bogus", "1")]), "invalid option: \"bogus\"");
        assert_eq!(
            err(&[("type", "tmpfs")]),
            "missing required option: \"device\""
        );
        assert_eq!(
            err(&[("o", "size=1m"), ("device", "x")]),
            "missing required option: \"type\""
        );
        assert!(err(&[("size", "1G")]).contains("no quota support"));
    }

    #[test]
    fn flags_and_data_are_split() {
        let (f, d) = parse_o("size=10m,ro,uid=1000,noexec");
        assert_eq!(f, MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC);
        assert_eq!(d, "size=10m,uid=1000");
        let (f, d) = parse_o("bind");
        assert_eq!((f, d.as_str()), (MsFlags::MS_BIND, ""));
        assert_eq!(
            redact_password("user=a,password=secret"),
            "user=a,password=********"
        );
    }
}
