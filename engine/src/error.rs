//! The engine's one error type. Each variant is an error *class*; the
//! mapping to Docker's status codes lives in exactly one place
//! ([`Error::status`]), and every error leaves as `{"message": "..."}` with
//! Content-Type application/json, which is what Docker clients parse.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404: unknown container, image, exec…
    #[error("{0}")]
    NotFound(String),
    /// 400: bad parameters or bodies.
    #[error("{0}")]
    InvalidArgument(String),
    /// 401: a registry refused the credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: not allowed on this object (a read-only root filesystem).
    #[error("{0}")]
    Forbidden(String),
    /// 409: name in use, container running, image in use…
    #[error("{0}")]
    Conflict(String),
    /// 304: already started, already stopped.
    #[error("{0}")]
    NotModified(String),
    /// 503: berth-core is not reachable right now.
    #[error("{0}")]
    Unavailable(String),
    /// 501
    #[error("{0}")]
    NotImplemented(String),
    /// 500: everything else.
    #[error("{0}")]
    Internal(String),
    /// A build step's command exited non-zero (message, exit code). Only
    /// ever reported inside a build's message stream, with the code.
    #[error("{0}")]
    CommandFailed(String, i64),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::NotModified(_) => StatusCode::NOT_MODIFIED,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Internal(_) | Error::CommandFailed(..) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The same classes as gRPC codes, for BuildKit's API on `/grpc`.
    pub fn grpc(&self) -> tonic::Status {
        use tonic::Code;
        let code = match self {
            Error::NotFound(_) => Code::NotFound,
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::Conflict(_) => Code::AlreadyExists,
            Error::Forbidden(_) => Code::PermissionDenied,
            Error::Unauthorized(_) => Code::Unauthenticated,
            Error::NotModified(_) => Code::FailedPrecondition,
            Error::Unavailable(_) => Code::Unavailable,
            Error::NotImplemented(_) => Code::Unimplemented,
            Error::Internal(_) | Error::CommandFailed(..) => Code::Unknown,
        };
        tonic::Status::new(code, self.to_string())
    }

    pub fn no_such_container(id: &str) -> Error {
        Error::NotFound(format!("No such container: {id}"))
    }

    pub fn no_such_image(name: &str) -> Error {
        Error::NotFound(format!("No such image: {name}"))
    }

    pub fn internal(e: impl std::fmt::Display) -> Error {
        Error::Internal(e.to_string())
    }
}

/// A failed call on a build session (the caller's side of a build).
impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::NotFound => Error::NotFound(s.message().to_string()),
            tonic::Code::InvalidArgument => Error::InvalidArgument(s.message().to_string()),
            _ => Error::Internal(s.message().to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Internal(format!("database: {e}"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::NOT_MODIFIED {
            // A 304 carries no body.
            return status.into_response();
        }
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        }
        // Ended by a newline, as Go's json.Encoder ends dockerd's.
        let body = serde_json::json!({ "message": self.to_string() }).to_string() + "\n";
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}
