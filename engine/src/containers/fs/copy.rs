//! `docker cp`: HEAD, GET and PUT /containers/{id}/archive.
//!
//! Every container path is resolved by the kernel inside the container's
//! root (`Confined`, openat2 with RESOLVE_IN_ROOT), so `..` and symlinks
//! in the container, absolute or relative, can never lead outside it.
//! Reading a tree walks it by path below the resolved descriptor, so a
//! running container is paused meanwhile (as Docker does): it cannot swap a
//! directory for a symlink under the walk. Writing goes through
//! descriptors only (`images::unpack::extract`).
//!
//! A stopped container's overlay is mounted for the time of the copy,
//! under the container's lock so that a start cannot interleave.

use std::ffi::OsString;
use std::io::{Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use tokio::io::AsyncRead;

use crate::confined::Confined;
use crate::containers::record::Container;
use crate::containers::{fs::rootfs, Containers};
use crate::error::{Error, Result};
use crate::images::unpack::{self, ApplyOptions, UnpackError};
use crate::tarball::{TreeWriter, Whiteouts};

/// The X-Docker-Container-Path-Stat document (base64 JSON in the header).
#[derive(Debug, Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's os.FileMode: permission bits plus type bits high up.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Options of `PUT /containers/{id}/archive`.
pub struct CopyIn {
    pub no_overwrite_dir_non_dir: bool,
    /// `docker cp -a`: keep the archive's owners; else root owns everything.
    pub copy_uid_gid: bool,
}

/// A container path made relative, `..` clamped at the root as the kernel
/// does for `/..`; and whether its last symlink is to be followed (a
/// trailing `/` or `/.`).
fn split(path: &str) -> (PathBuf, bool) {
    let follow = path.ends_with('/') || path.ends_with("/.") || path == ".";
    let mut rel = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::ParentDir => {
                rel.pop();
            }
            _ => {}
        }
    }
    (rel, follow)
}

/// Where a path is: the descriptor of the resolved directory holding it and
/// its name there (`None`: the path is that directory itself).
struct Located {
    dir: OwnedFd,
    name: Option<OsString>,
    /// The base name shown to the client (`.` for `dir/.`).
    shown: String,
    /// A file Berth bind-mounts over this path at run time (/etc/hosts…):
    /// its content is what the container sees.
    mounted: Option<PathBuf>,
}

impl Located {
    /// Points at the file bind-mounted over `path`, if it is one of the
    /// container's /etc files (read from the container's directory).
    fn with_mounted(mut self, container_dir: &Path, path: &str) -> Located {
        let (rel, _) = split(path);
        let own = match rel.to_str() {
            Some("etc/hostname") => "hostname",
            Some("etc/hosts") => "hosts",
            Some("etc/resolv.conf") => "resolv.conf",
            _ => return self,
        };
        let file = container_dir.join(own);
        if file.is_file() {
            self.mounted = Some(file);
        }
        self
    }

    fn proc_path(&self) -> PathBuf {
        if let Some(m) = &self.mounted {
            return m.clone();
        }
        let base = PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()));
        // `N/.` is the directory itself; `N` alone would be the magic
        // link in /proc, which lstat and the tar writer must not see.
        base.join(self.name.as_deref().unwrap_or(std::ffi::OsStr::new(".")))
    }
}

fn locate(root: &Confined, path: &str) -> std::io::Result<Located> {
    let (rel, follow) = split(path);
    let shown = if path.ends_with("/.") || path == "." {
        ".".to_string()
    } else {
        rel.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into())
    };
    if follow || rel.as_os_str().is_empty() {
        return Ok(Located {
            dir: root.lookup(&rel)?,
            name: None,
            shown,
            mounted: None,
        });
    }
    let parent = rel.parent().unwrap_or(Path::new(""));
    let dir = root.dir(parent, false, 0)?;
    let name = rel.file_name().map(|n| n.to_os_string());
    let loc = Located {
        dir,
        name,
        shown,
        mounted: None,
    };
    std::fs::symlink_metadata(loc.proc_path())?;
    Ok(loc)
}

fn stat_of(loc: &Located) -> std::io::Result<PathStat> {
    let p = loc.proc_path();
    let meta = std::fs::symlink_metadata(&p)?;
    let link_target = if meta.file_type().is_symlink() {
        std::fs::read_link(&p)?.display().to_string()
    } else {
        String::new()
    };
    Ok(PathStat {
        name: loc.shown.clone(),
        size: meta.size() as i64,
        mode: go_file_mode(meta.mode()),
        mtime: berth_proto::timefmt::format(meta.mtime(), meta.mtime_nsec() as u32),
        link_target,
    })
}

/// st_mode → Go's os.FileMode bits, which the docker CLI decodes.
fn go_file_mode(st: u32) -> u32 {
    let mut m = st & 0o777;
    let kind = st & libc::S_IFMT;
    m |= match kind {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    if st & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if st & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if st & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

/// Bind-mounts (source, destination, rw) on the root, shallow first; each
/// destination is resolved (and made) inside the root, and the mount goes
/// onto the descriptor's /proc path, so no symlink in the container leads a
/// mount outside it. Unmounting the overlay (MNT_DETACH) takes them along.
fn mount_volumes(root: &Confined, mut mounts: Vec<(PathBuf, String, bool)>) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    mounts.sort_by_key(|(_, dest, _)| Path::new(dest).components().count());
    for (source, dest, rw) in mounts {
        let Ok(meta) = std::fs::metadata(&source) else {
            continue; // a bind source gone since: dockerd would fail the start, not the copy
        };
        let (rel, _) = split(&dest);
        let target = if meta.is_dir() {
            root.dir(&rel, true, 0o755)?
        } else {
            let (parent, name) = root.parent_of(&rel)?;
            match nix::fcntl::openat(
                Some(parent.as_raw_fd()),
                name.as_os_str(),
                nix::fcntl::OFlag::O_CREAT
                    | nix::fcntl::OFlag::O_WRONLY
                    | nix::fcntl::OFlag::O_NOFOLLOW
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::from_bits_truncate(0o644),
            ) {
                Ok(fd) => {
                    let _ = nix::unistd::close(fd);
                }
                Err(nix::Error::EISDIR) => {}
                Err(e) => return Err(Error::Internal(format!("mount point {dest}: {e}"))),
            }
            root.lookup(&rel)?
        };
        let on = PathBuf::from(format!("/proc/self/fd/{}", target.as_raw_fd()));
        let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount(Some(&source), &on, None::<&str>, bind, None::<&str>).map_err(|e| {
            Error::Internal(format!("mounting {} on {dest}: {e}", source.display()))
        })?;
        if !rw {
            let ro = bind | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, &on, None::<&str>, ro, None::<&str>)
                .map_err(|e| Error::Internal(format!("read-only {dest}: {e}")))?;
        }
    }
    Ok(())
}

fn not_found(c: &Container, path: &str) -> Error {
    Error::NotFound(format!(
        "Could not find the file {path} in container {}",
        c.name
    ))
}

impl Containers {
    /// Runs `f` on the container's root (and its directory under the
    /// data-root) with its overlay mounted; a running container is paused
    /// around it when `freeze` is set.
    async fn with_root<T: Send + 'static>(
        &self,
        name: &str,
        freeze: bool,
        f: impl FnOnce(Container, Confined, PathBuf) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let c = self.lookup(name).await?;
        let lock = self.lock_of(&c.id);
        let guard = lock.lock().await;
        let c = self.lookup(&c.id).await?;
        let paths = self.paths(&c.id);
        let mounted_here = !rootfs::is_mountpoint(&paths.rootfs());
        if mounted_here {
            self.mount_rootfs(&c).await?;
        }
        let thaw = freeze
            && c.is_running()
            && c.state.status != "paused"
            && self.core.set_paused(&c.id, true).await.is_ok();
        if !mounted_here && !thaw {
            // Running: the mount stays while it runs; the lock is not needed.
            drop(guard);
        }
        // A stopped container's volumes and binds are not on its root:
        // mount them for the copy, as dockerd does (unmounted with it).
        let volumes = if mounted_here {
            self.store
                .container_mounts(&c.id)
                .await?
                .into_iter()
                .filter_map(|m| {
                    let source = match m.kind.as_str() {
                        "bind" => PathBuf::from(&m.source),
                        "volume" => self.volumes.data_path(&m.source),
                        _ => return None, // tmpfs: nothing to see when stopped
                    };
                    Some((source, m.destination, m.rw))
                })
                .collect()
        } else {
            Vec::new()
        };
        let root = Confined::open(&paths.rootfs());
        let id = c.id.clone();
        let dir = paths.dir.clone();
        let result = match root {
            Ok(root) => tokio::task::spawn_blocking(move || {
                mount_volumes(&root, volumes)?;
                f(c, root, dir)
            })
            .await
            .map_err(Error::internal)
            .and_then(|r| r),
            Err(e) => Err(e.into()),
        };
        if thaw {
            if let Err(e) = self.core.set_paused(&id, false).await {
                tracing::warn!(container_id = %id, error = %e, "resuming a container paused for docker cp");
            }
        }
        if mounted_here {
            let _ = rootfs::unmount_rootfs(&paths);
        }
        result
    }

    /// `HEAD /containers/{id}/archive?path=`
    pub async fn stat_path(&self, name: &str, path: &str) -> Result<PathStat> {
        let path = path.to_string();
        self.with_root(name, false, move |c, root, dir| {
            locate(&root, &path)
                .and_then(|l| stat_of(&l.with_mounted(&dir, &path)))
                .map_err(|_| not_found(&c, &path))
        })
        .await
    }

    /// `GET /containers/{id}/archive?path=`: the stat and a tar of the path
    /// (in an unlinked temporary file, so nothing stays paused while the
    /// client reads).
    pub async fn copy_from(&self, name: &str, path: &str) -> Result<(PathStat, std::fs::File)> {
        let path = path.to_string();
        let tmp = self
            .images
            .tmp_dir()
            .join(format!("cp-{}", crate::util::random_id()));
        let out = self
            .with_root(name, true, move |c, root, dir| {
                let loc = locate(&root, &path)
                    .map_err(|_| not_found(&c, &path))?
                    .with_mounted(&dir, &path);
                let stat = stat_of(&loc)?;
                let mut file = std::fs::File::options()
                    .create_new(true)
                    .read(true)
                    .write(true)
                    .open(&tmp)?;
                let _ = std::fs::remove_file(&tmp);
                let mut tree = TreeWriter::new(std::io::BufWriter::new(&mut file), Whiteouts::Keep);
                tree.add_named(&loc.proc_path(), &loc.shown)?;
                tree.finish()?.flush()?;
                file.rewind()?;
                Ok((stat, file))
            })
            .await?;
        Ok(out)
    }

    /// `PUT /containers/{id}/archive?path=DIR`: extracts a tar (spooled to
    /// disk first) into the directory DIR of the container.
    pub async fn copy_to(
        &self,
        name: &str,
        path: &str,
        body: impl AsyncRead + Unpin,
        opts: CopyIn,
    ) -> Result<()> {
        let c = self.lookup(name).await?;
        if c.host_config.readonly_rootfs.unwrap_or(false) {
            return Err(Error::Forbidden(
                "container rootfs is marked read-only".into(),
            ));
        }
        let tmp = self
            .images
            .tmp_dir()
            .join(format!("cp-in-{}", crate::util::random_id()));
        let mut spool = tokio::fs::File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&tmp)
            .await?;
        let _ = tokio::fs::remove_file(&tmp).await;
        let mut body = body;
        tokio::io::copy(&mut body, &mut spool)
            .await
            .map_err(|e| Error::InvalidArgument(format!("reading the archive: {e}")))?;
        let mut spool = spool.into_std().await;
        spool.rewind()?;
        let path = path.to_string();
        let id = c.id.clone();
        self.with_root(&id, false, move |c, root, _| {
            let (rel, _) = split(&path);
            let dir = root.lookup(&rel).map_err(|_| not_found(&c, &path))?;
            let meta = std::fs::metadata(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
            if !meta.is_dir() {
                // A 500 in dockerd, which the CLI shows as it is.
                return Err(Error::Internal(
                    "extraction point is not a directory".into(),
                ));
            }
            // Entries are written below the resolved directory, confined to it.
            let target = Confined::open(Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())))?;
            let apply = ApplyOptions {
                whiteouts: false,
                owner: if opts.copy_uid_gid {
                    None
                } else {
                    Some((0, 0))
                },
                no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
                mode: None,
            };
            // dockerd takes the archive gzip- or zstd-compressed too.
            let archive = unpack::decompress(spool)
                .map_err(|e| Error::InvalidArgument(format!("reading the archive: {e}")))?;
            unpack::extract(std::io::BufReader::new(archive), &target, &apply).map_err(
                |e| match e {
                    UnpackError::Io(e) => Error::from(e),
                    UnpackError::Refused(m) => Error::InvalidArgument(m),
                    other => Error::InvalidArgument(other.to_string()),
                },
            )?;
            Ok(())
        })
        .await?;
        let c = self.lookup(&id).await?;
        self.event(&c, "copy", &[]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_clamped_and_trailing_dots_follow() {
        assert_eq!(split("/etc/../../x"), (PathBuf::from("x"), false));
        assert_eq!(split("/etc/"), (PathBuf::from("etc"), true));
        assert_eq!(split("/etc/."), (PathBuf::from("etc"), true));
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
    }
}
