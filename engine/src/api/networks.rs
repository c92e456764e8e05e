//! `/networks`: create, list, inspect, remove, prune, connect, disconnect.

use super::shape::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query as AxQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::{
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
};
use serde_json::json;

use super::query::Query;
use super::shape;
use super::ApiVersion;
use super::State;
use crate::error::Result;
use crate::filters::networks::NetworkFilter;
use axum::Extension;

fn decode<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T> {
    crate::go_json::body(body)
}

/// `POST /networks/create`
pub async fn create(AxState(engine): AxState<State>, body: Bytes) -> Result<Response> {
    let req: NetworkCreateRequest = decode(&body)?;
    let v = engine.networks.create(req).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `GET /networks`
pub async fn list(
    AxState(engine): AxState<State>,
    AxQuery(q): AxQuery<Query>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    let filters = NetworkFilter::parse(q.get("filters").map(String::as_str))?;
    Ok(shape::NETWORK.json(&engine.networks.list(&filters).await?, version))
}

/// `GET /networks/{id}`
pub async fn inspect(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    Ok(shape::NETWORK.json(&engine.networks.inspect(&id).await?, version))
}

/// `DELETE /networks/{id}`
pub async fn remove(AxState(engine): AxState<State>, Path(id): Path<String>) -> Result<StatusCode> {
    engine.networks.remove(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /networks/prune`
pub async fn prune(
    AxState(engine): AxState<State>,
    AxQuery(q): AxQuery<Query>,
) -> Result<Response> {
    let filters = crate::filters::networks::prune_filter(q.get("filters").map(String::as_str))?;
    let deleted = engine.networks.prune(&filters).await?;
    Ok(Json(json!({ "NetworksDeleted": shape::nil_if_empty(&deleted) })).into_response())
}

/// `POST /networks/{id}/connect`
pub async fn connect(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode> {
    let req: NetworkConnectRequest = decode(&body)?;
    engine
        .containers
        .connect_network(
            &id,
            &req.container,
            &req.endpoint_config.unwrap_or_default(),
        )
        .await?;
    Ok(StatusCode::OK)
}

/// `POST /networks/{id}/disconnect`
pub async fn disconnect(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode> {
    let req: NetworkDisconnectRequest = decode(&body)?;
    engine
        .containers
        .disconnect_network(&id, &req.container)
        .await?;
    Ok(StatusCode::OK)
}
