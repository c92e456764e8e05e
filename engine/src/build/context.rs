//! The build context as it arrives: a tar (possibly gzip or zstd
//! compressed) unpacked into the build's own directory with every path
//! confined to it, or, for `docker build - < Dockerfile`, a bare
//! Dockerfile and an empty context. The Dockerfile is read before
//! `.dockerignore` is applied (it may be ignored and still be used).

use std::io::Read;
use std::path::Path;

use super::ignore::Ignore;
use crate::confined::{clean, Confined};
use crate::error::{Error, Result};
use crate::images::unpack::{decompress, extract, ApplyOptions, UnpackError};

/// Dockerfiles larger than this are refused rather than read into memory.
pub const MAX_DOCKERFILE: u64 = 4 << 20;

/// Where ustar and GNU tars carry their magic.
fn is_tar(head: &[u8]) -> bool {
    head.len() >= 262 && &head[257..262] == b"ustar"
}

/// Completes a tar stream that ends early: the docker CLI's context for
/// `-f -` stops right after the last entry's data, without the padding
/// and end-of-archive blocks, which Docker's reader tolerates.
struct PadToBlocks<R> {
    inner: R,
    read: u64,
    /// Zero bytes still to give once the inner stream has ended.
    padding: Option<u64>,
}

impl<R: Read> Read for PadToBlocks<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.padding.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.read += n as u64;
                return Ok(n);
            }
            self.padding = Some((512 - self.read % 512) % 512 + 1024);
        }
        let left = self.padding.as_mut().expect("set above");
        let n = (*left).min(buf.len() as u64) as usize;
        buf[..n].fill(0);
        *left -= n as u64;
        Ok(n)
    }
}

/// Unpacks `body` into `ctx` (created) and returns the Dockerfile's text.
pub fn unpack(body: &Path, ctx: &Path, dockerfile: &str) -> Result<String> {
    std::fs::create_dir_all(ctx)?;
    let mut stream = decompress(std::fs::File::open(body)?)
        .map_err(|e| Error::InvalidArgument(format!("reading the build context: {e}")))?;
    let mut head = Vec::with_capacity(512);
    (&mut stream).take(512).read_to_end(&mut head)?;
    if !is_tar(&head) {
        // `docker build - < Dockerfile`: the body is the Dockerfile.
        let mut text = head;
        stream.take(MAX_DOCKERFILE).read_to_end(&mut text)?;
        return String::from_utf8(text)
            .map_err(|_| Error::InvalidArgument("the Dockerfile is not UTF-8 text".into()));
    }
    let root = Confined::open(ctx)?;
    let opts = ApplyOptions {
        whiteouts: false,
        owner: None,
        no_overwrite_dir_non_dir: false,
        mode: None,
    };
    let padded = PadToBlocks {
        inner: std::io::Cursor::new(head).chain(stream),
        read: 0,
        padding: None,
    };
    extract(padded, &root, &opts).map_err(|e| match e {
        UnpackError::Io(e) => Error::from(e),
        other => Error::InvalidArgument(format!("invalid build context: {other}")),
    })?;
    let text = read_dockerfile(&root, dockerfile)?;
    if let Ok(mut f) = root.open_file(Path::new(".dockerignore")) {
        let mut patterns = String::new();
        (&mut f)
            .take(MAX_DOCKERFILE)
            .read_to_string(&mut patterns)?;
        let ignore = Ignore::parse(&patterns)?;
        ignore.apply(ctx)?;
    }
    Ok(text)
}

fn read_dockerfile(root: &Confined, name: &str) -> Result<String> {
    let name = if name.is_empty() { "Dockerfile" } else { name };
    // A 500 in dockerd.
    let missing = || Error::Internal(format!("Cannot locate specified Dockerfile: {name}"));
    let rel = clean(Path::new(name)).ok_or_else(missing)?;
    let mut file = match root.open_file(&rel) {
        Ok(f) => f,
        // The legacy builder also accepts a lower-case `dockerfile`.
        Err(_) if name == "Dockerfile" => root
            .open_file(Path::new("dockerfile"))
            .map_err(|_| missing())?,
        Err(_) => return Err(missing()),
    };
    if !file.metadata()?.is_file() {
        return Err(missing());
    }
    let mut text = String::new();
    (&mut file)
        .take(MAX_DOCKERFILE)
        .read_to_string(&mut text)
        .map_err(|_| Error::InvalidArgument("the Dockerfile is not UTF-8 text".into()))?;
    Ok(text)
}

/// Writes a tar of `files` (name, contents) for tests.
#[cfg(test)]
pub(crate) fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_contexts_and_bare_dockerfiles() {
        let dir = std::env::temp_dir().join(format!("berth-ctx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let body = dir.join("body");
        std::fs::write(
            &body,
            tar_of(&[
                ("Dockerfile", "FROM scratch\n"),
                ("a.log", "x"),
                ("keep.txt", "y"),
                (".dockerignore", "*.log\n"),
            ]),
        )
        .unwrap();
        let ctx = dir.join("ctx");
        assert_eq!(unpack(&body, &ctx, "").unwrap(), "FROM scratch\n");
        assert!(!ctx.join("a.log").exists());
        assert!(ctx.join("keep.txt").exists());
        assert!(unpack(&body, &dir.join("c2"), "../etc/passwd").is_err());
        assert!(unpack(&body, &dir.join("c3"), "nope").is_err());
        std::fs::write(&body, "FROM busybox\nRUN true\n").unwrap();
        assert_eq!(
            unpack(&body, &dir.join("c4"), "").unwrap(),
            "FROM busybox\nRUN true\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
