//! `POST /publish`: validate the headers (core), ask each topic whether anyone subscribes, read
//! the body only if someone does, deliver, answer 202 with the per-topic outcome.

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use sse_core::request::{self, Publish, PublishHeaders};
use sse_core::GatewayError;

use super::{body, header, respond};
use crate::clock;
use crate::gateway::{EventParts, Inner};

pub async fn handle(gw: &Arc<Inner>, h: &HeaderMap, body: &mut Option<Body>) -> Result<Response, GatewayError> {
    let headers = PublishHeaders {
        topic: header(h, "x-sse-topic"),
        id: header(h, "x-sse-id"),
        event: header(h, "x-sse-event"),
        content_length: header(h, "content-length"),
    };
    let p = Publish::parse(headers, &gw.cfg.core)?;
    let probes = gw.probe_all(&p.topics, &p.id).await;
    // Redis unreachable: nothing was delivered anywhere, so the publisher can safely retry.
    crate::objects::unavailable(&probes)?;
    if !probes.iter().any(|p| p.is_live()) {
        // The drop path: the body is never read.
        let results: Vec<_> = p.topics.iter().map(|t| (t.clone(), request::TopicResult::Dropped)).collect();
        gw.count_publish(&results);
        return Ok(respond::json(202, request::publish_response(&p.id, &results)));
    }
    let unread = body.take().unwrap_or_default();
    let data = body::read_text(unread, gw.cfg.core.max_body_bytes, gw.cfg.publish_body_timeout_ms).await?;
    let ev = EventParts { id: &p.id, event: p.event.as_deref(), ts: clock::now_ms() };
    let results = gw.deliver_all(&p.topics, &probes, &ev, &data).await;
    gw.count_publish(&results);
    Ok(respond::json(202, request::publish_response(&p.id, &results)))
}
