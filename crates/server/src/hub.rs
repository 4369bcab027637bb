//! The local hub: this node's topics, each a core [`TopicState`] over connection queues. It
//! plays the role the topic Durable Objects play on Cloudflare, for the connections this node
//! holds. Topics are sharded over several mutexes by hash; no lock is held across an await.
//!
//! Every change of membership (attach, detach, eviction) is reported, in order, on a channel:
//! the namespace behind the hub (in-memory registry, or Redis placement) consumes it.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use sse_core::frame::{Event, Format};
use sse_core::protocol::conn::{self, Removals, Resumed, Resumer};
use sse_core::registry::ConnSummary;
use sse_core::replay::{ReplayBuffer, Retained, Retention};
use sse_core::topic::{ConnInfo, Outcome, Removed, TopicState};
use sse_core::GatewayError;
use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::metrics::{self, Metrics};
use crate::sink::writer::{Scope, Writers};
use crate::sink::{CloseReason, Frame, QueueSink};

const SHARDS: usize = 64;

type Topics = HashMap<String, TopicState<QueueSink>>;
/// The replay rings of retained topics (single node), sharded like the topics. A ring outlives
/// its topic's connections: that is the point of retention.
type Rings = HashMap<String, ReplayBuffer>;

/// A change of membership, reported in the order it happened for each topic.
#[derive(Debug)]
pub enum Change {
    /// A connection (or a tail, `info.format == Tail`) joined `topic`. `ack` is answered once the
    /// change is recorded (e.g. in Redis), so the subscriber is told it is connected only when a
    /// publish at any node can find it.
    Attached { topic: String, info: ConnInfo, ack: Option<oneshot::Sender<()>> },
    /// A connection or tail left `topic` (gone, evicted, or closed).
    Detached { topic: String, id: String },
    /// Every heartbeat, each topic as it is now (events sent, connections)...
    Snapshot(TopicSnapshot),
    /// ...then this, once every topic was reported.
    SnapshotDone,
}

/// One topic's subscribers as a heartbeat sees them.
#[derive(Debug, Clone)]
pub struct TopicSnapshot {
    pub topic: String,
    pub conns: Vec<ConnSummary>,
    pub tails: usize,
}

/// Counts for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    pub topics: usize,
    /// Subscriptions (a connection to three topics counts three times); tails excluded.
    pub subscriptions: usize,
    /// Connections closed because their queue was full, since start.
    pub evicted: u64,
    /// Events replayed to resuming subscribers, since start.
    pub replayed: u64,
    /// Retained topics (rings held in memory) and their events.
    pub retained_topics: usize,
    pub retained_events: usize,
}

pub struct Hub {
    shards: Box<[Mutex<Topics>]>,
    hasher: RandomState,
    max_per_topic: usize,
    changes: mpsc::UnboundedSender<Change>,
    admission: Admission,
    retained: RetainedTopics,
    counters: Counters,
    /// This node's counters (`/metrics`, `/admin/api/stats`).
    pub metrics: Arc<Metrics>,
    /// The writers of this node's bare-socket connections.
    pub writers: Writers,
}

/// Whether new connections are let in.
#[derive(Default)]
struct Admission {
    /// Shutting down.
    closed: AtomicBool,
    /// Cut off from the cluster (no Redis for nearly a node TTL): nothing new is attached.
    isolated: AtomicBool,
}

/// The hub's own counts, since start.
#[derive(Default)]
struct Counters {
    evicted: AtomicU64,
    replayed: AtomicU64,
}

/// Which topics are retained, and where their events are kept.
struct RetainedTopics {
    which: Retention,
    store: Store,
}

enum Store {
    /// Single node: an in-memory replay ring per retained topic, sharded like the topics.
    Rings(Box<[Mutex<Rings>]>),
    /// Native cluster: shared storage (Redis Streams); this hub keeps no ring, and a resuming
    /// connection is held until its snapshot is read ([`Hub::finish_resume`]).
    Streams,
}

/// A retained topic's events as read from shared storage for one resume.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Oldest first.
    pub entries: Vec<Retained>,
    /// Whether the topic has ever trimmed an event.
    pub trimmed: bool,
    /// The last sequence the topic gave out (0 = none).
    pub last_seq: u64,
}

impl Hub {
    /// A hub and the receiving end of its changes.
    pub fn new(max_per_topic: usize) -> (Hub, mpsc::UnboundedReceiver<Change>) {
        let (changes, rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(Metrics::new());
        let hub = Hub {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            max_per_topic,
            changes,
            admission: Admission::default(),
            retained: RetainedTopics { which: Retention::none(), store: Store::Streams },
            counters: Counters::default(),
            writers: Writers::new(metrics.clone()),
            metrics,
        };
        (hub, rx)
    }

    /// Keeps an in-memory replay ring for the topics `retention` names (single node).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        let rings = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        self.retained = RetainedTopics { which: retention, store: Store::Rings(rings) };
        self
    }

    /// Knows which topics are retained, but their events live in shared storage (native
    /// cluster: Redis Streams), not in rings here.
    pub fn with_stream_retention(mut self, retention: Retention) -> Self {
        self.retained = RetainedTopics { which: retention, store: Store::Streams };
        self
    }

    /// The retention window of `topic`, if it is retained.
    pub fn window(&self, topic: &str) -> Option<sse_core::replay::Window> {
        self.retained.which.window(topic)
    }

    /// Whether a connection resuming on `topic` needs its snapshot read from shared storage
    /// ([`Hub::finish_resume`]) after it is attached.
    pub fn resumes_from_stream(&self, topic: &str) -> bool {
        matches!(self.retained.store, Store::Streams) && self.retains(topic)
    }

    /// Whether `topic` is retained (here or in shared storage).
    pub fn retains(&self, topic: &str) -> bool {
        self.window(topic).is_some()
    }

    fn index(&self, topic: &str) -> usize {
        (self.hasher.hash_one(topic) as usize) % self.shards.len()
    }

    /// The rings of `topic`'s shard, when retained events are kept here. Always taken after
    /// the topic's shard (same order everywhere: no deadlock).
    fn rings(&self, topic: &str) -> Option<MutexGuard<'_, Rings>> {
        match &self.retained.store {
            Store::Rings(rings) => Some(rings[self.index(topic)].lock().unwrap_or_else(|p| p.into_inner())),
            Store::Streams => None,
        }
    }

    fn shard(&self, topic: &str) -> MutexGuard<'_, Topics> {
        let i = self.index(topic);
        // A panic while a shard is locked cannot leave a topic half-changed in a way that matters
        // more than losing the node: keep serving.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self, change: Change) {
        // The receiver lives as long as the namespace; after shutdown nobody listens.
        let _ = self.changes.send(change);
    }

    /// Attaches a connection to `topic`. 503 when the topic is full or the node is draining.
    pub fn attach(&self, topic: &str, info: ConnInfo, sink: QueueSink) -> Result<oneshot::Receiver<()>, GatewayError> {
        self.attach_resume(topic, info, sink, None, 0).map(|(done, _)| done)
    }

    /// [`Hub::attach`] for a subscriber that resumes after `last_id`: also returns the frames to
    /// send before anything queued (the retained events after that id, or a `replay-gap` frame;
    /// nothing when the topic is not retained here). The attachment and the snapshot of the ring
    /// happen under the topic's lock, which every publish of the topic also takes, so each event
    /// is either in the replay or in the queue, never both and never neither.
    pub fn attach_resume(
        &self,
        topic: &str,
        info: ConnInfo,
        sink: QueueSink,
        last_id: Option<&str>,
        now: u64,
    ) -> Result<(oneshot::Receiver<()>, Vec<Bytes>), GatewayError> {
        if self.admission.closed.load(Ordering::Acquire) {
            return Err(GatewayError::ConnectionLimit("this node is shutting down".into()));
        }
        if self.admission.isolated.load(Ordering::Acquire) {
            return Err(GatewayError::Unavailable { what: "this node (cut off from the cluster's Redis)".into(), retry_after_s: 2 });
        }
        let (ack, done) = oneshot::channel();
        let mut topics = self.shard(topic);
        let state = topics.entry(topic.to_string()).or_insert_with(|| TopicState::new(topic, self.max_per_topic));
        let held = last_id.is_some() && self.resumes_from_stream(topic);
        let attached = if held { state.attach_resuming(info.clone(), sink) } else { state.attach(info.clone(), sink) };
        if let Err(e) = attached {
            if state.is_empty() {
                topics.remove(topic);
            }
            return Err(e);
        }
        let mut replay = Vec::new();
        if let (Some(last_id), Some(window), Some(mut rings)) = (last_id, self.window(topic), self.rings(topic)) {
            let ring = rings.entry(topic.to_string()).or_insert_with(|| ReplayBuffer::new(window));
            ring.trim(now);
            let (trimmed, last_seq) = (ring.trimmed(), ring.last_seq());
            let resumed = resumer(topic, last_id, &info).from_snapshot(ring.entries(), trimmed, last_seq);
            replay = self.replayed(resumed).0;
        }
        drop(topics);
        self.report(Change::Attached { topic: topic.to_string(), info, ack: Some(ack) });
        Ok((done, replay))
    }

    /// Ends the resume of a connection attached (held) by [`Hub::attach_resume`] on a topic
    /// retained in shared storage, once its attachment is recorded and `snapshot` was read
    /// (`None`: it could not be read; the client gets `replay-gap`, reason `expired`). Returns
    /// the frames to send before anything queued: the retained events after `last_id` (or the
    /// gap frame), then the live events held meanwhile that the replay did not already hold
    /// (core `deliver_live`). Later live copies of replayed events are skipped by the topic.
    pub fn finish_resume(&self, topic: &str, conn_id: &str, last_id: &str, snapshot: Option<Snapshot>) -> Vec<Bytes> {
        let mut topics = self.shard(topic);
        let _staged = Scope::enter();
        let Some(state) = topics.get_mut(topic) else { return Vec::new() };
        let Some(info) = state.get(conn_id).map(|c| c.info.clone()) else { return Vec::new() };
        let resumer = resumer(topic, last_id, &info);
        let resumed = match &snapshot {
            Some(snap) => resumer.from_snapshot(&snap.entries, snap.trimmed, snap.last_seq),
            None => resumer.unreadable(),
        };
        let (mut frames, floor) = self.replayed(resumed);
        frames.extend(state.finish_resume(conn_id, floor).into_iter().map(|f| f.bytes));
        frames
    }

    /// Counts a resume's replayed events; its frames and floor.
    fn replayed(&self, resumed: Resumed) -> (Vec<Bytes>, u64) {
        self.counters.replayed.fetch_add(resumed.replayed as u64, Ordering::Relaxed);
        (resumed.frames.into_iter().map(Bytes::from).collect(), resumed.floor)
    }

    /// Detaches a connection from `topic`; the topic goes with its last connection.
    pub fn detach(&self, topic: &str, id: &str) -> bool {
        let mut topics = self.shard(topic);
        let Some(state) = topics.get_mut(topic) else { return false };
        let found = state.detach(id).is_some();
        if found {
            self.report(Change::Detached { topic: topic.to_string(), id: id.to_string() });
        }
        if state.is_empty() {
            topics.remove(topic);
        }
        found
    }

    /// Whether this node holds a subscriber (not a tail) of `topic`.
    pub fn is_live(&self, topic: &str) -> bool {
        self.shard(topic).get(topic).is_some_and(|t| t.is_live())
    }

    /// Whether this node holds anything (subscribers or tails) of `topic`.
    pub fn holds(&self, topic: &str) -> bool {
        self.shard(topic).contains_key(topic)
    }

    /// Tells this node's tails of `topic` that an event was dropped.
    pub fn notify_dropped(&self, topic: &str, id: &str, ts: u64) {
        let mut topics = self.shard(topic);
        let _staged = Scope::enter();
        if let Some(state) = topics.get_mut(topic) {
            state.notify_dropped(id, ts);
        }
    }

    /// A single node's publish: the event is retained in the topic's ring (if the topic is
    /// retained), then handed to this node's connections of `ev.topic`, encoded once per format
    /// in use. `Dropped`: nobody subscribes here (the tails were told).
    pub fn publish(&self, ev: &Event) -> Outcome {
        let mut topics = self.shard(&ev.topic);
        // Declared after the lock, so it ends first: the writers get this publish's frames
        // before the topic's next publish can stage its own.
        let _staged = Scope::enter();
        if let (Some(window), Some(mut rings)) = (self.window(&ev.topic), self.rings(&ev.topic)) {
            rings.entry(ev.topic.clone()).or_insert_with(|| ReplayBuffer::new(window)).push(ev, clock::now_ms());
        }
        let Some(state) = topics.get_mut(&ev.topic) else { return Outcome::Dropped };
        let outcome = self.fan_out(state, ev, None);
        if state.is_empty() {
            topics.remove(&ev.topic);
        }
        outcome
    }

    /// A cluster's delivery of an event whose topic is live somewhere in the cluster (its
    /// retention, if any, is in shared storage, with per-topic sequence `seq`: resuming
    /// connections use it to avoid duplicates). Handed to this node's subscribers if it has
    /// any; if it holds only tails, they are told it was published (not dropped). `Dropped`
    /// means this node delivered it to nobody.
    pub fn deliver(&self, ev: &Event, seq: Option<u64>) -> Outcome {
        let mut topics = self.shard(&ev.topic);
        let _staged = Scope::enter();
        let Some(state) = topics.get_mut(&ev.topic) else { return Outcome::Dropped };
        if !state.is_live() {
            state.notify_published(ev);
            return Outcome::Dropped;
        }
        let outcome = self.fan_out(state, ev, seq);
        if state.is_empty() {
            topics.remove(&ev.topic);
        }
        outcome
    }

    /// Hands `ev` to a topic's connections, its frames stamped with the hand-over time (the
    /// start of the publish→write latency).
    fn fan_out(&self, state: &mut TopicState<QueueSink>, ev: &Event, seq: Option<u64>) -> Outcome {
        let at = metrics::mono_ns();
        let outcome = state.publish_framed(ev, seq, |text| Frame::published(text, at));
        if let Outcome::Delivered { removed, count } = &outcome {
            self.metrics.delivered(*count);
            self.removed(&ev.topic, removed);
        }
        outcome
    }

    fn removed(&self, topic: &str, removed: &[Removed]) {
        if removed.is_empty() {
            return;
        }
        let r = Removals::of(topic, removed);
        self.counters.evicted.fetch_add(r.evicted, Ordering::Relaxed);
        for line in &r.log {
            crate::log::raw(line);
        }
        for id in r.detached {
            self.report(Change::Detached { topic: topic.to_string(), id });
        }
    }

    /// The heartbeat: sends the keepalive comment on every topic, drops the connections that are
    /// gone, then reports every topic as it is now ([`Change::Snapshot`], then
    /// [`Change::SnapshotDone`]), in order with the other changes.
    pub fn heartbeat(&self) {
        let now = clock::now_ms();
        for (i, shard) in self.shards.iter().enumerate() {
            let mut topics = shard.lock().unwrap_or_else(|p| p.into_inner());
            let staged = Scope::enter();
            topics.retain(|topic, state| {
                let removed = state.keepalive();
                self.removed(topic, &removed);
                !state.is_empty()
            });
            drop(staged);
            for (topic, state) in topics.iter() {
                self.report(Change::Snapshot(snapshot(topic, state)));
            }
            // Rings age out even when nobody publishes; an emptied ring is forgotten.
            if let Store::Rings(rings) = &self.retained.store {
                let mut rings = rings[i].lock().unwrap_or_else(|p| p.into_inner());
                rings.retain(|_, r| {
                    r.trim(now);
                    !r.is_empty()
                });
            }
        }
        self.report(Change::SnapshotDone);
    }

    /// Stops accepting connections and asks every connection to close (they send their last
    /// frame and end; their guards detach them).
    pub fn close_all(&self, reason: CloseReason) {
        self.admission.closed.store(true, Ordering::Release);
        self.close_connections(reason);
    }

    /// Cut off from the cluster (`true`): every connection and tail is told to reconnect
    /// elsewhere and closed, and new ones are refused (503 `unavailable`) until this is called
    /// with `false`. Returns how many subscriptions were closed.
    pub fn set_isolated(&self, isolated: bool) -> usize {
        self.admission.isolated.store(isolated, Ordering::Release);
        if isolated {
            self.close_connections(CloseReason::Isolated)
        } else {
            0
        }
    }

    pub fn is_isolated(&self) -> bool {
        self.admission.isolated.load(Ordering::Acquire)
    }

    fn close_connections(&self, reason: CloseReason) -> usize {
        let mut n = 0;
        for shard in self.shards.iter() {
            let topics = shard.lock().unwrap_or_else(|p| p.into_inner());
            for state in topics.values() {
                for c in state.connections() {
                    c.sink.closer().close(reason);
                    n += 1;
                }
            }
        }
        n
    }

    pub fn stats(&self) -> HubStats {
        let mut s = HubStats {
            evicted: self.counters.evicted.load(Ordering::Relaxed),
            replayed: self.counters.replayed.load(Ordering::Relaxed),
            ..Default::default()
        };
        for shard in self.shards.iter() {
            let topics = shard.lock().unwrap_or_else(|p| p.into_inner());
            s.topics += topics.len();
            s.subscriptions += topics.values().map(|t| t.subscriber_count()).sum::<usize>();
        }
        if let Store::Rings(rings) = &self.retained.store {
            for rings in rings.iter() {
                let rings = rings.lock().unwrap_or_else(|p| p.into_inner());
                s.retained_topics += rings.len();
                s.retained_events += rings.values().map(|r| r.len()).sum::<usize>();
            }
        }
        s
    }
}

fn snapshot(topic: &str, state: &TopicState<QueueSink>) -> TopicSnapshot {
    TopicSnapshot { topic: topic.to_string(), conns: conn::summaries(state), tails: state.tail_count() }
}

/// A resume on `topic` after `last_id` for the connection `info`.
fn resumer<'a>(topic: &'a str, last_id: &'a str, info: &ConnInfo) -> Resumer<'a> {
    Resumer { topic, last_id, format: info.format, transport: info.transport }
}

/// Builds a [`ConnInfo`] for tests and for the gateway.
pub fn conn_info(id: &str, topics: &[String], format: Format, node: &str, now: u64) -> ConnInfo {
    let transport = if format == Format::Ws { sse_core::topic::Transport::Ws } else { sse_core::topic::Transport::Sse };
    ConnInfo { id: id.to_string(), topics: topics.to_vec(), transport, format, connected_at: now, node: node.to_string(), sub: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_stamps_the_queue_for_the_latency_measure_and_a_keepalive_does_not() {
        let (hub, _changes) = Hub::new(10);
        let (sink, mut rx, closer) = QueueSink::channel(8);
        drop(hub.attach("t", conn_info("c", &["t".into()], Format::Sse, "n", 1), sink).unwrap());
        hub.heartbeat();
        assert!(rx.try_recv().is_ok(), "the keepalive was queued");
        assert_eq!(closer.pending.take(), 0, "a keepalive is not measured");
        let before = metrics::mono_ns();
        hub.publish(&Event { topic: "t".into(), id: "e1".into(), event: None, data: "d".into(), ts: 1 });
        hub.publish(&Event { topic: "t".into(), id: "e2".into(), event: None, data: "d".into(), ts: 1 });
        let at = closer.pending.take();
        assert!(before <= at && at <= metrics::mono_ns(), "stamped when the first publish was handed over");
        assert_eq!((rx.try_recv().is_ok(), rx.try_recv().is_ok()), (true, true));
    }
}
