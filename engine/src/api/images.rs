//! Handlers of `/images/...`.

use super::shape::Json;
use axum::body::Body;
use axum::extract::{Path, Query as AxQuery, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::query::{flag, Query};
use super::shape;
use super::ApiVersion;
use super::{stream, State};
use crate::error::{Error, Result};
use crate::filters::images::{ImageFilter, ImagePruneFilter};
use crate::images::pull::{Platform, PullRequest};
use crate::images::reference::Reference;
use crate::images::registry::AuthConfig;
use axum::Extension;

pub async fn list(
    AxState(engine): AxState<State>,
    AxQuery(q): AxQuery<Query>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    let filters = ImageFilter::parse(q.get("filters").map(String::as_str))?;
    let mut images = engine.images.list(&filters, flag(&q, "all")).await?;
    // dockerd counts an image's containers for `system df` only; its
    // list says -1 (not computed).
    for i in &mut images {
        i.containers = -1;
    }
    let mut docs = serde_json::to_value(&images).map_err(Error::internal)?;
    shape::IMAGE_SUMMARY.apply_each(&mut docs, version);
    if let Value::Array(docs) = &mut docs {
        docs.iter_mut().for_each(|d| virtual_size(d, version));
    }
    Ok(shape::json_response(&docs))
}

/// Below API 1.44 dockerd also writes VirtualSize, the same number as Size
/// (the shape's template can only fill in a zero).
fn virtual_size(doc: &mut Value, version: ApiVersion) {
    if version > ApiVersion(1, 43) {
        return;
    }
    let size = doc["Size"].clone();
    if let Value::Object(fields) = doc {
        fields.insert("VirtualSize".into(), size);
    }
}

/// `GET /images/{name}/json`, `/history`, `/get` (names may contain slashes).
pub async fn by_name_get(
    AxState(engine): AxState<State>,
    Path(rest): Path<String>,
    Extension(version): Extension<ApiVersion>,
) -> Result<Response> {
    if let Some(name) = rest.strip_suffix("/json") {
        let image = engine.images.inspect(name).await?;
        let mut doc = serde_json::to_value(&image).map_err(Error::internal)?;
        shape::IMAGE.apply(&mut doc, version);
        virtual_size(&mut doc, version);
        return Ok(shape::json_response(&doc));
    }
    if let Some(name) = rest.strip_suffix("/history") {
        return Ok(Json(engine.images.history(name).await?).into_response());
    }
    if let Some(name) = rest.strip_suffix("/get") {
        return save_response(&engine, &[name.to_string()]).await;
    }
    if rest == "get" {
        return Err(Error::InvalidArgument(
            "no images to save: name them with ?names=".into(),
        ));
    }
    Err(Error::NotFound("page not found".into()))
}

/// `POST /images/{name}/tag?repo=&tag=`, `POST /images/{name}/push?tag=`
pub async fn by_name_post(
    AxState(engine): AxState<State>,
    Path(rest): Path<String>,
    AxQuery(q): AxQuery<Query>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    if let Some(name) = rest.strip_suffix("/push") {
        return push(&engine, name, &q, &headers, &body).await;
    }
    if let Some(name) = rest.strip_suffix("/tag") {
        let repo = q.get("repo").cloned().unwrap_or_default();
        if repo.is_empty() {
            return Err(Error::InvalidArgument(
                "repository name must have at least one component".into(),
            ));
        }
        engine
            .images
            .tag(name, &repo, q.get("tag").map(String::as_str).unwrap_or(""))
            .await?;
        return Ok(StatusCode::CREATED.into_response());
    }
    Err(Error::NotFound("page not found".into()))
}

pub async fn remove(
    AxState(engine): AxState<State>,
    Path(name): Path<String>,
    AxQuery(q): AxQuery<Query>,
) -> Result<Response> {
    Ok(Json(engine.images.remove(&name, flag(&q, "force")).await?).into_response())
}

/// Streams a request body to a scratch file (archives can be large).
pub(super) async fn body_to_file(engine: &State, body: Body) -> Result<std::path::PathBuf> {
    let path = engine
        .images
        .tmp_dir()
        .join(format!("upload-{}", crate::util::random_id()));
    let mut file = tokio::fs::File::create(&path).await?;
    let mut data = body.into_data_stream();
    while let Some(chunk) = data.next().await {
        let chunk =
            chunk.map_err(|e| Error::InvalidArgument(format!("reading request body: {e}")))?;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(path)
}

pub async fn load(AxState(engine): AxState<State>, body: Body) -> Result<Response> {
    let path = body_to_file(&engine, body).await?;
    let result = engine.images.load(path.clone()).await;
    let _ = tokio::fs::remove_file(&path).await;
    // As dockerd: once the archive is read, what is wrong with it is told
    // in the stream of a 200 (the CLI prints it and exits 1).
    let messages: Vec<_> = match result {
        Ok(lines) => lines
            .iter()
            .map(|l| stream::stream_message(&format!("{l}\n")))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "image load refused");
            vec![stream::error_message(&e.to_string())]
        }
    };
    Ok(stream::response(&messages))
}

/// X-Registry-Auth decoded (base64 of a JSON AuthConfig, URL-safe or
/// standard); a missing or empty header (`{}`) is anonymous.
fn registry_auth(headers: &HeaderMap) -> Result<AuthConfig> {
    decode_registry_auth(headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()))
}

fn decode_registry_auth(header: Option<&str>) -> Result<AuthConfig> {
    let Some(h) = header
        .map(str::trim)
        .filter(|h| !h.is_empty() && *h != "e30=" && *h != "e30")
    else {
        return Ok(AuthConfig::default());
    };
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
        .map_err(|_| Error::InvalidArgument("invalid X-Registry-Auth header: not base64".into()))?;
    crate::go_json::from_slice(&raw)
        .map_err(|e| Error::InvalidArgument(format!("invalid X-Registry-Auth header: {e}")))
}

/// A streaming JSON-progress response that follows `progress` to its end.
pub(super) fn progress_response(
    progress: std::sync::Arc<crate::images::progress::Progress>,
) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(progress.follow()),
    )
        .into_response()
}

/// `POST /images/create`: pull (`fromImage`), or import the request body
/// (`fromSrc=-`).
pub async fn create(
    AxState(engine): AxState<State>,
    AxQuery(pairs): AxQuery<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let q: Query = pairs.iter().cloned().collect();
    if let Some(image) = q.get("fromImage").filter(|s| !s.is_empty()) {
        let tag = q.get("tag").map(String::as_str).unwrap_or("");
        let full = match tag {
            "" => image.clone(),
            t if t.starts_with("sha256:") => format!("{image}@{t}"),
            t => format!("{image}:{t}"),
        };
        let reference = Reference::parse(&full)?;
        let platform = match q.get("platform").filter(|p| !p.is_empty()) {
            Some(p) => Some(Platform::parse(p)?),
            None => None,
        };
        // dockerd pulls anonymously when the header cannot be decoded.
        let auth = registry_auth(&headers).unwrap_or_default();
        // No tag at all is `docker pull --all-tags`.
        let progress = if reference.tag.is_none() && reference.digest.is_none() {
            engine
                .images
                .pull_all_tags(reference, platform, auth)
                .await?
        } else {
            engine
                .images
                .pull(PullRequest {
                    reference,
                    platform,
                    auth,
                })
                .await?
        };
        return Ok(progress_response(progress));
    }
    match q.get("fromSrc").map(String::as_str) {
        Some("-") => {}
        Some("") | None => return Err(Error::InvalidArgument("either fromImage or fromSrc must be set".into())),
        Some(url) => return Err(Error::InvalidArgument(format!("importing from a URL ({url}) needs network access, which this engine does not use; pipe the file instead"))),
    }
    let changes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v.clone())
        .collect();
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
    let result = engine
        .images
        .import(
            path.clone(),
            reference,
            q.get("message").map(String::as_str).unwrap_or(""),
            &changes,
        )
        .await;
    let _ = tokio::fs::remove_file(&path).await;
    let id = result?;
    Ok(stream::response(&[stream::status_message(&id)]))
}

/// `POST /images/{name}/push?tag=`
async fn push(
    engine: &State,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response> {
    // Without the header dockerd reads the credentials from the body (the
    // API's old form), and nothing there is a 400.
    let auth = if headers.contains_key("X-Registry-Auth") {
        registry_auth(headers)?
    } else {
        let bad = |why: &str| {
            Error::InvalidArgument(format!("Bad parameters and missing X-Registry-Auth: {why}"))
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(bad("EOF"));
        }
        crate::go_json::from_slice::<AuthConfig>(body).map_err(|e| bad(&e.to_string()))?
    };
    let full = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let reference = Reference::parse(&full)?;
    // No tag at all is `docker push --all-tags`.
    let progress = if reference.tag.is_none() && reference.digest.is_none() {
        engine.images.push_all_tags(reference, auth).await?
    } else {
        engine.images.push(reference, auth).await?
    };
    Ok(progress_response(progress))
}

/// `POST /auth`: checks credentials against the registry.
pub async fn auth(AxState(engine): AxState<State>, body: axum::body::Bytes) -> Result<Response> {
    let auth: AuthConfig = crate::go_json::body(&body)?;
    crate::images::registry::login(&engine.images.registries(), &auth).await?;
    Ok(
        Json(serde_json::json!({ "Status": "Login Succeeded", "IdentityToken": "" }))
            .into_response(),
    )
}

/// A tar archive streamed from an open (already unlinked) scratch file.
pub fn tar_response(file: std::fs::File) -> Response {
    let stream =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 256 * 1024);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn save_response(engine: &State, names: &[String]) -> Result<Response> {
    Ok(tar_response(engine.images.save(names).await?))
}

/// `GET /images/get?names=a&names=b`
pub async fn save(
    AxState(engine): AxState<State>,
    AxQuery(pairs): AxQuery<Vec<(String, String)>>,
) -> Result<Response> {
    let names: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v)
        .collect();
    save_response(&engine, &names).await
}

/// `POST /images/prune`
pub async fn prune(
    AxState(engine): AxState<State>,
    AxQuery(q): AxQuery<Query>,
) -> Result<Response> {
    let filters = ImagePruneFilter::parse(q.get("filters").map(String::as_str))?;
    let (deleted, freed) = engine.images.prune(&filters).await?;
    Ok(
        Json(serde_json::json!({ "ImagesDeleted": shape::nil_if_empty(&deleted), "SpaceReclaimed": freed }))
            .into_response(),
    )
}

/// `GET /distribution/{name}/json`
pub async fn distribution(
    AxState(engine): AxState<State>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let name = rest
        .strip_suffix("/json")
        .ok_or_else(|| Error::NotFound("page not found".into()))?;
    let reference = Reference::parse(name)?.with_default_tag();
    Ok(Json(
        engine
            .images
            .distribution(&reference, &registry_auth(&headers)?)
            .await?,
    )
    .into_response())
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&changes=`
pub async fn commit(
    AxState(engine): AxState<State>,
    AxQuery(pairs): AxQuery<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let q: Query = pairs.iter().cloned().collect();
    let container = q.get("container").cloned().unwrap_or_default();
    let reference = match q.get("repo").filter(|r| !r.is_empty()) {
        Some(repo) => {
            let full = match q.get("tag").filter(|t| !t.is_empty()) {
                Some(t) => format!("{repo}:{t}"),
                None => repo.clone(),
            };
            Some(Reference::parse(&full)?)
        }
        None => None,
    };
    let config = crate::go_json::body_or_default(&body)?;
    let req = crate::containers::fs::snapshot::CommitRequest {
        container,
        reference,
        comment: q.get("comment").cloned().unwrap_or_default(),
        author: q.get("author").cloned().unwrap_or_default(),
        changes: pairs
            .iter()
            .filter(|(k, _)| k == "changes")
            .map(|(_, v)| v.clone())
            .collect(),
        config,
    };
    let started = std::time::Instant::now();
    let id = engine.containers.commit(req).await?;
    crate::metrics::METRICS.container_action("commit", started.elapsed());
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": id }))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use oci_client::secrets::RegistryAuth;

    #[test]
    fn auth_header_decodes_both_base64_flavours() {
        let json = r#"{"username":"u","password":"p?>","serveraddress":"127.0.0.1:5000"}"#;
        for engine in [
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::STANDARD,
        ] {
            let a = decode_registry_auth(Some(&engine.encode(json))).unwrap();
            assert_eq!(a.credentials(), Some(("u".into(), "p?>".into())));
        }
        assert!(matches!(
            decode_registry_auth(None).unwrap().registry_auth(),
            RegistryAuth::Anonymous
        ));
        assert!(decode_registry_auth(Some("!!!")).is_err());
    }
}
