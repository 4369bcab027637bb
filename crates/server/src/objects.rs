//! The shape of the Durable Object API, natively: a namespace of topic objects, an object by
//! name, and calls on it (`ns.get(topic).probe(id)`, `.publish(..)`, `.attach(..)`), plus the
//! registry's listings. The gateway above talks only to this; below it is either the in-memory
//! single node ([`crate::memory::MemoryNamespace`]) or the Redis cluster
//! ([`crate::redis::RedisNamespace`]).
//! What a probe or a delivery means (the drop rule, the per-topic result) is the core's
//! (`sse_core::protocol`); this is only where the calls go. No HTTP type appears here: the
//! node-to-node endpoint takes a header lookup and an unread body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sse_core::frame::Event;
use sse_core::protocol::{Probed, TopicResult};
use sse_core::registry::{ConnectionView, Page, TopicView};
use sse_core::request::ListQuery;
use sse_core::topic::{ConnInfo, Outcome};
use sse_core::GatewayError;
use tokio::sync::oneshot;

use crate::hub::Hub;
use crate::sink::QueueSink;

/// How long a publisher is told to wait (`retry-after`, seconds) when Redis cannot be reached.
pub const UNAVAILABLE_RETRY_AFTER_S: u64 = 2;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Another node that holds connections of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node: Arc<str>,
    /// `host:port` it advertises.
    pub addr: Arc<str>,
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

    /// The probe as the publish plan reads it.
    pub fn probed(&self) -> Probed {
        match self {
            Probe::Dropped => Probed::Dropped,
            Probe::Live { .. } => Probed::Takes,
            Probe::Unavailable => Probed::Unavailable(GatewayError::Unavailable {
                what: "redis (where the topic's subscribers are)".into(),
                retry_after_s: UNAVAILABLE_RETRY_AFTER_S,
            }),
        }
    }
}

/// A namespace of topic objects (and the registry), in one of two implementations.
pub trait Namespace: Send + Sync + 'static {
    /// This node's topics and connections.
    fn hub(&self) -> &Arc<Hub>;

    /// Whether `topic` takes event `id` anywhere (core `drop_rule::takes`). When it does not,
    /// the implementation tells the topic's tails, wherever they are; the publish plan logs the
    /// drop, and the body is never needed.
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

/// A request body not read yet: awaiting it reads it (within the publish body limits).
pub type UnreadBody = BoxFuture<'static, Result<String, GatewayError>>;

/// A request header's text by name (lower case), if present.
pub type HeaderLookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// A byte stream between two nodes (an upgraded HTTP connection).
pub trait StreamIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> StreamIo for T {}

/// The stream of a `POST /_cluster/stream` once the upgrade completed (`None`: it failed).
pub type PendingStream = BoxFuture<'static, Option<Box<dyn StreamIo>>>;

/// Calls one node makes to another over HTTP.
pub trait InternalEndpoint: Send + Sync {
    /// Answers `POST /_cluster/<call>`: the JSON body of a `200`, or the error to answer.
    fn handle<'a>(&'a self, call: &'a str, header: HeaderLookup<'a>, body: UnreadBody) -> BoxFuture<'a, Result<String, GatewayError>>;

    /// Accepts `POST /_cluster/stream` (checking the caller like [`InternalEndpoint::handle`]):
    /// the task that serves the stream once upgraded (the caller answers `101`).
    fn stream(&self, header: HeaderLookup<'_>, io: PendingStream) -> Result<BoxFuture<'static, ()>, GatewayError>;
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

impl<'a> ObjectRef<'a> {
    /// Attaches a connection of this node, resuming after `last_id` if given. The returned
    /// receiver answers once the attachment is recorded where every node can see it; the
    /// frames are to be sent first (see [`Hub::attach_resume`]).
    pub fn attach(
        &self,
        info: ConnInfo,
        sink: QueueSink,
        last_id: Option<&str>,
    ) -> Result<(oneshot::Receiver<()>, Vec<bytes::Bytes>), GatewayError> {
        self.ns.hub().attach_resume(self.topic, info, sink, last_id, crate::clock::now_ms())
    }

    /// Whether this topic takes event `id` ([`Namespace::probe`]).
    pub fn probe(&self, id: &'a str) -> BoxFuture<'a, Probe> {
        self.ns.probe(self.topic, id)
    }

    pub fn detach(&self, id: &str) {
        self.ns.hub().detach(self.topic, id);
    }

    /// Publishes `ev` (whose topic is this object's) to where the probe found subscribers.
    pub async fn publish(&self, probe: &Probe, ev: &Event) -> TopicResult {
        debug_assert_eq!(ev.topic, self.topic);
        match probe {
            Probe::Dropped | Probe::Unavailable => TopicResult::Dropped,
            live => self.ns.deliver(live, ev).await,
        }
    }
}

/// How many of this node's connections a local delivery reached (`None`: nobody subscribes
/// here), as the core's `TopicResult::of_delivery` takes it.
pub fn delivered(outcome: &Outcome) -> Option<usize> {
    match outcome {
        Outcome::Delivered { count, .. } => Some(*count),
        Outcome::Dropped => None,
    }
}
