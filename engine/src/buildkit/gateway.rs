//! The gateway (`moby.buildkit.v1.frontend.LLBBridge`) on `/grpc`. buildx
//! runs its build as a client-side function: it pings for capabilities,
//! asks for the `dockerfile.v0` frontend with Solve, and hands the result
//! back with Return, which completes the Control.Solve of the same build
//! (named by the `buildkit-controlapi-buildid` metadata on every call).
//!
//! Results are images of Berth's store; the ids handed out name them
//! within their build. Calls that need LLB or containers of BuildKit's own
//! answer Unimplemented.

use std::collections::HashMap;
use std::sync::Arc;

use bollard_buildkit_proto::moby::buildkit::v1::apicaps::ApiCap;
use bollard_buildkit_proto::moby::buildkit::v1::frontend as pb;
use bollard_buildkit_proto::moby::buildkit::v1::frontend::llb_bridge_server::LlbBridge;
use futures_util::Stream;
use tonic::{Request, Response, Status};

use super::{frontend, BuildKit};
use crate::error::Error;

pub struct Gateway(pub Arc<BuildKit>);

/// The gateway API capabilities Berth implements (ids from BuildKit's
/// `frontend/gateway/pb/caps.go`).
const CAPS: &[&str] = &[
    "solve.base",
    "solve.inlinereturn",
    "return",
    "returnmap",
    "proto.refarray",
    "gateway.solve.metadata",
    "gateway.solve.evaluate",
    "gateway.evaluate",
    "gateway.warnings",
];

fn build_id<T>(req: &Request<T>) -> std::result::Result<String, Status> {
    req.metadata()
        .get("buildkit-controlapi-buildid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| Status::invalid_argument("no buildid found in context"))
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported by this builder"))
}

type Streamed<T> = std::pin::Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl LlbBridge for Gateway {
    async fn resolve_image_config(
        &self,
        _req: Request<pb::ResolveImageConfigRequest>,
    ) -> std::result::Result<Response<pb::ResolveImageConfigResponse>, Status> {
        Err(unimplemented("ResolveImageConfig"))
    }

    async fn resolve_source_meta(
        &self,
        _req: Request<pb::ResolveSourceMetaRequest>,
    ) -> std::result::Result<Response<pb::ResolveSourceMetaResponse>, Status> {
        Err(unimplemented("ResolveSourceMeta"))
    }

    async fn solve(
        &self,
        req: Request<pb::SolveRequest>,
    ) -> std::result::Result<Response<pb::SolveResponse>, Status> {
        let id = build_id(&req)?;
        let req = req.into_inner();
        let solve = self.0.solve(&id);
        if req.frontend != "dockerfile.v0" {
            return Err(match (req.frontend.as_str(), req.definition.is_some()) {
                ("", true) => unimplemented("solving LLB definitions"),
                (other, _) => Status::not_found(format!(
                    "frontend {other} not found: this builder has dockerfile.v0 only"
                )),
            });
        }
        if !req.frontend_inputs.is_empty() {
            return Err(unimplemented(
                "frontend inputs (named contexts from other builds)",
            ));
        }
        if let Some(request) = req.frontend_opt.get("requestid").filter(|r| !r.is_empty()) {
            // `--call outline|targets|check`: subrequests of the frontend.
            return Err(unimplemented(&format!("frontend request {request}")));
        }
        let image = frontend::run(
            &self.0,
            &solve,
            &req.frontend_opt,
            imports_of(&req.cache_imports),
        )
        .await
        .map_err(|e: Error| e.grpc())?;
        let result_id = crate::util::random_id();
        let config = image.config.clone();
        solve
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(result_id.clone(), image);
        let mut metadata = HashMap::new();
        metadata.insert("containerimage.config".to_string(), config.into_bytes());
        Ok(Response::new(pb::SolveResponse {
            result: Some(pb::Result {
                metadata,
                result: Some(pb::result::Result::Ref(pb::Ref {
                    id: result_id,
                    def: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn read_file(
        &self,
        _req: Request<pb::ReadFileRequest>,
    ) -> std::result::Result<Response<pb::ReadFileResponse>, Status> {
        Err(unimplemented("ReadFile"))
    }

    async fn read_dir(
        &self,
        _req: Request<pb::ReadDirRequest>,
    ) -> std::result::Result<Response<pb::ReadDirResponse>, Status> {
        Err(unimplemented("ReadDir"))
    }

    async fn stat_file(
        &self,
        _req: Request<pb::StatFileRequest>,
    ) -> std::result::Result<Response<pb::StatFileResponse>, Status> {
        Err(unimplemented("StatFile"))
    }

    /// Results are evaluated when solved: nothing is left to do.
    async fn evaluate(
        &self,
        _req: Request<pb::EvaluateRequest>,
    ) -> std::result::Result<Response<pb::EvaluateResponse>, Status> {
        Ok(Response::new(pb::EvaluateResponse {}))
    }

    async fn ping(
        &self,
        _req: Request<pb::PingRequest>,
    ) -> std::result::Result<Response<pb::PongResponse>, Status> {
        Ok(Response::new(pb::PongResponse {
            frontend_api_caps: CAPS
                .iter()
                .map(|id| ApiCap {
                    id: id.to_string(),
                    enabled: true,
                    ..Default::default()
                })
                .collect(),
            // Empty: the client assumes the LLB capabilities every
            // BuildKit has; Berth solves no LLB of its own.
            llb_caps: Vec::new(),
            workers: vec![super::worker()],
        }))
    }

    async fn r#return(
        &self,
        req: Request<pb::ReturnRequest>,
    ) -> std::result::Result<Response<pb::ReturnResponse>, Status> {
        let id = build_id(&req)?;
        let solve = self.0.solve(&id);
        // Kept until Control.Solve of this build takes it, whichever
        // comes first.
        solve.returned.send_replace(Some(req.into_inner()));
        Ok(Response::new(pb::ReturnResponse {}))
    }

    async fn inputs(
        &self,
        _req: Request<pb::InputsRequest>,
    ) -> std::result::Result<Response<pb::InputsResponse>, Status> {
        Ok(Response::new(pb::InputsResponse::default()))
    }

    async fn new_container(
        &self,
        _req: Request<pb::NewContainerRequest>,
    ) -> std::result::Result<Response<pb::NewContainerResponse>, Status> {
        Err(unimplemented("NewContainer"))
    }

    async fn release_container(
        &self,
        _req: Request<pb::ReleaseContainerRequest>,
    ) -> std::result::Result<Response<pb::ReleaseContainerResponse>, Status> {
        Err(unimplemented("ReleaseContainer"))
    }

    type ExecProcessStream = Streamed<pb::ExecMessage>;

    async fn exec_process(
        &self,
        _req: Request<tonic::Streaming<pb::ExecMessage>>,
    ) -> std::result::Result<Response<Self::ExecProcessStream>, Status> {
        Err(unimplemented("ExecProcess"))
    }

    async fn read_file_container(
        &self,
        _req: Request<pb::ReadFileRequest>,
    ) -> std::result::Result<Response<pb::ReadFileResponse>, Status> {
        Err(unimplemented("ReadFileContainer"))
    }

    async fn read_dir_container(
        &self,
        _req: Request<pb::ReadDirRequest>,
    ) -> std::result::Result<Response<pb::ReadDirResponse>, Status> {
        Err(unimplemented("ReadDirContainer"))
    }

    async fn stat_file_container(
        &self,
        _req: Request<pb::StatFileRequest>,
    ) -> std::result::Result<Response<pb::StatFileResponse>, Status> {
        Err(unimplemented("StatFileContainer"))
    }

    async fn warn(
        &self,
        req: Request<pb::WarnRequest>,
    ) -> std::result::Result<Response<pb::WarnResponse>, Status> {
        let w = req.into_inner();
        tracing::debug!(warning = %String::from_utf8_lossy(&w.short), "frontend warning");
        Ok(Response::new(pb::WarnResponse {}))
    }
}

/// The gateway's cache import entries as the frontend takes them.
fn imports_of(entries: &[pb::CacheOptionsEntry]) -> Vec<frontend::CacheImport> {
    entries
        .iter()
        .map(|e| frontend::CacheImport {
            kind: e.r#type.clone(),
            attrs: e.attrs.clone(),
        })
        .collect()
}
