//! The content store: blobs (layer archives, manifests) by digest under
//! `<data-root>/content/sha256/<hex>`.
//!
//! A blob is written to `content/ingest/` first and renamed into place only
//! once its digest is known to be right, so a reader never sees a partial
//! blob and a crash leaves only ingest files, which the next start deletes.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

/// "sha256:<64 lowercase hex>" → the hex part; anything else is refused, so
/// a digest from a manifest can never name a path outside the store.
pub fn digest_hex(digest: &str) -> Result<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| Error::InvalidArgument(format!("unsupported digest algorithm: {digest}")))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Error::InvalidArgument(format!("invalid digest: {digest}")));
    }
    Ok(hex)
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl ContentStore {
    pub fn new(data_root: &Path) -> Result<ContentStore> {
        let blobs = data_root.join("content").join("sha256");
        let ingest = data_root.join("content").join("ingest");
        std::fs::create_dir_all(&blobs)?;
        // Ingest files are only ever half-written blobs of an earlier run.
        let _ = std::fs::remove_dir_all(&ingest);
        std::fs::create_dir_all(&ingest)?;
        Ok(ContentStore { blobs, ingest })
    }

    pub fn path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.blobs.join(digest_hex(digest)?))
    }

    pub fn exists(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    pub fn open(&self, digest: &str) -> Result<File> {
        File::open(self.path(digest)?)
            .map_err(|e| Error::NotFound(format!("content {digest}: {e}")))
    }

    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        std::fs::read(self.path(digest)?)
            .map_err(|e| Error::NotFound(format!("content {digest}: {e}")))
    }

    /// Stores small content (manifests, configs) and returns its digest.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let mut w = self.writer()?;
        w.write_all(bytes)?;
        w.commit(None)
    }

    /// A writer that hashes what it is given and becomes a blob on commit.
    pub fn writer(&self) -> Result<BlobWriter> {
        let path = self.ingest.join(crate::util::random_id());
        let file = File::create(&path)?;
        Ok(BlobWriter {
            file: Some(io::BufWriter::with_capacity(256 * 1024, file)),
            path,
            hasher: Some(Sha256::new()),
            size: 0,
            blobs: self.blobs.clone(),
        })
    }

    /// A writer for bytes whose digest the source checks itself (a
    /// registry download, which fails at its end on a mismatch): it does
    /// not hash them a second time, and commits under `digest`.
    pub fn writer_verified_elsewhere(&self) -> Result<BlobWriter> {
        let mut w = self.writer()?;
        w.hasher = None;
        Ok(w)
    }

    pub fn remove(&self, digest: &str) {
        if let Ok(p) = self.path(digest) {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Digests of every stored blob.
    pub fn list(&self) -> Vec<String> {
        std::fs::read_dir(&self.blobs)
            .map(|rd| {
                rd.flatten()
                    .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn size(&self, digest: &str) -> u64 {
        self.path(digest)
            .ok()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

pub struct BlobWriter {
    file: Option<io::BufWriter<File>>,
    path: PathBuf,
    /// None when the source verifies the digest itself.
    hasher: Option<Sha256>,
    size: u64,
    blobs: PathBuf,
}

impl BlobWriter {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Moves the blob into the store; with `expected`, only if it matches
    /// (a writer that does not hash needs `expected` and trusts it).
    /// Returns the digest.
    pub fn commit(mut self, expected: Option<&str>) -> Result<String> {
        let mut file = self.file.take().expect("committed once");
        file.flush()?;
        drop(file);
        let digest = match (self.hasher.take(), expected) {
            (Some(h), _) => format!("sha256:{}", hex::encode(h.finalize())),
            (None, Some(e)) => e.to_string(),
            (None, None) => {
                let _ = std::fs::remove_file(&self.path);
                return Err(Error::Internal(
                    "a blob written without hashing needs its digest".into(),
                ));
            }
        };
        let placed = match expected {
            Some(exp) if exp != digest => Err(Error::InvalidArgument(format!(
                "digest mismatch: expected {exp}, got {digest}"
            ))),
            _ => std::fs::rename(&self.path, self.blobs.join(digest_hex(&digest)?))
                .map_err(Error::from),
        };
        if placed.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        placed.map(|()| digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.as_mut().expect("not committed").write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            // Never committed: the partial blob goes.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_digests_that_are_not_sha256_hex() {
        assert!(digest_hex("sha256:../../etc/passwd").is_err());
        assert!(digest_hex("sha512:abcd").is_err());
        assert!(digest_hex(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(digest_hex(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }

    #[test]
    fn a_blob_with_the_wrong_digest_is_not_stored() {
        let dir = std::env::temp_dir().join(format!("berth-content-{}", crate::util::random_id()));
        let store = ContentStore::new(&dir).unwrap();
        let mut w = store.writer().unwrap();
        w.write_all(b"hello").unwrap();
        let wrong = format!("sha256:{}", "0".repeat(64));
        assert!(w.commit(Some(&wrong)).is_err());
        assert!(store.list().is_empty());
        assert_eq!(
            std::fs::read_dir(dir.join("content/ingest"))
                .unwrap()
                .count(),
            0
        );
        let d = store.put(b"hello").unwrap();
        assert_eq!(d, sha256_digest(b"hello"));
        assert_eq!(store.read(&d).unwrap(), b"hello");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
