//! Node-to-node endpoints under `/_cluster/` (a cluster forwards events to the nodes that hold
//! a topic's subscribers). Authenticated with the cluster secret; 404 on a single node.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{CONNECTION, UPGRADE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sse_core::protocol::cluster::{is_stream_upgrade, STREAM_PROTOCOL};
use sse_core::GatewayError;

use super::{body, respond};
use crate::objects::{PendingStream, StreamIo};
use crate::state::GatewayState;

/// `POST /_cluster/stream`.
const STREAM: &str = "stream";

pub async fn handle(gw: &Arc<GatewayState>, call: &str, parts: &Parts, body: &mut Option<Body>) -> Result<Response, GatewayError> {
    let Some(endpoint) = gw.ns.internal() else { return Err(GatewayError::NotFound) };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    if call == STREAM {
        // The node-to-node event stream: answered 101, then binary frames both ways.
        let wants = header("upgrade").is_some_and(|u| is_stream_upgrade(&u));
        let upgrade = parts.extensions.get::<OnUpgrade>().cloned().filter(|_| wants).ok_or(GatewayError::UpgradeRequired)?;
        let io: PendingStream = Box::pin(async move {
            match upgrade.await {
                Ok(up) => Some(Box::new(TokioIo::new(up)) as Box<dyn StreamIo>),
                Err(e) => {
                    tracing::debug!(error = %e, "a node-to-node stream upgrade failed");
                    None
                }
            }
        });
        tokio::spawn(endpoint.stream(&header, io)?);
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("upgrade"));
        resp.headers_mut().insert(UPGRADE, HeaderValue::from_static(STREAM_PROTOCOL));
        return Ok(resp);
    }
    let unread = body.take().unwrap_or_default();
    let data = Box::pin(body::read_text(unread, crate::redis::INTERNAL_MAX_BODY, gw.cfg.publish_body_timeout_ms));
    Ok(respond::json(200, endpoint.handle(call, &header, data).await?))
}
