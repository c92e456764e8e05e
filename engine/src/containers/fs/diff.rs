//! `docker diff`: what a container changed, read from its overlay upper
//! directory. Kinds as Docker numbers them: 0 modified, 1 added, 2 deleted.
//! Mount points the runtime had to create (/etc/hosts, /proc, ...) are not
//! changes a user made and are left out, as Docker's init layer hides them.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::confined::{fd_path, Confined};
use crate::containers::Containers;
use crate::error::{Error, Result};

/// Where every container gets something mounted.
const MOUNT_POINTS: &[&str] = &[
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/dev/console",
    "/sys/fs/cgroup",
];

/// Takes out of an upper directory the placeholders the runtime made for
/// its mount points (an empty /etc/hosts, an empty /proc), deepest first,
/// so that a committed build step holds only what the step itself wrote.
pub fn forget_mount_points(upper: &Path) {
    let Ok(root) = Confined::open(upper) else {
        return;
    };
    for p in MOUNT_POINTS.iter().rev() {
        remove_placeholder(&root, Path::new(p.trim_start_matches('/')));
    }
}

/// Removes `rel` below an upper directory when it is what a mount point
/// leaves behind: an empty file or an empty directory. Resolved inside
/// the directory, since what a container wrote there (a symlink `/x` ->
/// `/etc`) must not lead the removal to the host. True when removed.
pub fn remove_placeholder(upper: &Confined, rel: &Path) -> bool {
    let (Some(name), parent) = (rel.file_name(), rel.parent().unwrap_or(Path::new(""))) else {
        return false;
    };
    let Ok(dir) = upper.dir(parent, false, 0) else {
        return false;
    };
    let path = fd_path(&dir, name);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() && m.len() == 0 => std::fs::remove_file(&path).is_ok(),
        Ok(m) if m.is_dir() => std::fs::remove_dir(&path).is_ok(), // only when empty
        _ => false,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct FsChange {
    pub path: String,
    pub kind: u8,
}

impl Containers {
    /// `GET /containers/{id}/changes`
    pub async fn diff(&self, name: &str) -> Result<Vec<FsChange>> {
        let c = self.lookup(name).await?;
        let image = self
            .store
            .image(&c.image_id)
            .await?
            .ok_or_else(|| Error::no_such_image(&c.image_ref))?;
        let lowers: Vec<PathBuf> = image
            .chains
            .iter()
            .rev()
            .map(|ch| self.images.snapshot_fs(ch))
            .collect();
        let upper = self.paths(&c.id).upper();
        tokio::task::spawn_blocking(move || changes(&upper, &lowers))
            .await
            .map_err(Error::internal)?
    }
}

/// The changes recorded in `upper` over `lowers` (top layer first).
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<FsChange>> {
    let mut out = Vec::new();
    if upper.is_dir() {
        walk(upper, Path::new("/"), lowers, false, &mut out)?;
    }
    // Directories that only changed because a mount point was created in
    // them are no change either.
    let mut kept: Vec<FsChange> = Vec::new();
    for ch in out.into_iter().rev() {
        let is_parent = kept.iter().any(|k| {
            k.path
                .starts_with(&format!("{}/", ch.path.trim_end_matches('/')))
        });
        if ch.kind == 0
            && !is_parent
            && MOUNT_POINTS
                .iter()
                .any(|m| m.starts_with(&format!("{}/", ch.path)))
        {
            continue;
        }
        kept.push(ch);
    }
    kept.reverse();
    Ok(kept)
}

fn walk(
    dir: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    hidden_below: bool,
    out: &mut Vec<FsChange>,
) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = rel.join(e.file_name());
        let shown = path.display().to_string();
        let meta = std::fs::symlink_metadata(e.path())?;
        if meta.file_type().is_char_device() && meta.rdev() == 0 {
            out.push(FsChange {
                path: shown,
                kind: 2,
            });
            continue;
        }
        if MOUNT_POINTS.contains(&shown.as_str()) && !meta.is_dir()
            || (MOUNT_POINTS.contains(&shown.as_str()) && empty_dir(&e.path()))
        {
            continue;
        }
        // Below an opaque directory nothing of the lower layers shows.
        let in_lower = !hidden_below
            && lowers.iter().any(|l| {
                std::fs::symlink_metadata(l.join(path.strip_prefix("/").unwrap_or(&path))).is_ok()
            });
        out.push(FsChange {
            path: shown,
            kind: if in_lower { 0 } else { 1 },
        });
        if meta.is_dir() {
            let opaque = crate::tarball::is_opaque(&e.path());
            walk(
                &e.path(),
                &path,
                lowers,
                hidden_below || opaque || !in_lower,
                out,
            )?;
        }
    }
    Ok(())
}

fn empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_removed_inside_the_upper_directory_only() {
        let base = std::env::temp_dir().join(format!("berth-placeholder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (upper, outside) = (base.join("upper"), base.join("outside"));
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::create_dir_all(outside.join("empty")).unwrap();
        std::fs::write(outside.join("hosts"), b"").unwrap();
        std::fs::write(upper.join("etc/hosts"), b"").unwrap();
        std::fs::write(upper.join("etc/kept"), b"data").unwrap();
        std::os::unix::fs::symlink(&outside, upper.join("link")).unwrap();
        let root = Confined::open(&upper).unwrap();
        assert!(remove_placeholder(&root, Path::new("etc/hosts")));
        assert!(!remove_placeholder(&root, Path::new("etc/kept")));
        assert!(!remove_placeholder(&root, Path::new("link/hosts")));
        assert!(!remove_placeholder(&root, Path::new("link/empty")));
        assert!(outside.join("hosts").exists() && outside.join("empty").is_dir());
        assert!(upper.join("etc/kept").exists() && !upper.join("etc/hosts").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn added_modified_and_mount_points() {
        let base = std::env::temp_dir().join(format!("berth-diff-{}", std::process::id()));
        let (upper, lower) = (base.join("upper"), base.join("lower"));
        for d in [
            upper.join("etc"),
            upper.join("tmp/new"),
            upper.join("proc"),
            lower.join("etc"),
            lower.join("tmp"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(lower.join("etc/passwd"), "a").unwrap();
        std::fs::write(upper.join("etc/passwd"), "b").unwrap();
        std::fs::write(upper.join("etc/hosts"), "").unwrap();
        std::fs::write(upper.join("tmp/new/f"), "").unwrap();
        let got = changes(&upper, &[lower]).unwrap();
        let want = [
            ("/etc", 0),
            ("/etc/passwd", 0),
            ("/tmp", 0),
            ("/tmp/new", 1),
            ("/tmp/new/f", 1),
        ];
        assert_eq!(
            got,
            want.iter()
                .map(|(p, k)| FsChange {
                    path: p.to_string(),
                    kind: *k
                })
                .collect::<Vec<_>>()
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
