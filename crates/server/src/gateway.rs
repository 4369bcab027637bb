//! [`Gateway`]: the native runtime as a library. Build it from a configuration, mount its
//! [`Gateway::router`] in an axum app (or let [`Gateway::serve`] run it), publish in-process with
//! [`Gateway::publish`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::any;
use axum::Router;
use sse_core::protocol::TopicResult;
use sse_core::{names, request, GatewayError};
use thiserror::Error;
use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::hub::{Hub, HubStats};
use crate::memory::MemoryNamespace;
use crate::objects::Namespace;
use crate::state::GatewayState;
use crate::{http, listen, redis};

#[derive(Debug, Error)]
pub enum StartError {
    #[error("redis: {0}")]
    Redis(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<redis::JoinError> for StartError {
    fn from(e: redis::JoinError) -> Self {
        StartError::Redis(e.to_string())
    }
}

/// The gateway: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Gateway {
    state: Arc<GatewayState>,
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
            None => Arc::new(MemoryNamespace::new(hub.clone(), changes, cfg.core.registry_lease_ms())),
            Some(cluster) => Arc::new(redis::RedisNamespace::connect(hub.clone(), changes, &cfg, cluster).await?),
        };
        Ok(Gateway { state: GatewayState::start(cfg, ns, hub) })
    }

    pub fn config(&self) -> &ServerConfig {
        &self.state.cfg
    }

    /// The gateway's routes (`/sse`, `/ws`, `/publish`, `/healthz`, `/admin`, `/admin/*`) to
    /// merge into an application's router. It has no fallback, so it merges with one that has.
    /// `/metrics` is not among them (an application may have its own): serve
    /// [`Gateway::metrics`]`().prometheus()` there, or use [`Gateway::app`], which has it.
    pub fn router(&self) -> Router {
        self.routes().with_state(self.state.clone())
    }

    fn routes(&self) -> Router<Arc<GatewayState>> {
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
        self.routes().fallback(http::dispatch).with_state(self.state.clone())
    }

    /// Publishes one event in-process, exactly as `POST /publish` would (same validation, same
    /// per-topic outcome, same drop rule), without an API key.
    pub async fn publish(
        &self,
        topics: &[&str],
        id: &str,
        event: Option<&str>,
        data: &str,
    ) -> Result<Vec<(String, TopicResult)>, GatewayError> {
        let cfg = &self.state.cfg.core;
        let topics = names::parse_topic_lists(topics.iter().copied(), cfg.max_topics)?;
        names::check_id(id)?;
        if let Some(e) = event {
            names::check_event(e)?;
        }
        request::check_body_len(data.len() as u64, cfg.max_body_bytes)?;
        let report = self.state.publish(topics, id, event, async { Ok(data.to_string()) }).await?;
        Ok(report.results)
    }

    /// Counts of this node's hub.
    pub fn stats(&self) -> HubStats {
        self.state.hub.stats()
    }

    /// This node's counts, as `GET /metrics` and `GET /admin/api/stats` report them.
    pub fn metrics(&self) -> sse_core::metrics::Stats {
        self.state.stats()
    }

    /// Serves [`Gateway::app`] on `listener` until `signal` completes, then shuts down gracefully
    /// (see [`Gateway::shutdown`]). SSE subscribers whose connection starts with their
    /// `GET /sse` are held on the bare socket, without hyper's per-connection buffers
    /// (`crate::listen`); everything else is served by hyper.
    pub async fn serve(self, listener: TcpListener, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let grace = Duration::from_millis(self.state.cfg.shutdown_grace_ms);
        listen::serve(self.state.clone(), self.app(), listener, signal, grace).await?;
        self.shutdown().await;
        Ok(())
    }

    /// Tells every subscriber to reconnect elsewhere and closes it, waits (at most
    /// `SHUTDOWN_GRACE_MS`) for the connections to end, then leaves the cluster.
    pub async fn shutdown(&self) {
        self.state.shutdown().await;
    }
}
