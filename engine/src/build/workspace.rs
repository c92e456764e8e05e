//! A step's writable view of an image without a container: an overlay
//! mount of the image's snapshots under a fresh upper directory, into which
//! COPY, ADD and WORKDIR write; the upper directory then becomes the step's
//! layer. The same mount, never written, is how `COPY --from` reads
//! another stage or image.

use std::path::{Path, PathBuf};

use crate::containers::fs::rootfs;
use crate::containers::record::Paths;
use crate::error::Result;
use crate::images::Images;
use crate::store::ImageRow;

pub struct Workspace {
    paths: Paths,
}

impl Workspace {
    /// Mounts `image` at `<dir>/rootfs` with `<dir>/upper` on top.
    pub fn mount(images: &Images, image: &ImageRow, dir: PathBuf) -> Result<Workspace> {
        let lowers: Vec<PathBuf> = image.chains.iter().map(|c| images.snapshot_fs(c)).collect();
        let paths = Paths { dir };
        rootfs::mount_rootfs(&paths, &lowers)?;
        Ok(Workspace { paths })
    }

    pub fn rootfs(&self) -> PathBuf {
        self.paths.rootfs()
    }

    pub fn upper(&self) -> PathBuf {
        self.paths.upper()
    }

    /// Whether the step wrote anything.
    pub fn changed(&self) -> bool {
        std::fs::read_dir(self.upper()).is_ok_and(|mut d| d.next().is_some())
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Err(e) = rootfs::unmount_rootfs(&self.paths) {
            tracing::warn!(error = %e, "unmounting a build workspace");
        }
    }
}

/// Unmounts everything mounted below `root` (a build's directory, or all of
/// them after a crash), deepest first.
pub fn unmount_below(root: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(root))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(Path::new(&p), nix::mount::MntFlags::MNT_DETACH);
    }
}
