//! Handlers of `/containers/{id}/exec` and `/exec/...`.

use super::shape::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query as AxQuery, Request, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;

use super::hijack;
use super::query::{int, Query};
use super::{ApiVersion, State};
use crate::containers::io::exec::ExecConfig;
use crate::error::{Error, Result};

pub async fn create(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let config: ExecConfig = crate::go_json::body(&body)?;
    let exec_id = engine.containers.exec_create(&id, config).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartBody {
    #[serde(default)]
    detach: bool,
    /// Decides the stream's framing, as in dockerd: raw when true,
    /// multiplexed when false, whatever the exec was created with.
    #[serde(default)]
    tty: bool,
    #[serde(default)]
    console_size: Option<[u16; 2]>,
}

/// `POST /exec/{id}/start`: detached, hijacked (what the CLI does), or
/// with the stream as the response body (what some SDKs do).
pub async fn start(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    Extension(version): Extension<ApiVersion>,
    mut req: Request,
) -> Result<Response> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"tcp"));
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let raw = axum::body::to_bytes(std::mem::take(req.body_mut()), 1 << 20)
        .await
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let body: StartBody = crate::go_json::body(&raw)?;
    let mut started = engine.containers.exec_prepare(&id).await?;
    started.tty = body.tty;
    let size = body.console_size.filter(|s| s[0] > 0 && s[1] > 0);
    if body.detach {
        engine.containers.exec_run(&id).await?;
        if let Some([h, w]) = size {
            let _ = engine.containers.exec_resize(&id, h, w).await;
        }
        return Ok(StatusCode::OK.into_response());
    }
    let content_type = hijack::stream_content_type(started.tty, version);
    let containers = engine.containers.clone();
    if let Some(on_upgrade) = on_upgrade {
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    containers
                        .exec_attached(&id, started, size, TokioIo::new(upgraded))
                        .await
                }
                Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
            }
        });
        return Ok(hijack::upgraded_response(content_type));
    }
    // No upgrade: the output is the response body (no stdin).
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move { containers.exec_attached(&id, started, size, ours).await });
    let stream = tokio_util::io::ReaderStream::new(theirs);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

pub async fn inspect(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    Extension(version): Extension<super::ApiVersion>,
) -> Result<Response> {
    let exec = engine.containers.exec_inspect(&id).await?;
    Ok(super::shape::EXEC.json(&exec, version))
}

pub async fn resize(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<StatusCode> {
    let h = int(&q, "h")?.unwrap_or(0);
    let w = int(&q, "w")?.unwrap_or(0);
    if !(0..=u16::MAX as i64).contains(&h) || !(0..=u16::MAX as i64).contains(&w) {
        return Err(Error::InvalidArgument("invalid terminal size".into()));
    }
    engine
        .containers
        .exec_resize(&id, h as u16, w as u16)
        .await?;
    Ok(StatusCode::OK)
}
