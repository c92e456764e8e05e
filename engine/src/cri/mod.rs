//! The Kubernetes Container Runtime Interface (`runtime.v1`): what a
//! kubelet (or crictl) asks of a node's runtime, served by berthd on its
//! own unix socket (`--cri-socket`, `cri.sock` beside the API socket by
//! default).
//!
//! berthd serves it rather than a front end of its own on berth-core
//! because the CRI's images are Berth's images (one store: a `docker
//! build` result runs in a pod without a push, and `docker images` lists
//! what a kubelet pulled), and berthd already owns the store, the
//! registries' credentials and the networks; pods will live in the core's
//! `k8s.io` namespace, out of `docker ps`'s sight, as containerd keeps
//! them. The listener is handed to a successor berthd with the API's.
//!
//! Served so far: the runtime's identity and status, pod sandboxes
//! (`pods`, networked through CNI: `cni`) and the image service; the rest
//! answers UNIMPLEMENTED (generated default stubs).

mod cni;
mod images;
mod pods;
mod runtime;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tracing::{debug, info, warn};

use crate::engine::Engine;
use crate::error::Error;

/// The messages and services of `api-spec/cri/api.proto` (build.rs).
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod proto {
    tonic::include_proto!("runtime.v1");
}

/// The CRI's listener: the one a berthd we took over from handed us, or
/// the socket bound now. A socket someone still answers on is left alone
/// (another berthd serves it): berthd then serves the Docker API only.
pub fn listener(path: &Path, inherited: Option<UnixListener>) -> Option<UnixListener> {
    if let Some(l) = inherited {
        return Some(l);
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        warn!(socket = %path.display(), "another process serves the CRI there; not serving it");
        return None;
    }
    let bound = (|| -> std::io::Result<UnixListener> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path)?;
        // As containerd's: root and its group.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        Ok(l)
    })();
    match bound {
        Ok(l) => Some(l),
        Err(e) => {
            warn!(socket = %path.display(), error = %e, "cannot serve the CRI");
            None
        }
    }
}

/// Accepts CRI connections until berthd exits (gRPC over HTTP/2 without
/// TLS, as kubelets speak it on a unix socket).
pub fn serve(listener: UnixListener, engine: Arc<Engine>) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    info!(socket = ?listener.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf)), "serving the CRI");
    let pods = Arc::new(pods::Pods::new(engine.clone()));
    tokio::spawn(async move {
        loop {
            let conn = match listener.accept().await {
                Ok((conn, _)) => conn,
                Err(e) => {
                    warn!(error = %e, "accepting a CRI connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let routes = tonic::service::Routes::new(
                proto::runtime_service_server::RuntimeServiceServer::new(runtime::Runtime {
                    engine: engine.clone(),
                    pods: pods.clone(),
                }),
            )
            .add_service(proto::image_service_server::ImageServiceServer::new(
                images::ImageService(engine.clone()),
            ));
            tokio::spawn(async move {
                let service = hyper_util::service::TowerToHyperService::new(routes);
                if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(conn), service)
                    .await
                {
                    debug!(error = %e, "CRI connection ended");
                }
            });
        }
    });
    Ok(())
}

/// An engine error as the gRPC status kubelets and crictl read.
fn status(e: Error) -> tonic::Status {
    let text = e.to_string();
    match e {
        Error::NotFound(_) => tonic::Status::not_found(text),
        Error::InvalidArgument(_) => tonic::Status::invalid_argument(text),
        Error::Unauthorized(_) => tonic::Status::unauthenticated(text),
        Error::Forbidden(_) => tonic::Status::permission_denied(text),
        Error::Conflict(_) => tonic::Status::failed_precondition(text),
        Error::Unavailable(_) => tonic::Status::unavailable(text),
        Error::NotImplemented(_) => tonic::Status::unimplemented(text),
        _ => tonic::Status::internal(text),
    }
}

/// Nanoseconds since the epoch, as the CRI's timestamps are.
fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
