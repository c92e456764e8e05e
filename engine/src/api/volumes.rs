//! `/volumes`: create, list, inspect, remove, prune (local driver).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query as AxQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::filters::Filters;
use super::query::{flag, Query};
use super::State;
use crate::error::{Error, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    driver_opts: Option<HashMap<String, String>>,
    #[serde(default)]
    labels: Option<HashMap<String, String>>,
}

/// `POST /volumes/create`
pub async fn create(AxState(engine): AxState<State>, body: Bytes) -> Result<Response> {
    let b: CreateBody = if body.is_empty() {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Error::InvalidArgument(format!("invalid JSON: {e}")))?
    };
    let v = engine
        .containers
        .volumes
        .create(
            b.name.as_deref(),
            b.driver.as_deref(),
            b.labels.unwrap_or_default(),
            b.driver_opts.unwrap_or_default(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `GET /volumes`
pub async fn list(AxState(engine): AxState<State>, AxQuery(q): AxQuery<Query>) -> Result<Response> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    filters.only(&["name", "label", "dangling", "driver"])?;
    Ok(Json(engine.containers.volumes.list(&filters).await?).into_response())
}

/// `GET /volumes/{name}`
pub async fn inspect(
    AxState(engine): AxState<State>,
    Path(name): Path<String>,
) -> Result<Response> {
    Ok(Json(engine.containers.volumes.inspect(&name).await?).into_response())
}

/// `DELETE /volumes/{name}`
pub async fn remove(
    AxState(engine): AxState<State>,
    Path(name): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<StatusCode> {
    engine
        .containers
        .volumes
        .remove(&name, flag(&q, "force"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune`
pub async fn prune(
    AxState(engine): AxState<State>,
    AxQuery(q): AxQuery<Query>,
) -> Result<Response> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    filters.only(&["label", "all"])?;
    Ok(Json(engine.containers.volumes.prune(&filters).await?).into_response())
}
