//! Test images, made offline: the busybox image from
//! contrib/make-busybox-image.sh, and the same image rewritten in the OCI
//! image layout, to test both archive layouts of `docker load`.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

fn images_dir() -> PathBuf {
    let d = crate::workspace_root().join("target").join("test-images");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// busybox:latest as a classic `docker save` archive (built once).
pub fn busybox_tar() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = images_dir().join("busybox.tar");
        if !out.is_file() {
            // Build under a private name, then rename: test binaries run in parallel.
            let tmp = images_dir().join(format!("busybox.tar.{}", std::process::id()));
            let status =
                Command::new(crate::workspace_root().join("contrib/make-busybox-image.sh"))
                    .arg(&tmp)
                    .status()
                    .expect("run make-busybox-image.sh");
            assert!(
                status.success(),
                "make-busybox-image.sh failed (is busybox-static installed? run contrib/setup.sh)"
            );
            std::fs::rename(&tmp, &out).unwrap();
        }
        out
    })
    .clone()
}

fn digest(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The busybox image as an OCI image layout archive (index.json, blobs),
/// tagged `tag`.
pub fn busybox_oci_tar(tag: &str) -> PathBuf {
    let out = images_dir().join(format!(
        "busybox-oci-{}-{}.tar",
        tag.replace([':', '/'], "_"),
        std::process::id()
    ));
    let (config, layer) = busybox_raw();
    let config_d = digest(&config);
    let layer_d = digest(&layer);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_d}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_d}"), "size": layer.len()}]
    })
    .to_string()
    .into_bytes();
    let manifest_d = digest(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_d}"),
            "size": manifest.len(),
            "annotations": {"io.containerd.image.name": format!("docker.io/library/{tag}"), "org.opencontainers.image.ref.name": tag.split(':').nth(1).unwrap_or("latest")}
        }]
    })
    .to_string()
    .into_bytes();
    let mut b = tar::Builder::new(std::fs::File::create(&out).unwrap());
    let mut add = |name: &str, data: &[u8]| add_file(&mut b, name, data);
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    add(&format!("blobs/sha256/{config_d}"), &config);
    add(&format!("blobs/sha256/{layer_d}"), &layer);
    add(&format!("blobs/sha256/{manifest_d}"), &manifest);
    b.finish().unwrap();
    out
}

/// A `docker save` archive whose only layer tries to write outside its
/// directory: through `..`, through a symlink to `/`, and through an
/// absolute symlink followed by a hard link. `marker` names the host file
/// that must never appear.
pub fn hostile_tar(dir: &std::path::Path, marker: &str) -> PathBuf {
    fn entry(
        b: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        data: &[u8],
        link: Option<&str>,
    ) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        // Raw name bytes: the builder would refuse `..`.
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    let rel_marker = marker.trim_start_matches('/');
    let mut layer = tar::Builder::new(Vec::new());
    entry(
        &mut layer,
        "rootlink",
        tar::EntryType::Symlink,
        b"",
        Some("/"),
    );
    entry(
        &mut layer,
        &format!("rootlink/{rel_marker}"),
        tar::EntryType::Regular,
        b"via symlink",
        None,
    );
    entry(
        &mut layer,
        &format!("../../../../../../../..{marker}"),
        tar::EntryType::Regular,
        b"via dotdot",
        None,
    );
    let layer = layer.into_inner().unwrap();
    let diff = digest(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff}"]}}}}"#
    );
    let config_d = digest(config.as_bytes());
    let manifest = format!(
        r#"[{{"Config":"{config_d}.json","RepoTags":["hostile:latest"],"Layers":["{diff}/layer.tar"]}}]"#
    );
    let out = dir.join("hostile.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&out).unwrap());
    let mut add = |name: &str, data: &[u8]| add_file(&mut b, name, data);
    add("manifest.json", manifest.as_bytes());
    add(&format!("{config_d}.json"), config.as_bytes());
    add(&format!("{diff}/layer.tar"), &layer);
    b.finish().unwrap();
    out
}

/// Appends a plain file to an archive being built.
fn add_file(b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}

/// The busybox image's config and its one layer (plain tar), as stored.
fn busybox_raw() -> (Vec<u8>, Vec<u8>) {
    let mut ar = tar::Archive::new(std::fs::File::open(busybox_tar()).unwrap());
    let mut config = Vec::new();
    let mut layer = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        if name.ends_with("layer.tar") {
            e.read_to_end(&mut layer).unwrap();
        } else if name.ends_with(".json") && !name.ends_with("manifest.json") {
            e.read_to_end(&mut config).unwrap();
        }
    }
    (config, layer)
}

/// The busybox image's config (parsed) and its one layer (plain tar).
pub fn busybox_parts() -> (serde_json::Value, Vec<u8>) {
    let (config, layer) = busybox_raw();
    (serde_json::from_slice(&config).unwrap(), layer)
}

/// A layer (plain tar) holding these regular files; a name `.wh.X` is a
/// whiteout that deletes X from the layers below.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// How a layer is stored in a registry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Compression {
    Gzip,
    Zstd,
}

pub fn compress(data: &[u8], how: Compression) -> Vec<u8> {
    match how {
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, data).unwrap();
            enc.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

/// Puts an image into `reg` as `repo:tag` (or only by digest when `tag`
/// is None): busybox's layer, then `extra` layers, for `arch`. Returns the
/// manifest's (digest, bytes, media type).
pub fn push_layered(
    reg: &crate::registry::Registry,
    repo: &str,
    tag: Option<&str>,
    arch: &str,
    extra: &[(Vec<u8>, Compression)],
) -> (String, Vec<u8>, String) {
    let (mut config, base) = busybox_parts();
    let mut layers = vec![(base, Compression::Gzip)];
    layers.extend(extra.iter().cloned());
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    let oci = layers.iter().any(|(_, c)| *c == Compression::Zstd);
    for (plain, how) in &layers {
        diff_ids.push(crate::registry::sha256(plain));
        let blob = compress(plain, *how);
        let digest = reg.put_blob(repo, &blob);
        let media_type = match (how, oci) {
            (Compression::Zstd, _) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (Compression::Gzip, true) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (Compression::Gzip, false) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        };
        descriptors.push(
            serde_json::json!({"mediaType": media_type, "digest": digest, "size": blob.len()}),
        );
    }
    config["architecture"] = arch.into();
    config["rootfs"]["diff_ids"] = diff_ids.into();
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = reg.put_blob(repo, &config);
    let (media_type, config_type) = if oci {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
        )
    } else {
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
        )
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    }))
    .unwrap();
    let digest = crate::registry::sha256(&manifest);
    reg.put_manifest(repo, tag.unwrap_or(&digest), media_type, &manifest);
    (digest, manifest, media_type.to_string())
}
