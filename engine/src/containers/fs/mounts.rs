//! A container's mounts: `-v`/Binds, `--mount`, `--tmpfs`, `--volumes-from`,
//! `-v /path` and the image's VOLUMEs, resolved once at create into
//! [`MountRow`]s (stored beside the container), then turned into OCI mounts
//! at every start. Docker's precedence: what the user names explicitly
//! wins, a destination given twice explicitly is an error, volumes-from and
//! anonymous volumes fill the destinations left.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use bollard_stubs::models::{ContainerConfig, HostConfig, MountPoint};
use serde_json::Value;
use tracing::warn;

use crate::confined::Confined;
use crate::containers::record::Container;
use crate::error::{Error, Result};
use crate::store::MountRow;
use crate::volumes::validate_name;

const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// A mount decided at create; volumes are created after the container is
/// stored (an anonymous one has no name until then).
#[derive(Debug, Clone)]
pub struct Planned {
    pub row: MountRow,
    /// Labels for a volume this create makes (`--mount volume-label`).
    pub labels: HashMap<String, String>,
    /// Driver options for it (`--mount volume-opt`).
    pub volume_options: HashMap<String, String>,
}

fn spec_error(spec: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("invalid volume specification: '{spec}': {why}"))
}

fn check_destination(dest: &str, spec: &str) -> Result<String> {
    if !dest.starts_with('/') {
        return Err(spec_error(
            spec,
            format!(
                "invalid mount config: invalid mount path: '{dest}' mount path must be absolute"
            ),
        ));
    }
    let clean = crate::confined::clean(Path::new(dest)).unwrap_or_default();
    let clean = format!("/{}", clean.display());
    if clean == "/" {
        return Err(spec_error(
            spec,
            "invalid mount config: invalid specification: destination can't be '/'",
        ));
    }
    Ok(clean)
}

/// One `-v src:dst[:opts]` entry.
fn parse_bind(spec: &str) -> Result<Planned> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(spec_error(spec, "invalid number of fields")),
    };
    if src.is_empty() {
        return Err(spec_error(spec, "empty section between colons"));
    }
    let destination = check_destination(dst, spec)?;
    let mut rw = true;
    let mut propagation = String::new();
    let mut copy_up = true;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => rw = false,
            "rw" => rw = true,
            "z" | "Z" => {}
            "nocopy" => copy_up = false,
            p if PROPAGATIONS.contains(&p) => propagation = p.to_string(),
            other => return Err(Error::InvalidArgument(format!("invalid mode: {other}"))),
        }
    }
    let bind = src.starts_with('/');
    if !bind {
        validate_name(src)?;
    }
    Ok(Planned {
        row: MountRow {
            destination,
            kind: if bind { "bind" } else { "volume" }.into(),
            source: src.into(),
            rw,
            mode: opts.into(),
            propagation: if bind && propagation.is_empty() {
                "rprivate".into()
            } else {
                propagation
            },
            options: String::new(),
            copy_up: !bind && copy_up,
        },
        labels: HashMap::new(),
        volume_options: HashMap::new(),
    })
}

/// One `--mount` (HostConfig.Mounts) entry, read as JSON so that every
/// spelling bollard's enums do not know is still reported clearly.
fn parse_mount(m: &Value) -> Result<Planned> {
    let typ = m["Type"].as_str().unwrap_or("");
    let target = m["Target"].as_str().unwrap_or("");
    let source = m["Source"].as_str().unwrap_or("");
    let invalid = |why: String| {
        Error::InvalidArgument(format!("invalid mount config for type \"{typ}\": {why}"))
    };
    if target.is_empty() {
        return Err(invalid("field Target must not be empty".into()));
    }
    let destination = check_destination(target, target)?;
    let rw = !m["ReadOnly"].as_bool().unwrap_or(false);
    let row = |kind: &str, source: &str, propagation: &str, options: String, copy_up| MountRow {
        destination: destination.clone(),
        kind: kind.into(),
        source: source.into(),
        rw,
        mode: String::new(),
        propagation: propagation.into(),
        options,
        copy_up,
    };
    match typ {
        "bind" => {
            if source.is_empty() {
                return Err(invalid("field Source must not be empty".into()));
            }
            if !source.starts_with('/') {
                return Err(invalid(format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            // --mount never creates the host path (-v does).
            if !Path::new(source).exists() {
                return Err(invalid(format!(
                    "bind source path does not exist: {source}"
                )));
            }
            let propagation = m["BindOptions"]["Propagation"]
                .as_str()
                .unwrap_or("rprivate");
            if !PROPAGATIONS.contains(&propagation) {
                return Err(invalid(format!("invalid propagation mode: {propagation}")));
            }
            Ok(Planned {
                row: row("bind", source, propagation, String::new(), false),
                labels: HashMap::new(),
                volume_options: HashMap::new(),
            })
        }
        "volume" => {
            if !source.is_empty() {
                validate_name(source)?;
            }
            let labels: HashMap<String, String> =
                serde_json::from_value(m["VolumeOptions"]["Labels"].clone()).unwrap_or_default();
            let copy_up = !m["VolumeOptions"]["NoCopy"].as_bool().unwrap_or(false);
            let driver = &m["VolumeOptions"]["DriverConfig"];
            if let Some(name) = driver["Name"]
                .as_str()
                .filter(|d| !d.is_empty() && *d != "local")
            {
                return Err(Error::NotFound(format!(
                    "error looking up volume plugin {name}: plugin \"{name}\" not found"
                )));
            }
            let volume_options: HashMap<String, String> =
                serde_json::from_value(driver["Options"].clone()).unwrap_or_default();
            Ok(Planned {
                row: row("volume", source, "", String::new(), copy_up),
                labels,
                volume_options,
            })
        }
        "tmpfs" => {
            if !source.is_empty() {
                return Err(invalid("field Source must not be specified".into()));
            }
            let mut opts = Vec::new();
            match m["TmpfsOptions"]["SizeBytes"].as_i64() {
                Some(n) if n < 0 => return Err(invalid(format!("invalid tmpfs size: {n}"))),
                Some(n) if n > 0 => opts.push(format!("size={n}")),
                _ => {}
            }
            if let Some(mode) = m["TmpfsOptions"]["Mode"].as_u64() {
                opts.push(format!("mode={mode:o}"));
            }
            Ok(Planned {
                row: row("tmpfs", "", "", opts.join(","), false),
                labels: HashMap::new(),
                volume_options: HashMap::new(),
            })
        }
        "" => Err(invalid("mount type unknown".into())),
        other => Err(Error::InvalidArgument(format!(
            "mount type {other:?} is not supported by Berth"
        ))),
    }
}

/// `--tmpfs /run:size=64m,mode=1777`. Docker's defaults: noexec, nosuid, nodev.
fn parse_tmpfs(dest: &str, opts: &str) -> Result<Planned> {
    let destination = check_destination(dest, dest)?;
    let mut rw = true;
    let mut options = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => rw = false,
            "rw" => rw = true,
            o if o.starts_with("size=")
                || o.starts_with("mode=")
                || o.starts_with("uid=")
                || o.starts_with("gid=")
                || o.starts_with("nr_inodes=")
                || matches!(o, "exec" | "noexec" | "suid" | "nosuid" | "dev" | "nodev") =>
            {
                options.push(o.to_string())
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "invalid tmpfs option {other:?} for {dest}"
                )))
            }
        }
    }
    Ok(Planned {
        row: MountRow {
            destination,
            kind: "tmpfs".into(),
            source: String::new(),
            rw,
            mode: opts.into(),
            propagation: String::new(),
            options: options.join(","),
            copy_up: false,
        },
        labels: HashMap::new(),
        volume_options: HashMap::new(),
    })
}

/// The explicit mounts and anonymous volumes of a new container.
/// `volumes_from` holds the mounts of each `--volumes-from` container with
/// its mode ("ro", "rw" or "").
pub fn plan(
    config: &ContainerConfig,
    hc: &HostConfig,
    image_volumes: &[String],
    volumes_from: &[(Vec<MountRow>, String)],
) -> Result<Vec<Planned>> {
    let mut out: Vec<Planned> = Vec::new();
    let mut taken = BTreeSet::new();
    let mut explicit = Vec::new();
    for b in hc.binds.iter().flatten() {
        explicit.push(parse_bind(b)?);
    }
    for m in hc.mounts.iter().flatten() {
        let v = serde_json::to_value(m).map_err(Error::internal)?;
        explicit.push(parse_mount(&v)?);
    }
    for (dest, opts) in hc.tmpfs.iter().flatten() {
        explicit.push(parse_tmpfs(dest, opts)?);
    }
    for p in explicit {
        if !taken.insert(p.row.destination.clone()) {
            return Err(Error::InvalidArgument(format!(
                "Duplicate mount point: {}",
                p.row.destination
            )));
        }
        out.push(p);
    }
    for (mounts, mode) in volumes_from {
        for m in mounts.iter().filter(|m| m.kind != "tmpfs") {
            if taken.insert(m.destination.clone()) {
                let mut row = m.clone();
                match mode.as_str() {
                    "ro" => row.rw = false,
                    "rw" => row.rw = true,
                    _ => {}
                }
                // The volume already holds its data.
                row.copy_up = false;
                out.push(Planned {
                    row,
                    labels: HashMap::new(),
                    volume_options: HashMap::new(),
                });
            }
        }
    }
    let anonymous = config
        .volumes
        .iter()
        .flat_map(|v| v.iter().cloned())
        .chain(image_volumes.iter().cloned());
    for dest in anonymous {
        let destination = check_destination(&dest, &dest)?;
        if taken.insert(destination.clone()) {
            out.push(Planned {
                row: MountRow {
                    destination,
                    kind: "volume".into(),
                    source: String::new(),
                    rw: true,
                    mode: String::new(),
                    propagation: String::new(),
                    options: String::new(),
                    copy_up: true,
                },
                labels: HashMap::new(),
                volume_options: HashMap::new(),
            });
        }
    }
    Ok(out)
}

/// `--volumes-from name[:ro|rw]`, split.
pub fn volumes_from_spec(spec: &str) -> Result<(&str, &str)> {
    match spec.split_once(':') {
        None => Ok((spec, "")),
        Some((name, mode @ ("ro" | "rw"))) => Ok((name, mode)),
        Some((_, mode)) => Err(Error::InvalidArgument(format!(
            "invalid mode for volumes-from: {mode}"
        ))),
    }
}

/// Fills an empty volume from what the image has at its destination, as
/// Docker does on first use. The destination is resolved inside the
/// container's root, so a symlink in the image cannot make us copy host
/// files; `cp -a` keeps owners, modes and links and follows none.
pub fn copy_up(rootfs: &Path, destination: &str, data: &Path) -> Result<()> {
    let empty = std::fs::read_dir(data)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty {
        return Ok(());
    }
    let root = Confined::open(rootfs)?;
    let rel = destination.trim_start_matches('/');
    let Ok(dir) = root.dir(Path::new(rel), false, 0) else {
        return Ok(()); // nothing there in the image
    };
    // The real path of what openat2 resolved inside the root.
    let real = std::fs::read_link(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        dir.as_raw_fd()
    }))?;
    if !real.starts_with(rootfs) {
        return Err(Error::Internal(format!(
            "volume source {destination} resolved outside the container"
        )));
    }
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(format!("{}/.", real.display()))
        .arg(data)
        .output()?;
    if !out.status.success() {
        return Err(Error::Internal(format!(
            "copying {destination} into its volume: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Inspect's `Mounts` entry.
pub fn document(m: &MountRow, volume_path: impl Fn(&str) -> std::path::PathBuf) -> MountPoint {
    let entry = |kind: &str, source: String| MountPoint {
        typ: Some(kind.into()),
        source: Some(source),
        destination: Some(m.destination.clone()),
        mode: Some(m.mode.clone()),
        rw: Some(m.rw),
        propagation: Some(m.propagation.clone()),
        ..Default::default()
    };
    match m.kind.as_str() {
        "volume" => MountPoint {
            name: Some(m.source.clone()),
            driver: Some("local".into()),
            ..entry("volume", volume_path(&m.source).display().to_string())
        },
        "tmpfs" => MountPoint {
            propagation: Some(String::new()),
            ..entry("tmpfs", String::new())
        },
        _ => entry("bind", m.source.clone()),
    }
}

fn oci_mount(
    destination: &str,
    kind: &str,
    source: &str,
    options: Vec<String>,
) -> oci_spec::runtime::Mount {
    let mut m = oci_spec::runtime::Mount::default();
    m.set_destination(destination.into())
        .set_typ(Some(kind.into()))
        .set_source(Some(source.into()))
        .set_options(Some(options));
    m
}

/// The OCI mounts, parents before children.
pub fn oci_mounts(
    mounts: &[MountRow],
    volume_path: impl Fn(&str) -> std::path::PathBuf,
) -> Vec<oci_spec::runtime::Mount> {
    let mut sorted: Vec<&MountRow> = mounts.iter().collect();
    sorted.sort_by_key(|m| m.destination.matches('/').count());
    sorted
        .into_iter()
        .map(|m| {
            let rw = if m.rw { "rw" } else { "ro" };
            match m.kind.as_str() {
                "tmpfs" => {
                    let mut options = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
                    options.push(rw.into());
                    options.extend(
                        m.options
                            .split(',')
                            .filter(|o| !o.is_empty())
                            .map(String::from),
                    );
                    oci_mount(&m.destination, "tmpfs", "tmpfs", options)
                }
                kind => {
                    let source = if kind == "volume" {
                        volume_path(&m.source).display().to_string()
                    } else {
                        m.source.clone()
                    };
                    let propagation = if m.propagation.is_empty() {
                        "rprivate"
                    } else {
                        &m.propagation
                    };
                    let mut options = vec!["rbind".to_string(), rw.into(), propagation.into()];
                    options.extend(kept_flags(Path::new(&source)).iter().map(|f| f.to_string()));
                    oci_mount(&m.destination, "bind", &source, options)
                }
            }
        })
        .collect()
}

/// The restrictions of the mount a bind source sits on (a volume mounted
/// with `-o noexec`, a host directory on a nosuid filesystem): named in the
/// bind's options, since a runtime remounting the bind with only the
/// options it was given (crun does) would otherwise lift them.
fn kept_flags(source: &Path) -> Vec<&'static str> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(source) else {
        return Vec::new();
    };
    let flags = st.flags();
    [
        (FsFlags::ST_NOSUID, "nosuid"),
        (FsFlags::ST_NODEV, "nodev"),
        (FsFlags::ST_NOEXEC, "noexec"),
    ]
    .into_iter()
    .filter(|(f, _)| flags.contains(*f))
    .map(|(_, name)| name)
    .collect()
}

impl crate::containers::Containers {
    /// Creates the volumes a new container's plan needs and stores its
    /// mounts. A bind mount's missing host directory is made here (`-v`).
    pub(crate) async fn attach_mounts(&self, id: &str, plan: Vec<Planned>) -> Result<()> {
        let mut rows = Vec::new();
        for p in plan {
            let mut row = p.row;
            match row.kind.as_str() {
                "volume" => {
                    let name = (!row.source.is_empty()).then_some(row.source.as_str());
                    let v = self
                        .volumes
                        .create(name, None, p.labels, p.volume_options)
                        .await?;
                    row.source = v.name;
                }
                "bind" if !Path::new(&row.source).exists() => {
                    std::fs::create_dir_all(&row.source)?;
                }
                _ => {}
            }
            rows.push(row);
        }
        self.store.set_container_mounts(id, &rows).await
    }

    /// The mounts of `--volumes-from` containers, with their modes.
    pub(crate) async fn volumes_from(
        &self,
        hc: &HostConfig,
    ) -> Result<Vec<(Vec<MountRow>, String)>> {
        let mut out = Vec::new();
        for spec in hc.volumes_from.iter().flatten() {
            let (name, mode) = volumes_from_spec(spec)?;
            let c = self.lookup(name).await?;
            out.push((self.store.container_mounts(&c.id).await?, mode.to_string()));
        }
        Ok(out)
    }

    /// Before a start: mounts volumes' filesystems (driver options), fills
    /// empty volumes from the image and returns the OCI mounts, with a hold
    /// that the caller keeps until the container is recorded as running.
    pub(crate) async fn prepare_mounts(
        &self,
        c: &Container,
    ) -> Result<(Vec<oci_spec::runtime::Mount>, crate::volumes::VolumeHold)> {
        let mounts = self.store.container_mounts(&c.id).await?;
        let names: Vec<String> = mounts
            .iter()
            .filter(|m| m.kind == "volume")
            .map(|m| m.source.clone())
            .collect();
        let hold = self.volumes.mount_for_start(&names).await?;
        let rootfs = self.paths(&c.id).rootfs();
        for m in mounts.iter().filter(|m| m.kind == "volume") {
            if m.copy_up {
                copy_up(&rootfs, &m.destination, &self.volumes.data_path(&m.source))?;
            }
            self.volumes.event(
                "mount",
                &m.source,
                &[
                    ("container", c.id.as_str()),
                    ("destination", m.destination.as_str()),
                    ("read/write", if m.rw { "true" } else { "false" }),
                ],
            );
        }
        Ok((oci_mounts(&mounts, |n| self.volumes.data_path(n)), hold))
    }

    /// After a container stopped or failed to start: its volumes are
    /// released (`unmount` events; filesystems unmounted when unused).
    pub(crate) async fn release_mounts(&self, id: &str) {
        let names: Vec<String> = match self.store.container_mounts(id).await {
            Ok(mounts) => mounts
                .into_iter()
                .filter(|m| m.kind == "volume")
                .map(|m| m.source)
                .collect(),
            Err(e) => {
                warn!(container_id = %id, error = %e, "reading mounts to release");
                return;
            }
        };
        self.volumes.release_after_exit(id, &names).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_and_volumes_parse_like_docker() {
        let b = parse_bind("/srv:/data:ro,rshared").unwrap().row;
        assert_eq!(
            (b.kind.as_str(), b.rw, b.propagation.as_str()),
            ("bind", false, "rshared")
        );
        let v = parse_bind("cache:/var/cache//").unwrap().row;
        assert_eq!(
            (v.kind.as_str(), v.destination.as_str()),
            ("volume", "/var/cache")
        );
        for bad in ["/a", "/a:rel", "/a:/", "../x:/y", "/a:/b:bogus", "a:b:c:d"] {
            assert!(parse_bind(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn explicit_mounts_win_and_duplicates_are_refused() {
        let hc = HostConfig {
            binds: Some(vec!["/srv:/data".into()]),
            tmpfs: Some([("/run".to_string(), "size=1m".to_string())].into()),
            ..Default::default()
        };
        let config = ContainerConfig {
            volumes: Some(vec!["/data".to_string()]),
            ..Default::default()
        };
        let p = plan(&config, &hc, &["/var/lib".into()], &[]).unwrap();
        let dests: Vec<_> = p
            .iter()
            .map(|p| (p.row.kind.as_str(), p.row.destination.as_str()))
            .collect();
        assert_eq!(
            dests,
            [("bind", "/data"), ("tmpfs", "/run"), ("volume", "/var/lib")]
        );
        let dup = HostConfig {
            binds: Some(vec!["/a:/x".into(), "v1:/x".into()]),
            ..Default::default()
        };
        assert!(plan(&config, &dup, &[], &[])
            .unwrap_err()
            .to_string()
            .contains("Duplicate mount point: /x"));
    }
}
