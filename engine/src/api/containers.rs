//! Handlers of `/containers/...`.

use std::convert::Infallible;

use super::shape::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query as AxQuery, Request, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use berth_proto::attach::AttachRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::hijack;
use super::query::{flag, int, int_unchecked, Query};
use super::shape;
use super::{ApiVersion, State};
use crate::containers::io::logs::LogOptions;
use crate::containers::lifecycle::WaitCondition;
use crate::error::{Error, Result};
use crate::filters::containers::{self as containers_filter, ContainerFilter};
use crate::metrics::METRICS;

pub async fn create(
    AxState(engine): AxState<State>,
    AxQuery(q): AxQuery<Query>,
    body: Bytes,
) -> Result<Response> {
    let started = std::time::Instant::now();
    let (id, warnings) = engine
        .containers
        .create(
            q.get("name").map(String::as_str),
            super::create_body::decode(&body)?,
        )
        .await?;
    METRICS.container_action("create", started.elapsed());
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": id, "Warnings": warnings })),
    )
        .into_response())
}

pub async fn list(
    AxState(engine): AxState<State>,
    AxQuery(q): AxQuery<Query>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    let filters = ContainerFilter::parse(q.get("filters").map(String::as_str))?;
    let limit = int_unchecked(&q, "limit")?
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let list = engine
        .containers
        .list(flag(&q, "all"), limit, &filters)
        .await?;
    if flag(&q, "size") {
        // Sizes are measured at each request, so nothing is reused.
        let mut sized = Vec::with_capacity(list.len());
        for listed in &list {
            sized.push(engine.containers.sized_summary(listed).await?);
        }
        return Ok(shape::CONTAINER_SUMMARY.json(&sized, version));
    }
    // Each document is built and shaped once and then reused while the
    // container, what its line shows and the API version stay the same.
    let form = (u64::from(version.0) << 32) | u64::from(version.1);
    let docs = list.iter().map(|listed| {
        listed.rendered(form, |listed| {
            let summary = engine.containers.summary(listed);
            let mut doc = serde_json::to_value(summary).unwrap_or(Value::Null);
            shape::CONTAINER_SUMMARY.apply(&mut doc, version);
            serde_json::to_vec(&doc).unwrap_or_default()
        })
    });
    Ok(shape::json_array(docs))
}

/// Below API 1.45 dockerd lists the short container id among a
/// user-defined network's Aliases once the endpoint got its DNS names (at
/// a start or a connect); from 1.45 it is in DNSNames only.
fn legacy_aliases(doc: &mut Value, version: ApiVersion) {
    if version >= ApiVersion(1, 45) {
        return;
    }
    let Some(short) = doc["Id"]
        .as_str()
        .and_then(|i| i.get(..12))
        .map(str::to_string)
    else {
        return;
    };
    let Some(Value::Object(networks)) = doc.pointer_mut("/NetworkSettings/Networks") else {
        return;
    };
    for ep in networks.values_mut() {
        let has_dns_names = ep["DNSNames"].as_array().is_some_and(|d| !d.is_empty());
        if !has_dns_names {
            continue;
        }
        match &mut ep["Aliases"] {
            Value::Array(a) if a.iter().any(|x| x == short.as_str()) => {}
            Value::Array(a) => a.push(Value::String(short.clone())),
            other => *other = Value::Array(vec![Value::String(short.clone())]),
        }
    }
}

pub async fn inspect(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    let inspected = engine.containers.inspect(&id).await?;
    let mut doc = serde_json::to_value(&inspected.doc).map_err(crate::error::Error::internal)?;
    doc["NetworkSettings"] =
        serde_json::to_value(&inspected.network_settings).map_err(crate::error::Error::internal)?;
    if let Some(mac) = inspected.config_mac {
        doc["Config"]["MacAddress"] = mac.into();
    }
    legacy_aliases(&mut doc, version);
    Ok(shape::CONTAINER.json(&doc, version))
}

pub async fn start(AxState(engine): AxState<State>, Path(id): Path<String>) -> Result<StatusCode> {
    let started = std::time::Instant::now();
    engine.containers.start(&id).await?;
    METRICS.container_action("start", started.elapsed());
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stop(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<StatusCode> {
    engine
        .containers
        .stop(
            &id,
            int_unchecked(&q, "t")?,
            q.get("signal").map(String::as_str),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn restart(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<StatusCode> {
    match engine
        .containers
        .stop(
            &id,
            int_unchecked(&q, "t")?,
            q.get("signal").map(String::as_str),
        )
        .await
    {
        Ok(()) | Err(Error::NotModified(_)) => {}
        Err(e) => return Err(e),
    }
    engine.containers.start(&id).await?;
    let c = engine.containers.lookup(&id).await?;
    engine.containers.event(&c, "restart", &[]);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn kill(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<StatusCode> {
    engine
        .containers
        .kill(&id, q.get("signal").map(String::as_str))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<StatusCode> {
    if flag(&q, "link") {
        engine.containers.remove_link(&id).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    let started = std::time::Instant::now();
    engine
        .containers
        .remove(&id, flag(&q, "force"), flag(&q, "v"))
        .await?;
    METRICS.container_action("delete", started.elapsed());
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /containers/{parent}/{alias}`: a link name (`?link=1` removes
/// the link; otherwise the linked container, as dockerd resolves names).
pub async fn remove_by_link_name(
    state: AxState<State>,
    Path((parent, alias)): Path<(String, String)>,
    q: AxQuery<Query>,
) -> Result<StatusCode> {
    remove(state, Path(format!("{parent}/{alias}")), q).await
}

/// The status line and headers go out at once; the body when the condition
/// is met (clients send this before start and rely on it being registered).
pub async fn wait(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    let condition = WaitCondition::parse(q.get("condition").map(String::as_str).unwrap_or(""))?;
    let done = engine.containers.wait(&id, condition).await?;
    let body = futures_util::stream::once(async move {
        let (code, error) = done.await;
        // "Error" is null when there is none up to API 1.43; from 1.44
        // dockerd leaves it out (omitempty).
        let mut body = json!({ "StatusCode": code });
        if let Some(m) = error {
            body["Error"] = json!({ "Message": m });
        } else if version < ApiVersion(1, 44) {
            body["Error"] = serde_json::Value::Null;
        }
        Ok::<_, Infallible>(Bytes::from(body.to_string() + "\n"))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

pub async fn logs(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    let time = |key: &str| -> Result<i128> {
        match q.get(key).filter(|s| !s.is_empty() && s.as_str() != "0") {
            None => Ok(0),
            Some(v) => crate::util::parse_time_filter(v)
                .ok_or_else(|| Error::InvalidArgument(format!("invalid value for \"{key}\": {v}"))),
        }
    };
    // As dockerd: a tail that is not a number means all of it.
    let tail = q
        .get("tail")
        .and_then(|n| n.parse::<i64>().ok())
        .map(|n| n.max(-1));
    let opts = LogOptions {
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
        timestamps: flag(&q, "timestamps"),
        follow: flag(&q, "follow"),
        tail: tail.filter(|n| *n >= 0).map(|n| n as usize),
        since: time("since")?,
        until: time("until")?,
        details: flag(&q, "details"),
    };
    if !opts.stdout && !opts.stderr {
        return Err(Error::InvalidArgument(
            "Bad parameters: you must choose at least one stream".into(),
        ));
    }
    let (tty, rx) = engine.containers.logs(&id, opts).await?;
    let stream = futures_util::StreamExt::map(crate::util::channel_stream(rx), Ok::<_, Infallible>);
    let mut resp = Body::from_stream(stream).into_response();
    // Before 1.42 dockerd names no content type for logs; from 1.42 it
    // says whether the stream is multiplexed.
    if version.announces_multiplexing() {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(hijack::stream_content_type(tty, version)),
        );
    }
    Ok(resp)
}

/// See `attach`: the pause between the 101 and the log replay.
const REPLAY_DELAY_MS: u64 = 10;

pub async fn attach(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
    Extension(version): Extension<ApiVersion>,
    mut req: Request,
) -> Result<Response> {
    let c = engine.containers.prepare_attach(&id).await?;
    let detach = crate::containers::io::attach::DetachKeys::parse(
        q.get("detachKeys").map(String::as_str).unwrap_or(""),
    )?;
    if !req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"tcp"))
    {
        return Err(Error::InvalidArgument(
            "attach needs an upgraded connection (Connection: Upgrade, Upgrade: tcp)".into(),
        ));
    }
    let streams = AttachRequest {
        stdin: flag(&q, "stdin"),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
    };
    // logs=1 replays what the container wrote so far (framed as its
    // output is); stream=0 ends the session there, as in dockerd.
    let replay = match flag(&q, "logs") && (streams.stdout || streams.stderr) {
        true => Some(
            engine
                .containers
                .logs(
                    &c.id,
                    LogOptions {
                        stdout: streams.stdout,
                        stderr: streams.stderr,
                        timestamps: false,
                        follow: false,
                        tail: None,
                        since: 0,
                        until: 0,
                        details: false,
                    },
                )
                .await?
                .1,
        ),
        false => None,
    };
    let keep_streaming = flag(&q, "stream");
    let content_type = hijack::stream_content_type(c.tty(), version);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let containers = engine.containers.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                use tokio::io::AsyncWriteExt;
                let mut io = TokioIo::new(upgraded);
                if let Some(mut rx) = replay {
                    // Python's docker SDK reads the 101's headers through a
                    // buffered reader and then the frames from the raw
                    // socket: bytes that reach it with the headers are lost
                    // to it. dockerd's replay comes a few milliseconds after
                    // the headers (it reads the log file first); so does
                    // ours, or `attach(logs=True, stream=False)` would read
                    // nothing about half the time.
                    tokio::time::sleep(std::time::Duration::from_millis(REPLAY_DELAY_MS)).await;
                    while let Some(frames) = rx.recv().await {
                        if io.write_all(&frames).await.is_err() {
                            return;
                        }
                    }
                }
                if !keep_streaming {
                    let _ = io.shutdown().await;
                    return;
                }
                containers
                    .run_attach(c, streams, Some(detach), false, io)
                    .await
            }
            Err(e) => tracing::debug!(error = %e, "attach upgrade failed"),
        }
    });
    Ok(hijack::upgraded_response(content_type))
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
    let c = engine.containers.lookup(&id).await?;
    if !c.is_running() {
        return Err(Error::Conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    if !c.tty() {
        // dockerd accepts resizing a container without a terminal and
        // does nothing (SDKs resize whatever they attach to).
        return Ok(StatusCode::OK);
    }
    engine
        .containers
        .core()
        .resize(&c.id, h as u16, w as u16)
        .await?;
    Ok(StatusCode::OK)
}

/// `GET /containers/{id}/export`
pub async fn export(AxState(engine): AxState<State>, Path(id): Path<String>) -> Result<Response> {
    Ok(super::images::tar_response(
        engine.containers.export(&id).await?,
    ))
}

/// `POST /containers/prune`
pub async fn prune(
    AxState(engine): AxState<State>,
    AxQuery(q): AxQuery<Query>,
) -> Result<Response> {
    let filters = containers_filter::prune_filter(q.get("filters").map(String::as_str))?;
    let (ids, freed) = engine.containers.prune(&filters).await?;
    Ok(
        Json(serde_json::json!({ "ContainersDeleted": shape::nil_if_empty(&ids), "SpaceReclaimed": freed }))
            .into_response(),
    )
}

/// `POST /containers/{id}/pause`
pub async fn pause(AxState(engine): AxState<State>, Path(id): Path<String>) -> Result<StatusCode> {
    engine.containers.pause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/unpause`
pub async fn unpause(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    engine.containers.unpause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/rename?name=`
pub async fn rename(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<StatusCode> {
    engine
        .containers
        .rename(&id, q.get("name").map(String::as_str).unwrap_or(""))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/update`
pub async fn update(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let req = crate::go_json::body(&body)?;
    let warnings = engine.containers.update(&id, req).await?;
    Ok(Json(json!({ "Warnings": shape::nil_if_empty(&warnings) })).into_response())
}

/// `GET /containers/{id}/top?ps_args=`
pub async fn top(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<Response> {
    let top = engine
        .containers
        .top(&id, q.get("ps_args").map(String::as_str).unwrap_or(""))
        .await?;
    Ok(Json(json!({ "Titles": top.titles, "Processes": top.processes })).into_response())
}

/// `GET /containers/{id}/changes`
pub async fn changes(AxState(engine): AxState<State>, Path(id): Path<String>) -> Result<Response> {
    let started = std::time::Instant::now();
    let changes: Vec<_> = engine
        .containers
        .diff(&id)
        .await?
        .into_iter()
        .map(|c| json!({ "Path": c.path, "Kind": c.kind }))
        .collect();
    METRICS.container_action("changes", started.elapsed());
    // No change is Go's nil slice: null (bollard reads it as None).
    Ok(shape::json_response(&shape::nil_if_empty(&changes)))
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: JSON documents, one a second.
pub async fn stats(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    let stream = q.get("stream").is_none_or(|_| flag(&q, "stream"));
    let rx = engine
        .containers
        .stats(&id, stream, flag(&q, "one-shot"))
        .await?;
    let body = futures_util::stream::unfold(rx, move |mut rx| async move {
        let sample = rx.recv().await?;
        let mut doc = serde_json::to_value(&sample).unwrap_or_default();
        shape::STATS.apply(&mut doc, version);
        let line = bytes::Bytes::from(doc.to_string() + "\n");
        Some((Ok::<_, Infallible>(line), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}
