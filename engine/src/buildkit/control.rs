//! `moby.buildkit.v1.Control` on `/grpc`: Solve (a whole build: frontend,
//! then exporters), Status (its progress), the worker list and version,
//! and the build cache as BuildKit's DiskUsage and Prune describe it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use bollard_buildkit_proto::moby::buildkit::v1 as pb;
use bollard_buildkit_proto::moby::buildkit::v1::frontend::result::Result as ResultRef;
use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::export::{self, Exporter};
use super::{frontend, BuildKit, Solve};
use crate::build::cache::{CacheFilter, PrunePolicy};
use crate::build::inline_cache;
use crate::error::{Error, Result};
use crate::store::ImageRow;

pub struct Control(pub Arc<BuildKit>);

type Streamed<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

fn timestamp(rfc3339: &str) -> Option<bollard_buildkit_proto::google::protobuf::Timestamp> {
    let (seconds, nanos) = crate::util::parse_rfc3339(rfc3339)?;
    Some(bollard_buildkit_proto::google::protobuf::Timestamp {
        seconds,
        nanos: nanos as i32,
    })
}

/// A build cache record as BuildKit describes it.
fn usage_record(c: bollard_stubs::models::BuildCache) -> pb::UsageRecord {
    pb::UsageRecord {
        id: c.id.unwrap_or_default(),
        size: c.size.unwrap_or(0),
        created_at: c.created_at.as_deref().and_then(timestamp),
        last_used_at: c.last_used_at.as_deref().and_then(timestamp),
        usage_count: c.usage_count.unwrap_or(0),
        description: c.description.unwrap_or_default(),
        record_type: c
            .typ
            .map(|t| t.to_string())
            .unwrap_or_else(|| "regular".into()),
        shared: c.shared.unwrap_or(false),
        in_use: c.in_use.unwrap_or(false),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl pb::control_server::Control for Control {
    async fn disk_usage(
        &self,
        req: Request<pb::DiskUsageRequest>,
    ) -> std::result::Result<Response<pb::DiskUsageResponse>, Status> {
        let mut filters = Vec::new();
        for f in &req.into_inner().filter {
            filters.extend(CacheFilter::parse_list(f).map_err(|e| e.grpc())?);
        }
        let usage = self.0.builder.usage().await.map_err(|e| e.grpc())?;
        let record = usage
            .into_iter()
            .filter(|r| filters.iter().all(|f| f.matches(r)))
            .map(usage_record)
            .collect();
        Ok(Response::new(pb::DiskUsageResponse { record }))
    }

    type PruneStream = Streamed<pb::UsageRecord>;

    async fn prune(
        &self,
        req: Request<pb::PruneRequest>,
    ) -> std::result::Result<Response<Self::PruneStream>, Status> {
        let req = req.into_inner();
        // buildx joins its filters into one string (`type==regular,id~=ab`),
        // empty when none was given; its `until` arrives as keep_duration.
        let mut filters = Vec::new();
        for f in &req.filter {
            filters.extend(CacheFilter::parse_list(f).map_err(|e| e.grpc())?);
        }
        let policy = PrunePolicy {
            unused_since: (req.keep_duration > 0).then(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos() as i128;
                now - req.keep_duration as i128
            }),
            filters,
            reserved_space: req.reserved_space.max(0) as u64,
            max_used_space: req.max_used_space.max(0) as u64,
            min_free_space: req.min_free_space.max(0) as u64,
        };
        let (deleted, _) = self.0.builder.prune(&policy).await.map_err(|e| e.grpc())?;
        let records: Vec<std::result::Result<pb::UsageRecord, Status>> =
            deleted.into_iter().map(|c| Ok(usage_record(c))).collect();
        Ok(Response::new(Box::pin(futures_util::stream::iter(records))))
    }

    async fn solve(
        &self,
        req: Request<pb::SolveRequest>,
    ) -> std::result::Result<Response<pb::SolveResponse>, Status> {
        let req = req.into_inner();
        let solve = self.0.solve(&req.r#ref);
        tracing::info!(reference = %req.r#ref, frontend = %req.frontend, "BuildKit solve");
        let result = run(&self.0, &solve, req).await;
        self.0.finished(&solve);
        match result {
            Ok(exporter_response) => Ok(Response::new(pb::SolveResponse { exporter_response })),
            Err(e) => {
                tracing::info!(reference = %solve.reference, error = %e, "BuildKit solve failed");
                Err(e.grpc())
            }
        }
    }

    type StatusStream = Streamed<pb::StatusResponse>;

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> std::result::Result<Response<Self::StatusStream>, Status> {
        let solve = self.0.solve(&req.into_inner().r#ref);
        Ok(Response::new(Box::pin(
            solve.status.clone().follow().map(Ok),
        )))
    }

    type SessionStream = Streamed<pb::BytesMessage>;

    async fn session(
        &self,
        _req: Request<tonic::Streaming<pb::BytesMessage>>,
    ) -> std::result::Result<Response<Self::SessionStream>, Status> {
        Err(Status::unimplemented(
            "sessions are served on POST /session of the Docker API",
        ))
    }

    async fn list_workers(
        &self,
        _req: Request<pb::ListWorkersRequest>,
    ) -> std::result::Result<Response<pb::ListWorkersResponse>, Status> {
        Ok(Response::new(pb::ListWorkersResponse {
            record: vec![super::worker()],
        }))
    }

    async fn info(
        &self,
        _req: Request<pb::InfoRequest>,
    ) -> std::result::Result<Response<pb::InfoResponse>, Status> {
        Ok(Response::new(pb::InfoResponse {
            buildkit_version: super::worker().buildkit_version,
        }))
    }

    type ListenBuildHistoryStream = Streamed<pb::BuildHistoryEvent>;

    /// No build history is kept: the stream ends at once.
    async fn listen_build_history(
        &self,
        _req: Request<pb::BuildHistoryRequest>,
    ) -> std::result::Result<Response<Self::ListenBuildHistoryStream>, Status> {
        Ok(Response::new(Box::pin(futures_util::stream::empty())))
    }

    async fn update_build_history(
        &self,
        _req: Request<pb::UpdateBuildHistoryRequest>,
    ) -> std::result::Result<Response<pb::UpdateBuildHistoryResponse>, Status> {
        Err(Status::not_found("no build history is kept"))
    }
}

/// The exporters a Solve asks for, from the current or the older field.
fn exporters(req: &pb::SolveRequest) -> Vec<Exporter> {
    if !req.exporters.is_empty() {
        return req
            .exporters
            .iter()
            .map(|e| Exporter {
                kind: e.r#type.clone(),
                attrs: e.attrs.clone(),
            })
            .collect();
    }
    if req.exporter_deprecated.is_empty() {
        return Vec::new();
    }
    vec![Exporter {
        kind: req.exporter_deprecated.clone(),
        attrs: req.exporter_attrs_deprecated.clone(),
    }]
}

/// A whole solve: the result (from the client's gateway build function,
/// or from the Dockerfile frontend named directly), then the exports.
async fn run(
    bk: &Arc<BuildKit>,
    solve: &Arc<Solve>,
    req: pb::SolveRequest,
) -> Result<HashMap<String, String>> {
    let exporters = exporters(&req);
    export::check(&exporters)?;
    let cache = req.cache.clone().unwrap_or_default();
    let inline = inline_export(&cache.exports)?;
    *solve.entitlements.lock().unwrap_or_else(|p| p.into_inner()) = req.entitlements.clone();
    let image: Option<ImageRow> = match (req.frontend.as_str(), req.definition.is_some()) {
        ("", false) => {
            // buildx's way: its build function drives the gateway and
            // hands back a result with LLBBridge.Return.
            solve.session.send_replace(Some(req.session.clone()));
            let ret = solve.returned().await;
            if let Some(err) = ret.error.filter(|e| e.code != 0) {
                return Err(Error::Internal(err.message));
            }
            match ret.result.and_then(|r| r.result) {
                Some(ResultRef::Ref(r)) if !r.id.is_empty() => Some(result_image(solve, &r.id)?),
                Some(ResultRef::RefDeprecated(id)) if !id.is_empty() => Some(result_image(solve, &id)?),
                Some(ResultRef::Refs(_)) | Some(ResultRef::RefsDeprecated(_)) => {
                    return Err(Error::NotImplemented(
                        "multi-platform results are not supported by this builder".into(),
                    ))
                }
                _ => None,
            }
        }
        ("dockerfile.v0", _) => {
            solve.session.send_replace(Some(req.session.clone()));
            let imports = cache
                .imports
                .iter()
                .map(|e| frontend::CacheImport {
                    kind: e.r#type.clone(),
                    attrs: e.attrs.clone(),
                })
                .collect();
            Some(frontend::run(bk, solve, &req.frontend_attrs, imports).await?)
        }
        ("", true) => {
            return Err(Error::NotImplemented(
                "LLB definitions are not supported: this builder runs Dockerfiles (frontend dockerfile.v0)"
                    .into(),
            ))
        }
        (other, _) => {
            return Err(Error::InvalidArgument(format!(
                "frontend {other} not found: this builder has dockerfile.v0 only"
            )))
        }
    };
    let Some(mut image) = image else {
        return Ok(HashMap::new());
    };
    if inline {
        let v = solve.status.vertex("exporting cache");
        v.item("preparing build cache for export", 0, 0);
        image = inline_cache::attach(&bk.builder.images, &bk.builder.store, &image).await?;
        v.done();
    }
    export::run(bk, solve, &image, &exporters, &req.session).await
}

/// Whether the solve asks for inline cache, the one cache export this
/// builder has (buildx's docker driver itself refuses the others, as it
/// does against dockerd without the containerd image store).
fn inline_export(exports: &[pb::CacheOptionsEntry]) -> Result<bool> {
    let mut inline = false;
    for e in exports {
        match e.r#type.as_str() {
            "inline" => inline = true,
            other => {
                return Err(Error::NotImplemented(format!(
                    "cache export {other:?} is not supported by this builder: it exports inline cache only"
                )))
            }
        }
    }
    Ok(inline)
}

fn result_image(solve: &Solve, id: &str) -> Result<ImageRow> {
    solve.result(id).ok_or_else(|| {
        Error::InvalidArgument(format!("no result {id} in build {}", solve.reference))
    })
}
