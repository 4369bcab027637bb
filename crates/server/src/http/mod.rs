//! The HTTP surface: one handler resolves every request with the core's router, authenticates
//! with the core's key check, and hands over to the endpoint's module.

mod admin;
mod body;
mod internal;
mod publish;
pub(crate) mod respond;
mod subscribe;
mod ws;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::Response;
use sse_core::request::{Credentials, Query, Subscribe};
use sse_core::routes::{self, Route};
use sse_core::GatewayError;

use crate::state::GatewayState;

/// Prefix of the node-to-node endpoints (cluster only).
pub const INTERNAL_PREFIX: &str = "/_cluster/";

pub(crate) async fn dispatch(State(gw): State<Arc<GatewayState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let sends_body = body::declared(&parts.headers);
    let (method, uri) = (parts.method.clone(), parts.uri.clone());
    let origin = parts.headers.get("origin").cloned();
    let mut body = Some(body);
    let resp = match handle(&gw, parts, &mut body).await {
        Ok(resp) => resp,
        Err(e) => rejected(&gw, method.as_str(), uri.path(), &e),
    };
    if let (Some(unread), true) = (body, sends_body) {
        // Answered without reading the body (drop path, 401, 413...): let the client finish
        // sending it so the connection can be reused, without buffering anything.
        body::discard_in_background(unread, gw.cfg.core.max_body_bytes);
    }
    respond::cors(resp, &gw.cfg.core.credentialed_origins, origin.as_ref())
}

async fn handle(gw: &Arc<GatewayState>, mut parts: Parts, body: &mut Option<Body>) -> Result<Response, GatewayError> {
    routes::check_header_bytes(parts.headers.iter().map(|(k, v)| (k.as_str().len(), v.len())))?;
    let path = parts.uri.path().to_string();
    if let Some(call) = path.strip_prefix(INTERNAL_PREFIX) {
        return internal::handle(gw, call, &parts, body).await;
    }
    let route = routes::route(parts.method.as_str(), &path)?;
    match route {
        Route::Preflight => return Ok(respond::preflight()),
        Route::Healthz => return Ok(respond::json(200, routes::health_body("native"))),
        Route::AdminUi => return Ok(admin::ui(&path)),
        _ => {}
    }
    let h = &parts.headers;
    let needs_key = route.needs_key() || (route == Route::Metrics && gw.cfg.metrics_require_key);
    let key = if needs_key {
        let grant = gw.cfg.core.api_keys.grant(header(h, "authorization"), header(h, "x-api-key"))?;
        grant.check_route(&route)?;
        Some(grant)
    } else {
        None
    };
    if route == Route::Publish {
        // Before anything else is looked at: a limited publisher costs one bucket check.
        gw.take_publish_token(key.map(|k| k.index))?;
    }
    let query = Query::parse(parts.uri.query().unwrap_or(""))?;
    match route {
        Route::Sse => subscribe::sse(gw, &parts.headers, &query).await,
        Route::Ws => ws::subscribe(gw, &mut parts, &query).await,
        Route::Publish => publish::handle(gw, &parts.headers, key, body).await,
        Route::AdminTopics => admin::topics(gw, &query).await,
        Route::AdminConnections => admin::connections(gw, &query).await,
        Route::AdminStats => Ok(respond::json(200, gw.stats().json().to_string())),
        Route::Metrics => Ok(respond::metrics(gw.stats().prometheus())),
        Route::AdminTail(topic) => subscribe::tail(gw, topic).await,
        Route::Preflight | Route::Healthz | Route::AdminUi => unreachable!("answered above"),
    }
}

/// The answer to a rejected request, counted and logged once, every error alike (the core's
/// `rejected_log_line`, as the Worker logs it).
pub(crate) fn rejected(gw: &GatewayState, method: &str, path: &str, e: &GatewayError) -> Response {
    gw.hub.metrics.rejected(e.code());
    crate::log::raw(&sse_core::request::rejected_log_line(method, path, e));
    respond::error(e)
}

/// `GET /sse` for a request whose head was parsed outside hyper (crate::listen): the same checks
/// as [`dispatch`] makes for that route, then the subscriber's opening block and connection.
pub(crate) async fn open_sse(
    gw: &Arc<GatewayState>,
    headers: &HeaderMap,
    query: &str,
) -> Result<(bytes::Bytes, crate::subscriber::Connection), GatewayError> {
    routes::check_header_bytes(headers.iter().map(|(k, v)| (k.as_str().len(), v.len())))?;
    let query = Query::parse(query)?;
    subscribe::open(gw, headers, &query).await
}

/// The subscribe check of private topics (`PRIVATE_TOPICS`, [`Subscribe::authorize`]) on a
/// request's headers and query; several `cookie` headers count as one. The cookie is used only
/// as `Origin` and `Host` allow (`CREDENTIALED_ORIGINS`).
pub(crate) fn authorize(gw: &GatewayState, sub: &mut Subscribe, h: &HeaderMap, q: &Query) -> Result<(), GatewayError> {
    let cookies: Vec<&[u8]> = h.get_all("cookie").iter().map(|v| v.as_bytes()).collect();
    let cookie = cookies.join(&b"; "[..]);
    let creds = Credentials {
        authorization: header(h, "authorization"),
        cookie: (!cookies.is_empty()).then_some(cookie.as_slice()),
        origin: header(h, "origin"),
        host: header(h, "host"),
    };
    sub.authorize(&gw.cfg.core, creds, q, crate::clock::now_ms() / 1000)
}

/// A header's raw bytes (the core validates the content).
pub(crate) fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    h.get(name).map(|v| v.as_bytes())
}
