//! The gateway's state, shared by every request: the configuration, the namespace of topic
//! objects (and through it this node's hub), the open connections and the publish limiter. What
//! a request does with it lives here, transport aside: a publish through the core's
//! [`PublishPlan`], a subscriber's connection opened on its topics. `http/` and `listen` call
//! it; it knows nothing of HTTP.

use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::future::join_all;
use sse_core::frame::{Event, Format};
use sse_core::limits::KeyLimiter;
use sse_core::protocol::{PublishPlan, PublishReport, Step};
use sse_core::token::Grant;
use sse_core::topic::ConnInfo;
use sse_core::{routes, GatewayError};

use crate::config::ServerConfig;
use crate::hub::{self, Hub};
use crate::objects::Namespace;
use crate::sink::{CloseReason, QueueSink};
use crate::subscriber::{Connection, Guard, Live};
use crate::{clock, log};

/// How long a subscriber waits for its attachment to be recorded (Redis) before it is told it
/// is connected anyway; the heartbeat re-asserts it later.
const RECORD_WAIT: Duration = Duration::from_secs(3);

pub(crate) struct GatewayState {
    pub cfg: ServerConfig,
    pub ns: Arc<dyn Namespace>,
    pub hub: Arc<Hub>,
    live: Arc<Live>,
    /// Per-API-key publish buckets (this node's share of the limit).
    limiter: Mutex<KeyLimiter>,
}

impl GatewayState {
    /// The state over `ns` (whose hub is `hub`), with its heartbeat task started.
    pub fn start(cfg: ServerConfig, ns: Arc<dyn Namespace>, hub: Arc<Hub>) -> Arc<GatewayState> {
        let limiter = Mutex::new(KeyLimiter::new(cfg.core.publish_rate_per_key, cfg.core.publish_burst_per_key));
        let state = Arc::new(GatewayState { cfg, ns, hub, live: Arc::new(Live::default()), limiter });
        tokio::spawn(heartbeat(Arc::downgrade(&state)));
        state
    }

    /// One publish of event `id` to `topics` (validated, distinct), through the core's plan:
    /// every topic's owner is probed; `data` (the event's body) is read only if a topic takes
    /// the event, then delivered to those topics. Writes the plan's drop lines and counts the
    /// publish. Fails, with nothing delivered, when an owner could not be reached or the body
    /// could not be read.
    pub async fn publish(
        &self,
        topics: Vec<String>,
        id: &str,
        event: Option<&str>,
        data: impl Future<Output = Result<String, GatewayError>>,
    ) -> Result<PublishReport, GatewayError> {
        let mut plan = PublishPlan::new(id, topics);
        let probes = join_all(plan.topics().iter().map(|t| self.ns.get(t).probe(id))).await;
        if plan.probed(probes.iter().map(|p| p.probed()))? == Step::ReadBody {
            let data = data.await?;
            let ts = clock::now_ms();
            let deliveries = plan.targets().map(|(i, topic)| {
                let ev = Event { topic: topic.to_string(), id: id.to_string(), event: event.map(str::to_string), data: data.clone(), ts };
                let probe = &probes[i];
                async move { (i, self.ns.get(&ev.topic).publish(probe, &ev).await) }
            });
            for (i, result) in join_all(deliveries).await {
                plan.settle(i, result);
            }
        }
        let report = plan.finish();
        for line in &report.log {
            log::raw(line);
        }
        self.hub.metrics.published(report.results.len(), report.dropped);
        Ok(report)
    }

    /// Attaches a new connection to `topics` (a tail when `format` is `Tail`), resuming after
    /// `last_id` (a subscriber's `Last-Event-ID`) if given. `grant` is what the subscriber's
    /// token allowed, when it needed one: its `sub` is listed with the connection (admin API).
    pub async fn open(
        self: &Arc<Self>,
        topics: &[String],
        format: Format,
        last_id: Option<&str>,
        grant: Option<&Grant>,
    ) -> Result<Connection, GatewayError> {
        self.live.open(self.cfg.max_connections_per_node)?;
        let now = clock::now_ms();
        let id = routes::connection_id(now, fastrand::u32(..));
        let (sink, rx, closer) = QueueSink::channel(self.cfg.core.queue_capacity);
        let info = ConnInfo { sub: grant.and_then(|g| g.sub.clone()), ..hub::conn_info(&id, topics, format, &self.cfg.node_id, now) };
        self.hub.metrics.conn_opened(format);
        let mut guard = Guard {
            ns: self.ns.clone(),
            live: self.live.clone(),
            id: id.clone(),
            topics: Vec::with_capacity(topics.len()),
            format,
            expiry: None,
        };
        let mut recorded = Vec::with_capacity(topics.len());
        let mut replay = Vec::new();
        for t in topics {
            // On an error (503) the guard detaches what was attached so far.
            let (done, frames) = self.ns.get(t).attach(info.clone(), sink.clone(), last_id)?;
            recorded.push(done);
            replay.extend(frames);
            guard.topics.push(t.clone());
        }
        let _ = tokio::time::timeout(RECORD_WAIT, join_all(recorded)).await;
        // Retained topics whose events live in Redis (cluster): now that a publish at any node
        // finds this connection, read what it missed (its live events are held meanwhile).
        if let Some(last_id) = last_id {
            let remote = topics.iter().filter(|t| self.hub.resumes_from_stream(t));
            for frames in join_all(remote.map(|t| self.ns.resume(t, &id, last_id))).await {
                replay.extend(frames);
            }
        }
        Ok(Connection { id, rx, closer, replay, guard })
    }

    /// Takes a publish token for API key `key_index` (no-op when rate limiting is off).
    pub fn take_publish_token(&self, key_index: Option<usize>) -> Result<(), GatewayError> {
        let Some(i) = key_index else { return Ok(()) };
        let mut l = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        if !l.enabled() {
            return Ok(());
        }
        l.take(i, clock::now_ms()).map_err(|retry_after_ms| GatewayError::RateLimited { retry_after_ms })
    }

    /// This node's counts.
    pub fn stats(&self) -> sse_core::metrics::Stats {
        let hub = self.hub.stats();
        self.hub.metrics.stats(&self.cfg.node_id, hub.topics, hub.evicted, hub.replayed)
    }

    /// Tells every subscriber to reconnect elsewhere and closes it, waits (at most
    /// `SHUTDOWN_GRACE_MS`) for the connections to end, then leaves the cluster.
    pub async fn shutdown(&self) {
        self.hub.close_all(CloseReason::Shutdown);
        let _ = tokio::time::timeout(Duration::from_millis(self.cfg.shutdown_grace_ms), self.live.all_closed()).await;
        self.ns.shutdown().await;
        tracing::info!(node = %self.cfg.node_id, "stopped");
    }
}

/// Every heartbeat: keepalive comments, gone connections out, a snapshot to the namespace.
async fn heartbeat(state: Weak<GatewayState>) {
    let every = match state.upgrade() {
        Some(s) => Duration::from_millis(s.cfg.core.heartbeat_ms),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        state.hub.heartbeat();
    }
}
