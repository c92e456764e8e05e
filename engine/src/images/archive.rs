//! Reading `docker save` archives, in both layouts Docker writes: the
//! classic one (`manifest.json` naming `<id>.json` configs and
//! `<id>/layer.tar` files, with symlinks between duplicate layers) and the
//! OCI image layout (`index.json` and `blobs/sha256/…`), which Docker 25+
//! writes alongside `manifest.json`.
//!
//! The archive is first extracted into a private scratch directory. Only
//! regular files and directories are created there; links are remembered
//! and followed by name inside the archive, so nothing in it can point at
//! the host's files.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::confined::clean;
use crate::error::{Error, Result};

pub struct Extracted {
    pub dir: PathBuf,
    /// Link name → the archive path it points at (cleaned, relative).
    links: HashMap<PathBuf, PathBuf>,
}

/// One image found in an archive.
#[derive(Debug)]
pub struct ArchiveImage {
    pub config: Vec<u8>,
    /// Archive paths of the layer blobs, bottom first.
    pub layers: Vec<PathBuf>,
    pub repo_tags: Vec<String>,
}

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("invalid tar archive: {msg}"))
}

pub fn extract(archive: impl Read, dir: &Path) -> Result<Extracted> {
    std::fs::create_dir_all(dir)?;
    let mut links = HashMap::new();
    let mut ar = tar::Archive::new(archive);
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let rel =
            clean(&raw).ok_or_else(|| bad(format!("path {} leaves the archive", raw.display())))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        let target = dir.join(&rel);
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if kind.is_file() {
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p)?;
            }
            let mut f = std::fs::File::create(&target)?;
            std::io::copy(&mut entry, &mut f)?;
        } else if kind.is_symlink() || kind.is_hard_link() {
            let link = entry
                .link_name()
                .map_err(bad)?
                .ok_or_else(|| bad("link without target"))?
                .into_owned();
            // Symlinks are relative to their directory, hard links to the archive root.
            let joined = if kind.is_symlink() && !link.is_absolute() {
                rel.parent().unwrap_or(Path::new("")).join(&link)
            } else {
                link.clone()
            };
            let resolved = clean(&joined)
                .ok_or_else(|| bad(format!("link {} leaves the archive", raw.display())))?;
            links.insert(rel, resolved);
        }
    }
    Ok(Extracted {
        dir: dir.to_path_buf(),
        links,
    })
}

impl Extracted {
    /// Opens an archive member, following the archive's own links.
    pub fn open(&self, rel: &Path) -> Result<std::fs::File> {
        let mut cur =
            clean(rel).ok_or_else(|| bad(format!("path {} leaves the archive", rel.display())))?;
        for _ in 0..16 {
            match self.links.get(&cur) {
                Some(next) => cur = next.clone(),
                None => {
                    return std::fs::File::open(self.dir.join(&cur)).map_err(|_| {
                        bad(format!("{} is missing from the archive", rel.display()))
                    });
                }
            }
        }
        Err(bad(format!("too many links at {}", rel.display())))
    }

    fn read(&self, rel: &Path, limit: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open(rel)?.take(limit).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn exists(&self, rel: &str) -> bool {
        self.links.contains_key(Path::new(rel)) || self.dir.join(rel).is_file()
    }

    /// The images in the archive, from manifest.json or else index.json.
    pub fn images(&self) -> Result<Vec<ArchiveImage>> {
        if self.exists("manifest.json") {
            return self.docker_images();
        }
        if self.exists("index.json") {
            return self.oci_images();
        }
        Err(bad("neither manifest.json nor index.json found"))
    }

    fn docker_images(&self) -> Result<Vec<ArchiveImage>> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "Config")]
            config: String,
            #[serde(rename = "RepoTags", default)]
            repo_tags: Option<Vec<String>>,
            #[serde(rename = "Layers", default)]
            layers: Vec<String>,
        }
        let manifest: Vec<Entry> =
            serde_json::from_slice(&self.read(Path::new("manifest.json"), 16 << 20)?)
                .map_err(|e| bad(format!("manifest.json: {e}")))?;
        manifest
            .into_iter()
            .map(|e| {
                let config = self.read(Path::new(&e.config), 64 << 20)?;
                check_named_digest(&e.config, &config)?;
                Ok(ArchiveImage {
                    config,
                    layers: e.layers.iter().map(PathBuf::from).collect(),
                    repo_tags: e.repo_tags.unwrap_or_default(),
                })
            })
            .collect()
    }

    fn blob_path(digest: &str) -> Result<PathBuf> {
        let (algo, hex) = digest
            .split_once(':')
            .ok_or_else(|| bad(format!("bad digest {digest}")))?;
        if algo != "sha256" || hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("bad digest {digest}")));
        }
        Ok(PathBuf::from(format!("blobs/sha256/{hex}")))
    }

    fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        let data = self.read(&Self::blob_path(digest)?, 64 << 20)?;
        let actual = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data))
        );
        if actual != digest {
            return Err(bad(format!("blob {digest} has digest {actual}")));
        }
        Ok(data)
    }

    fn oci_images(&self) -> Result<Vec<ArchiveImage>> {
        let index: serde_json::Value =
            serde_json::from_slice(&self.read(Path::new("index.json"), 16 << 20)?)
                .map_err(|e| bad(format!("index.json: {e}")))?;
        let mut out = Vec::new();
        for desc in index["manifests"].as_array().cloned().unwrap_or_default() {
            let annotations = &desc["annotations"];
            let name = annotations["io.containerd.image.name"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    annotations["org.opencontainers.image.ref.name"]
                        .as_str()
                        .filter(|r| r.contains(':') || r.contains('/'))
                        .map(str::to_string)
                });
            let manifest = self.resolve_manifest(desc["digest"].as_str().unwrap_or_default(), 0)?;
            let config = self.blob(manifest["config"]["digest"].as_str().unwrap_or_default())?;
            let layers = manifest["layers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|l| Self::blob_path(l["digest"].as_str().unwrap_or_default()))
                .collect::<Result<Vec<_>>>()?;
            out.push(ArchiveImage {
                config,
                layers,
                repo_tags: name.into_iter().collect(),
            });
        }
        Ok(out)
    }

    /// Follows an index (manifest list) down to one image manifest,
    /// preferring this machine's platform.
    fn resolve_manifest(&self, digest: &str, depth: u32) -> Result<serde_json::Value> {
        if depth > 4 {
            return Err(bad("indexes nested too deeply"));
        }
        let doc: serde_json::Value = serde_json::from_slice(&self.blob(digest)?)
            .map_err(|e| bad(format!("manifest {digest}: {e}")))?;
        let Some(list) = doc["manifests"].as_array() else {
            return Ok(doc);
        };
        let arch = super::go_arch();
        let pick = list
            .iter()
            .find(|m| m["platform"]["architecture"] == arch && m["platform"]["os"] == "linux")
            .or_else(|| list.iter().find(|m| m["platform"].is_null()))
            .or(list.first())
            .ok_or_else(|| bad(format!("index {digest} is empty")))?;
        self.resolve_manifest(pick["digest"].as_str().unwrap_or_default(), depth + 1)
    }
}

/// A config named after its digest ("<hex>.json" or "blobs/sha256/<hex>")
/// must hash to that digest.
fn check_named_digest(name: &str, data: &[u8]) -> Result<()> {
    let stem = Path::new(name)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let hex = stem.strip_suffix(".json").unwrap_or(stem);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data));
        if actual != hex {
            return Err(bad(format!("config {name} has digest sha256:{actual}")));
        }
    }
    Ok(())
}
