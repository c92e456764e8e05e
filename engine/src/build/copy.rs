//! COPY, ADD and WORKDIR: steps that write files into the image without
//! running anything. The parent image is mounted as a workspace
//! (`workspace.rs`); sources are resolved inside their root (the context,
//! or the mounted image of `--from`) with `openat2(RESOLVE_IN_ROOT)`, so no
//! name or symlink in the context can reach outside it; what they hold is
//! written as a tar and applied below the destination with the same
//! confined unpacker that applies image layers. The workspace's upper
//! directory becomes the layer.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::dockerfile::{Args, Instruction};
use super::git::{self, GitSource};
use super::ignore::Ignore;
use super::steps::{Build, Stage};
use super::words;
use super::workspace::Workspace;
use crate::confined::{clean, Confined};
use crate::error::{Error, Result};
use crate::images::commit::CommitInfo;
use crate::images::unpack::{decompress, extract, ApplyOptions, UnpackError};
use crate::tarball::{TreeWriter, Whiteouts};

/// `path` made absolute against the working directory, cleaned.
fn absolute(workdir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        Path::new(if workdir.is_empty() { "/" } else { workdir }).join(path)
    };
    let cleaned = clean(&joined).unwrap_or_default();
    format!("/{}", cleaned.display())
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// One thing to copy: an open, resolved file or directory.
struct Source {
    /// `/proc/self/fd/N` of an `O_PATH` descriptor held in `_fd`.
    path: PathBuf,
    _fd: Option<OwnedFd>,
    /// Its name where a directory destination receives it.
    name: String,
    is_dir: bool,
    /// ADD of a local tar archive: unpacked, not copied.
    archive: bool,
    /// Downloaded or written by the build (URL, heredoc): no owner kept.
    mode: Option<u32>,
}

fn unpack_err(e: UnpackError) -> Error {
    match e {
        UnpackError::Io(e) => Error::from(e),
        other => Error::InvalidArgument(other.to_string()),
    }
}

fn proc_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Expands a glob pattern one path component at a time, listing only
/// directories resolved inside the root.
fn glob(root: &Confined, rel: &Path) -> Result<Vec<PathBuf>> {
    let mut found = vec![PathBuf::new()];
    for comp in rel.components() {
        let comp = comp.as_os_str().to_string_lossy().into_owned();
        let mut next = Vec::new();
        for base in &found {
            if !has_glob(&comp) {
                next.push(base.join(&comp));
                continue;
            }
            let matcher = globset::GlobBuilder::new(&comp)
                .literal_separator(true)
                .build()
                .map_err(|e| Error::InvalidArgument(format!("invalid pattern {comp:?}: {e}")))?
                .compile_matcher();
            let Ok(dir) = root.dir(base, false, 0) else {
                continue;
            };
            let mut names: Vec<String> = std::fs::read_dir(proc_path(&dir))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| matcher.is_match(n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    Ok(found
        .into_iter()
        .filter(|p| root.lookup(p).is_ok())
        .collect())
}

/// Resolves the source patterns inside `root`.
fn resolve(
    root: &Path,
    patterns: &[String],
    what: &str,
    in_context: bool,
    add: bool,
    parents: bool,
) -> Result<Vec<Source>> {
    let conf = Confined::open(root)?;
    let mut out = Vec::new();
    for pat in patterns {
        let outside = || {
            Error::InvalidArgument(format!(
                "{what} failed: forbidden path outside the build context: {pat} ()"
            ))
        };
        // With --parents, names are paths below the pivot (`a/./b/c`: below
        // `a`), or below the root without one.
        let pivot = match pat.split_once("/./") {
            Some((p, _)) if parents => clean(Path::new(p)).ok_or_else(outside)?,
            _ => PathBuf::new(),
        };
        let rel = clean(Path::new(pat)).ok_or_else(outside)?;
        let rels = if has_glob(pat) {
            let found = glob(&conf, &rel)?;
            if found.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "{what} failed: no source files were specified"
                )));
            }
            found
        } else {
            vec![rel]
        };
        for rel in rels {
            let fd = conf.lookup(&rel).map_err(|_| {
                let place = if in_context {
                    "file not found in build context or excluded by .dockerignore"
                } else {
                    "file not found"
                };
                Error::InvalidArgument(format!(
                    "{what} failed: {place}: stat {pat}: file does not exist"
                ))
            })?;
            let path = proc_path(&fd);
            let meta = std::fs::metadata(&path)?;
            let archive = add && meta.is_file() && is_archive(&path);
            let name = if parents {
                rel.strip_prefix(&pivot)
                    .unwrap_or(&rel)
                    .to_string_lossy()
                    .into_owned()
            } else {
                rel.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            out.push(Source {
                path,
                _fd: Some(fd),
                name,
                is_dir: meta.is_dir(),
                archive,
                mode: None,
            });
        }
    }
    Ok(out)
}

/// A tar (plain, gzip or zstd) that ADD unpacks.
fn is_archive(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(stream) = decompress(f) else {
        return false;
    };
    let mut head = Vec::with_capacity(512);
    if stream.take(512).read_to_end(&mut head).is_err() {
        return false;
    }
    head.len() >= 262 && &head[257..262] == b"ustar"
}

/// Hashes a source's content and metadata (not times, not owners).
/// The top-level path (a descriptor's `/proc/self/fd/N`) is followed.
pub(super) fn hash_source(h: &mut Sha256, path: &Path, name: &str, top: bool) -> Result<()> {
    let meta = if top {
        std::fs::metadata(path)?
    } else {
        std::fs::symlink_metadata(path)?
    };
    h.update(name.as_bytes());
    h.update([0]);
    h.update(format!("{:o}/{}", meta.mode(), meta.len()).as_bytes());
    let ft = meta.file_type();
    if ft.is_symlink() {
        h.update(std::fs::read_link(path)?.as_os_str().as_encoded_bytes());
    } else if ft.is_file() {
        std::io::copy(&mut std::fs::File::open(path)?, h)?;
    } else if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            hash_source(
                h,
                &path.join(&n),
                &format!("{name}/{}", n.to_string_lossy()),
                false,
            )?;
        }
    }
    Ok(())
}

/// `--chown=user:group` resolved in the destination image.
fn owner(rootfs: &Path, spec: &str) -> Result<(u32, u32)> {
    let u = crate::containers::oci::user::resolve(rootfs, spec)?;
    Ok(if spec.contains(':') {
        (u.uid, u.gid)
    } else {
        (u.uid, u.uid)
    })
}

pub async fn step(build: &mut Build, stage: &mut Stage, ins: &Instruction) -> Result<()> {
    let add = ins.name == "add";
    let what = ins.name.to_ascii_uppercase();
    // BuildKit's flags exist only in a BuildKit solve; the legacy builder
    // knows none of them, as dockerd's.
    let buildkit = build.buildkit.is_some();
    ins.allow_flags(match (add, buildkit) {
        (true, false) => &["chown", "chmod"],
        (false, false) => &["from", "chown", "chmod"],
        (true, true) => &[
            "chown",
            "chmod",
            "link",
            "checksum",
            "exclude",
            "parents",
            "keep-git-dir",
        ],
        (false, true) => &["from", "chown", "chmod", "link", "exclude", "parents"],
    })?;
    let keep_git_dir = match ins.flag("keep-git-dir") {
        None => false,
        Some(v) => super::mounts::parse_bool("keep-git-dir", v)?,
    };
    // `--link` changes how BuildKit layers the copy, not what the image
    // holds: here every COPY already makes a layer of its own.
    let checksum = ins.flag("checksum").map(str::to_string);
    let mut env = stage.args.clone();
    env.extend(stage.env());
    let esc = build.escape;
    let mut items = match &ins.args {
        Args::Exec(v) => v
            .iter()
            .map(|w| words::word(w, esc, &env))
            .collect::<Result<Vec<_>>>()?,
        Args::Shell(s) => words::words(s, esc, &env)?,
    };
    if items.len() < 2 {
        return Err(Error::InvalidArgument(format!(
            "{what} requires at least two arguments, but only one was provided. Destination could not be determined."
        )));
    }
    let dest_word = items.pop().unwrap_or_default();
    let dest = absolute(&stage.working_dir(), &dest_word);
    let dir_hint = dest_word.ends_with('/') || dest_word.ends_with("/.") || dest_word == ".";
    let chown = match ins.flag("chown") {
        Some(c) => Some(words::word(c, esc, &env)?),
        None => None,
    };
    let chmod = match ins.flag("chmod") {
        Some(m) => Some(
            u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| Error::InvalidArgument(format!("invalid chmod parameter: {m}")))?,
        ),
        None => None,
    };

    // `--parents` keeps each source's path (below a `/./` pivot, if one is
    // written); `--exclude` leaves out what its patterns match, by the
    // path below each copied directory (with --parents, below the pivot).
    let parents = match ins.flag("parents") {
        None => false,
        Some(v) => super::mounts::parse_bool("parents", v)?,
    };
    let excludes: Vec<String> = ins
        .flags
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| words::word(v, esc, &env))
        .collect::<Result<_>>()?;
    let exclude = match excludes.is_empty() {
        true => None,
        false => Some(std::sync::Arc::new(Ignore::parse(&excludes.join("\n"))?)),
    };

    // Where the sources come from.
    let from = match ins.flag("from") {
        Some(f) => Some(build.from_root(&words::word(f, esc, &env)?).await?),
        None => None,
    };
    let (src_root, from_id, from_ws) = match from {
        Some(r) => (r.root, r.image_id, r.workspace),
        None => (build.ctx.clone(), String::new(), None),
    };

    // Heredocs and URLs become files of the build's own first.
    let generated = build.scratch_dir("src");
    std::fs::create_dir_all(&generated)?;
    let mut patterns = Vec::new();
    let mut made: Vec<Source> = Vec::new();
    for item in &items {
        if let Some(name) = item.strip_prefix("<<") {
            let name = name
                .trim_start_matches('-')
                .trim_matches(|c| c == '"' || c == '\'');
            let doc = ins
                .heredocs
                .iter()
                .find(|d| d.name == name)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("{what}: no heredoc named {name}"))
                })?;
            let body = if doc.quoted {
                doc.body.clone()
            } else {
                words::expand_vars(&doc.body, &env)?
            };
            let path = generated.join(format!("heredoc-{}", made.len()));
            std::fs::write(&path, body)?;
            made.push(Source {
                path,
                _fd: None,
                name: name.to_string(),
                is_dir: false,
                archive: false,
                mode: Some(0o644),
            });
        } else if let Some(repo) = add.then(|| GitSource::parse(item)).flatten() {
            let dir = generated.join(format!("git-{}", made.len()));
            let (root, commit) = git::fetch(&repo, &dir, keep_git_dir).await?;
            if let Some(want) = checksum.as_deref().filter(|w| !commit.starts_with(*w)) {
                return Err(Error::InvalidArgument(format!(
                    "expected checksum to match {want}, got {commit}"
                )));
            }
            made.push(Source {
                path: root,
                _fd: None,
                name: repo.name(),
                is_dir: true,
                archive: false,
                mode: None,
            });
        } else if add && (item.starts_with("http://") || item.starts_with("https://")) {
            let path = generated.join(format!("url-{}", made.len()));
            download(item, &path).await?;
            if let Some(want) = &checksum {
                verify_checksum(&path, want)?;
            }
            let name = item
                .split(['?', '#'])
                .next()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("download")
                .to_string();
            made.push(Source {
                path,
                _fd: None,
                name,
                is_dir: false,
                archive: false,
                mode: Some(0o600),
            });
        } else {
            if checksum.is_some() {
                return Err(Error::InvalidArgument(
                    "checksum can't be specified for non-HTTP(S) sources".into(),
                ));
            }
            patterns.push(item.clone());
        }
    }

    let in_context = from_ws.is_none();
    let sources = {
        let (root, patterns, what) = (src_root.clone(), patterns.clone(), what.clone());
        let mut found = tokio::task::spawn_blocking(move || {
            resolve(&root, &patterns, &what, in_context, add, parents)
        })
        .await
        .map_err(Error::internal)??;
        found.extend(made);
        found
    };
    let many = sources.len() > 1 || items.iter().any(|i| has_glob(i));
    if many && !dir_hint && !parents {
        return Err(Error::InvalidArgument(format!(
            "When using {what} with more than one source file, the destination must be a directory and end with a /"
        )));
    }

    // The cache key: what is copied, where, and how.
    let sources = {
        let from_id = from_id.clone();
        let patterns = patterns.clone();
        tokio::task::spawn_blocking(move || -> Result<(Vec<Source>, String)> {
            let mut h = Sha256::new();
            if !from_id.is_empty() {
                h.update(from_id.as_bytes());
                for p in &patterns {
                    h.update(p.as_bytes());
                    h.update([0]);
                }
            }
            for s in &sources {
                if from_id.is_empty() || s._fd.is_none() {
                    hash_source(&mut h, &s.path, &s.name, true)?;
                }
                h.update([s.archive as u8]);
            }
            Ok((sources, hex::encode(h.finalize())))
        })
        .await
        .map_err(Error::internal)??
    };
    let (sources, hash) = sources;
    let kind = match sources.as_slice() {
        [one] if one.is_dir => "dir",
        [_] => "file",
        _ => "multi",
    };
    let mut flags = String::new();
    if let Some(c) = &chown {
        flags.push_str(&format!("--chown={c} "));
    }
    if let Some(m) = chmod {
        flags.push_str(&format!("--chmod={m:o} "));
    }
    if parents {
        flags.push_str("--parents ");
    }
    for e in &excludes {
        flags.push_str(&format!("--exclude={e} "));
    }
    let created_by = format!("/bin/sh -c #(nop) {what} {flags}{kind}:{hash} in {dest} ");
    if build.cached(stage, &created_by).await? {
        return Ok(());
    }

    let dir = build.scratch_dir("step");
    let ws = Workspace::mount(&build.b.images, &stage.image, dir)?;
    let rootfs = ws.rootfs();
    let tmp = build
        .dir
        .join(format!("copy-{}.tar", crate::util::random_id()));
    tokio::task::spawn_blocking(move || -> Result<()> {
        let placement = Placement {
            dest: &dest,
            dir_hint,
            chown: chown.as_deref(),
            chmod,
            parents,
            exclude,
        };
        let result = apply(&rootfs, &placement, &sources, &tmp);
        let _ = std::fs::remove_file(&tmp);
        result
    })
    .await
    .map_err(Error::internal)??;
    drop(from_ws);
    let img = build
        .b
        .images
        .commit_row(
            &stage.image,
            Some(ws.upper()),
            CommitInfo::step(stage.config.clone(), "", created_by.clone()),
        )
        .await?;
    drop(ws);
    build.advance(stage, img, &created_by).await
}

/// Where and how a COPY's sources land.
struct Placement<'a> {
    dest: &'a str,
    /// The destination was written as a directory (`/app/`, `.`).
    dir_hint: bool,
    chown: Option<&'a str>,
    chmod: Option<u32>,
    /// `--parents`: names are paths, the destination a directory.
    parents: bool,
    /// `--exclude` patterns.
    exclude: Option<std::sync::Arc<Ignore>>,
}

/// Writes the sources below `dest` in the mounted image at `rootfs`.
fn apply(rootfs: &Path, at: &Placement, sources: &[Source], tmp: &Path) -> Result<()> {
    let (dest, chmod) = (at.dest, at.chmod);
    let root = Confined::open(rootfs)?;
    let owner = match at.chown {
        Some(spec) => owner(rootfs, spec)?,
        None => (0, 0),
    };
    let dest_rel = clean(Path::new(dest)).unwrap_or_default();
    let dest_is_dir = at.dir_hint
        || at.parents
        || sources.len() > 1
        || sources.iter().any(|s| s.is_dir || s.archive)
        || root
            .lookup(&dest_rel)
            .ok()
            .and_then(|fd| std::fs::metadata(proc_path(&fd)).ok())
            .is_some_and(|m| m.is_dir());
    // Files land below a directory resolved inside the image; the entries
    // are applied confined to that directory.
    let (target_dir, file_name) = if dest_is_dir {
        (dest_rel.clone(), None)
    } else {
        let name = dest_rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::InvalidArgument(format!("invalid destination {dest}")))?;
        (
            dest_rel.parent().unwrap_or(Path::new("")).to_path_buf(),
            Some(name),
        )
    };
    let dir_fd = root.dir(&target_dir, true, 0o755)?;
    let target = Confined::open(&proc_path(&dir_fd))?;
    let copy_opts = ApplyOptions {
        whiteouts: false,
        owner: Some(owner),
        no_overwrite_dir_non_dir: false,
        mode: chmod,
    };
    {
        let mut tree = TreeWriter::new(
            std::io::BufWriter::new(std::fs::File::create(tmp)?),
            Whiteouts::Keep,
        );
        if let Some(ex) = at.exclude.clone() {
            tree = tree.skipping(Box::new(move |name| ex.excluded(Path::new(name))));
        }
        for s in sources.iter().filter(|s| !s.archive) {
            if s.is_dir {
                // With --parents a directory keeps its path below the pivot.
                tree.add_tree_as(&s.path, if at.parents { &s.name } else { "" })?;
            } else {
                if at.parents
                    && at
                        .exclude
                        .as_ref()
                        .is_some_and(|ex| ex.excluded(Path::new(&s.name)))
                {
                    continue;
                }
                let name = file_name.clone().unwrap_or_else(|| s.name.clone());
                if let Some(mode) = s.mode {
                    std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(mode))?;
                }
                tree.add_followed(&s.path, &name)?;
            }
        }
        tree.finish()?.flush()?;
    }
    extract(std::fs::File::open(tmp)?, &target, &copy_opts).map_err(unpack_err)?;
    for s in sources.iter().filter(|s| s.archive) {
        // ADD unpacks local archives, keeping the archive's owners.
        let opts = ApplyOptions {
            whiteouts: false,
            owner: None,
            no_overwrite_dir_non_dir: false,
            mode: None,
        };
        let stream = decompress(std::fs::File::open(&s.path)?)?;
        extract(stream, &target, &opts).map_err(unpack_err)?;
    }
    Ok(())
}

/// `ADD --checksum=sha256:…`: the download must have that digest.
fn verify_checksum(path: &Path, want: &str) -> Result<()> {
    let Some(hex_want) = want.strip_prefix("sha256:") else {
        return Err(Error::InvalidArgument(format!(
            "invalid checksum {want:?}: only sha256 digests are supported"
        )));
    };
    let got = format!("{:x}", Sha256::digest(std::fs::read(path)?));
    if got != hex_want.to_ascii_lowercase() {
        return Err(Error::InvalidArgument(format!(
            "digest mismatch sha256:{got}: {want}"
        )));
    }
    Ok(())
}

/// ADD of a URL: fetched to a file of the build's. Without a network (or
/// with a server that fails) the step fails with the reason.
async fn download(url: &str, path: &Path) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| {
        Error::InvalidArgument(format!("ADD failed: failed to GET {url}: {e}"))
    };
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| fail(&e))?;
    let resp = client.get(url).send().await.map_err(|e| fail(&e))?;
    if !resp.status().is_success() {
        return Err(fail(&format!("status {}", resp.status())));
    }
    let bytes = resp.bytes().await.map_err(|e| fail(&e))?;
    std::fs::write(path, &bytes)?;
    Ok(())
}

/// WORKDIR: sets the working directory and creates it in the image when
/// it is missing (then the step has a layer).
pub async fn workdir(build: &mut Build, stage: &mut Stage, ins: &Instruction) -> Result<()> {
    ins.allow_flags(&[])?;
    let mut env = stage.args.clone();
    env.extend(stage.env());
    let w = words::word(ins.text().trim(), build.escape, &env)?;
    let path = absolute(&stage.working_dir(), &w);
    let created_by = format!("/bin/sh -c #(nop) WORKDIR {path}");
    if build.cached(stage, &created_by).await? {
        return Ok(());
    }
    let mut config = stage.config.clone();
    config["WorkingDir"] = serde_json::json!(path);
    let dir = build.scratch_dir("step");
    let ws = Workspace::mount(&build.b.images, &stage.image, dir)?;
    let rel = clean(Path::new(&path)).unwrap_or_default();
    Confined::open(&ws.rootfs())?.dir(&rel, true, 0o755)?;
    let upper = ws.changed().then(|| ws.upper());
    let img = build
        .b
        .images
        .commit_row(
            &stage.image,
            upper,
            CommitInfo::step(config, "", created_by.clone()),
        )
        .await?;
    drop(ws);
    build.advance(stage, img, &created_by).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(absolute("", "app"), "/app");
        assert_eq!(absolute("/srv", "app/"), "/srv/app");
        assert_eq!(absolute("/srv", "/x/../y"), "/y");
        assert_eq!(absolute("/srv", "../../.."), "/");
    }
}
