//! Handlers of `/images/...`.

use axum::body::Body;
use axum::extract::{Path, Query as AxQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::filters::Filters;
use super::query::{flag, Query};
use super::{stream, State};
use crate::error::{Error, Result};
use crate::images::reference::Reference;

pub async fn list(AxState(engine): AxState<State>, AxQuery(q): AxQuery<Query>) -> Result<Response> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    Ok(Json(engine.images.list(&filters, flag(&q, "all")).await?).into_response())
}

/// `GET /images/{name}/json` (names may contain slashes).
pub async fn by_name_get(AxState(engine): AxState<State>, Path(rest): Path<String>) -> Result<Response> {
    if let Some(name) = rest.strip_suffix("/json") {
        return Ok(Json(engine.images.inspect(name).await?).into_response());
    }
    Err(Error::NotFound("page not found".into()))
}

/// `POST /images/{name}/tag?repo=&tag=`
pub async fn by_name_post(AxState(engine): AxState<State>, Path(rest): Path<String>, AxQuery(q): AxQuery<Query>) -> Result<Response> {
    if let Some(name) = rest.strip_suffix("/tag") {
        let repo = q.get("repo").cloned().unwrap_or_default();
        if repo.is_empty() {
            return Err(Error::InvalidArgument("repository name must have at least one component".into()));
        }
        engine.images.tag(name, &repo, q.get("tag").map(String::as_str).unwrap_or("")).await?;
        return Ok(StatusCode::CREATED.into_response());
    }
    Err(Error::NotFound("page not found".into()))
}

pub async fn remove(AxState(engine): AxState<State>, Path(name): Path<String>, AxQuery(q): AxQuery<Query>) -> Result<Response> {
    Ok(Json(engine.images.remove(&name, flag(&q, "force")).await?).into_response())
}

/// Streams a request body to a scratch file (archives can be large).
async fn body_to_file(engine: &State, body: Body) -> Result<std::path::PathBuf> {
    let path = engine.images.tmp_dir().join(format!("upload-{}", crate::util::random_id()));
    let mut file = tokio::fs::File::create(&path).await?;
    let mut data = body.into_data_stream();
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|e| Error::InvalidArgument(format!("reading request body: {e}")))?;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(path)
}

pub async fn load(AxState(engine): AxState<State>, body: Body) -> Result<Response> {
    let path = body_to_file(&engine, body).await?;
    let result = engine.images.load(path.clone()).await;
    let _ = tokio::fs::remove_file(&path).await;
    let lines = result?;
    let messages: Vec<_> = lines.iter().map(|l| stream::stream_message(&format!("{l}\n"))).collect();
    Ok(stream::response(&messages))
}

/// `POST /images/create`: import from the request body (`fromSrc=-`), or pull.
pub async fn create(AxState(engine): AxState<State>, AxQuery(q): AxQuery<Query>, body: Body) -> Result<Response> {
    if let Some(image) = q.get("fromImage").filter(|s| !s.is_empty()) {
        return Err(Error::NotImplemented(format!(
            "pulling {image} from a registry is not supported by this Berth build yet; load the image with `docker load` instead"
        )));
    }
    match q.get("fromSrc").map(String::as_str) {
        Some("-") => {}
        Some("") | None => return Err(Error::InvalidArgument("either fromImage or fromSrc must be set".into())),
        Some(url) => return Err(Error::InvalidArgument(format!("importing from a URL ({url}) needs network access, which this engine does not use; pipe the file instead"))),
    }
    if q.get("changes").is_some_and(|c| !c.is_empty() && c != "[]") {
        return Err(Error::NotImplemented("import with --change is not supported yet".into()));
    }
    let reference = match q.get("repo").filter(|r| !r.is_empty()) {
        None => None,
        Some(repo) => {
            let full = match q.get("tag").filter(|t| !t.is_empty()) {
                Some(tag) => format!("{repo}:{tag}"),
                None => repo.clone(),
            };
            Some(Reference::parse(&full)?)
        }
    };
    let path = body_to_file(&engine, body).await?;
    let result = engine.images.import(path.clone(), reference, q.get("message").map(String::as_str).unwrap_or("")).await;
    let _ = tokio::fs::remove_file(&path).await;
    let id = result?;
    Ok(stream::response(&[stream::status_message(&id)]))
}
