//! Node-to-node endpoints under `/_cluster/` (a cluster forwards events to the nodes that hold
//! a topic's subscribers). Authenticated with the cluster secret; 404 on a single node.

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::response::Response;
use sse_core::GatewayError;

use super::{body, respond};
use crate::state::GatewayState;

pub async fn handle(gw: &Arc<GatewayState>, call: &str, parts: &Parts, body: &mut Option<Body>) -> Result<Response, GatewayError> {
    let Some(endpoint) = gw.ns.internal() else { return Err(GatewayError::NotFound) };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let unread = body.take().unwrap_or_default();
    let data = Box::pin(body::read_text(unread, crate::redis::INTERNAL_MAX_BODY, gw.cfg.publish_body_timeout_ms));
    Ok(respond::json(200, endpoint.handle(call, &header, data).await?))
}
