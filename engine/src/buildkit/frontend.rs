//! The `dockerfile.v0` frontend: a solve's attributes become the Dockerfile
//! engine's options; the Dockerfile, `.dockerignore` and the context come
//! over the session, each as a vertex named as BuildKit names them; then
//! the engine runs with its output going to the solve's status.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::filesync::{self, Fetch};
use super::{BuildKit, Solve};
use crate::build::inline_cache::Imports;
use crate::build::mounts::Caller;
use crate::build::report::Output;
use crate::build::{BuildKitHooks, BuildOptions, NamedContext};
use crate::error::{Error, Result};
use crate::store::ImageRow;

/// The session's names for the two directories buildx shares.
const DOCKERFILE_DIR: &str = "dockerfile";
const CONTEXT_DIR: &str = "context";

/// The engine's options from the frontend's attributes (BuildKit's
/// `dockerfile.v0` keys, as buildx sends them).
pub fn options(attrs: &HashMap<String, String>) -> Result<BuildOptions> {
    let mut opts = BuildOptions {
        dockerfile: attrs
            .get("filename")
            .filter(|f| !f.is_empty())
            .cloned()
            .unwrap_or_else(|| "Dockerfile".into()),
        // No container of a step outlives it, failed or not: BuildKit's
        // steps are never containers a user sees.
        rm: true,
        force_rm: true,
        skip_unused_stages: true,
        ..Default::default()
    };
    for (k, v) in attrs {
        if let Some(name) = k.strip_prefix("build-arg:") {
            opts.build_args.insert(name.to_string(), Some(v.clone()));
        } else if let Some(name) = k.strip_prefix("label:") {
            opts.labels.insert(name.to_string(), v.clone());
        }
    }
    opts.target = attrs.get("target").cloned().unwrap_or_default();
    // `no-cache` present: no cache (empty value: for every stage; a list
    // of stages is taken as every stage too).
    opts.no_cache = attrs.contains_key("no-cache");
    opts.pull = attrs.get("image-resolve-mode").is_some_and(|m| m == "pull");
    opts.platform = attrs.get("platform").cloned().unwrap_or_default();
    opts.network_mode = match attrs.get("force-network-mode").map(String::as_str) {
        None | Some("") | Some("sandbox") | Some("default") => String::new(),
        Some(mode @ ("host" | "none")) => mode.to_string(),
        Some(other) => {
            return Err(Error::InvalidArgument(format!(
                "invalid network mode {other:?}"
            )))
        }
    };
    // buildx sends `name=ip` pairs; the engine's RUN containers take
    // Docker's `name:ip`.
    opts.extra_hosts = attrs
        .get("add-hosts")
        .into_iter()
        .flat_map(|h| h.split(','))
        .filter(|h| !h.is_empty())
        .map(|h| h.replacen('=', ":", 1))
        .collect();
    Ok(opts)
}

/// A `--cache-from` entry: BuildKit's cache importer type and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheImport {
    pub kind: String,
    pub attrs: HashMap<String, String>,
}

/// The cache imports of a solve: those it names itself, then the
/// frontend's `cache-imports` attribute (the same list as JSON, BuildKit's
/// client sets both), each reference once.
pub fn cache_imports(attrs: &HashMap<String, String>, named: Vec<CacheImport>) -> Vec<CacheImport> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "Type", alias = "type", default)]
        kind: String,
        #[serde(rename = "Attrs", alias = "attrs", default)]
        attrs: HashMap<String, String>,
    }
    let from_attr: Vec<Entry> = attrs
        .get("cache-imports")
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    let mut out: Vec<CacheImport> = Vec::new();
    let entries = named
        .into_iter()
        .chain(from_attr.into_iter().map(|e| CacheImport {
            kind: e.kind,
            attrs: e.attrs,
        }));
    for e in entries {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

/// A `--build-context name=…` as buildx sends it (`context:<name>`):
/// a directory it shares in the session, or an image.
#[derive(Debug, PartialEq, Eq)]
pub enum ContextSource {
    /// `local:<session directory name>`
    Local(String),
    /// `docker-image://<reference>`
    Image(String),
}

pub fn named_contexts(attrs: &HashMap<String, String>) -> Result<Vec<(String, ContextSource)>> {
    let mut out = Vec::new();
    for (k, v) in attrs {
        let Some(name) = k.strip_prefix("context:") else {
            continue;
        };
        let source = if let Some(dir) = v.strip_prefix("local:") {
            ContextSource::Local(dir.to_string())
        } else if let Some(r) = v.strip_prefix("docker-image://") {
            ContextSource::Image(r.to_string())
        } else {
            return Err(Error::NotImplemented(format!(
                "build context {name}={v}: only directories and docker-image:// contexts are supported by this builder"
            )));
        };
        out.push((name.to_ascii_lowercase(), source));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `.dockerignore` lines as the patterns fsutil filters with.
fn exclude_patterns(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn read_small(path: &Path) -> Option<String> {
    let md = std::fs::metadata(path).ok()?;
    if !md.is_file() || md.len() > crate::build::context::MAX_DOCKERFILE {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// Runs the Dockerfile frontend for `solve` and returns the built image.
pub async fn run(
    bk: &Arc<BuildKit>,
    solve: &Arc<Solve>,
    attrs: &HashMap<String, String>,
    imports: Vec<CacheImport>,
) -> Result<ImageRow> {
    let opts = options(attrs)?;
    let contexts = named_contexts(attrs)?;
    let imports = cache_imports(attrs, imports);
    let session = bk.sessions.get(&solve.session_id().await?).await?;
    let (bk2, solve) = (bk.clone(), solve.clone());
    in_build_dir(bk, move |dir| async move {
        run_in(&bk2, &solve, &session, opts, contexts, imports, &dir).await
    })
    .await
}

/// Reads the records of every `--cache-from` image, each under BuildKit's
/// vertex. As in BuildKit, one that cannot be read fails its vertex, not
/// the build.
async fn import_caches(
    bk: &Arc<BuildKit>,
    status: &Arc<crate::build::status::Status>,
    session: &super::session::Session,
    imports: &[CacheImport],
) -> Imports {
    let mut found = Imports::default();
    for import in imports {
        let reference = import.attrs.get("ref").cloned().unwrap_or_default();
        let v = status.vertex(&format!("importing cache manifest from {reference}"));
        let result = async {
            if import.kind != "registry" {
                return Err(Error::NotImplemented(format!(
                    "cache import type {:?} is not supported by this builder: it imports from registries",
                    import.kind
                )));
            }
            let r = crate::images::reference::Reference::parse(&reference)?;
            let auth = super::export::credentials(session, &r.domain).await;
            found.add(&bk.builder.images, &r, &auth).await
        }
        .await;
        match result {
            Ok(n) => {
                tracing::info!(reference, records = n, "cache imported");
                v.done();
            }
            Err(e) => v.error(&format!("{reference}: {}", not_found_text(&e))),
        }
    }
    found
}

/// BuildKit's words for a missing cache image: `<ref>: not found`.
fn not_found_text(e: &Error) -> String {
    match e {
        Error::NotFound(_) => "not found".into(),
        other => other.to_string(),
    }
}

/// Runs `work` in a fresh build directory, unmounted and removed after.
/// The work runs as a task of its own: a client that goes away (Ctrl-C
/// resets the gRPC stream, which drops the caller's future) must not stop
/// it half-way, with a step's container running and its directory mounted.
pub(super) async fn in_build_dir<F, Fut>(bk: &Arc<BuildKit>, work: F) -> Result<ImageRow>
where
    F: FnOnce(std::path::PathBuf) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<ImageRow>> + Send + 'static,
{
    let dir = bk.builder.new_dir();
    let task = tokio::spawn(async move {
        let result = work(dir.clone()).await;
        let _ = tokio::task::spawn_blocking(move || {
            crate::build::workspace::unmount_below(&dir);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "removing a build's directory");
            }
        })
        .await;
        result
    });
    task.await.map_err(Error::internal)?
}

async fn run_in(
    bk: &Arc<BuildKit>,
    solve: &Arc<Solve>,
    session: &super::session::Session,
    opts: BuildOptions,
    contexts: Vec<(String, ContextSource)>,
    imports: Vec<CacheImport>,
    dir: &Path,
) -> Result<ImageRow> {
    let status = &solve.status;
    let name = opts.dockerfile.clone();
    let base = Path::new(&name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.clone());

    let v = status.vertex(&format!("[internal] load build definition from {base}"));
    let df_dir = dir.join("dockerfile");
    let fetched = filesync::receive(
        session,
        &Fetch {
            dir_name: DOCKERFILE_DIR.into(),
            follow: vec![base.clone(), format!("{base}.dockerignore")],
            ..Default::default()
        },
        &df_dir,
    )
    .await;
    let text = match fetched.map(|n| (n, read_small(&df_dir.join(&base)))) {
        Ok((n, Some(text))) => {
            v.item("transferring dockerfile:", n as i64, 0);
            v.done();
            text
        }
        Ok((_, None)) => {
            let e = Error::InvalidArgument(format!(
                "failed to read dockerfile: open {base}: no such file or directory"
            ));
            v.error(&e.to_string());
            return Err(e);
        }
        Err(e) => {
            v.error(&e.to_string());
            return Err(e);
        }
    };

    // A Dockerfile's own `<name>.dockerignore` wins over the context's.
    let ignore = match read_small(&df_dir.join(format!("{base}.dockerignore"))) {
        Some(t) => t,
        None => {
            let v = status.vertex("[internal] load .dockerignore");
            let ig_dir = dir.join("dockerignore");
            let fetch = Fetch {
                dir_name: CONTEXT_DIR.into(),
                follow: vec![".dockerignore".into()],
                ..Default::default()
            };
            let n = match filesync::receive(session, &fetch, &ig_dir).await {
                Ok(n) => n,
                Err(e) => {
                    v.error(&e.to_string());
                    return Err(e);
                }
            };
            v.item("transferring context:", n as i64, 0);
            read_small(&ig_dir.join(".dockerignore")).unwrap_or_default()
        }
    };

    let v = status.vertex("[internal] load build context");
    let ctx = dir.join("context");
    let fetch = Fetch {
        dir_name: CONTEXT_DIR.into(),
        exclude: exclude_patterns(&ignore),
        ..Default::default()
    };
    let n = match filesync::receive(session, &fetch, &ctx).await {
        Ok(n) => n,
        Err(e) => {
            v.error(&e.to_string());
            return Err(e);
        }
    };
    v.item("transferring context:", n as i64, 0);
    drop(v);

    let mut named = HashMap::new();
    for (name, source) in contexts {
        let target = match source {
            ContextSource::Image(r) => NamedContext::Image(r),
            ContextSource::Local(dir_name) => {
                let v = status.vertex(&format!("[context {name}] load from client"));
                let dest = dir.join("named").join(crate::util::random_id());
                let fetch = Fetch {
                    dir_name,
                    ..Default::default()
                };
                match filesync::receive(session, &fetch, &dest).await {
                    Ok(n) => v.item("transferring context:", n as i64, 0),
                    Err(e) => {
                        v.error(&e.to_string());
                        return Err(e);
                    }
                }
                NamedContext::Dir(dest)
            }
        };
        named.insert(name, target);
    }
    let cache_imports = import_caches(bk, status, session, &imports).await;
    let hooks = BuildKitHooks {
        named_contexts: named,
        caller: Some(Arc::new(SessionCaller(session.clone()))),
        entitlements: solve.entitlements(),
        cache_imports,
    };
    bk.builder
        .build_image(
            opts,
            dir.to_path_buf(),
            ctx,
            &text,
            Output::status(status.clone()),
            hooks,
        )
        .await
}

/// What RUN steps get from the session: secrets (`--secret`) and SSH
/// agents (`--ssh`).
pub(super) struct SessionCaller(pub(super) super::session::Session);

#[tonic::async_trait]
impl Caller for SessionCaller {
    async fn secret(&self, id: &str) -> Result<Option<Vec<u8>>> {
        use bollard_buildkit_proto::moby::buildkit::secrets::v1::secrets_client::SecretsClient;
        use bollard_buildkit_proto::moby::buildkit::secrets::v1::GetSecretRequest;
        if !self.0.serves("/moby.buildkit.secrets.v1.Secrets/GetSecret") {
            return Ok(None);
        }
        let mut client = SecretsClient::with_origin(self.0.channel(), super::session::origin());
        match client
            .get_secret(GetSecretRequest {
                id: id.to_string(),
                ..Default::default()
            })
            .await
        {
            Ok(r) => Ok(Some(r.into_inner().data)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(s.into()),
        }
    }

    async fn check_ssh_agent(&self, id: &str) -> Result<()> {
        use bollard_buildkit_proto::moby::sshforward::v1::ssh_client::SshClient;
        use bollard_buildkit_proto::moby::sshforward::v1::CheckAgentRequest;
        if !self.0.serves("/moby.sshforward.v1.SSH/CheckAgent") {
            return Err(Error::InvalidArgument(format!(
                "unset ssh forward key {id}"
            )));
        }
        let mut client = SshClient::with_origin(self.0.channel(), super::session::origin());
        client
            .check_agent(CheckAgentRequest { id: id.to_string() })
            .await
            .map(|_| ())
            .map_err(|s| Error::InvalidArgument(s.message().to_string()))
    }

    async fn forward_ssh(&self, id: &str, conn: tokio::net::UnixStream) {
        use bollard_buildkit_proto::moby::sshforward::v1::ssh_client::SshClient;
        use bollard_buildkit_proto::moby::sshforward::v1::BytesMessage;
        use futures_util::StreamExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut rd, mut wr) = conn.into_split();
        // What the RUN's client writes goes out on the stream until it
        // closes its side; the agent's answers come back the other way.
        let (tx, rx) = tokio::sync::mpsc::channel::<BytesMessage>(16);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 << 10];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx
                            .send(BytesMessage {
                                data: buf[..n].to_vec(),
                            })
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        let requests = tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut req = tonic::Request::new(requests);
        if let Ok(v) = id.parse() {
            req.metadata_mut().insert("buildkit.ssh.id", v);
        }
        let mut client = SshClient::with_origin(self.0.channel(), super::session::origin());
        let mut answers = match client.forward_agent(req).await {
            Ok(r) => r.into_inner(),
            Err(e) => {
                tracing::debug!(error = %e, "forwarding an SSH agent connection");
                return;
            }
        };
        while let Some(Ok(m)) = answers.next().await {
            if wr.write_all(&m.data).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn frontend_attributes_become_build_options() {
        let o = options(&attrs(&[
            ("filename", "Dockerfile.dev"),
            ("target", "test"),
            ("build-arg:A", "1"),
            ("label:l", "v"),
            ("no-cache", ""),
            ("add-hosts", "db=10.0.0.2,cache=10.0.0.3"),
            ("force-network-mode", "none"),
            ("image-resolve-mode", "pull"),
        ]))
        .unwrap();
        assert_eq!(o.dockerfile, "Dockerfile.dev");
        assert_eq!(o.target, "test");
        assert_eq!(o.build_args.get("A"), Some(&Some("1".to_string())));
        assert_eq!(o.labels.get("l").map(String::as_str), Some("v"));
        assert!(o.no_cache && o.pull);
        assert_eq!(o.extra_hosts, vec!["db:10.0.0.2", "cache:10.0.0.3"]);
        assert_eq!(o.network_mode, "none");
    }

    #[test]
    fn defaults_and_refusals() {
        let o = options(&attrs(&[])).unwrap();
        assert_eq!(o.dockerfile, "Dockerfile");
        assert!(!o.no_cache && o.network_mode.is_empty());
        assert!(options(&attrs(&[("force-network-mode", "bogus")])).is_err());
        assert_eq!(
            named_contexts(&attrs(&[
                ("context:Base", "docker-image://alpine:3"),
                ("context:src", "local:src")
            ]))
            .unwrap(),
            vec![
                ("base".to_string(), ContextSource::Image("alpine:3".into())),
                ("src".to_string(), ContextSource::Local("src".into())),
            ]
        );
        assert!(named_contexts(&attrs(&[("context:x", "https://example.com/a.git")])).is_err());
    }

    #[test]
    fn dockerignore_lines_are_patterns() {
        assert_eq!(
            exclude_patterns("# c\n\nnode_modules\n!keep\n *.log \n"),
            vec!["node_modules", "!keep", "*.log"]
        );
    }
}
