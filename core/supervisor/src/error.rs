//! The core's one error type, mapped to protocol error codes in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_proto::{ErrorBody, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("task {0} not found")]
    NotFound(String),
    #[error("task {0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// The task is in the wrong state for the request (running, stopped…).
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Runtime(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The core is handing over and could not pass the request on.
    #[error("{0}")]
    Unavailable(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Error::Runtime(_) | Error::Io(_) => ErrorCode::Internal,
            Error::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            axum::Json(ErrorBody {
                code,
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}
