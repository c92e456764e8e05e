//! RUN's BuildKit flags: `--mount` (cache, secret, bind, tmpfs), `--network`
//! and `--security`. Parsed here from the Dockerfile's words; made ready
//! for one RUN container (host directories, secret files from the
//! session, locks of cache mounts) by `Provision`, which undoes what it
//! made when dropped. The legacy builder refuses these flags, as dockerd's
//! does.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bollard_stubs::models::{Mount as DockerMount, MountType};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    /// A directory kept between builds, keyed by id (default: the target).
    Cache {
        id: String,
        target: String,
        sharing: Sharing,
        read_only: bool,
        mode: u32,
        uid: u32,
        gid: u32,
        /// `from=` (a stage, image or named context) and `source=` in it:
        /// what a new cache starts with, instead of an empty directory.
        from: Option<String>,
        source: String,
    },
    /// A secret of the session, as a file (and/or an environment variable).
    Secret {
        id: String,
        target: Option<String>,
        env: Option<String>,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// The caller's SSH agent `id`, as a socket (`SSH_AUTH_SOCK`).
    Ssh {
        id: String,
        target: Option<String>,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// Part of the context (or of another stage or image, `from`).
    Bind {
        target: String,
        source: String,
        from: Option<String>,
        read_write: bool,
    },
    Tmpfs {
        target: String,
        size: Option<String>,
    },
}

/// RUN's flags, checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunFlags {
    pub mounts: Vec<MountSpec>,
    /// `--network`: `default` (none given), `none` or `host`.
    pub network: Option<String>,
    /// `--security=insecure`.
    pub insecure: bool,
}

impl RunFlags {
    pub fn is_empty(&self) -> bool {
        self == &RunFlags::default()
    }

    /// What the cache key adds for these flags: each flag in one
    /// canonical spelling, every field that changes the step's result
    /// (secret values never: only their ids and where they go).
    pub fn cache_text(&self) -> String {
        let mut words: Vec<String> = self.mounts.iter().map(mount_text).collect();
        if let Some(n) = &self.network {
            words.push(format!("--network={n}"));
        }
        if self.insecure {
            words.push("--security=insecure".into());
        }
        words.join(" ")
    }
}

fn mount_text(m: &MountSpec) -> String {
    let opt = |name: &str, v: &Option<String>| match v {
        Some(v) => format!(",{name}={v}"),
        None => String::new(),
    };
    match m {
        MountSpec::Cache {
            id,
            target,
            sharing,
            read_only,
            mode,
            uid,
            gid,
            from,
            source,
        } => {
            let sharing = match sharing {
                Sharing::Shared => "shared",
                Sharing::Private => "private",
                Sharing::Locked => "locked",
            };
            let seed = match from {
                Some(f) => format!(",from={f},source={source}"),
                None => String::new(),
            };
            format!("--mount=type=cache,id={id},target={target},sharing={sharing},readonly={read_only},mode={mode:o},uid={uid},gid={gid}{seed}")
        }
        MountSpec::Secret {
            id,
            target,
            env,
            required,
            mode,
            uid,
            gid,
        } => format!(
            "--mount=type=secret,id={id}{}{},required={required},mode={mode:o},uid={uid},gid={gid}",
            opt("target", target),
            opt("env", env)
        ),
        MountSpec::Ssh {
            id,
            target,
            required,
            mode,
            uid,
            gid,
        } => format!(
            "--mount=type=ssh,id={id}{},required={required},mode={mode:o},uid={uid},gid={gid}",
            opt("target", target)
        ),
        MountSpec::Bind {
            target,
            source,
            from,
            read_write,
        } => format!(
            "--mount=type=bind,target={target},source={source}{},rw={read_write}",
            opt("from", from)
        ),
        MountSpec::Tmpfs { target, size } => {
            format!("--mount=type=tmpfs,target={target}{}", opt("size", size))
        }
    }
}

pub(super) fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::InvalidArgument(format!(
            "invalid value for {key}: {v}"
        ))),
    }
}

fn parse_octal(key: &str, v: &str) -> Result<u32> {
    u32::from_str_radix(v, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| Error::InvalidArgument(format!("invalid value for {key}: {v}")))
}

fn parse_id(key: &str, v: &str) -> Result<u32> {
    v.parse()
        .map_err(|_| Error::InvalidArgument(format!("invalid value for {key}: {v}")))
}

/// One `--mount=` value (`type=cache,target=/root/.cache,sharing=locked`).
pub fn parse_mount(text: &str) -> Result<MountSpec> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |names: &[&str]| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.clone())
    };
    let kind = get(&["type"]).unwrap_or_else(|| "bind".into());
    let allowed: &[&str] = match kind.as_str() {
        "cache" => &[
            "type",
            "target",
            "dst",
            "destination",
            "id",
            "sharing",
            "ro",
            "readonly",
            "rw",
            "readwrite",
            "mode",
            "uid",
            "gid",
            "from",
            "source",
            "src",
        ],
        "secret" => &[
            "type",
            "target",
            "dst",
            "destination",
            "id",
            "env",
            "required",
            "mode",
            "uid",
            "gid",
        ],
        "bind" => &[
            "type",
            "target",
            "dst",
            "destination",
            "source",
            "src",
            "from",
            "ro",
            "readonly",
            "rw",
            "readwrite",
        ],
        "tmpfs" => &["type", "target", "dst", "destination", "size"],
        "ssh" => &[
            "type",
            "target",
            "dst",
            "destination",
            "id",
            "required",
            "mode",
            "uid",
            "gid",
        ],
        other => {
            return Err(Error::InvalidArgument(format!(
                "unsupported mount type {other:?}"
            )))
        }
    };
    if let Some((k, v)) = fields.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(Error::InvalidArgument(format!(
            "unexpected key '{k}' in '{k}={v}'"
        )));
    }
    let target = get(&["target", "dst", "destination"]);
    let need_target = || {
        target
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::InvalidArgument("mount destination not specified".into()))
    };
    let read_only = match (get(&["ro", "readonly"]), get(&["rw", "readwrite"])) {
        (Some(v), _) => parse_bool("readonly", &v)?,
        (None, Some(v)) => !parse_bool("readwrite", &v)?,
        (None, None) => kind == "bind",
    };
    let mode = |default: u32| -> Result<u32> {
        get(&["mode"])
            .map(|m| parse_octal("mode", &m))
            .unwrap_or(Ok(default))
    };
    let uid = get(&["uid"])
        .map(|v| parse_id("uid", &v))
        .unwrap_or(Ok(0))?;
    let gid = get(&["gid"])
        .map(|v| parse_id("gid", &v))
        .unwrap_or(Ok(0))?;
    Ok(match kind.as_str() {
        "cache" => {
            let target = need_target()?;
            MountSpec::Cache {
                id: get(&["id"])
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| target.clone()),
                target,
                sharing: match get(&["sharing"]).as_deref() {
                    None | Some("shared") => Sharing::Shared,
                    Some("private") => Sharing::Private,
                    Some("locked") => Sharing::Locked,
                    Some(other) => {
                        return Err(Error::InvalidArgument(format!(
                            "unrecognized sharing for cache mount: {other}"
                        )))
                    }
                },
                read_only,
                mode: mode(0o755)?,
                uid,
                gid,
                from: get(&["from"]).filter(|f| !f.is_empty()),
                source: get(&["source", "src"]).unwrap_or_default(),
            }
        }
        "secret" => {
            let env = get(&["env"]).filter(|e| !e.is_empty());
            let id = get(&["id"]).filter(|i| !i.is_empty());
            let target = target.filter(|t| !t.is_empty());
            // Without an id the target's base name is the id, and without
            // either there is nothing to look for.
            let id = match (id, &target) {
                (Some(id), _) => id,
                (None, Some(t)) => Path::new(t)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                (None, None) => {
                    return Err(Error::InvalidArgument(
                        "one of id or target must be set for a secret mount".into(),
                    ))
                }
            };
            MountSpec::Secret {
                target: match (&target, &env) {
                    (Some(t), _) => Some(t.clone()),
                    (None, Some(_)) => None,
                    (None, None) => Some(format!("/run/secrets/{id}")),
                },
                id,
                env,
                required: get(&["required"])
                    .map(|v| parse_bool("required", &v))
                    .unwrap_or(Ok(false))?,
                mode: mode(0o400)?,
                uid,
                gid,
            }
        }
        "ssh" => MountSpec::Ssh {
            id: get(&["id"])
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| "default".into()),
            target: target.filter(|t| !t.is_empty()),
            required: get(&["required"])
                .map(|v| parse_bool("required", &v))
                .unwrap_or(Ok(false))?,
            mode: mode(0o600)?,
            uid,
            gid,
        },
        "bind" => MountSpec::Bind {
            target: need_target()?,
            source: get(&["source", "src"]).unwrap_or_default(),
            from: get(&["from"]).filter(|f| !f.is_empty()),
            read_write: !read_only,
        },
        _ => MountSpec::Tmpfs {
            target: need_target()?,
            size: get(&["size"]).filter(|s| !s.is_empty()),
        },
    })
}

/// RUN's flags from an instruction's (name, value) pairs.
pub fn parse_flags(flags: &[(String, String)]) -> Result<RunFlags> {
    let mut out = RunFlags::default();
    for (name, value) in flags {
        match name.as_str() {
            "mount" => out.mounts.push(parse_mount(value)?),
            "network" => match value.as_str() {
                "default" | "sandbox" => out.network = None,
                "none" | "host" => out.network = Some(value.clone()),
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "unsupported network mode {other:?}"
                    )))
                }
            },
            "security" => match value.as_str() {
                "sandbox" => out.insecure = false,
                "insecure" => out.insecure = true,
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "unsupported security mode {other:?}"
                    )))
                }
            },
            other => return Err(Error::InvalidArgument(format!("Unknown flag: {other}"))),
        }
    }
    Ok(out)
}

/// Cache mounts on disk, under `<data-root>/build-cache-mounts`, and the
/// locks of `sharing=locked` ones (process-wide: two builds share them).
pub struct CacheMounts {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl CacheMounts {
    pub fn new(root: PathBuf) -> CacheMounts {
        CacheMounts {
            root,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The directory of cache id `id`; ids are any text, so the name is
    /// their digest.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root
            .join(hex::encode(&Sha256::digest(id.as_bytes())[..16]))
    }

    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    /// Every cache mount: its directory's name, what it was made for
    /// (`id` and target), its size in bytes and when it was last used.
    pub fn list(&self) -> Vec<CacheMountInfo> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| {
                let md = e.metadata().ok()?;
                let made_for =
                    std::fs::read_to_string(e.path().with_extension("id")).unwrap_or_default();
                Some(CacheMountInfo {
                    name: e.file_name().to_string_lossy().into_owned(),
                    target: made_for.lines().nth(1).unwrap_or("").to_string(),
                    size: dir_size(&e.path()),
                    last_used: md.modified().ok()?,
                })
            })
            .collect()
    }

    /// Removes the cache mount `name` unless a RUN is using it; true when
    /// it went.
    pub fn remove(&self, name: &str) -> bool {
        let in_use = self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(id, l)| self.dir(id).ends_with(name) && l.try_lock().is_err());
        if in_use || name.is_empty() || name.contains('/') {
            return false;
        }
        if std::fs::remove_dir_all(self.root.join(name)).is_err() {
            return false;
        }
        let _ = std::fs::remove_file(self.root.join(name).with_extension("id"));
        true
    }
}

pub struct CacheMountInfo {
    pub name: String,
    pub target: String,
    pub size: u64,
    pub last_used: std::time::SystemTime,
}

fn dir_size(path: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(path)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

/// What one RUN gets from its flags: mounts for the container, extra
/// environment, and what must live as long as it runs.
#[derive(Default)]
pub struct Provision {
    pub mounts: Vec<DockerMount>,
    pub tmpfs: HashMap<String, String>,
    pub env: Vec<String>,
    /// Mount targets the runtime will make placeholders for, taken out of
    /// the step's layer afterwards.
    pub targets: Vec<String>,
    /// Held locks of `sharing=locked` (and in-use marks of shared) caches.
    guards: Vec<tokio::sync::OwnedMutexGuard<()>>,
    /// SSH agent sockets' accept loops, stopped with the RUN, and their
    /// directories, removed then.
    forwarders: Vec<tokio::task::JoinHandle<()>>,
    socket_dirs: Vec<PathBuf>,
}

impl Drop for Provision {
    fn drop(&mut self) {
        for f in &self.forwarders {
            f.abort();
        }
        for d in &self.socket_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// What a RUN gets from the caller of a BuildKit solve (its session).
#[tonic::async_trait]
pub trait Caller: Send + Sync {
    /// The secret's bytes, or None when the caller has no such secret.
    async fn secret(&self, id: &str) -> Result<Option<Vec<u8>>>;
    /// Whether the caller forwards an SSH agent named `id`: an error (in
    /// the caller's words) when it does not.
    async fn check_ssh_agent(&self, id: &str) -> Result<()>;
    /// Carries one connection to the caller's agent `id` until either
    /// side closes it.
    async fn forward_ssh(&self, id: &str, conn: tokio::net::UnixStream);
}

fn bind(source: &Path, target: &str, read_only: bool) -> DockerMount {
    DockerMount {
        target: Some(target.to_string()),
        source: Some(source.display().to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    }
}

impl Provision {
    /// Makes everything `flags` asks for. `scratch` is a fresh directory of
    /// the build's for secret files and writable binds; `bind_roots` maps
    /// the `from` of a bind mount or of a cache's seed (empty: none, the
    /// build context) to the directory it names, already mounted.
    pub async fn make(
        flags: &RunFlags,
        caches: &CacheMounts,
        caller: Option<Arc<dyn Caller>>,
        scratch: &Path,
        bind_roots: &HashMap<String, PathBuf>,
    ) -> Result<Provision> {
        let mut p = Provision::default();
        for (n, m) in flags.mounts.iter().enumerate() {
            match m {
                MountSpec::Cache {
                    id,
                    target,
                    sharing,
                    read_only,
                    mode,
                    uid,
                    gid,
                    from,
                    source,
                } => {
                    let lock = caches.lock(id);
                    let dir = match sharing {
                        Sharing::Locked => {
                            p.guards.push(lock.lock_owned().await);
                            caches.dir(id)
                        }
                        Sharing::Shared => caches.dir(id),
                        Sharing::Private => match lock.try_lock_owned() {
                            Ok(g) => {
                                p.guards.push(g);
                                caches.dir(id)
                            }
                            // In use elsewhere: a fresh one of its own.
                            Err(_) => scratch.join(format!("private-cache-{n}")),
                        },
                    };
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir)?;
                        // The id beside it, for `buildx du`'s description.
                        let _ = std::fs::write(dir.with_extension("id"), format!("{id}\n{target}"));
                        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(*mode))?;
                        nix::unistd::chown(
                            &dir,
                            Some(nix::unistd::Uid::from_raw(*uid)),
                            Some(nix::unistd::Gid::from_raw(*gid)),
                        )
                        .map_err(|e| Error::Internal(format!("cache mount {id}: {e}")))?;
                        // A new cache with from= starts as a copy of that
                        // directory (BuildKit's seed), not empty.
                        if let Some(root) = from.as_ref().and_then(|f| bind_roots.get(f)) {
                            let seed = inside(root, source)?;
                            let out = tokio::process::Command::new("cp")
                                .arg("-a")
                                .arg(format!("{}/.", seed.display()))
                                .arg(&dir)
                                .output()
                                .await?;
                            if !out.status.success() {
                                return Err(Error::Internal(format!(
                                    "seeding cache mount {id}: {}",
                                    String::from_utf8_lossy(&out.stderr).trim()
                                )));
                            }
                        }
                    }
                    // Touched, so `buildx du` shows when it was last used.
                    let _ = touch(&dir);
                    p.mounts.push(bind(&dir, target, *read_only));
                    p.targets.push(target.clone());
                }
                MountSpec::Secret {
                    id,
                    target,
                    env,
                    required,
                    mode,
                    uid,
                    gid,
                } => {
                    let value = match &caller {
                        Some(c) => c.secret(id).await?,
                        None => None,
                    };
                    let Some(value) = value else {
                        if *required {
                            return Err(Error::NotFound(format!(
                                "secret {id} not found: not found"
                            )));
                        }
                        continue;
                    };
                    if let Some(var) = env {
                        p.env
                            .push(format!("{var}={}", String::from_utf8_lossy(&value)));
                    }
                    if let Some(target) = target {
                        std::fs::create_dir_all(scratch)?;
                        let file = scratch.join(format!("secret-{n}"));
                        std::fs::write(&file, &value)?;
                        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))?;
                        nix::unistd::chown(
                            &file,
                            Some(nix::unistd::Uid::from_raw(*uid)),
                            Some(nix::unistd::Gid::from_raw(*gid)),
                        )
                        .map_err(|e| Error::Internal(format!("secret {id}: {e}")))?;
                        p.mounts.push(bind(&file, target, true));
                        p.targets.push(target.clone());
                    }
                }
                MountSpec::Ssh {
                    id,
                    target,
                    required,
                    mode,
                    uid,
                    gid,
                } => {
                    let check = match &caller {
                        Some(c) => c.check_ssh_agent(id).await.map(|()| c.clone()),
                        None => Err(Error::InvalidArgument(format!(
                            "unset ssh forward key {id}"
                        ))),
                    };
                    let caller = match check {
                        Ok(c) => c,
                        Err(e) if *required => return Err(e),
                        // Not required: the step runs without an agent.
                        Err(_) => continue,
                    };
                    let target = target
                        .clone()
                        .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{n}"));
                    // Socket paths must fit in 108 bytes: a short
                    // directory of its own, as BuildKit makes one in /tmp.
                    let dir = std::env::temp_dir()
                        .join(format!(".berth-ssh-{}", &crate::util::random_id()[..12]));
                    std::fs::create_dir_all(&dir)?;
                    p.socket_dirs.push(dir.clone());
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
                    let sock = dir.join("ssh_auth_sock");
                    let listener = tokio::net::UnixListener::bind(&sock)?;
                    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(*mode))?;
                    nix::unistd::chown(
                        &sock,
                        Some(nix::unistd::Uid::from_raw(*uid)),
                        Some(nix::unistd::Gid::from_raw(*gid)),
                    )
                    .map_err(|e| Error::Internal(format!("ssh agent socket: {e}")))?;
                    let id = id.clone();
                    p.forwarders.push(tokio::spawn(async move {
                        while let Ok((conn, _)) = listener.accept().await {
                            let (caller, id) = (caller.clone(), id.clone());
                            tokio::spawn(async move { caller.forward_ssh(&id, conn).await });
                        }
                    }));
                    p.env.push(format!("SSH_AUTH_SOCK={target}"));
                    p.mounts.push(bind(&sock, &target, false));
                    p.targets.push(target);
                }
                MountSpec::Bind {
                    target,
                    source,
                    from,
                    read_write,
                } => {
                    let root = bind_roots
                        .get(from.as_deref().unwrap_or(""))
                        .ok_or_else(|| {
                            Error::Internal(format!("no root for bind from {from:?}"))
                        })?;
                    let path = inside(root, source)?;
                    if *read_write {
                        // Writable, but what the step writes there is
                        // thrown away (BuildKit's rule): a copy of its own.
                        let copy = scratch.join(format!("bind-{n}"));
                        std::fs::create_dir_all(scratch)?;
                        let out = tokio::process::Command::new("cp")
                            .arg("-a")
                            .arg(&path)
                            .arg(&copy)
                            .output()
                            .await?;
                        if !out.status.success() {
                            return Err(Error::Internal(format!(
                                "copying {source} for a writable bind: {}",
                                String::from_utf8_lossy(&out.stderr).trim()
                            )));
                        }
                        p.mounts.push(bind(&copy, target, false));
                    } else {
                        p.mounts.push(bind(&path, target, true));
                    }
                    p.targets.push(target.clone());
                }
                MountSpec::Tmpfs { target, size } => {
                    // Executable, as BuildKit's tmpfs mounts are (Docker's
                    // --tmpfs default is noexec).
                    let mut opts = vec!["exec".to_string()];
                    opts.extend(size.as_ref().map(|s| format!("size={s}")));
                    let opts = opts.join(",");
                    p.tmpfs.insert(target.clone(), opts);
                    p.targets.push(target.clone());
                }
            }
        }
        Ok(p)
    }
}

fn touch(path: &Path) -> nix::Result<()> {
    let now = nix::sys::time::TimeSpec::UTIME_NOW;
    nix::sys::stat::utimensat(
        None,
        path,
        &now,
        &now,
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
}

/// `source` inside the context, with every symlink resolved inside it:
/// the host path the runtime binds (a context's symlink cannot lead out).
pub(super) fn inside(root: &Path, source: &str) -> Result<PathBuf> {
    let confined = crate::confined::Confined::open(root)?;
    let rel = crate::confined::clean(Path::new(source)).unwrap_or_default();
    if rel.as_os_str().is_empty() {
        return Ok(root.to_path_buf());
    }
    let fd = confined.lookup(&rel).map_err(|_| {
        Error::InvalidArgument(format!(
            "failed to compute cache key: \"/{}\" not found: not found",
            rel.display()
        ))
    })?;
    let real = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))?;
    if !real.starts_with(root) {
        return Err(Error::InvalidArgument(format!(
            "{source:?} leaves the build context"
        )));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_as_buildkit_reads_them() {
        assert_eq!(
            parse_mount("type=cache,target=/root/.cache,sharing=locked").unwrap(),
            MountSpec::Cache {
                id: "/root/.cache".into(),
                target: "/root/.cache".into(),
                sharing: Sharing::Locked,
                read_only: false,
                mode: 0o755,
                uid: 0,
                gid: 0,
                from: None,
                source: String::new(),
            }
        );
        assert_eq!(
            parse_mount("type=secret,id=tok").unwrap(),
            MountSpec::Secret {
                id: "tok".into(),
                target: Some("/run/secrets/tok".into()),
                env: None,
                required: false,
                mode: 0o400,
                uid: 0,
                gid: 0
            }
        );
        match parse_mount("type=secret,id=tok,env=TOKEN").unwrap() {
            MountSpec::Secret { target, env, .. } => {
                assert_eq!(target, None);
                assert_eq!(env.as_deref(), Some("TOKEN"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_mount("target=/src,source=app").unwrap(),
            MountSpec::Bind {
                target: "/src".into(),
                source: "app".into(),
                from: None,
                read_write: false
            }
        );
        assert!(matches!(
            parse_mount("type=tmpfs,target=/t,size=10m").unwrap(),
            MountSpec::Tmpfs { size: Some(s), .. } if s == "10m"
        ));
    }

    #[test]
    fn ssh_mounts_default_to_the_default_agent() {
        assert_eq!(
            parse_mount("type=ssh").unwrap(),
            MountSpec::Ssh {
                id: "default".into(),
                target: None,
                required: false,
                mode: 0o600,
                uid: 0,
                gid: 0
            }
        );
    }

    #[test]
    fn bad_mounts_are_refused_with_buildkit_words() {
        let e = parse_mount("type=secret,id=a,bogus=1")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "unexpected key 'bogus' in 'bogus=1'");
        let e = parse_mount("type=cache").unwrap_err().to_string();
        assert_eq!(e, "mount destination not specified");
        assert!(parse_mount("type=cache,target=/c,sharing=sometimes").is_err());
        assert!(parse_mount("type=volume,target=/c").is_err());
    }

    #[test]
    fn run_flags_and_their_cache_text() {
        let flags = parse_flags(&[
            ("mount".into(), "type=cache,target=/c".into()),
            ("network".into(), "none".into()),
        ])
        .unwrap();
        assert_eq!(flags.network.as_deref(), Some("none"));
        assert!(!flags.is_empty());
        assert_eq!(
            flags.cache_text(),
            "--mount=type=cache,id=/c,target=/c,sharing=shared,readonly=false,mode=755,uid=0,gid=0 --network=none"
        );
        assert_eq!(RunFlags::default().cache_text(), "");
        assert!(parse_flags(&[("network".into(), "bridge2".into())]).is_err());
        assert!(parse_flags(&[("frob".into(), "x".into())]).is_err());
    }
}
