//! `/volumes`: create, list, inspect, remove, prune (local driver).

use std::collections::HashMap;

use super::shape::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query as AxQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::query::{flag, Query};
use super::shape;
use super::ApiVersion;
use super::State;
use crate::error::Result;
use crate::filters::volumes::{VolumeFilter, VolumePruneFilter};
use axum::Extension;

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
pub async fn create(
    AxState(engine): AxState<State>,
    Extension(version): Extension<ApiVersion>,
    body: Bytes,
) -> Result<Response> {
    let b: CreateBody = crate::go_json::body(&body)?;
    let v = engine
        .volumes
        .create(
            b.name.as_deref(),
            b.driver.as_deref(),
            b.labels.unwrap_or_default(),
            b.driver_opts.unwrap_or_default(),
        )
        .await?;
    Ok((StatusCode::CREATED, shape::VOLUME.json(&v, version)).into_response())
}

/// `GET /volumes`
pub async fn list(
    AxState(engine): AxState<State>,
    AxQuery(q): AxQuery<Query>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    let filters = VolumeFilter::parse(q.get("filters").map(String::as_str))?;
    let mut list = serde_json::to_value(engine.volumes.list(&filters).await?)
        .map_err(crate::error::Error::internal)?;
    shape::VOLUME.apply_each(&mut list["Volumes"], version);
    // dockerd's Warnings is a nil list when there are none.
    if list["Warnings"].as_array().is_none_or(|w| w.is_empty()) {
        list["Warnings"] = serde_json::Value::Null;
    }
    Ok(Json(list).into_response())
}

/// `GET /volumes/{name}`
pub async fn inspect(
    AxState(engine): AxState<State>,
    Path(name): Path<String>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    Ok(shape::VOLUME.json(&engine.volumes.inspect(&name).await?, version))
}

/// `DELETE /volumes/{name}`
pub async fn remove(
    AxState(engine): AxState<State>,
    Path(name): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<StatusCode> {
    engine.volumes.remove(&name, flag(&q, "force")).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune`
pub async fn prune(
    AxState(engine): AxState<State>,
    AxQuery(q): AxQuery<Query>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    let filters = VolumePruneFilter::parse(q.get("filters").map(String::as_str))?;
    // Before API 1.42 (which brought the `all` filter) prune took named
    // volumes too.
    let named_by_default = version < ApiVersion(1, 42);
    Ok(Json(engine.volumes.prune(&filters, named_by_default).await?).into_response())
}
