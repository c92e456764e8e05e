//! `POST /build?version=2`: a BuildKit build asked for through the build
//! API rather than through `/grpc` (bollard's `buildkit` feature, scripts
//! that post a tar with `version=2`). As dockerd does it: the context is
//! the request body, every status update goes out as a
//! `{"id":"moby.buildkit.trace","aux":"<base64 StatusResponse>"}` message,
//! and the end is `moby.image.id` with "Successfully tagged" lines, or the
//! error, always inside a 200. A session (`session=`), when named, serves
//! secrets, SSH agents and the targets of `outputs` (local, tar).

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;

use super::export::{self, Exporter};
use super::frontend::{in_build_dir, SessionCaller};
use super::BuildKit;
use crate::build::report::Output;
use crate::build::{BuildKitHooks, BuildOptions};
use crate::error::{Error, Result};
use crate::images::progress::Progress;

/// What the request asked for.
pub struct ApiBuild {
    pub opts: BuildOptions,
    /// The `t` values as given: the exporter names them ("naming to …").
    pub tags: Vec<String>,
    /// `outputs`: at most one (`type` local, tar, moby/image, cacheonly).
    pub outputs: Vec<Exporter>,
    /// `session`: the caller's session id, or empty.
    pub session: String,
    /// `buildid`: the solve's name (what `/build/cancel?id=` takes).
    pub build_id: String,
    /// The context tar, a file the handler wrote; removed here.
    pub context: PathBuf,
}

/// One trace message as dockerd writes it (`\r\n` ends every message).
fn trace_line(update: &bollard_buildkit_proto::moby::buildkit::v1::StatusResponse) -> Bytes {
    let aux =
        base64::engine::general_purpose::STANDARD.encode(prost::Message::encode_to_vec(update));
    let mut line = serde_json::json!({"id": "moby.buildkit.trace", "aux": aux}).to_string();
    line.push_str("\r\n");
    Bytes::from(line)
}

/// The exporters of a request: the image store (named by the tags) unless
/// `outputs` says otherwise, as dockerd 20.10 decides.
fn exporters(req: &ApiBuild) -> Result<Vec<Exporter>> {
    let mut outputs = req.outputs.iter();
    let (first, more) = (outputs.next(), outputs.next());
    if more.is_some() {
        return Err(Error::InvalidArgument(
            "multiple outputs not supported".into(),
        ));
    }
    let mut e = match first {
        None => Exporter {
            kind: "moby".into(),
            attrs: Default::default(),
        },
        Some(o) if o.kind == "cacheonly" => return Ok(Vec::new()),
        Some(o) => Exporter {
            kind: o.kind.clone(),
            attrs: o.attrs.clone(),
        },
    };
    if matches!(e.kind.as_str(), "moby" | "image") && !req.tags.is_empty() {
        e.attrs.insert("name".into(), req.tags.join(","));
    }
    export::check(std::slice::from_ref(&e))?;
    Ok(vec![e])
}

impl BuildKit {
    /// Starts the build; its messages follow in the returned progress.
    pub fn api_build(self: &Arc<Self>, req: ApiBuild) -> Arc<Progress> {
        let progress = Progress::new();
        let solve = self.solve(&req.build_id);
        // Claimed: no Control.Solve will come for this one.
        solve.session.send_replace(Some(req.session.clone()));
        let relay = {
            let (status, progress) = (solve.status.clone(), progress.clone());
            tokio::spawn(async move {
                let mut updates = std::pin::pin!(status.follow());
                while let Some(update) = updates.next().await {
                    progress.relay(trace_line(&update));
                }
            })
        };
        let (bk, out) = (self.clone(), progress.clone());
        tokio::spawn(async move {
            let context = req.context.clone();
            let result = bk.run_api_build(&solve, req).await;
            let _ = tokio::fs::remove_file(&context).await;
            bk.finished(&solve);
            // Every trace goes out before the end.
            let _ = relay.await;
            match result {
                Ok(Some((id, tags))) => {
                    out.built(&id);
                    for t in tags {
                        out.stream(&format!("Successfully tagged {t}\n"));
                    }
                }
                Ok(None) => {}
                Err(e) => out.error(&e.to_string()),
            }
            out.finish();
        });
        progress
    }

    /// The build and its export; the image id and the tags as
    /// "Successfully tagged" shows them, when the image went to the store.
    async fn run_api_build(
        self: &Arc<Self>,
        solve: &Arc<super::Solve>,
        req: ApiBuild,
    ) -> Result<Option<(String, Vec<String>)>> {
        let exporters = exporters(&req)?;
        let caller = match req.session.as_str() {
            "" => None,
            id => match self.sessions.get(id).await {
                Ok(s) => Some(Arc::new(SessionCaller(s)) as Arc<dyn crate::build::mounts::Caller>),
                Err(e) => {
                    tracing::debug!(session = id, error = %e, "building without the caller's session");
                    None
                }
            },
        };
        let mut opts = req.opts;
        // BuildKit's rules: no step container outlives its step, and
        // stages the target does not need are skipped.
        opts.rm = true;
        opts.force_rm = true;
        opts.skip_unused_stages = true;
        let tags: Vec<String> = opts
            .tags
            .iter()
            .map(|r| crate::images::reference::familiar(&r.clone().with_default_tag().normalized()))
            .collect();
        let (bk, status, body) = (self.clone(), solve.status.clone(), req.context);
        let image = in_build_dir(self, move |dir| async move {
            let v = status.vertex("[internal] load remote build context");
            let ctx = dir.join("context");
            let dockerfile = opts.dockerfile.clone();
            let unpacked = {
                let (dir, ctx) = (dir.clone(), ctx.clone());
                tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)?;
                    crate::build::context::unpack(&body, &ctx, &dockerfile)
                })
                .await
                .map_err(Error::internal)?
            };
            let text = match unpacked {
                Ok(text) => {
                    v.done();
                    text
                }
                Err(e) => {
                    v.error(&e.to_string());
                    return Err(e);
                }
            };
            let hooks = BuildKitHooks {
                caller,
                entitlements: Vec::new(),
                named_contexts: Default::default(),
                cache_imports: Default::default(),
            };
            bk.builder
                .build_image(opts, dir, ctx, &text, Output::status(status), hooks)
                .await
        })
        .await?;
        export::run(self, solve, &image, &exporters, &req.session).await?;
        let stored = exporters
            .iter()
            .any(|e| matches!(e.kind.as_str(), "moby" | "image"));
        Ok(stored.then(|| (image.id.clone(), tags)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tags: &[&str], outputs: &[&str]) -> ApiBuild {
        ApiBuild {
            opts: BuildOptions::default(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            outputs: outputs
                .iter()
                .map(|k| Exporter {
                    kind: k.to_string(),
                    attrs: Default::default(),
                })
                .collect(),
            session: String::new(),
            build_id: "b".into(),
            context: PathBuf::new(),
        }
    }

    #[test]
    fn the_store_is_the_default_output_named_by_the_tags() {
        let e = exporters(&request(&["a", "b:1"], &[])).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].kind, "moby");
        assert_eq!(e[0].attrs["name"], "a,b:1");
        assert_eq!(
            exporters(&request(&["a"], &["tar"])).unwrap()[0].kind,
            "tar"
        );
        assert!(exporters(&request(&[], &["cacheonly"])).unwrap().is_empty());
        let err = exporters(&request(&[], &["tar", "local"])).unwrap_err();
        assert_eq!(err.to_string(), "multiple outputs not supported");
    }

    #[test]
    fn traces_are_base64_protobuf_in_aux() {
        use bollard_buildkit_proto::moby::buildkit::v1::{StatusResponse, Vertex};
        let update = StatusResponse {
            vertexes: vec![Vertex {
                digest: "sha256:1".into(),
                name: "[1/1] COPY a /a".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let line = trace_line(&update);
        assert!(line.ends_with(b"\r\n"));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["id"], "moby.buildkit.trace");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v["aux"].as_str().unwrap())
            .unwrap();
        let back: StatusResponse = prost::Message::decode(raw.as_slice()).unwrap();
        assert_eq!(back, update);
    }
}
