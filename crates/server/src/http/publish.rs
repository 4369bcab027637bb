//! `POST /publish`: validate the headers (core), then the gateway's publish (the core's plan:
//! probe each topic, read the body only if one takes it, deliver) and its `202` body.

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use sse_core::auth::KeyGrant;
use sse_core::request::{Publish, PublishHeaders};
use sse_core::GatewayError;

use super::{body, header, respond};
use crate::state::GatewayState;

pub async fn handle(
    gw: &Arc<GatewayState>,
    h: &HeaderMap,
    key: Option<KeyGrant<'_>>,
    body: &mut Option<Body>,
) -> Result<Response, GatewayError> {
    let headers = PublishHeaders {
        topic: header(h, "x-sse-topic"),
        id: header(h, "x-sse-id"),
        event: header(h, "x-sse-event"),
        content_length: header(h, "content-length"),
    };
    let p = Publish::parse(headers, &gw.cfg.core)?;
    // A scoped key's topics, before the body is touched (the caller discards it unread).
    if let Some(key) = key {
        key.check_publish(&p.topics)?;
    }
    // Taken only if read: an unread body (the drop path) is discarded by the caller.
    let data = async {
        let unread = body.take().unwrap_or_default();
        body::read_text(unread, gw.cfg.core.max_body_bytes, gw.cfg.publish_body_timeout_ms).await
    };
    let report = gw.publish(p.topics, &p.id, p.event.as_deref(), data).await?;
    Ok(respond::json(202, report.body))
}
