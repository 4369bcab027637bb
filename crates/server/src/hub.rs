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
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use sse_core::frame::{Event, Format};
use sse_core::replay::{self, ReplayBuffer, Retained, Retention};
use sse_core::registry::ConnSummary;
use sse_core::topic::{ConnInfo, Outcome, Removed, SendResult, TopicState};
use sse_core::GatewayError;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::sink::{CloseReason, QueueSink};

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
    closed: AtomicBool,
    /// Cut off from the cluster (no Redis for nearly a node TTL): nothing new is attached.
    isolated: AtomicBool,
    evicted: AtomicU64,
    replayed: AtomicU64,
    /// Which topics are retained (in rings here, or in Redis Streams when `streams`).
    retention: Retention,
    /// Whether retained events live elsewhere (native cluster: Redis Streams): then this hub
    /// keeps no ring, and a resuming connection is held until its snapshot is read.
    streams: bool,
    rings: Box<[Mutex<Rings>]>,
    /// This node's counters (`/metrics`, `/admin/api/stats`).
    pub metrics: Metrics,
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
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        let rings = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        let hub = Hub {
            shards,
            hasher: RandomState::new(),
            max_per_topic,
            changes,
            closed: AtomicBool::new(false),
            isolated: AtomicBool::new(false),
            evicted: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            retention: Retention::none(),
            streams: false,
            rings,
            metrics: Metrics::new(),
        };
        (hub, rx)
    }

    /// Keeps an in-memory replay ring for the topics `retention` names (single node).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Knows which topics are retained, but their events live in shared storage (native
    /// cluster: Redis Streams), not in rings here.
    pub fn with_stream_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self.streams = true;
        self
    }

    /// The retention window of `topic`, if it is retained.
    pub fn window(&self, topic: &str) -> Option<sse_core::replay::Window> {
        self.retention.window(topic)
    }

    /// Whether a connection resuming on `topic` needs its snapshot read from shared storage
    /// ([`Hub::finish_resume`]) after it is attached.
    pub fn resumes_from_stream(&self, topic: &str) -> bool {
        self.streams && self.retains(topic)
    }

    /// Whether `topic` is retained (here or in shared storage).
    pub fn retains(&self, topic: &str) -> bool {
        self.retention.window(topic).is_some()
    }

    fn index(&self, topic: &str) -> usize {
        (self.hasher.hash_one(topic) as usize) % self.shards.len()
    }

    /// Always taken after the topic's shard (same order everywhere: no deadlock).
    fn rings(&self, topic: &str) -> MutexGuard<'_, Rings> {
        self.rings[self.index(topic)].lock().unwrap_or_else(|p| p.into_inner())
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
    pub fn attach_resume(&self, topic: &str, info: ConnInfo, sink: QueueSink, last_id: Option<&str>, now: u64) -> Result<(oneshot::Receiver<()>, Vec<Bytes>), GatewayError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(GatewayError::ConnectionLimit("this node is shutting down".into()));
        }
        if self.isolated.load(Ordering::Acquire) {
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
        if let (Some(last_id), Some(window), false) = (last_id, self.retention.window(topic), self.streams) {
            let mut rings = self.rings(topic);
            let ring = rings.entry(topic.to_string()).or_insert_with(|| ReplayBuffer::new(window));
            let (frames, n) = ring.resume_frames(topic, last_id, info.format, now);
            self.replayed.fetch_add(n as u64, Ordering::Relaxed);
            replay = frames.into_iter().map(Bytes::from).collect();
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
        let Some(state) = topics.get_mut(topic) else { return Vec::new() };
        let Some(format) = state.get(conn_id).map(|c| c.info.format) else { return Vec::new() };
        let (mut frames, floor) = match &snapshot {
            Some(snap) => match replay::resume(&snap.entries, last_id, snap.trimmed) {
                replay::Resume::After(rest) => {
                    self.replayed.fetch_add(rest.len() as u64, Ordering::Relaxed);
                    (rest.iter().map(|r| Bytes::from(sse_core::frame::encode(&r.to_event(topic), format))).collect::<Vec<_>>(), snap.last_seq)
                }
                replay::Resume::Gap(reason) => (vec![Bytes::from(replay::encode_gap(topic, last_id, reason, format))], 0),
            },
            None => (vec![Bytes::from(replay::encode_gap(topic, last_id, replay::GapReason::Expired, format))], 0),
        };
        frames.extend(state.finish_resume(conn_id, floor));
        frames
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
        if let Some(state) = self.shard(topic).get_mut(topic) {
            state.notify_dropped(id, ts);
        }
    }

    /// Publishes to this node's connections of `ev.topic`: encoded once per format in use.
    pub fn publish(&self, ev: &Event) -> Outcome {
        self.publish_with(ev, false, None)
    }

    /// A publish whose topic is live somewhere in the cluster: delivered to this node's
    /// subscribers if it has any; if it holds only tails, they are told it was published
    /// (not dropped). `Dropped` means this node delivered it to nobody.
    pub fn publish_in_cluster(&self, ev: &Event) -> Outcome {
        self.publish_with(ev, true, None)
    }

    /// [`Hub::publish_in_cluster`] of an event stored in shared retention storage with per-topic
    /// sequence `seq` (resuming connections use it to avoid duplicates).
    pub fn publish_in_cluster_seq(&self, ev: &Event, seq: Option<u64>) -> Outcome {
        self.publish_with(ev, true, seq)
    }

    fn publish_with(&self, ev: &Event, live_elsewhere: bool, seq: Option<u64>) -> Outcome {
        let mut topics = self.shard(&ev.topic);
        if !live_elsewhere && !self.streams {
            if let Some(window) = self.retention.window(&ev.topic) {
                let mut rings = self.rings(&ev.topic);
                rings.entry(ev.topic.clone()).or_insert_with(|| ReplayBuffer::new(window)).push(ev, crate::clock::now_ms());
            }
        }
        let Some(state) = topics.get_mut(&ev.topic) else { return Outcome::Dropped };
        if live_elsewhere && !state.is_live() {
            state.notify_published(ev);
            return Outcome::Dropped;
        }
        let outcome = crate::metrics::with_publish_stamp(|| state.publish_seq(ev, seq));
        if let Outcome::Delivered { removed, count } = &outcome {
            self.metrics.delivered(*count);
            self.removed(&ev.topic, removed);
        }
        if state.is_empty() {
            topics.remove(&ev.topic);
        }
        outcome
    }

    fn removed(&self, topic: &str, removed: &[Removed]) {
        for r in removed {
            if r.reason == SendResult::Full {
                self.evicted.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic, connection = %r.id, "slow consumer evicted: its queue was full");
            }
            self.report(Change::Detached { topic: topic.to_string(), id: r.id.clone() });
        }
    }

    /// The heartbeat: sends the keepalive comment on every topic, drops the connections that are
    /// gone, then reports every topic as it is now ([`Change::Snapshot`], then
    /// [`Change::SnapshotDone`]), in order with the other changes.
    pub fn heartbeat(&self) {
        let now = crate::clock::now_ms();
        for (shard, rings) in self.shards.iter().zip(self.rings.iter()) {
            let mut topics = shard.lock().unwrap_or_else(|p| p.into_inner());
            topics.retain(|topic, state| {
                let removed = state.keepalive();
                self.removed(topic, &removed);
                !state.is_empty()
            });
            for (topic, state) in topics.iter() {
                self.report(Change::Snapshot(snapshot(topic, state)));
            }
            // Rings age out even when nobody publishes; an emptied ring is forgotten.
            let mut rings = rings.lock().unwrap_or_else(|p| p.into_inner());
            rings.retain(|_, r| {
                r.trim(now);
                !r.is_empty()
            });
        }
        self.report(Change::SnapshotDone);
    }

    /// Stops accepting connections and asks every connection to close (they send their last
    /// frame and end; their guards detach them).
    pub fn close_all(&self, reason: CloseReason) {
        self.closed.store(true, Ordering::Release);
        self.close_connections(reason);
    }

    /// Cut off from the cluster (`true`): every connection and tail is told to reconnect
    /// elsewhere and closed, and new ones are refused (503 `unavailable`) until this is called
    /// with `false`. Returns how many subscriptions were closed.
    pub fn set_isolated(&self, isolated: bool) -> usize {
        self.isolated.store(isolated, Ordering::Release);
        if isolated {
            self.close_connections(CloseReason::Isolated)
        } else {
            0
        }
    }

    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Acquire)
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
        let mut s = HubStats { evicted: self.evicted.load(Ordering::Relaxed), replayed: self.replayed.load(Ordering::Relaxed), ..Default::default() };
        for (shard, rings) in self.shards.iter().zip(self.rings.iter()) {
            let topics = shard.lock().unwrap_or_else(|p| p.into_inner());
            s.topics += topics.len();
            s.subscriptions += topics.values().map(|t| t.subscriber_count()).sum::<usize>();
            drop(topics);
            let rings = rings.lock().unwrap_or_else(|p| p.into_inner());
            s.retained_topics += rings.len();
            s.retained_events += rings.values().map(|r| r.len()).sum::<usize>();
        }
        s
    }
}

fn snapshot(topic: &str, state: &TopicState<QueueSink>) -> TopicSnapshot {
    let conns = state
        .subscribers()
        .map(|c| ConnSummary {
            id: c.info.id.clone(),
            transport: c.info.transport,
            connected_at: c.info.connected_at,
            node: c.info.node.clone(),
            events_sent: c.events_sent,
        })
        .collect();
    TopicSnapshot { topic: topic.to_string(), conns, tails: state.tail_count() }
}

/// Builds a [`ConnInfo`] for tests and for the gateway.
pub fn conn_info(id: &str, topics: &[String], format: Format, node: &str, now: u64) -> ConnInfo {
    let transport = if format == Format::Ws { sse_core::topic::Transport::Ws } else { sse_core::topic::Transport::Sse };
    ConnInfo { id: id.to_string(), topics: topics.to_vec(), transport, format, connected_at: now, node: node.to_string() }
}
