//! `POST /grpc` and `POST /session`: the two hijacked connections of
//! BuildKit's API (buildx's `docker` driver). Both upgrade to `h2c`; the
//! first then carries gRPC to the engine, the second gRPC from it to the
//! caller's session services (see `crate::buildkit`).

use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::State;
use crate::error::{Error, Result};

/// The upgrade protocol asked for, checked as dockerd checks it. `bad`
/// makes the error: dockerd answers 500 on `/grpc` and 400 on `/session`.
fn upgrade_proto(headers: &HeaderMap, bad: fn(String) -> Error) -> Result<()> {
    match headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()) {
        None | Some("") => Err(bad("no upgrade proto in request".into())),
        Some("h2c") => Ok(()),
        Some(other) => Err(bad(format!("protocol {other} not supported"))),
    }
}

fn switching_protocols() -> Response {
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
    resp
}

pub async fn grpc(AxState(engine): AxState<State>, mut req: Request) -> Result<Response> {
    upgrade_proto(req.headers(), Error::Internal)?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let buildkit = engine.buildkit.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(io) => buildkit.serve_grpc(io).await,
            Err(e) => tracing::debug!(error = %e, "/grpc upgrade failed"),
        }
    });
    Ok(switching_protocols())
}

pub async fn session(AxState(engine): AxState<State>, mut req: Request) -> Result<Response> {
    upgrade_proto(req.headers(), Error::InvalidArgument)?;
    let headers = req.headers();
    let id = headers
        .get("X-Docker-Expose-Session-Uuid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if id.is_empty() {
        return Err(Error::InvalidArgument("no session id in request".into()));
    }
    let methods: Vec<String> = headers
        .get_all("X-Docker-Expose-Session-Grpc-Method")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let buildkit = engine.buildkit.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(io) => {
                if let Err(e) = buildkit.sessions.serve(io, id, methods).await {
                    tracing::info!(error = %e, "build session refused");
                }
            }
            Err(e) => tracing::debug!(error = %e, "/session upgrade failed"),
        }
    });
    Ok(switching_protocols())
}
