//! The shape of the Durable Object API, natively: a namespace of topic objects, an object by
//! name, and calls on it (`ns.get(topic).probe(id)`, `.publish(..)`, `.attach(..)`), plus the
//! registry's listings. The gateway above talks only to this; below it is either the in-memory
//! single node ([`crate::memory::MemoryNamespace`]) or the Redis cluster
//! ([`crate::redis::RedisNamespace`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sse_core::frame::Event;
use sse_core::registry::{ConnectionView, Page, TopicView};
use sse_core::request::{self, ListQuery, TopicResult};
use sse_core::topic::{ConnInfo, Outcome};
use sse_core::GatewayError;
use tokio::sync::oneshot;

use crate::hub::Hub;
use crate::log;
use crate::sink::QueueSink;

/// How long a publisher is told to wait (`retry-after`, seconds) when Redis cannot be reached.
pub const UNAVAILABLE_RETRY_AFTER_S: u64 = 2;

/// The error a publish gets when a probe was [`Probe::Unavailable`].
pub fn unavailable(probes: &[Probe]) -> Result<(), GatewayError> {
    if probes.iter().any(|p| *p == Probe::Unavailable) {
        return Err(GatewayError::Unavailable { what: "redis (where the topic's subscribers are)".into(), retry_after_s: UNAVAILABLE_RETRY_AFTER_S });
    }
    Ok(())
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Another node that holds connections of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node: String,
    /// `host:port` it advertises.
    pub addr: String,
    /// Its subscribers of the topic (0 when it holds only tails).
    pub subscribers: usize,
}

/// Where a topic's connections are, as a probe found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Nobody subscribes anywhere: the event is dropped (logged and told to tails already).
    Dropped,
    /// Someone does: deliver locally (`local`) and to these other nodes.
    Live { local: bool, peers: Vec<Peer> },
    /// Where the topic lives could not be found out in time (native cluster: Redis down or
    /// unreachable). Nothing is delivered; the publish is answered 503 `unavailable`.
    Unavailable,
}

impl Probe {
    pub fn is_live(&self) -> bool {
        matches!(self, Probe::Live { .. })
    }
}

/// A namespace of topic objects (and the registry), in one of two implementations.
pub trait Namespace: Send + Sync + 'static {
    /// This node's topics and connections.
    fn hub(&self) -> &Arc<Hub>;

    /// Whether anyone subscribes to `topic` anywhere. When nobody does, the implementation logs
    /// the drop once and tells the topic's tails, wherever they are; the body is never needed.
    fn probe<'a>(&'a self, topic: &'a str, id: &'a str) -> BoxFuture<'a, Probe>;

    /// Delivers to the nodes a probe found (this one included): what they did, added up.
    fn deliver<'a>(&'a self, probe: &'a Probe, ev: &'a Event) -> BoxFuture<'a, TopicResult>;

    /// A page of live topics, across the cluster.
    fn topics(&self, q: ListQuery) -> BoxFuture<'_, Result<Page<TopicView>, GatewayError>>;

    /// A page of connections, across the cluster.
    fn connections(&self, q: ListQuery) -> BoxFuture<'_, Result<Page<ConnectionView>, GatewayError>>;

    /// Ends the resume of connection `conn_id` on `topic` when its retained events live in
    /// shared storage ([`Hub::resumes_from_stream`]): called once its attachment is recorded;
    /// returns the frames to send before anything queued (see [`Hub::finish_resume`]).
    fn resume<'a>(&'a self, _topic: &'a str, _conn_id: &'a str, _last_id: &'a str) -> BoxFuture<'a, Vec<bytes::Bytes>> {
        Box::pin(async { Vec::new() })
    }

    /// Leaves the cluster (after the connections are closed).
    fn shutdown(&self) -> BoxFuture<'_, ()>;

    /// The node-to-node endpoints (`/_cluster/...`), if this namespace spans nodes.
    fn internal(&self) -> Option<&dyn InternalEndpoint> {
        None
    }
}

/// Calls one node makes to another over HTTP.
pub trait InternalEndpoint: Send + Sync {
    /// Answers `POST /_cluster/<call>`.
    fn handle<'a>(&'a self, call: &'a str, headers: &'a axum::http::HeaderMap, body: axum::body::Body) -> BoxFuture<'a, Result<axum::response::Response, GatewayError>>;
}

impl dyn Namespace {
    /// The topic object named `topic`.
    pub fn get<'a>(&'a self, topic: &'a str) -> ObjectRef<'a> {
        ObjectRef { ns: self, topic }
    }
}

/// One topic object: what the gateway calls.
pub struct ObjectRef<'a> {
    ns: &'a dyn Namespace,
    topic: &'a str,
}

impl ObjectRef<'_> {
    /// Attaches a connection of this node. The returned receiver answers once the attachment
    /// is recorded where every node can see it.
    pub fn attach(&self, info: ConnInfo, sink: QueueSink) -> Result<oneshot::Receiver<()>, GatewayError> {
        self.ns.hub().attach(self.topic, info, sink)
    }

    /// [`ObjectRef::attach`] resuming after `last_id`: also the frames to send first (see
    /// [`Hub::attach_resume`]).
    pub fn attach_resume(&self, info: ConnInfo, sink: QueueSink, last_id: Option<&str>) -> Result<(oneshot::Receiver<()>, Vec<bytes::Bytes>), GatewayError> {
        self.ns.hub().attach_resume(self.topic, info, sink, last_id, crate::clock::now_ms())
    }

    pub fn detach(&self, id: &str) {
        self.ns.hub().detach(self.topic, id);
    }

    pub async fn probe(&self, id: &str) -> Probe {
        self.ns.probe(self.topic, id).await
    }

    /// Publishes `ev` (whose topic is this object's) to where the probe found subscribers.
    pub async fn publish(&self, probe: &Probe, ev: &Event) -> TopicResult {
        debug_assert_eq!(ev.topic, self.topic);
        let result = match probe {
            Probe::Dropped | Probe::Unavailable => TopicResult::Dropped,
            live => self.ns.deliver(live, ev).await,
        };
        if result == TopicResult::Dropped && probe.is_live() {
            // Everyone left between the probe and the delivery.
            log::raw(&request::drop_log_line(&ev.topic, &ev.id));
        }
        result
    }
}

/// What a local delivery did, as a topic result.
pub fn local_result(outcome: Outcome) -> TopicResult {
    match outcome {
        Outcome::Delivered { count, .. } => TopicResult::Delivered(count),
        Outcome::Dropped => TopicResult::Dropped,
    }
}

/// What a local delivery did on a topic that may retain events here.
pub fn local_result_retained(hub: &Hub, topic: &str, outcome: Outcome) -> TopicResult {
    let r = local_result(outcome);
    if hub.retains(topic) {
        r.retained()
    } else {
        r
    }
}
