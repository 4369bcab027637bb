//! Node-to-node endpoints under `/_cluster/` (a cluster forwards events to the nodes that hold
//! a topic's subscribers). Authenticated with the cluster secret; 404 on a single node.

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::response::Response;
use sse_core::GatewayError;

use crate::gateway::Inner;

pub async fn handle(gw: &Arc<Inner>, call: &str, parts: &Parts, body: &mut Option<Body>) -> Result<Response, GatewayError> {
    match gw.ns.internal() {
        Some(endpoint) => endpoint.handle(call, &parts.headers, body.take().unwrap_or_default()).await,
        None => Err(GatewayError::NotFound),
    }
}
