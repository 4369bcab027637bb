//! Events between nodes: the node a publish reaches forwards it over HTTP/2 (cleartext, one
//! multiplexed connection per peer) to `/_cluster/deliver` on each node that holds the topic,
//! which answers how many of its connections took it. Authenticated by the cluster secret.
//! (Why HTTP and not Redis pub/sub: docs/architecture.md, "Native runtime".)

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use sse_core::frame::Event;
use sse_core::request::TopicResult;
use sse_core::topic::Outcome;
use sse_core::{auth, names, GatewayError};

use crate::http::{body, respond};
use crate::hub::Hub;
use crate::objects::{BoxFuture, InternalEndpoint, Peer};

/// The header carrying the cluster secret.
const KEY: &str = "x-sse-cluster-key";

#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    secret: Arc<str>,
    timeout: Duration,
}

impl Forwarder {
    pub fn new(secret: &str, timeout_ms: u64) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(timeout_ms)));
        let client = Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
        Self { client, secret: secret.into(), timeout: Duration::from_millis(timeout_ms) }
    }

    async fn post(&self, peer: &Peer, call: &str, headers: &[(&str, &str)], body: Bytes) -> Result<serde_json::Value, String> {
        let mut req = hyper::Request::post(format!("http://{}/_cluster/{call}", peer.addr)).header(KEY, &*self.secret);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            if !status.is_success() {
                return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
            }
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())
        };
        tokio::time::timeout(self.timeout, call).await.map_err(|_| format!("no answer within {:?}", self.timeout))?
    }

    /// Hands `ev` to `peer`; what its connections took. A peer that cannot be reached counts as
    /// having delivered nothing (logged).
    /// `seq`: the event's per-topic retention sequence, for a retained topic.
    pub async fn deliver(&self, peer: &Peer, ev: &Event, seq: Option<u64>) -> TopicResult {
        let ts = ev.ts.to_string();
        let seq = seq.map(|s| s.to_string());
        let mut headers = vec![("x-sse-topic", ev.topic.as_str()), ("x-sse-id", ev.id.as_str()), ("x-sse-ts", ts.as_str())];
        if let Some(s) = &seq {
            headers.push(("x-sse-seq", s));
        }
        if let Some(e) = &ev.event {
            headers.push(("x-sse-event", e));
        }
        match self.post(peer, "deliver", &headers, Bytes::from(ev.data.clone())).await {
            Ok(v) => match v["delivered"].as_u64() {
                Some(n) => TopicResult::Delivered(n as usize),
                None => TopicResult::Dropped,
            },
            Err(e) => {
                tracing::warn!(peer = %peer.node, addr = %peer.addr, topic = %ev.topic, id = %ev.id, error = %e, "forwarding an event failed");
                TopicResult::Dropped
            }
        }
    }

    /// Tells `peer`'s tails of `topic` that an event was dropped.
    pub async fn dropped(&self, peer: &Peer, topic: &str, id: &str, ts: u64) {
        let ts = ts.to_string();
        let headers = [("x-sse-topic", topic), ("x-sse-id", id), ("x-sse-ts", ts.as_str())];
        if let Err(e) = self.post(peer, "dropped", &headers, Bytes::new()).await {
            tracing::debug!(peer = %peer.node, error = %e, "telling a peer's tails of a drop failed");
        }
    }
}

/// The receiving side: `/_cluster/deliver` and `/_cluster/dropped`.
pub struct Endpoint {
    pub hub: Arc<Hub>,
    pub secret: String,
    pub max_body_bytes: usize,
    pub body_timeout_ms: u64,
}

fn text<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl Endpoint {
    async fn call(&self, call: &str, h: &HeaderMap, body: Body) -> Result<Response, GatewayError> {
        let presented = h.get(KEY).map(|v| v.as_bytes()).unwrap_or_default();
        if !auth::ct_eq(self.secret.as_bytes(), presented) {
            return Err(GatewayError::Unauthorized);
        }
        let topic = text(h, "x-sse-topic").ok_or(GatewayError::MissingTopic)?;
        names::check_topic(topic)?;
        let id = text(h, "x-sse-id").ok_or(GatewayError::MissingId)?;
        names::check_id(id)?;
        let ts = text(h, "x-sse-ts").and_then(|t| t.parse().ok()).unwrap_or_else(crate::clock::now_ms);
        match call {
            "deliver" => {
                let event = text(h, "x-sse-event").map(str::to_string);
                if let Some(e) = &event {
                    names::check_event(e)?;
                }
                let data = body::read_text(body, self.max_body_bytes, self.body_timeout_ms).await?;
                let ev = Event { topic: topic.to_string(), id: id.to_string(), event, data, ts };
                let seq = text(h, "x-sse-seq").and_then(|s| s.parse().ok());
                let answer = match self.hub.publish_in_cluster_seq(&ev, seq) {
                    Outcome::Delivered { count, .. } => json!({"delivered": count}),
                    Outcome::Dropped => json!({"dropped": true}),
                };
                Ok(respond::json(200, answer.to_string()))
            }
            "dropped" => {
                self.hub.notify_dropped(topic, id, ts);
                Ok(respond::json(200, "{}".into()))
            }
            _ => Err(GatewayError::NotFound),
        }
    }
}

impl InternalEndpoint for Endpoint {
    fn handle<'a>(&'a self, call: &'a str, headers: &'a HeaderMap, body: Body) -> BoxFuture<'a, Result<Response, GatewayError>> {
        Box::pin(self.call(call, headers, body))
    }
}
