//! The Docker Engine API: routes, version prefixes, headers and errors.
//! The only module that knows HTTP; handlers are thin and call services.

pub mod archive;
pub mod attach_ws;
pub mod build;
pub mod buildkit;
pub mod containers;
pub mod create_body;
pub mod exec;
pub mod hijack;
pub mod images;
pub mod networks;
pub mod plugins;
pub mod query;
pub mod shape;
pub mod stream;
pub mod swarm;
pub mod system;
pub mod volumes;

use std::sync::Arc;

use axum::extract::{Path, Query as AxQuery, Request, State as AxState};
use axum::http::{HeaderValue, Uri};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Extension, Router, ServiceExt};
use tower::Layer;

use crate::error::Error;
use crate::Engine;

/// Newest API version served (the docker CLI 28.2 speaks 1.50).
pub const MAX_API_VERSION: ApiVersion = ApiVersion(1, 50);
/// Oldest API version served, Docker's hard floor.
pub const MIN_API_VERSION: ApiVersion = ApiVersion(1, 24);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl ApiVersion {
    fn parse(s: &str) -> Option<ApiVersion> {
        let (a, b) = s.split_once('.')?;
        Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
    }

    /// Multiplexed (stdcopy) streams are announced by content type from 1.42.
    pub fn announces_multiplexing(self) -> bool {
        self >= ApiVersion(1, 42)
    }
}

/// Set when the request's version prefix is out of range.
#[derive(Clone)]
struct BadVersion(String);

pub type State = Arc<Engine>;

pub fn router(engine: Arc<Engine>) -> Router {
    let r = Router::new()
        .route("/_ping", get(system::ping).head(system::ping_head))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        // A container, network or volume may be named like a fixed route
        // ("json", "create", "prune"): Docker's router sends the by-name
        // methods to it, so these routes forward them with the name.
        .route(
            "/containers/create",
            post(containers::create).delete(|s: AxState<State>, q: AxQuery<query::Query>| {
                containers::remove(s, Path("create".into()), q)
            }),
        )
        .route(
            "/containers/json",
            get(containers::list).delete(|s: AxState<State>, q: AxQuery<query::Query>| {
                containers::remove(s, Path("json".into()), q)
            }),
        )
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/attach/ws", get(attach_ws::attach_ws))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/update", post(containers::update))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/stats", get(containers::stats))
        .route("/containers/{id}/changes", get(containers::changes))
        .route(
            "/containers/{id}/archive",
            get(archive::get).head(archive::head).put(archive::put),
        )
        .route("/containers/{id}", delete(containers::remove))
        .route(
            "/containers/{parent}/{alias}",
            delete(containers::remove_by_link_name),
        )
        .route("/auth", post(images::auth))
        .route("/images/json", get(images::list))
        .route("/images/get", get(images::save))
        .route("/images/prune", post(images::prune))
        .route("/distribution/{*name}", get(images::distribution))
        .route("/commit", post(images::commit))
        .route(
            "/containers/prune",
            post(containers::prune).delete(|s: AxState<State>, q: AxQuery<query::Query>| {
                containers::remove(s, Path("prune".into()), q)
            }),
        )
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/containers/{id}/export", get(containers::export))
        .route("/system/df", get(system::df))
        .route("/networks", get(networks::list))
        .route(
            "/networks/create",
            post(networks::create)
                .get(|s: AxState<State>, v: Extension<ApiVersion>| {
                    networks::inspect(s, Path("create".into()), v)
                })
                .delete(|s: AxState<State>| networks::remove(s, Path("create".into()))),
        )
        .route(
            "/networks/prune",
            post(networks::prune)
                .get(|s: AxState<State>, v: Extension<ApiVersion>| {
                    networks::inspect(s, Path("prune".into()), v)
                })
                .delete(|s: AxState<State>| networks::remove(s, Path("prune".into()))),
        )
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route(
            "/volumes/create",
            post(volumes::create)
                .get(|s: AxState<State>, v: Extension<ApiVersion>| {
                    volumes::inspect(s, Path("create".into()), v)
                })
                .delete(|s: AxState<State>, q: AxQuery<query::Query>| {
                    volumes::remove(s, Path("create".into()), q)
                }),
        )
        .route(
            "/volumes/prune",
            post(volumes::prune)
                .get(|s: AxState<State>, v: Extension<ApiVersion>| {
                    volumes::inspect(s, Path("prune".into()), v)
                })
                .delete(|s: AxState<State>, q: AxQuery<query::Query>| {
                    volumes::remove(s, Path("prune".into()), q)
                }),
        )
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/build", post(build::build))
        .route("/build/prune", post(build::prune))
        .route("/grpc", post(buildkit::grpc))
        .route("/session", post(buildkit::session))
        .route("/images/load", post(images::load))
        .route("/images/create", post(images::create))
        .route(
            "/images/{*name}",
            get(images::by_name_get)
                .post(images::by_name_post)
                .delete(images::remove),
        )
        .route(
            "/__berth/bad-version",
            get(bad_version)
                .post(bad_version)
                .delete(bad_version)
                .put(bad_version)
                .head(bad_version),
        );
    plugins::routes(swarm::routes(r))
        .fallback(not_found)
        // dockerd's router answers a known path with the wrong method as
        // an unknown one: 404 "page not found".
        .method_not_allowed_fallback(not_found)
        .layer(axum::middleware::map_response(json_rejections))
        .layer(axum::middleware::map_response(common_headers))
        .layer(axum::middleware::from_fn(request_span))
        .with_state(engine)
}

/// Every request runs in a span with a number of its own, so that the lines
/// one request logs (and those of what it starts) can be told apart; the
/// container it is about is recorded as `container_id` once it is known
/// (`Containers::lookup`).
async fn request_span(req: Request, next: axum::middleware::Next) -> Response {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tracing::Instrument;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let span = tracing::info_span!(
        "request",
        request_id = NEXT.fetch_add(1, Ordering::Relaxed),
        method = %req.method(),
        path = %req.uri().path(),
        container_id = tracing::field::Empty,
    );
    // The route's pattern, not the path: ids and names make no new series.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    crate::metrics::METRICS.api_request(method.as_str(), &route, started.elapsed());
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "answered"));
    response
}

/// The router behind the version-prefix rewrite, ready for `axum::serve`.
pub type App = axum::routing::IntoMakeService<Service>;

/// One connection's service (the TCP listeners serve connections by hand).
pub type Service = tower::util::MapRequest<Router, fn(Request) -> Request>;

/// The service berthd serves: version prefixes are stripped before routing.
pub fn app(engine: Arc<Engine>) -> App {
    service(engine).into_make_service()
}

pub fn service(engine: Arc<Engine>) -> Service {
    let r = router(engine);
    tower::util::MapRequestLayer::new(strip_version as fn(Request) -> Request).layer(r)
}

/// `/v1.44/containers/json` → `/containers/json` with the version recorded;
/// out-of-range versions are routed to a handler that answers 400 as Docker does.
fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path().to_string();
    let mut version = MAX_API_VERSION;
    let mut rest = path.clone();
    if let Some(after) = path.strip_prefix("/v") {
        let (ver, tail) = after.split_once('/').unwrap_or((after, ""));
        if let Some(v) = ApiVersion::parse(ver) {
            rest = format!("/{tail}");
            version = v;
            let msg = if v < MIN_API_VERSION {
                Some(format!("client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"))
            } else if v > MAX_API_VERSION {
                Some(format!("client version {v} is too new. Maximum supported API version is {MAX_API_VERSION}"))
            } else {
                None
            };
            if let Some(m) = msg {
                req.extensions_mut().insert(BadVersion(m));
                rest = "/__berth/bad-version".into();
            }
        }
    }
    req.extensions_mut().insert(version);
    let rest = link_name_path(rest);
    let pq = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    if let Ok(uri) = pq.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    req
}

/// What follows `/containers/{id}/` in the routes of one container.
const CONTAINER_OPS: &[&str] = &[
    "json",
    "top",
    "logs",
    "changes",
    "export",
    "stats",
    "resize",
    "start",
    "stop",
    "restart",
    "kill",
    "update",
    "rename",
    "pause",
    "unpause",
    "attach",
    "attach/ws",
    "wait",
    "archive",
    "exec",
];

/// dockerd routes `/containers/{name:.*}/...`, so a legacy link's name
/// (`parent/alias`, the child as its parent sees it) names a container in
/// every route. Its slash is escaped here, so that the routes' one-segment
/// `{id}` takes it whole (`Containers::lookup` resolves it).
fn link_name_path(path: String) -> String {
    let Some(after) = path.strip_prefix("/containers/") else {
        return path;
    };
    let segs: Vec<&str> = after.splitn(3, '/').collect();
    let [parent, alias, op] = segs[..] else {
        return path;
    };
    let plain_op = format!("{alias}/{op}");
    if CONTAINER_OPS.contains(&plain_op.as_str()) || !CONTAINER_OPS.contains(&op) {
        return path;
    }
    format!("/containers/{parent}%2F{alias}/{op}")
}

async fn bad_version(Extension(b): Extension<BadVersion>) -> Error {
    Error::InvalidArgument(b.0)
}

async fn not_found() -> Error {
    Error::NotFound("page not found".into())
}

/// Headers Docker puts on every response; clients read Api-Version from them.
/// axum answers what it rejects before a handler runs (a body over the
/// 2 MiB limit, a bad query string) in plain text; Docker clients expect
/// `{"message": ...}`, which is what they print.
async fn json_rejections(resp: Response) -> Response {
    let plain = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !plain || !(resp.status().is_client_error() || resp.status().is_server_error()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = if parts.status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        "request body too large: the limit is 2 MiB".to_string()
    } else {
        text
    };
    let mut out = axum::response::IntoResponse::into_response(shape::Json(
        serde_json::json!({ "message": message }),
    ));
    *out.status_mut() = parts.status;
    out
}

async fn common_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static("1.50"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}
