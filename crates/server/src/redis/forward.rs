//! Between nodes, over HTTP/2 (cleartext, one multiplexed connection per peer), authenticated by
//! the cluster secret:
//!
//! - `/_cluster/deliver`: events for the nodes that hold their topics. Each peer has one lane:
//!   events queue there in publish order, and the lane sends whatever is waiting as one
//!   [`DeliverBatch`] with one request in flight at a time, so under load many events share
//!   one request, and a topic's events reach the peer in order. The peer answers how many of
//!   its connections took each.
//! - `/_cluster/placement`: a node's [`PlacementNotice`] (the placement cache, `cache.rs`).
//! - `/_cluster/dropped`: tells a peer's tails that an event was dropped.
//!
//! (Why HTTP and not Redis pub/sub: docs/architecture.md, "How events travel between nodes".)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sse_core::frame::Event;
use sse_core::protocol::answer::decode_error;
use sse_core::protocol::cluster::{BatchAnswer, BatchedEvent, DeliverBatch, PlacementNotice};
use sse_core::protocol::{DroppedNotice, TopicResult};
use sse_core::{auth, GatewayError};
use tokio::sync::{mpsc, oneshot};

use super::cache::Placement;
use crate::hub::Hub;
use crate::objects::{delivered, BoxFuture, HeaderLookup, InternalEndpoint, Peer, UnreadBody};

/// The header carrying the cluster secret.
const KEY: &str = "x-sse-cluster-key";

/// The calls, under `/_cluster/`.
const DELIVER: &str = "deliver";
const PLACEMENT: &str = "placement";
const DROPPED: &str = "dropped";

/// At most this many events, and about this much data, in one batch.
const BATCH_EVENTS: usize = 512;
const BATCH_BYTES: usize = 4 << 20;
/// The largest body a node accepts from another (a full batch of events at the largest body
/// size, JSON-escaped).
pub const INTERNAL_MAX_BODY: usize = 16 << 20;

struct Job {
    event: BatchedEvent,
    done: oneshot::Sender<TopicResult>,
}

#[derive(Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<HttpConnector, Full<Bytes>>,
    secret: Arc<str>,
    timeout: Duration,
    /// The body limit every node applies to publishes (to read a peer's `413` back).
    max_body_bytes: usize,
    /// One lane per peer address.
    lanes: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
}

impl Forwarder {
    pub fn new(secret: &str, timeout_ms: u64, max_body_bytes: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(timeout_ms)));
        let client = Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
        Self {
            inner: Arc::new(Inner {
                client,
                secret: secret.into(),
                timeout: Duration::from_millis(timeout_ms),
                max_body_bytes,
                lanes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Hands `ev` to every peer's lane; what their connections took, added up. A peer that
    /// cannot be reached counts as having delivered nothing (logged). `seq`: the event's
    /// per-topic retention sequence, for a retained topic.
    pub async fn deliver_all(&self, peers: &[Peer], ev: &Event, seq: Option<u64>) -> TopicResult {
        if peers.is_empty() {
            return TopicResult::Dropped;
        }
        let answers: Vec<_> = peers
            .iter()
            .map(|p| {
                let (done, answer) = oneshot::channel();
                let _ = self.lane(p).send(Job { event: BatchedEvent::of(ev, seq), done });
                answer
            })
            .collect();
        join_all(answers).await.into_iter().map(|r| r.unwrap_or(TopicResult::Dropped)).fold(TopicResult::Dropped, TopicResult::merge)
    }

    fn lane(&self, peer: &Peer) -> mpsc::UnboundedSender<Job> {
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = lanes.get(&peer.addr).filter(|l| !l.is_closed()) {
            return l.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(self.clone().run_lane(peer.clone(), rx));
        lanes.insert(peer.addr.clone(), tx.clone());
        tx
    }

    /// Sends what waits for `peer`, one batch at a time, until the forwarder is dropped.
    async fn run_lane(self, peer: Peer, mut rx: mpsc::UnboundedReceiver<Job>) {
        let mut jobs = Vec::with_capacity(64);
        while rx.recv_many(&mut jobs, BATCH_EVENTS).await > 0 {
            while !jobs.is_empty() {
                let mut bytes = 0;
                let n = jobs
                    .iter()
                    .position(|j| {
                        bytes += j.event.data.len();
                        bytes > BATCH_BYTES
                    })
                    .unwrap_or(jobs.len())
                    .max(1);
                let rest = jobs.split_off(n);
                let batch = std::mem::replace(&mut jobs, rest);
                self.send_batch(&peer, batch).await;
            }
        }
    }

    async fn send_batch(&self, peer: &Peer, batch: Vec<Job>) {
        let n = batch.len();
        let (events, dones): (Vec<_>, Vec<_>) = batch.into_iter().map(|j| (j.event, j.done)).unzip();
        let first = (events[0].topic.clone(), events[0].id.clone());
        let body = Bytes::from(DeliverBatch { events }.encode());
        let answer = self.post(&peer.addr, DELIVER, body).await;
        match answer.and_then(|body| BatchAnswer::decode(&body, n).map_err(|e| e.to_string())) {
            Ok(results) => {
                for (done, r) in dones.into_iter().zip(results) {
                    let _ = done.send(r);
                }
            }
            Err(e) => {
                tracing::warn!(peer = %peer.node, addr = %peer.addr, events = n, topic = %first.0, id = %first.1, error = %e, "forwarding events failed");
                for done in dones {
                    let _ = done.send(TopicResult::Dropped);
                }
            }
        }
    }

    /// Posts a call; the peer's `200` body, or why there is none.
    async fn post(&self, addr: &str, call: &str, body: Bytes) -> Result<String, String> {
        self.post_with(addr, call, Vec::new(), body).await
    }

    async fn post_with(&self, addr: &str, call: &str, headers: Vec<(&'static str, String)>, body: Bytes) -> Result<String, String> {
        let inner = &self.inner;
        let mut req = hyper::Request::post(format!("http://{addr}/_cluster/{call}")).header(KEY, &*inner.secret);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let call = async {
            let resp = inner.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if !status.is_success() {
                return Err(decode_error(status.as_u16(), &text, inner.max_body_bytes).to_string());
            }
            Ok(text)
        };
        tokio::time::timeout(inner.timeout, call).await.map_err(|_| format!("no answer within {:?}", inner.timeout))?
    }

    /// Sends `notice` to every peer at once and waits for their answers (or the forward
    /// timeout). Those that could not take it catch up at their next placement sync.
    pub async fn announce(&self, peers: &[(String, String)], notice: &PlacementNotice) {
        let body = Bytes::from(notice.encode());
        let calls = peers.iter().map(|(id, addr)| {
            let body = body.clone();
            async move {
                if let Err(e) = self.post(addr, PLACEMENT, body).await {
                    tracing::warn!(peer = %id, addr = %addr, gen = notice.gen, error = %e, "a peer did not take this node's placement notice; it catches up at its next sync");
                }
            }
        });
        join_all(calls).await;
    }

    /// Tells `peer`'s tails of a topic that an event was dropped.
    pub async fn dropped(&self, peer: &Peer, notice: &DroppedNotice) {
        if let Err(e) = self.post_with(&peer.addr, DROPPED, notice.headers(), Bytes::new()).await {
            tracing::debug!(peer = %peer.node, error = %e, "telling a peer's tails of a drop failed");
        }
    }
}

/// The receiving side of the calls above.
pub struct Endpoint {
    pub hub: Arc<Hub>,
    pub placement: Arc<Placement>,
    pub secret: String,
}

impl Endpoint {
    async fn call(&self, call: &str, header: HeaderLookup<'_>, body: UnreadBody) -> Result<String, GatewayError> {
        let presented = header(KEY).unwrap_or_default();
        if !auth::ct_eq(self.secret.as_bytes(), presented.as_bytes()) {
            return Err(GatewayError::Unauthorized);
        }
        match call {
            DELIVER => {
                let batch = DeliverBatch::decode(&body.await?)?;
                let delivered = batch
                    .events
                    .into_iter()
                    .map(|e| {
                        let (ev, seq) = e.into_parts();
                        delivered(&self.hub.deliver(&ev, seq))
                    })
                    .collect();
                Ok(BatchAnswer { delivered }.encode())
            }
            PLACEMENT => {
                let notice = PlacementNotice::decode(&body.await?)?;
                self.placement.apply_notice(notice);
                Ok("{}".into())
            }
            DROPPED => {
                let n = DroppedNotice::decode(header, crate::clock::now_ms())?;
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
