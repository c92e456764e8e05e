//! Unpacking one layer (a tar stream, plain, gzip or zstd) into a snapshot
//! directory, while computing its diff id (sha256 of the uncompressed tar).
//!
//! Every entry is created through [`Confined`], so absolute names, `..`,
//! and symlinks or hard links that point outside cannot write outside the
//! snapshot. A name whose `..` climbs above the root is refused outright,
//! as Docker refuses it ("breakout"). AUFS-style whiteouts become overlayfs
//! whiteouts: `.wh.NAME` a 0/0 character device, `.wh..wh..opq` the
//! `trusted.overlay.opaque` attribute on its directory.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use sha2::{Digest, Sha256};

use crate::confined::{clean, fd_path, Confined};

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("invalid layer: {0}")]
    Invalid(String),
    #[error("layer path {0:?} escapes the layer root (breakout)")]
    Breakout(PathBuf),
    /// Refused as `docker cp` refuses it; the message is the user's.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    pub count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads to the end (tar padding included) and returns "sha256:<hex>".
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Turns a possibly compressed stream into the tar stream it holds.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = io::BufReader::new(reader);
    let head = io::BufRead::fill_buf(&mut buffered)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Box::new(flate2::read::MultiGzDecoder::new(buffered)));
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(Box::new(zstd::stream::read::Decoder::with_buffer(
            buffered,
        )?));
    }
    Ok(Box::new(buffered))
}

/// Unpacks a layer into `dest` (an existing, empty directory); returns its
/// diff id. (Its size is what its files hold: `Images::record_snapshot_size`.)
pub fn unpack_layer(reader: impl Read, dest: &Path) -> Result<String, UnpackError> {
    let tar_stream = decompress(reader)?;
    let mut hashing = HashingReader::new(tar_stream);
    {
        let mut archive = tar::Archive::new(&mut hashing);
        archive.set_ignore_zeros(false);
        let root = Confined::open(dest)?;
        for entry in archive
            .entries()
            .map_err(|e| UnpackError::Invalid(e.to_string()))?
        {
            let mut entry = entry.map_err(|e| UnpackError::Invalid(e.to_string()))?;
            apply_entry(&root, &mut entry, &ApplyOptions::LAYER)?;
        }
    }
    Ok(hashing.finish()?.0)
}

/// How tar entries are applied: as an image layer, or as `docker cp` does.
pub struct ApplyOptions {
    /// `.wh.` names are whiteouts (layers), not plain files (cp).
    pub whiteouts: bool,
    /// Every entry gets this owner instead of the archive's (cp without -a).
    pub owner: Option<(u32, u32)>,
    /// Refuse to replace a directory with a non-directory and back (cp).
    pub no_overwrite_dir_non_dir: bool,
    /// Every entry but symlinks gets this mode (`COPY --chmod`).
    pub mode: Option<u32>,
}

impl ApplyOptions {
    pub const LAYER: ApplyOptions = ApplyOptions {
        whiteouts: true,
        owner: None,
        no_overwrite_dir_non_dir: false,
        mode: None,
    };
}

/// Applies a plain tar stream below `root` with `opts` (`docker cp` into a
/// container); returns how many entries were written.
pub fn extract(
    reader: impl Read,
    root: &Confined,
    opts: &ApplyOptions,
) -> Result<u64, UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let mut n = 0;
    for entry in archive
        .entries()
        .map_err(|e| UnpackError::Invalid(e.to_string()))?
    {
        let mut entry = entry.map_err(|e| UnpackError::Invalid(e.to_string()))?;
        apply_entry(root, &mut entry, opts)?;
        n += 1;
    }
    Ok(n)
}

fn apply_entry<R: Read>(
    root: &Confined,
    entry: &mut tar::Entry<R>,
    opts: &ApplyOptions,
) -> Result<(), UnpackError> {
    let raw = entry
        .path()
        .map_err(|e| UnpackError::Invalid(e.to_string()))?
        .into_owned();
    let rel = clean(&raw).ok_or_else(|| UnpackError::Breakout(raw.clone()))?;
    if rel.as_os_str().is_empty() {
        return Ok(()); // the root itself ("./")
    }
    let name = rel.file_name().unwrap_or_default().to_os_string();
    let name_bytes = name.as_bytes();

    // Whiteouts.
    if opts.whiteouts && name_bytes == OPAQUE.as_bytes() {
        let dir = root.dir(rel.parent().unwrap_or(Path::new("")), true, 0o755)?;
        set_opaque(&dir)?;
        return Ok(());
    }
    if let Some(hidden) = name_bytes
        .strip_prefix(WHITEOUT_PREFIX.as_bytes())
        .filter(|_| opts.whiteouts)
    {
        let (dir, _) = root.parent_of(&rel)?;
        let hidden = OsStr::from_bytes(hidden);
        remove_existing(&dir, hidden)?;
        nix::sys::stat::mknodat(
            Some(dir.as_raw_fd()),
            hidden,
            SFlag::S_IFCHR,
            Mode::empty(),
            0,
        )
        .map_err(errno)?;
        return Ok(());
    }

    let header = entry.header().clone();
    let kind = header.entry_type();
    let mode = opts
        .mode
        .unwrap_or_else(|| header.mode().unwrap_or(0o644) & 0o7777);
    let (uid, gid) = opts.owner.unwrap_or((
        header.uid().unwrap_or(0) as u32,
        header.gid().unwrap_or(0) as u32,
    ));
    let mtime = header.mtime().unwrap_or(0) as i64;
    let (dir, name) = root.parent_of(&rel)?;
    let dfd = Some(dir.as_raw_fd());

    if opts.no_overwrite_dir_non_dir {
        if let Ok(st) = nix::sys::stat::fstatat(dfd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
        {
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if is_dir != kind.is_dir() {
                let what = if is_dir {
                    "cannot overwrite directory {} with non-directory"
                } else {
                    "cannot overwrite non-directory {} with directory"
                };
                return Err(UnpackError::Refused(
                    what.replace("{}", &format!("{:?}", Path::new("/").join(&rel))),
                ));
            }
        }
    }
    if kind.is_dir() {
        match nix::sys::stat::fstatat(dfd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
            Ok(_) => {
                remove_existing(&dir, &name)?;
                nix::sys::stat::mkdirat(dfd, name.as_os_str(), Mode::from_bits_truncate(mode))
                    .map_err(errno)?;
            }
            Err(_) => {
                nix::sys::stat::mkdirat(dfd, name.as_os_str(), Mode::from_bits_truncate(mode))
                    .map_err(errno)?
            }
        }
    } else {
        remove_existing(&dir, &name)?;
        if kind.is_file() || kind == tar::EntryType::Continuous {
            let fd = nix::fcntl::openat(
                dfd,
                name.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(errno)?;
            let mut file = std::fs::File::from(own(fd));
            io::copy(entry, &mut file)?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|e| UnpackError::Invalid(e.to_string()))?
                .ok_or_else(|| UnpackError::Invalid("symlink without target".into()))?;
            nix::unistd::symlinkat(target.as_os_str(), dfd, name.as_os_str()).map_err(errno)?;
        } else if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| UnpackError::Invalid(e.to_string()))?
                .ok_or_else(|| UnpackError::Invalid("hard link without target".into()))?;
            let target_rel =
                clean(&target).ok_or_else(|| UnpackError::Breakout(target.to_path_buf()))?;
            let (tdir, tname) = root.parent_of(&target_rel)?;
            nix::unistd::linkat(
                Some(tdir.as_raw_fd()),
                tname.as_os_str(),
                dfd,
                name.as_os_str(),
                AtFlags::empty(),
            )
            .map_err(errno)?;
            return Ok(()); // a hard link shares the target's metadata
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let sflag = if kind.is_character_special() {
                SFlag::S_IFCHR
            } else if kind.is_block_special() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFIFO
            };
            let major = header.device_major().ok().flatten().unwrap_or(0) as u64;
            let minor = header.device_minor().ok().flatten().unwrap_or(0) as u64;
            nix::sys::stat::mknodat(
                dfd,
                name.as_os_str(),
                sflag,
                Mode::from_bits_truncate(mode),
                libc::makedev(major as u32, minor as u32),
            )
            .map_err(errno)?;
        } else {
            // PAX headers and GNU long names are handled by the tar reader;
            // anything else (sockets, unknown types) is skipped as Docker does.
            return Ok(());
        }
    }
    // Ownership first: chown clears set-id bits, chmod restores them.
    nix::unistd::fchownat(
        dfd,
        name.as_os_str(),
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(errno)?;
    if !kind.is_symlink() {
        nix::sys::stat::fchmodat(
            dfd,
            name.as_os_str(),
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(errno)?;
    }
    let t = TimeSpec::new(mtime, 0);
    let _ = nix::sys::stat::utimensat(
        dfd,
        name.as_os_str(),
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
    Ok(())
}

/// Removes whatever is at `name` in `dir` (file, link or whole tree).
fn remove_existing(dir: &std::os::fd::OwnedFd, name: &OsStr) -> io::Result<()> {
    match nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(_) => Ok(()),
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
            std::fs::remove_dir_all(fd_path(dir, name))
        }
        Ok(_) => nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .map_err(|e| io::Error::from_raw_os_error(e as i32)),
    }
}

fn set_opaque(dir: &std::os::fd::OwnedFd) -> io::Result<()> {
    // O_PATH descriptors cannot carry xattrs; reopen the directory itself.
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let real = std::fs::File::open(&path)?;
    xattr_set(&real, "trusted.overlay.opaque", b"y")
}

#[allow(unsafe_code)]
fn xattr_set(file: &std::fs::File, name: &str, value: &[u8]) -> io::Result<()> {
    let cname =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid descriptor, NUL-terminated name and a value buffer that
    // lives for the call.
    let rc = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[allow(unsafe_code)]
fn own(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: fd was just returned by a successful openat.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

fn errno(e: nix::Error) -> UnpackError {
    UnpackError::Io(io::Error::from_raw_os_error(e as i32))
}

/// Chain ids (the snapshot names): chain[0] = diff[0],
/// chain[i] = sha256(chain[i-1] + " " + diff[i]), as the OCI image spec defines.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            {
                // Write the raw name so that hostile names survive the builder's checks.
                let gnu = h.as_gnu_mut().unwrap();
                gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            }
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-unpack-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("root")).unwrap();
        d
    }

    #[test]
    fn plain_files_and_diff_id() {
        let d = tmp("plain");
        let t = tar_with(&[
            ("dir/", tar::EntryType::Directory, b"", None),
            ("dir/f", tar::EntryType::Regular, b"hi", None),
        ]);
        let diff = unpack_layer(&t[..], &d.join("root")).unwrap();
        assert_eq!(std::fs::read(d.join("root/dir/f")).unwrap(), b"hi");
        assert_eq!(diff, format!("sha256:{}", hex::encode(Sha256::digest(&t))));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dotdot_is_a_breakout() {
        let d = tmp("dotdot");
        let t = tar_with(&[("../escape", tar::EntryType::Regular, b"x", None)]);
        assert!(matches!(
            unpack_layer(&t[..], &d.join("root")),
            Err(UnpackError::Breakout(_))
        ));
        assert!(!d.join("escape").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn symlinks_and_hardlinks_cannot_lead_out() {
        let d = tmp("links");
        let outside = d.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"s").unwrap();
        let out = outside.to_str().unwrap().to_string();
        let t = tar_with(&[
            ("link", tar::EntryType::Symlink, b"", Some(&out)),
            ("link/planted", tar::EntryType::Regular, b"x", None),
            (
                "hard",
                tar::EntryType::Link,
                b"",
                Some(&format!("{out}/secret")),
            ),
        ]);
        let r = unpack_layer(&t[..], &d.join("root"));
        assert!(!outside.join("planted").exists(), "wrote through a symlink");
        // The hard link resolves inside the root, where there is no such file.
        assert!(r.is_err());
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"s");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        let d = tmp("wh");
        let t = tar_with(&[
            ("a/.wh.gone", tar::EntryType::Regular, b"", None),
            ("b/.wh..wh..opq", tar::EntryType::Regular, b"", None),
        ]);
        unpack_layer(&t[..], &d.join("root")).unwrap();
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::symlink_metadata(d.join("root/a/gone")).unwrap();
        assert!(meta.file_type().is_char_device());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let diffs = vec!["sha256:a".to_string(), "sha256:b".to_string()];
        let c = chain_ids(&diffs);
        assert_eq!(c[0], "sha256:a");
        assert_eq!(
            c[1],
            format!(
                "sha256:{}",
                hex::encode(Sha256::digest(b"sha256:a sha256:b"))
            )
        );
    }
}
