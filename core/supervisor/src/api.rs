//! The core's HTTP API (protocol versions 1 to 6; see api-spec/core.yaml).
//! Thin handlers over [`Tasks`] and [`EventLog`]; only this module knows HTTP.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use berth_proto::{
    CreateTaskRequest, Handshake, KillRequest, ResizeRequest, TaskInfo, UpdateTaskRequest,
};
use serde::Deserialize;

use crate::generation::Generation;
use crate::serving::{self, Serving};
use crate::Error;

/// Handlers take the generation that serves (see `serving::gate`).
type Current = Extension<Generation>;

pub fn router(serving: Arc<Serving>) -> Router {
    let v1 = Router::new()
        .route("/handshake", get(handshake))
        .route("/namespaces/{ns}/tasks", get(list).post(create))
        .route("/namespaces/{ns}/tasks/{id}", get(inspect).delete(delete))
        .route("/namespaces/{ns}/tasks/{id}/start", post(start))
        .route("/namespaces/{ns}/tasks/{id}/kill", post(kill))
        .route("/namespaces/{ns}/tasks/{id}/resize", post(resize))
        .route("/namespaces/{ns}/tasks/{id}/close-stdin", post(close_stdin));
    // Versions 2, 3 and 5 on only added fields; 4 added routes. Every
    // version up to this build's is served, so a version that adds only
    // fields needs no change here.
    let v4 = v1
        .clone()
        .route("/namespaces/{ns}/tasks/{id}/pause", post(pause))
        .route("/namespaces/{ns}/tasks/{id}/resume", post(resume))
        .route("/namespaces/{ns}/tasks/{id}/update", post(update));
    let mut router = Router::new()
        .route("/handshake", get(handshake))
        .route("/v1/events", get(events_v1))
        .nest("/v1", v1.clone());
    for version in 2..=berth_proto::VERSION {
        let routes = if version < 4 { v1.clone() } else { v4.clone() };
        router = router
            .route(&format!("/v{version}/events"), get(events_v2))
            .nest(&format!("/v{version}"), routes);
    }
    router.layer(axum::middleware::from_fn_with_state(serving, serving::gate))
}

async fn handshake(Extension(s): Current) -> Json<Handshake> {
    Json(Handshake {
        min_version: berth_proto::MIN_VERSION,
        max_version: berth_proto::VERSION,
        core_version: env!("CARGO_PKG_VERSION").to_string(),
        health: "ok".into(),
        default_runtime: s.tasks.runtimes().default_name().to_string(),
        runtimes: s.tasks.runtimes().list(),
        event_epoch: s.events.epoch().to_string(),
        pid: std::process::id(),
    })
}

async fn list(Extension(s): Current, Path(ns): Path<String>) -> Result<Json<Vec<TaskInfo>>, Error> {
    Ok(Json(s.tasks.list(&ns)?))
}

async fn create(
    Extension(s): Current,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<TaskInfo>), Error> {
    let req: CreateTaskRequest = parse(&body)?;
    Ok((StatusCode::CREATED, Json(s.tasks.create(&ns, req).await?)))
}

async fn inspect(
    Extension(s): Current,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<TaskInfo>, Error> {
    Ok(Json(s.tasks.inspect(&ns, &id)?))
}

async fn start(
    Extension(s): Current,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<TaskInfo>, Error> {
    Ok(Json(s.tasks.start(&ns, &id).await?))
}

async fn kill(
    Extension(s): Current,
    Path((ns, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, Error> {
    let req: KillRequest = parse(&body)?;
    s.tasks
        .kill(&ns, &id, req.signal, req.all, req.stop)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resize(
    Extension(s): Current,
    Path((ns, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, Error> {
    let req: ResizeRequest = parse(&body)?;
    s.tasks.resize(&ns, &id, req.height, req.width).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn close_stdin(
    Extension(s): Current,
    Path((ns, id)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    s.tasks.close_stdin(&ns, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(
    Extension(s): Current,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<TaskInfo>, Error> {
    Ok(Json(s.tasks.set_paused(&ns, &id, true).await?))
}

async fn resume(
    Extension(s): Current,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<TaskInfo>, Error> {
    Ok(Json(s.tasks.set_paused(&ns, &id, false).await?))
}

async fn update(
    Extension(s): Current,
    Path((ns, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<TaskInfo>, Error> {
    let req: UpdateTaskRequest = parse(&body)?;
    Ok(Json(s.tasks.update_task(&ns, &id, req).await?))
}

async fn delete(
    Extension(s): Current,
    Path((ns, id)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    s.tasks.delete(&ns, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
}

/// JSON lines: the retained events after the cursor, then live ones. A
/// subscriber that falls too far behind is disconnected and resumes with its
/// cursor, so no event is skipped silently.
async fn events_v1(state: Current, q: Query<EventsQuery>) -> Body {
    events_stream(state, q, 1)
}

async fn events_v2(state: Current, q: Query<EventsQuery>) -> Body {
    events_stream(state, q, 2)
}

/// Whether a subscriber of protocol `version` knows this kind of event.
fn known_to(version: u32, ev: &berth_proto::Event) -> bool {
    version >= 2
        || matches!(
            ev.kind,
            berth_proto::EventKind::Start
                | berth_proto::EventKind::Exit
                | berth_proto::EventKind::Delete
        )
}

fn events_stream(Extension(s): Current, Query(q): Query<EventsQuery>, version: u32) -> Body {
    let (backlog, rx) = s.events.subscribe(q.after);
    let line = |ev: &berth_proto::Event| {
        let mut l = serde_json::to_vec(ev).unwrap_or_default();
        l.push(b'\n');
        Bytes::from(l)
    };
    let last = backlog.last().map(|e| e.seq).unwrap_or(q.after);
    let first = futures_util::stream::iter(
        backlog
            .iter()
            .filter(|e| known_to(version, e))
            .map(line)
            .map(Ok::<_, Infallible>)
            .collect::<Vec<_>>(),
    );
    let live = futures_util::stream::unfold((rx, last), move |(mut rx, last)| async move {
        loop {
            match rx.recv().await {
                Ok(ev) if ev.seq <= last || !known_to(version, &ev) => continue,
                Ok(ev) => {
                    let seq = ev.seq;
                    return Some((Ok::<_, Infallible>(line(&ev)), (rx, seq)));
                }
                Err(_) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    // A core that hands over ends the stream; the subscriber comes back
    // with its cursor and reaches the successor.
    let live = live.take_until(s.events.on_close());
    Body::from_stream(first.chain(live))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::InvalidArgument(format!("invalid request body: {e}")))
}
