//! `docker cp`: HEAD, GET and PUT /containers/{id}/archive. The path's stat
//! travels base64-encoded JSON in the X-Docker-Container-Path-Stat header.

use axum::body::Body;
use axum::extract::{Path, Query as AxQuery, State as AxState};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::TryStreamExt;

use super::query::{flag, Query};
use super::State;
use crate::containers::fs::copy::{CopyIn, PathStat};
use crate::error::{Error, Result};

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_param(q: &Query) -> Result<String> {
    q.get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        // dockerd's words, missing space included.
        .ok_or_else(|| Error::InvalidArgument("bad parameter: pathcannot be empty".into()))
}

fn with_stat(mut resp: Response, stat: &PathStat) -> Result<Response> {
    let json = serde_json::to_vec(stat).map_err(Error::internal)?;
    let value = base64::engine::general_purpose::STANDARD.encode(json);
    resp.headers_mut().insert(
        STAT_HEADER,
        HeaderValue::from_str(&value).map_err(Error::internal)?,
    );
    Ok(resp)
}

/// `HEAD /containers/{id}/archive?path=`
pub async fn head(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<Response> {
    let stat = engine.containers.stat_path(&id, &path_param(&q)?).await?;
    with_stat(StatusCode::OK.into_response(), &stat)
}

/// `GET /containers/{id}/archive?path=`
pub async fn get(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<Response> {
    let (stat, file) = engine.containers.copy_from(&id, &path_param(&q)?).await?;
    with_stat(super::images::tar_response(file), &stat)
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=`
pub async fn put(
    AxState(engine): AxState<State>,
    Path(id): Path<String>,
    AxQuery(q): AxQuery<Query>,
    body: Body,
) -> Result<StatusCode> {
    let opts = CopyIn {
        no_overwrite_dir_non_dir: flag(&q, "noOverwriteDirNonDir"),
        copy_uid_gid: flag(&q, "copyUIDGID"),
    };
    let reader =
        tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    engine
        .containers
        .copy_to(&id, &path_param(&q)?, reader, opts)
        .await?;
    Ok(StatusCode::OK)
}
