//! The Redis adapter: the cluster's stand-in for the Durable Object API. Each node keeps its
//! own connections in its hub; Redis records who is alive ([`node`]), which nodes hold each
//! topic ([`placement`]), and the connection records behind the admin listings ([`listing`]).
//! Every node keeps where the others hold topics in memory ([`cache`]), kept current by their
//! notices and by Redis, so a publish at any node is routed without asking Redis, and handed
//! to exactly the nodes that hold the topic ([`forward`], batched per node); with nobody
//! anywhere it is dropped unread. One Redis or a Redis Cluster ([`conn`]).

mod cache;
mod conn;
mod forward;
mod keys;
mod listing;
mod node;
mod placement;
mod retain;
mod scripts;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sse_core::frame::Event;
use sse_core::protocol::{drop_rule, DroppedNotice, TopicResult};
use sse_core::registry::{ConnectionView, Page, TopicView};
use sse_core::request::ListQuery;
use sse_core::GatewayError;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use cache::Holder;
pub use forward::INTERNAL_MAX_BODY;
pub use keys::Keys;
pub use node::Identity;

use crate::clock;
use crate::config::{ClusterConfig, ServerConfig};
use crate::hub::{Change, Hub};
use crate::objects::{delivered, BoxFuture, InternalEndpoint, Namespace, Peer, Probe};
use cache::Placement;
use conn::Conn;
use node::Node;
use placement::{Control, Writer};

#[cfg(test)]
#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

/// Why this node could not join the cluster (Redis unreachable or refusing).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct JoinError(String);

/// How long a publish waits for Redis when it needs it (a retained topic's stream; where a topic
/// lives, on a node that has just started). Past it (Redis down, paused, or unreachable) the
/// publish is answered 503 `unavailable` with `retry-after` rather than stalling; this node's
/// subscribers stay connected and the node heals by itself when Redis answers again (the
/// liveness task re-registers it, the writer re-asserts its placement).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a resume waits for a retained topic's stream; past it the client gets `replay-gap`
/// (`expired`) and live events.
const RESUME_TIMEOUT: Duration = Duration::from_secs(2);

/// A node of a cluster whose shared state is in Redis.
pub struct RedisNamespace {
    hub: Arc<Hub>,
    conn: Conn,
    node: Node,
    placement: Arc<Placement>,
    sync: JoinHandle<()>,
    forwarder: forward::Forwarder,
    endpoint: forward::Endpoint,
    control: mpsc::UnboundedSender<Control>,
    liveness: Mutex<Option<JoinHandle<()>>>,
    /// When the last "redis unreachable" warning of a probe was logged (at most one a second).
    last_probe_warning: AtomicU64,
}

impl RedisNamespace {
    /// Connects (retrying for a while: Redis may start after the node), registers this node,
    /// and starts the placement writer and the liveness task.
    pub async fn connect(
        hub: Arc<Hub>,
        changes: mpsc::UnboundedReceiver<Change>,
        cfg: &ServerConfig,
        cluster: &ClusterConfig,
    ) -> Result<Self, JoinError> {
        let timeout = Duration::from_millis(cluster.node_ttl_ms.min(5_000));
        let mut last = String::new();
        let mut conn = None;
        for _ in 0..30 {
            match Conn::open(cluster, timeout).await {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => {
                    last = e.to_string();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let what = if cluster.redis_cluster_urls.is_empty() { cluster.redis_url.clone() } else { cluster.redis_cluster_urls.join(",") };
        let mut conn = conn.ok_or_else(|| JoinError(format!("cannot connect to {what}: {last}")))?;
        let node = Node {
            identity: Identity { id: cfg.node_id.clone(), addr: cfg.advertise_addr.clone(), started_at: clock::now_ms() },
            keys: Keys::new(&cluster.prefix),
            ttl_ms: cluster.node_ttl_ms,
        };
        node.register(&mut conn).await.map_err(|e| JoinError(format!("registering node {}: {e}", cfg.node_id)))?;
        let placement = Placement::new(&cfg.node_id, node.keys.clone(), cluster.node_ttl_ms);
        // The first view of the other nodes, so notices reach them from the start.
        placement.sync(&conn).await;
        let sync = tokio::spawn(placement.clone().run(conn.clone()));
        let forwarder = forward::Forwarder::new(&cluster.secret, cluster.forward_timeout_ms, cfg.core.max_body_bytes);
        let (control, control_rx) = mpsc::unbounded_channel();
        let writer = Writer::new(conn.clone(), node.keys.clone(), node.identity.clone(), placement.clone(), forwarder.clone());
        tokio::spawn(writer.run(changes, control_rx));
        let liveness = tokio::spawn(liveness(
            conn.clone(),
            node.clone(),
            hub.clone(),
            control.clone(),
            Duration::from_millis(cluster.node_refresh_ms),
        ));
        tracing::info!(node = %cfg.node_id, addr = %cfg.advertise_addr, ttl_ms = cluster.node_ttl_ms, redis_cluster = conn.is_cluster(), "joined the cluster");
        Ok(Self {
            endpoint: forward::Endpoint { hub: hub.clone(), placement: placement.clone(), secret: cluster.secret.clone() },
            hub,
            conn,
            node,
            placement,
            sync,
            forwarder,
            control,
            liveness: Mutex::new(Some(liveness)),
            last_probe_warning: AtomicU64::new(0),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node.identity.id
    }

    /// The other live nodes holding connections of `topic`: from memory, or from Redis just
    /// after this node started ([`cache`]).
    pub async fn holders(&self, topic: &str) -> redis::RedisResult<Vec<Holder>> {
        if self.placement.is_warm() {
            return Ok(self.placement.holders(topic));
        }
        self.placement.holders_from_redis(&self.conn, topic).await
    }

    /// The live nodes as Redis has them now (for the listings: a node that has just joined is
    /// listed before this node's placement sync has seen it).
    async fn live_nodes(&self) -> Result<Vec<String>, GatewayError> {
        let seen = node::seen(&self.conn, &self.node.keys).await.map_err(listing::unavailable)?;
        Ok(seen.into_iter().filter(|s| s.identity.is_some()).map(|s| s.id).collect())
    }
}

impl RedisNamespace {
    /// A publish to a retained topic: stored in its stream first (so a subscriber that resumes
    /// from now on finds it there, or is found by the holder lookup that follows), then handed
    /// to the nodes that hold the topic, with its sequence.
    async fn deliver_retained(&self, window: sse_core::replay::Window, local: bool, peers: &[Peer], ev: &Event) -> TopicResult {
        let stored = tokio::time::timeout(PROBE_TIMEOUT, retain::append(&mut self.conn.clone(), &self.node.keys, window, ev)).await;
        let (seq, holders) = match stored {
            Ok(Ok(seq)) => {
                let holders = match tokio::time::timeout(PROBE_TIMEOUT, self.holders(&ev.topic)).await {
                    Ok(Ok(h)) => (self.hub.holds(&ev.topic), h.into_iter().map(|h| h.peer).collect()),
                    _ => (local, peers.to_vec()),
                };
                (Some(seq), holders)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, topic = %ev.topic, id = %ev.id, "retaining an event failed: delivered live only, not retained");
                (None, (local, peers.to_vec()))
            }
            Err(_) => {
                tracing::warn!(topic = %ev.topic, id = %ev.id, "redis did not store the event in time: delivered live only, not retained");
                (None, (local, peers.to_vec()))
            }
        };
        let (local, peers) = holders;
        let here = if local { TopicResult::of_delivery(delivered(&self.hub.deliver(ev, seq)), false) } else { TopicResult::Dropped };
        let result = here.merge(self.forwarder.deliver_all(&peers, ev, seq).await);
        if seq.is_some() {
            result.retained()
        } else {
            result
        }
    }
}

#[cfg(test)]
impl RedisNamespace {
    /// Stops refreshing the identity, as if the process had died.
    fn stop_liveness_for_test(&self) {
        if let Some(task) = self.liveness.lock().unwrap().take() {
            task.abort();
        }
        self.sync.abort();
    }
}

/// Keeps this node's identity alive; re-registers and has the writer rewrite everything when
/// it was lost; purges the nodes that died.
///
/// A node that cannot refresh its identity is still routed to until the identity expires in
/// Redis; after that, events published at other nodes no longer reach its subscribers. So just
/// before that moment (`ttl - margin` after the last refresh that succeeded was sent) the node
/// isolates itself: every subscriber gets `event: reconnect` and is closed (so it reconnects
/// through the load balancer to a node that is routed to, and resumes by `Last-Event-ID`), and
/// new subscriptions get 503 until Redis answers again. Nothing is lost silently.
async fn liveness(mut conn: Conn, node: Node, hub: Arc<Hub>, control: mpsc::UnboundedSender<Control>, every: Duration) {
    let refreshed = Arc::new(Refreshed::new());
    let watchdog = tokio::spawn(watchdog(hub.clone(), node.clone(), refreshed.clone(), every));
    // The watchdog ends with this task (node shutdown aborts it).
    let _watchdog = AbortOnDrop(watchdog);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let sent = Instant::now();
        match tokio::time::timeout(every, node.refresh(&mut conn)).await {
            Ok(Ok(kept)) => {
                refreshed.set(sent);
                if !kept {
                    tracing::warn!(node = %node.identity.id, "this node's identity was gone from redis (expired, or redis restarted): registering again");
                    let _ = control.send(Control::Rewrite);
                }
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(error = %e, "redis unreachable: cannot refresh this node's identity");
                }
                failing = true;
                continue;
            }
            Err(_) => {
                if !failing {
                    tracing::warn!("redis did not answer in time: cannot refresh this node's identity");
                }
                failing = true;
                continue;
            }
        }
        if failing {
            tracing::info!("redis reachable again");
            failing = false;
            let _ = control.send(Control::Rewrite);
        }
        if hub.is_isolated() {
            hub.set_isolated(false);
            tracing::info!(node = %node.identity.id, "redis answers again: accepting subscriptions");
        }
        match tokio::time::timeout(every, node.purge_dead(&mut conn)).await {
            Ok(Ok(dead)) if !dead.is_empty() => tracing::info!(nodes = ?dead, "purged nodes whose identity expired"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "purging dead nodes failed"),
            Err(_) => tracing::debug!("purging dead nodes timed out"),
        }
    }
}

/// When the last identity refresh that succeeded was sent (ms after `base`).
struct Refreshed {
    base: Instant,
    ms: AtomicU64,
}

impl Refreshed {
    fn new() -> Self {
        Refreshed { base: Instant::now(), ms: AtomicU64::new(0) }
    }

    fn set(&self, at: Instant) {
        self.ms.fetch_max(at.saturating_duration_since(self.base).as_millis() as u64, Ordering::AcqRel);
    }

    fn get(&self) -> Instant {
        self.base + Duration::from_millis(self.ms.load(Ordering::Acquire))
    }
}

/// Isolates the node ([`liveness`]) once `ttl - margin` passed since the last refresh that
/// succeeded was sent: the identity lives at least `ttl` from then. Runs apart from the
/// refreshes, so a Redis call that hangs cannot delay it.
async fn watchdog(hub: Arc<Hub>, node: Node, refreshed: Arc<Refreshed>, every: Duration) {
    let ttl = Duration::from_millis(node.ttl_ms);
    let margin = every.min(Duration::from_secs(1));
    loop {
        let at = refreshed.get();
        let deadline = at + ttl.saturating_sub(margin);
        if Instant::now() < deadline {
            tokio::time::sleep_until(deadline).await;
            continue;
        }
        if !hub.is_isolated() && refreshed.get() == at {
            isolate(&hub, &node, at);
        }
        // Until a refresh succeeds again (the refresh loop then lifts the isolation).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// See [`liveness`]: the cluster is about to stop routing to this node.
fn isolate(hub: &Hub, node: &Node, refreshed_at: Instant) {
    let closed = hub.set_isolated(true);
    tracing::warn!(
        node = %node.identity.id,
        since_ms = refreshed_at.elapsed().as_millis() as u64,
        ttl_ms = node.ttl_ms,
        subscriptions = closed,
        "cut off from redis for nearly NODE_TTL_MS: other nodes stop routing here, so every subscriber is told to reconnect elsewhere (event: reconnect, reason cluster_unreachable) and new subscriptions get 503 until redis answers"
    );
}

impl Namespace for RedisNamespace {
    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn probe<'a>(&'a self, topic: &'a str, id: &'a str) -> BoxFuture<'a, Probe> {
        Box::pin(async move {
            let holders = if !self.placement.available() {
                Err(redis::RedisError::from((redis::ErrorKind::IoError, "redis has not answered this node's placement sync")))
            } else if self.placement.is_warm() {
                // From memory: nothing to wait for.
                Ok(self.placement.holders(topic))
            } else {
                tokio::time::timeout(PROBE_TIMEOUT, self.placement.holders_from_redis(&self.conn, topic))
                    .await
                    .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::IoError, "probe timed out"))))
            };
            let peers = match holders {
                Ok(h) => h,
                Err(e) => {
                    // Without Redis, subscribers that join elsewhere cannot be recorded: refuse
                    // (503, retry-after) rather than deliver to a part of them.
                    let now = clock::now_ms();
                    if now.saturating_sub(self.last_probe_warning.swap(now, Ordering::Relaxed)) >= 1_000 {
                        tracing::warn!(error = %e, topic, "redis unreachable: publishes are answered 503 unavailable until it answers again");
                    }
                    return Probe::Unavailable;
                }
            };
            // A retained topic takes every event: `deliver` stores it, then looks up the holders
            // again (this answer may be stale by then).
            let subscribed = peers.iter().any(|h| h.peer.subscribers > 0) || self.hub.is_live(topic);
            if !drop_rule::takes(subscribed, self.hub.retains(topic)) {
                let ts = clock::now_ms();
                self.hub.notify_dropped(topic, id, ts);
                for h in peers.into_iter().filter(|h| h.tails) {
                    let fwd = self.forwarder.clone();
                    let notice = DroppedNotice { topic: topic.to_string(), id: id.to_string(), ts };
                    tokio::spawn(async move { fwd.dropped(&h.peer, &notice).await });
                }
                return Probe::Dropped;
            }
            Probe::Live { local: self.hub.holds(topic), peers: peers.into_iter().map(|h| h.peer).collect() }
        })
    }

    fn deliver<'a>(&'a self, probe: &'a Probe, ev: &'a Event) -> BoxFuture<'a, TopicResult> {
        Box::pin(async move {
            let Probe::Live { local, peers } = probe else { return TopicResult::Dropped };
            if let Some(window) = self.hub.window(&ev.topic) {
                return self.deliver_retained(window, *local, peers, ev).await;
            }
            let here = if *local { TopicResult::of_delivery(delivered(&self.hub.deliver(ev, None)), false) } else { TopicResult::Dropped };
            here.merge(self.forwarder.deliver_all(peers, ev, None).await)
        })
    }

    fn resume<'a>(&'a self, topic: &'a str, conn_id: &'a str, last_id: &'a str) -> BoxFuture<'a, Vec<bytes::Bytes>> {
        Box::pin(async move {
            let Some(window) = self.hub.window(topic) else { return Vec::new() };
            let read = tokio::time::timeout(RESUME_TIMEOUT, retain::snapshot(&mut self.conn.clone(), &self.node.keys, topic, window)).await;
            let snapshot = match read {
                Ok(Ok(s)) => Some(s),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, topic, "reading the retained events failed: the subscriber gets replay-gap (expired)");
                    None
                }
                Err(_) => {
                    tracing::warn!(topic, "redis did not answer the resume in time: the subscriber gets replay-gap (expired)");
                    None
                }
            };
            self.hub.finish_resume(topic, conn_id, last_id, snapshot)
        })
    }

    fn topics(&self, q: ListQuery) -> BoxFuture<'_, Result<Page<TopicView>, GatewayError>> {
        Box::pin(async move { listing::topics(&self.conn, &self.node.keys, &self.live_nodes().await?, &q).await })
    }

    fn connections(&self, q: ListQuery) -> BoxFuture<'_, Result<Page<ConnectionView>, GatewayError>> {
        Box::pin(async move { listing::connections(&self.conn, &self.node.keys, &self.live_nodes().await?, &q).await })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(task) = self.liveness.lock().unwrap_or_else(|p| p.into_inner()).take() {
                task.abort();
            }
            self.sync.abort();
            let (done, stopped) = oneshot::channel();
            if self.control.send(Control::Stop(done)).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(2), stopped).await;
            }
            match self.node.deregister(&mut self.conn.clone()).await {
                Ok(()) => tracing::info!(node = %self.node_id(), "left the cluster"),
                Err(e) => tracing::warn!(error = %e, "could not deregister from redis; the identity will expire by itself"),
            }
        })
    }

    fn internal(&self) -> Option<&dyn InternalEndpoint> {
        Some(&self.endpoint)
    }
}
