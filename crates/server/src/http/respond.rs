//! Responses: JSON (and JSON errors), the CORS preflight, SSE streams. Headers come from the
//! core so both runtimes answer alike.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use sse_core::cors::{CredentialedOrigins, ALLOW_ORIGIN};
use sse_core::routes;
use sse_core::GatewayError;

fn with_headers<'a>(mut resp: Response, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Response {
    let h = resp.headers_mut();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            h.insert(k, v);
        }
    }
    resp
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub fn json(code: u16, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status(code);
    with_headers(resp, routes::JSON_HEADERS)
}

/// The JSON error answer (logged and counted by the caller, `http::rejected`, not here).
pub fn error(e: &GatewayError) -> Response {
    let extra = e.headers();
    let resp = json(e.status(), e.body());
    with_headers(resp, extra.iter().map(|(k, v)| (*k, v.as_str())))
}

pub fn preflight() -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    with_headers(resp, routes::PREFLIGHT_HEADERS)
}

pub fn sse(body: Body) -> Response {
    with_headers(Response::new(body), routes::SSE_HEADERS)
}

/// The CORS headers of an answer to a request with `origin` (its `Origin` header): the
/// builders here give `access-control-allow-origin: *`; for an origin listed in
/// `CREDENTIALED_ORIGINS` that becomes the origin with credentials (the core's rule). An answer
/// without CORS headers (a WebSocket upgrade) is left as it is.
pub fn cors(resp: Response, origins: &CredentialedOrigins, origin: Option<&HeaderValue>) -> Response {
    if origins.is_empty() || !resp.headers().contains_key(ALLOW_ORIGIN) {
        return resp;
    }
    with_headers(resp, origins.headers(origin.map(HeaderValue::as_bytes)))
}

/// The Prometheus text exposition (`GET /metrics`).
pub fn metrics(text: String) -> Response {
    with_headers(
        Response::new(Body::from(text)),
        [("content-type", "text/plain; version=0.0.4; charset=utf-8"), ("cache-control", "no-store"), ("access-control-allow-origin", "*")],
    )
}

/// A static file.
pub fn file(bytes: &'static [u8], content_type: &str, cache: &str) -> Response {
    with_headers(
        Response::new(Body::from(bytes)),
        [("content-type", content_type), ("cache-control", cache), ("access-control-allow-origin", "*")],
    )
}
