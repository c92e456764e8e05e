//! Writing a directory tree as a tar stream: `docker export` (a mounted
//! root filesystem) and `docker commit` (a container's overlay upper
//! directory, whose whiteouts become `.wh.` entries again).
//!
//! Hand-written rather than tar's `append_dir_all` because that follows no
//! hard links (busybox's 400 applet links would become 400 copies), keeps
//! no ownership, and knows nothing of overlay whiteouts.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::Metadata;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::images::unpack::{OPAQUE, WHITEOUT_PREFIX};

/// How to treat overlayfs whiteouts found in the tree.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Write them as they are (a merged view has none).
    Keep,
    /// 0/0 character devices become `.wh.NAME`; opaque directories get `.wh..wh..opq`.
    ToAufs,
}

/// Says which names (as written, without a trailing `/`) to leave out.
pub type Skip = Box<dyn Fn(&str) -> bool + Send>;

pub struct TreeWriter<W: Write> {
    ar: tar::Builder<W>,
    /// (dev, inode) of files with several links → the name written first.
    links: HashMap<(u64, u64), String>,
    mode: Whiteouts,
    skip: Option<Skip>,
}

impl<W: Write> TreeWriter<W> {
    pub fn new(out: W, mode: Whiteouts) -> TreeWriter<W> {
        let mut ar = tar::Builder::new(out);
        ar.follow_symlinks(false);
        TreeWriter {
            ar,
            links: HashMap::new(),
            mode,
            skip: None,
        }
    }

    /// Leaves out of walked trees the entries `skip` names (`COPY
    /// --exclude`). Skipped directories are still walked, since a pattern
    /// may take back something below one.
    pub fn skipping(mut self, skip: Skip) -> TreeWriter<W> {
        self.skip = Some(skip);
        self
    }

    fn skipped(&self, name: &str) -> bool {
        self.skip.as_ref().is_some_and(|s| s(name))
    }

    /// Writes everything under `root` (not `root` itself), names relative.
    pub fn add_tree(&mut self, root: &Path) -> io::Result<()> {
        self.walk(root, "")
    }

    /// Writes everything under `root` (not `root` itself) with names
    /// below `prefix` (`COPY dir /dest`: "dest/…").
    pub fn add_tree_as(&mut self, root: &Path, prefix: &str) -> io::Result<()> {
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            return self.walk(root, "");
        }
        self.walk(root, &format!("{prefix}/"))
    }

    /// Writes `path` itself as `name`, and below it everything it holds
    /// when it is a directory (`docker cp` out of a container).
    pub fn add_named(&mut self, path: &Path, name: &str) -> io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.is_dir() {
            let name = name.trim_end_matches('/');
            self.entry(&format!("{name}/"), path, &meta)?;
            self.walk(path, &format!("{name}/"))
        } else {
            self.entry(name, path, &meta)
        }
    }

    /// Writes the file `path` leads to (symlinks followed: a descriptor's
    /// `/proc/self/fd/N` name) as `name`.
    pub fn add_followed(&mut self, path: &Path, name: &str) -> io::Result<()> {
        let meta = std::fs::metadata(path)?;
        self.entry(name, path, &meta)
    }

    pub fn finish(self) -> io::Result<W> {
        self.ar.into_inner()
    }

    fn walk(&mut self, dir: &Path, prefix: &str) -> io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<io::Result<_>>()?;
        // A stable order makes the same tree the same tar (and diff id).
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let ft = meta.file_type();
            if self.mode == Whiteouts::ToAufs && ft.is_char_device() && meta.rdev() == 0 {
                let parent = name
                    .rsplit_once('/')
                    .map(|(p, _)| format!("{p}/"))
                    .unwrap_or_default();
                let base = e.file_name();
                self.empty_file(
                    &format!("{parent}{WHITEOUT_PREFIX}{}", base.to_string_lossy()),
                    &meta,
                )?;
                continue;
            }
            let skipped = self.skipped(&name);
            if ft.is_dir() {
                if !skipped {
                    self.entry(&format!("{name}/"), &path, &meta)?;
                    if self.mode == Whiteouts::ToAufs && is_opaque(&path) {
                        self.empty_file(&format!("{name}/{OPAQUE}"), &meta)?;
                    }
                }
                self.walk(&path, &format!("{name}/"))?;
            } else if !skipped {
                self.entry(&name, &path, &meta)?;
            }
        }
        Ok(())
    }

    /// The tar crate drops `./` from names, but `docker cp c:/dir/. x`
    /// must answer `./`-prefixed names (the CLI renames the first `.`):
    /// such names go out as a PAX `path` record, which readers prefer.
    fn header_name<'a>(&mut self, name: &'a str) -> io::Result<&'a str> {
        match name.strip_prefix("./") {
            Some(rest) => {
                self.ar.append_pax_extensions([("path", name.as_bytes())])?;
                Ok(if rest.is_empty() { "_/" } else { rest })
            }
            None => Ok(name),
        }
    }

    fn entry(&mut self, name: &str, path: &Path, meta: &Metadata) -> io::Result<()> {
        let name = self.header_name(name)?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        let ft = meta.file_type();
        if ft.is_file() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                let first = first.clone();
                return self.ar.append_link(&mut h, name, first);
            }
            self.links.insert(key, name.to_string());
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(path)?;
            h.set_size(0);
            return self.ar.append_link(&mut h, name, target);
        }
        if ft.is_file() {
            let f = std::fs::File::open(path)?;
            return self.ar.append_data(&mut h, name, f);
        }
        h.set_size(0);
        self.ar.append_data(&mut h, name, io::empty())
    }

    fn empty_file(&mut self, name: &str, like: &Metadata) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(0);
        h.set_mode(0o644);
        h.set_mtime(like.mtime().max(0) as u64);
        self.ar.append_data(&mut h, name, io::empty())
    }
}

/// Whether overlayfs marked this directory opaque.
#[allow(unsafe_code)]
pub(crate) fn is_opaque(dir: &Path) -> bool {
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 4];
    for name in [c"trusted.overlay.opaque", c"user.overlay.opaque"] {
        // SAFETY: both strings are NUL-terminated and buf outlives the call.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n == 1 && buf[0] == b'y' {
            return true;
        }
    }
    false
}
