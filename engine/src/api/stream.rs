//! JSON message streams (load, import, pull): one object per line, ended
//! with "\r\n" as Docker's stream formatter does. Errors inside a stream
//! carry both `errorDetail` and the legacy `error` string.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

pub fn line(v: &Value) -> String {
    let mut s = v.to_string();
    s.push_str("\r\n");
    s
}

pub fn stream_message(text: &str) -> Value {
    json!({ "stream": text })
}

pub fn status_message(text: &str) -> Value {
    json!({ "status": text })
}

pub fn error_message(text: &str) -> Value {
    json!({ "errorDetail": { "message": text }, "error": text })
}

/// A complete JSON message stream as a 200 response.
pub fn response(messages: &[Value]) -> Response {
    let body: String = messages.iter().map(line).collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}
