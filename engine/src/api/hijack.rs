//! Hijacked connections (attach): Docker clients send `Connection: Upgrade`
//! and `Upgrade: tcp` and require `101` with the stream's content type;
//! after that the connection carries the raw or multiplexed stream.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

pub const RAW: &str = "application/vnd.docker.raw-stream";
pub const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";

pub fn upgraded_response(content_type: &'static str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    resp
}

/// The content type of a container's output stream for this API version.
pub fn stream_content_type(tty: bool, version: super::ApiVersion) -> &'static str {
    if !tty && version.announces_multiplexing() {
        MULTIPLEXED
    } else {
        RAW
    }
}
