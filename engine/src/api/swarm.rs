//! Swarm's endpoints (`/swarm`, `/nodes`, `/services`, `/tasks`,
//! `/secrets`, `/configs`) as a dockerd answers them outside a swarm.
//! Berth never joins one, so they answer what dockerd does before `docker
//! swarm init`: clients branch on exactly this (503 and its text), e.g.
//! the SDKs' test clean-ups and `docker info`'s callers. The few checks
//! dockerd makes before it finds out it is no manager (a version query
//! parameter, the log streams) come first here too, with its words.

use axum::body::Bytes;
use axum::extract::{Query as AxQuery, Request};
use axum::http::Method;
use axum::routing::{any, MethodRouter};

use super::query::{flag, Query};
use super::State;
use crate::error::Error;

const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

fn not_a_manager() -> Error {
    Error::Unavailable(NOT_A_MANAGER.into())
}

/// The routes, for `api::router`.
pub fn routes(r: axum::Router<State>) -> axum::Router<State> {
    r.route("/swarm", any(not_manager))
        .route("/swarm/unlockkey", any(not_manager))
        .route("/swarm/unlock", any(with_body))
        .route("/swarm/leave", any(leave))
        .route("/swarm/init", any(refuse_swarm))
        .route("/swarm/join", any(refuse_swarm))
        .route("/swarm/update", versioned("swarm", true))
        .route("/nodes", any(not_manager))
        .route("/nodes/{id}", any(not_manager))
        .route("/nodes/{id}/update", versioned("node", true))
        .route("/services", any(not_manager))
        .route("/services/create", any(with_body))
        .route("/services/{id}", any(not_manager))
        .route("/services/{id}/update", versioned("service", true))
        .route("/services/{id}/logs", any(logs))
        .route("/tasks", any(not_manager))
        .route("/tasks/{id}", any(not_manager))
        .route("/tasks/{id}/logs", any(logs))
        .route("/secrets", any(not_manager))
        .route("/secrets/create", any(with_body))
        .route("/secrets/{id}", any(not_manager))
        .route("/secrets/{id}/update", versioned("secret", false))
        .route("/configs", any(not_manager))
        .route("/configs/create", any(with_body))
        .route("/configs/{id}", any(not_manager))
        .route("/configs/{id}/update", versioned("config", false))
}

async fn not_manager() -> Error {
    not_a_manager()
}

/// A POST that carries a JSON body: dockerd reads it before anything else.
async fn with_body(req: Request) -> Error {
    match read_body(req).await {
        Err(e) => e,
        Ok(_) => not_a_manager(),
    }
}

/// The body of a POST, or dockerd's error when it is missing; other
/// methods have none to read.
async fn read_body(req: Request) -> Result<Bytes, Error> {
    if req.method() != Method::POST {
        return Ok(Bytes::new());
    }
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(crate::go_json::no_body());
    }
    Ok(body)
}

async fn leave() -> Error {
    Error::Unavailable("This node is not part of a swarm".into())
}

/// `docker swarm init`/`join` would make this node part of a swarm, which
/// Berth cannot be.
async fn refuse_swarm(req: Request) -> Error {
    if let Err(e) = read_body(req).await {
        return e;
    }
    Error::NotImplemented(
        "Berth does not run swarm mode: it cannot initialize or join a swarm".into(),
    )
}

/// `POST /<kind>/{id}/update?version=N`: dockerd parses the object version
/// before it asks the (absent) manager. Nodes, services and the swarm
/// quote Go's parse error; secrets and configs say it shortly.
fn versioned(kind: &'static str, quoted: bool) -> MethodRouter<State> {
    any(move |AxQuery(q): AxQuery<Query>, req: Request| async move {
        if req.method() != Method::POST {
            return not_a_manager();
        }
        if let Err(e) = read_body(req).await {
            return e;
        }
        let raw = q.get("version").cloned().unwrap_or_default();
        if raw.parse::<u64>().is_ok() {
            return not_a_manager();
        }
        Error::InvalidArgument(if quoted {
            format!("invalid {kind} version '{raw}': strconv.ParseUint: parsing \"{raw}\": invalid syntax")
        } else {
            format!("invalid {kind} version")
        })
    })
}

/// Service and task logs check their streams first, as container logs do.
async fn logs(AxQuery(q): AxQuery<Query>) -> Error {
    if !flag(&q, "stdout") && !flag(&q, "stderr") {
        return Error::Internal("Bad parameters: you must choose at least one stream".into());
    }
    not_a_manager()
}
