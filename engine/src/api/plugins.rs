//! `/plugins`: answered as a dockerd with no plugins installed answers.
//! Installing one (pull, create, upgrade) would need Docker's managed
//! plugin system (plugin images run by containerd as privileged daemons);
//! Berth has none and says so after the same input checks dockerd makes.

use axum::body::Bytes;
use axum::extract::{Path, Query as AxQuery, Request};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{any, get, post};

use super::query::Query;
use super::State;
use crate::error::Error;

pub fn routes(r: axum::Router<State>) -> axum::Router<State> {
    r.route("/plugins", get(list))
        .route("/plugins/privileges", get(privileges))
        .route("/plugins/pull", post(install))
        .route("/plugins/create", post(create))
        .route("/plugins/{*rest}", any(by_name))
}

/// `GET /plugins`: none.
async fn list() -> Response {
    super::shape::json_response(&serde_json::json!([]))
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("plugin \"{name}\" not found"))
}

fn unsupported() -> Error {
    Error::NotImplemented("Berth does not install Docker plugins".into())
}

/// `GET /plugins/privileges?remote=`: dockerd parses the reference, then
/// asks the registry for the plugin's config.
async fn privileges(AxQuery(q): AxQuery<Query>) -> Error {
    match q.get("remote").map(String::as_str).unwrap_or("") {
        "" => Error::Internal("invalid reference format".into()),
        _ => unsupported(),
    }
}

/// `POST /plugins/pull` and `/plugins/{name}/upgrade`: the body is the
/// list of privileges the user granted.
async fn install(body: Bytes) -> Error {
    match crate::go_json::from_slice::<Vec<serde_json::Value>>(&body) {
        Err(e) => Error::Internal(format!("failed to parse privileges: {e}")),
        Ok(_) => unsupported(),
    }
}

/// `POST /plugins/create?name=`: a plugin from a tar of its rootfs.
async fn create(AxQuery(q): AxQuery<Query>) -> Error {
    let name = q.get("name").map(String::as_str).unwrap_or("");
    if crate::images::reference::Reference::parse(name).is_err() {
        return Error::Internal(format!(
            "failed to parse reference {name}: invalid reference format"
        ));
    }
    unsupported()
}

/// `/plugins/{name}/json`, `DELETE /plugins/{name}`, and the actions
/// `enable`, `disable`, `set`, `push`, `upgrade`. Plugin names hold
/// slashes, so the action is the last segment.
async fn by_name(
    Path(rest): Path<String>,
    AxQuery(q): AxQuery<Query>,
    req: Request,
) -> Result<Response, Error> {
    let method = req.method().clone();
    if method == Method::DELETE {
        return Err(not_found(&rest));
    }
    let (name, action) = rest.rsplit_once('/').unwrap_or((rest.as_str(), ""));
    match (method, action) {
        (Method::GET, "json") => Err(not_found(name)),
        (Method::POST, "enable") => {
            let timeout = q.get("timeout").map(String::as_str).unwrap_or("");
            if timeout.parse::<i64>().is_err() {
                return Err(Error::Internal(format!(
                    "strconv.Atoi: parsing \"{timeout}\": invalid syntax"
                )));
            }
            Err(not_found(name))
        }
        (Method::POST, "disable" | "set" | "push") => Err(not_found(name)),
        (Method::POST, "upgrade") => {
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            match crate::go_json::from_slice::<Vec<serde_json::Value>>(&body) {
                Err(e) => Err(Error::Internal(format!("failed to parse privileges: {e}"))),
                Ok(_) => Err(not_found(name)),
            }
        }
        _ => Err(Error::NotFound("page not found".into())),
    }
}
