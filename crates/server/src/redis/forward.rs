//! Events between nodes: the node a publish reaches forwards it over HTTP/2 (cleartext, one
//! multiplexed connection per peer) to `/_cluster/deliver` on each node that holds the topic,
//! which answers how many of its connections took it. Authenticated by the cluster secret.
//! (Why HTTP and not Redis pub/sub: docs/architecture.md, "Native runtime".)

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sse_core::frame::Event;
use sse_core::protocol::answer::decode_error;
use sse_core::protocol::{Deliver, DroppedNotice, ObjectAnswer, TopicResult};
use sse_core::{auth, GatewayError};

use crate::hub::Hub;
use crate::objects::{delivered, BoxFuture, HeaderLookup, InternalEndpoint, Peer, UnreadBody};

/// The header carrying the cluster secret.
const KEY: &str = "x-sse-cluster-key";

/// The calls, under `/_cluster/`.
const DELIVER: &str = "deliver";
const DROPPED: &str = "dropped";

#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    secret: Arc<str>,
    timeout: Duration,
    /// The body limit every node applies (to read a peer's `413` back).
    max_body_bytes: usize,
}

impl Forwarder {
    pub fn new(secret: &str, timeout_ms: u64, max_body_bytes: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(timeout_ms)));
        let client = Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
        Self { client, secret: secret.into(), timeout: Duration::from_millis(timeout_ms), max_body_bytes }
    }

    /// Posts a call; the peer's `200` body, or why there is none.
    async fn post(&self, peer: &Peer, call: &str, headers: Vec<(&'static str, String)>, body: Bytes) -> Result<String, String> {
        let mut req = hyper::Request::post(format!("http://{}/_cluster/{call}", peer.addr)).header(KEY, &*self.secret);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if !status.is_success() {
                return Err(decode_error(status.as_u16(), &text, self.max_body_bytes).to_string());
            }
            Ok(text)
        };
        tokio::time::timeout(self.timeout, call).await.map_err(|_| format!("no answer within {:?}", self.timeout))?
    }

    /// Hands `ev` to every peer at once (its message and body built once, shared by every
    /// call); what their connections took, added up. A peer that cannot be reached counts as
    /// having delivered nothing (logged). `seq`: the event's per-topic retention sequence, for a
    /// retained topic.
    pub async fn deliver_all(&self, peers: &[Peer], ev: &Event, seq: Option<u64>) -> TopicResult {
        if peers.is_empty() {
            return TopicResult::Dropped;
        }
        let headers = Deliver::of(ev, seq).headers();
        let body = Bytes::from(ev.data.clone());
        let calls = peers.iter().map(|p| self.deliver(p, ev, headers.clone(), body.clone()));
        join_all(calls).await.into_iter().fold(TopicResult::Dropped, TopicResult::merge)
    }

    async fn deliver(&self, peer: &Peer, ev: &Event, headers: Vec<(&'static str, String)>, body: Bytes) -> TopicResult {
        let answer = self.post(peer, DELIVER, headers, body).await;
        match answer.and_then(|body| ObjectAnswer::decode(&body).map_err(|e| e.to_string())) {
            Ok(a) => a.result(),
            Err(e) => {
                tracing::warn!(peer = %peer.node, addr = %peer.addr, topic = %ev.topic, id = %ev.id, error = %e, "forwarding an event failed");
                TopicResult::Dropped
            }
        }
    }

    /// Tells `peer`'s tails of a topic that an event was dropped.
    pub async fn dropped(&self, peer: &Peer, notice: &DroppedNotice) {
        if let Err(e) = self.post(peer, DROPPED, notice.headers(), Bytes::new()).await {
            tracing::debug!(peer = %peer.node, error = %e, "telling a peer's tails of a drop failed");
        }
    }
}

/// The receiving side: `/_cluster/deliver` and `/_cluster/dropped`.
pub struct Endpoint {
    pub hub: Arc<Hub>,
    pub secret: String,
}

impl Endpoint {
    async fn call(&self, call: &str, header: HeaderLookup<'_>, body: UnreadBody) -> Result<String, GatewayError> {
        let presented = header(KEY).unwrap_or_default();
        if !auth::ct_eq(self.secret.as_bytes(), presented.as_bytes()) {
            return Err(GatewayError::Unauthorized);
        }
        let now = crate::clock::now_ms();
        match call {
            DELIVER => {
                let deliver = Deliver::decode(header, now)?;
                let data = body.await?;
                let seq = deliver.seq;
                let ev = deliver.into_event(data);
                let outcome = self.hub.deliver(&ev, seq);
                Ok(ObjectAnswer::Done(TopicResult::of_delivery(delivered(&outcome), false)).encode())
            }
            DROPPED => {
                let n = DroppedNotice::decode(header, now)?;
                self.hub.notify_dropped(&n.topic, &n.id, n.ts);
                Ok("{}".into())
            }
            _ => Err(GatewayError::NotFound),
        }
    }
}

impl InternalEndpoint for Endpoint {
    fn handle<'a>(&'a self, call: &'a str, header: HeaderLookup<'a>, body: UnreadBody) -> BoxFuture<'a, Result<String, GatewayError>> {
        Box::pin(self.call(call, header, body))
    }
}
