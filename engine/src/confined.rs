//! File operations confined to a root directory (an image layer, a
//! container's root filesystem, a build context).
//!
//! Paths are resolved by the kernel with `openat2(RESOLVE_IN_ROOT)`: `..`
//! and symlinks, absolute or relative, are resolved as if the root were `/`,
//! so no name in untrusted input can lead outside it. New entries are then
//! created relative to the resolved parent's descriptor (mkdirat, openat
//! with O_NOFOLLOW, symlinkat, linkat, mknodat), never through a path that
//! could be swapped underneath us.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

pub struct Confined {
    root: OwnedFd,
}

fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass descriptors just returned by a successful syscall,
    // which nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Cleans a path lexically into a relative one: leading `/` dropped, `.`
/// removed, `..` applied. `None` when `..` would climb above the root: the
/// caller treats such input as hostile.
pub fn clean(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(c) => out.push(c),
        }
    }
    Some(out)
}

impl Confined {
    pub fn open(root: &Path) -> io::Result<Confined> {
        let fd = nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        Ok(Confined { root: own(fd) })
    }

    fn resolve(&self, rel: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.root.as_raw_fd(), rel, how)
            .map(own)
            .map_err(io_err)
    }

    /// Opens the directory `rel` (resolved inside the root), creating missing
    /// components with `mode` when `create` is set.
    pub fn dir(&self, rel: &Path, create: bool, mode: u32) -> io::Result<OwnedFd> {
        match self.resolve(rel, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {}
            Err(e) => return Err(e),
        }
        let mut cur = self.resolve(Path::new(""), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        let mut so_far = PathBuf::new();
        for comp in rel.components() {
            so_far.push(comp);
            match self.resolve(&so_far, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(fd) => cur = fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let name = comp.as_os_str();
                    match nix::sys::stat::mkdirat(
                        Some(cur.as_raw_fd()),
                        name,
                        Mode::from_bits_truncate(mode),
                    ) {
                        Ok(()) | Err(nix::Error::EEXIST) => {}
                        Err(e) => return Err(io_err(e)),
                    }
                    cur = self.resolve(&so_far, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(cur)
    }

    /// An `O_PATH` descriptor of `rel`, every symlink (the last one too)
    /// resolved inside the root.
    pub fn lookup(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.resolve(rel, OFlag::O_PATH)
    }

    /// Opens a file for reading, resolved inside the root.
    pub fn open_file(&self, rel: &Path) -> io::Result<File> {
        Ok(File::from(self.resolve(rel, OFlag::O_RDONLY)?))
    }

    /// Splits `rel` into its (created) parent directory and final name.
    pub fn parent_of(&self, rel: &Path) -> io::Result<(OwnedFd, std::ffi::OsString)> {
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no name"))?
            .to_os_string();
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok((self.dir(parent, true, 0o755)?, name))
    }
}

/// A path that names `name` inside the directory open as `dir`, for std
/// functions that only take paths (recursive removal). `/proc/self/fd/N`
/// names the very directory we resolved, not whatever is at its path now.
pub fn fd_path(dir: &OwnedFd, name: &std::ffi::OsStr) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_refuses_to_climb_out() {
        assert_eq!(
            clean(Path::new("/etc/passwd")).unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(
            clean(Path::new("a/./b/../c")).unwrap(),
            PathBuf::from("a/c")
        );
        assert!(clean(Path::new("../x")).is_none());
        assert!(clean(Path::new("a/../../x")).is_none());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let base = std::env::temp_dir().join(format!("berth-confined-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let c = Confined::open(&root).unwrap();
        // Both links point at the root itself, so creating through them stays inside.
        let (dir, name) = c.parent_of(Path::new("escape/tmp-marker")).unwrap();
        std::fs::write(fd_path(&dir, &name), b"x").unwrap();
        assert!(root.join("tmp-marker").exists());
        assert!(!Path::new("/tmp-marker").exists());
        c.dir(Path::new("up/made"), true, 0o755).unwrap();
        assert!(root.join("made").is_dir());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
