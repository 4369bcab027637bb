//! [`Gateway`]: the native runtime as a library. Build it from a configuration, mount its
//! [`Gateway::router`] in an axum app (or let [`Gateway::serve`] run it), publish in-process with
//! [`Gateway::publish`].

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::routing::any;
use axum::Router;
use futures_util::future::join_all;
use sse_core::frame::Event;
use sse_core::limits::KeyLimiter;
use sse_core::request::{self, TopicResult};
use sse_core::{names, GatewayError};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::ServerConfig;
use crate::hub::{Hub, HubStats};
use crate::memory::MemoryNamespace;
use crate::objects::{Namespace, Probe};
use crate::sink::CloseReason;
use crate::{clock, http, redis};

#[derive(Debug, Error)]
pub enum StartError {
    #[error("redis: {0}")]
    Redis(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The gateway: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub cfg: ServerConfig,
    pub ns: Arc<dyn Namespace>,
    pub hub: Arc<Hub>,
    live: AtomicUsize,
    all_closed: Notify,
    /// Per-API-key publish buckets (this node's share of the limit).
    pub limiter: std::sync::Mutex<KeyLimiter>,
}

impl Gateway {
    /// Builds the gateway: single node in memory, or a cluster node when the configuration has
    /// a `REDIS_URL` (it connects to Redis and registers the node). Must run inside a tokio
    /// runtime: it starts the heartbeat task.
    pub async fn new(cfg: ServerConfig) -> Result<Gateway, StartError> {
        let (hub, changes) = Hub::new(cfg.core.max_connections_per_topic);
        // Single node: retained topics keep an in-memory ring in the hub. A cluster keeps them in
        // Redis Streams (redis/retain.rs; docs/replay.md).
        let retention = cfg.core.retention.clone();
        let hub = Arc::new(if cfg.cluster.is_none() { hub.with_retention(retention) } else { hub.with_stream_retention(retention) });
        let ns: Arc<dyn Namespace> = match &cfg.cluster {
            None => Arc::new(MemoryNamespace::new(hub.clone(), changes, cfg.core.heartbeat_ms)),
            Some(cluster) => Arc::new(redis::RedisNamespace::connect(hub.clone(), changes, &cfg, cluster).await?),
        };
        let limiter = std::sync::Mutex::new(KeyLimiter::new(cfg.core.publish_rate_per_key, cfg.core.publish_burst_per_key));
        let inner = Arc::new(Inner { cfg, ns, hub, live: AtomicUsize::new(0), all_closed: Notify::new(), limiter });
        tokio::spawn(heartbeat(Arc::downgrade(&inner)));
        Ok(Gateway { inner })
    }

    pub fn config(&self) -> &ServerConfig {
        &self.inner.cfg
    }

    /// The gateway's routes (`/sse`, `/ws`, `/publish`, `/healthz`, `/admin`, `/admin/*`) to
    /// merge into an application's router. It has no fallback, so it merges with one that has.
    /// `/metrics` is not among them (an application may have its own): serve
    /// [`Gateway::metrics`]`().prometheus()` there, or use [`Gateway::app`], which has it.
    pub fn router(&self) -> Router {
        self.routes().with_state(self.inner.clone())
    }

    fn routes(&self) -> Router<Arc<Inner>> {
        let h = any(http::dispatch);
        Router::new()
            .route("/sse", h.clone())
            .route("/ws", h.clone())
            .route("/publish", h.clone())
            .route("/healthz", h.clone())
            .route("/admin", h.clone())
            .route("/admin/{*rest}", h.clone())
            .route("/_cluster/{*rest}", h)
    }

    /// [`Gateway::router`] plus the gateway's JSON 404 and CORS preflight for every other path:
    /// what the `sse-gateway` binary serves.
    pub fn app(&self) -> Router {
        self.routes().fallback(http::dispatch).with_state(self.inner.clone())
    }

    /// Publishes one event in-process, exactly as `POST /publish` would (same validation, same
    /// per-topic outcome, same drop rule), without an API key.
    pub async fn publish(&self, topics: &[&str], id: &str, event: Option<&str>, data: &str) -> Result<Vec<(String, TopicResult)>, GatewayError> {
        let cfg = &self.inner.cfg.core;
        let topics = names::parse_topic_lists(topics.iter().copied(), cfg.max_topics)?;
        names::check_id(id)?;
        if let Some(e) = event {
            names::check_event(e)?;
        }
        request::check_body_len(data.len() as u64, cfg.max_body_bytes)?;
        let probes = self.inner.probe_all(&topics, id).await;
        crate::objects::unavailable(&probes)?;
        let ev = EventParts { id, event, ts: clock::now_ms() };
        let results = self.inner.deliver_all(&topics, &probes, &ev, data).await;
        self.inner.count_publish(&results);
        Ok(results)
    }

    /// Counts of this node's hub.
    pub fn stats(&self) -> HubStats {
        self.inner.hub.stats()
    }

    /// This node's counts, as `GET /metrics` and `GET /admin/api/stats` report them.
    pub fn metrics(&self) -> sse_core::metrics::Stats {
        self.inner.stats()
    }

    /// Serves [`Gateway::app`] on `listener` until `signal` completes, then shuts down gracefully
    /// (see [`Gateway::shutdown`]). SSE subscribers whose connection starts with their
    /// `GET /sse` are held on the bare socket, without hyper's per-connection buffers
    /// (`crate::listen`); everything else is served by hyper.
    pub async fn serve(self, listener: TcpListener, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let grace = Duration::from_millis(self.inner.cfg.shutdown_grace_ms);
        crate::listen::serve(self.inner.clone(), self.app(), listener, signal, grace).await?;
        self.shutdown().await;
        Ok(())
    }

    /// Tells every subscriber to reconnect elsewhere and closes it, waits (at most
    /// `SHUTDOWN_GRACE_MS`) for the connections to end, then leaves the cluster.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.hub.close_all(CloseReason::Shutdown);
        let wait = async {
            while inner.live.load(Ordering::Acquire) > 0 {
                let notified = inner.all_closed.notified();
                if inner.live.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(inner.cfg.shutdown_grace_ms), wait).await;
        inner.ns.shutdown().await;
        tracing::info!(node = %inner.cfg.node_id, "stopped");
    }
}

/// The parts of an event shared by every topic of one publish.
pub(crate) struct EventParts<'a> {
    pub id: &'a str,
    pub event: Option<&'a str>,
    pub ts: u64,
}

impl Inner {
    /// Asks every topic whether anyone subscribes (the dead ones log the drop).
    pub async fn probe_all(&self, topics: &[String], id: &str) -> Vec<Probe> {
        join_all(topics.iter().map(|t| async move { self.ns.get(t).probe(id).await })).await
    }

    /// Delivers `data` to the live topics; dead ones stay dropped.
    pub async fn deliver_all(&self, topics: &[String], probes: &[Probe], ev: &EventParts<'_>, data: &str) -> Vec<(String, TopicResult)> {
        let calls = topics.iter().zip(probes).map(|(topic, probe)| async move {
            if !probe.is_live() {
                return (topic.clone(), TopicResult::Dropped);
            }
            let event = Event { topic: topic.clone(), id: ev.id.to_string(), event: ev.event.map(str::to_string), data: data.to_string(), ts: ev.ts };
            (topic.clone(), self.ns.get(topic).publish(probe, &event).await)
        });
        join_all(calls).await
    }

    /// Counts an accepted publish (per topic, and the topics dropped).
    pub fn count_publish(&self, results: &[(String, TopicResult)]) {
        let dropped = results.iter().filter(|(_, r)| *r == TopicResult::Dropped).count();
        self.hub.metrics.published(results.len(), dropped);
    }

    /// This node's counts.
    pub fn stats(&self) -> sse_core::metrics::Stats {
        let hub = self.hub.stats();
        self.hub.metrics.stats(&self.cfg.node_id, hub.topics, hub.evicted, hub.replayed)
    }

    /// Counts a new connection; 503 when the node already holds `MAX_CONNECTIONS_PER_NODE`.
    pub fn conn_opened(&self) -> Result<(), GatewayError> {
        let before = self.live.fetch_add(1, Ordering::AcqRel);
        let max = self.cfg.max_connections_per_node;
        if max > 0 && before >= max {
            self.conn_closed();
            return Err(GatewayError::ConnectionLimit(format!("this node already has {max} connections")));
        }
        Ok(())
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

    pub fn conn_closed(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_closed.notify_waiters();
        }
    }
}

/// Every heartbeat: keepalive comments, gone connections out, a snapshot to the namespace.
async fn heartbeat(inner: Weak<Inner>) {
    let every = match inner.upgrade() {
        Some(i) => Duration::from_millis(i.cfg.core.heartbeat_ms),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.hub.heartbeat();
    }
}
