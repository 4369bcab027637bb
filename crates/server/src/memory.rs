//! The single-node namespace: topics live in this process only, the registry is the core's
//! in-memory [`Registry`]. The default when `REDIS_URL` is not set, and what an embedding
//! service gets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sse_core::frame::Event;
use sse_core::registry::{ConnSummary, ConnectionView, Page, Registry, RegistryUpdate, TopicView};
use sse_core::request::{self, ListQuery, TopicResult};
use sse_core::frame::Format;
use sse_core::GatewayError;
use tokio::sync::mpsc;

use crate::hub::{Change, Hub};
use crate::objects::{local_result_retained, BoxFuture, Namespace, Probe};
use crate::{clock, log};

pub struct MemoryNamespace {
    hub: Arc<Hub>,
    registry: Arc<Mutex<Registry>>,
    lease_ms: u64,
}

impl MemoryNamespace {
    /// Takes the hub and its change feed; spawns the task that records changes.
    pub fn new(hub: Arc<Hub>, changes: mpsc::UnboundedReceiver<Change>, heartbeat_ms: u64) -> Self {
        let registry = Arc::new(Mutex::new(Registry::new()));
        tokio::spawn(record(changes, registry.clone()));
        // Three heartbeats, as on Cloudflare: a missed detach heals by itself.
        Self { hub, registry, lease_ms: heartbeat_ms.saturating_mul(3).max(Duration::from_secs(1).as_millis() as u64) }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Applies membership changes to the registry, a batch at a time.
async fn record(mut changes: mpsc::UnboundedReceiver<Change>, registry: Arc<Mutex<Registry>>) {
    let mut batch = Vec::with_capacity(256);
    while changes.recv_many(&mut batch, 256).await > 0 {
        let now = clock::now_ms();
        let mut acks = Vec::new();
        {
            let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
            for change in batch.drain(..) {
                match change {
                    Change::Attached { topic, info, ack } => {
                        if info.format != Format::Tail {
                            let conn = ConnSummary { id: info.id, transport: info.transport, connected_at: info.connected_at, node: info.node, events_sent: 0 };
                            reg.apply(RegistryUpdate::Attach { topic, conn }, now);
                        }
                        acks.extend(ack);
                    }
                    Change::Detached { topic, id } => reg.apply(RegistryUpdate::Detach { topic, id }, now),
                    Change::Snapshot(t) => reg.apply(RegistryUpdate::Snapshot { topic: t.topic, conns: t.conns }, now),
                    Change::SnapshotDone => {}
                }
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

impl Namespace for MemoryNamespace {
    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn probe<'a>(&'a self, topic: &'a str, id: &'a str) -> BoxFuture<'a, Probe> {
        Box::pin(async move {
            // A retained topic takes every event, subscribers or not (the exception to the drop
            // rule): the body is read and the event stored.
            if self.hub.is_live(topic) || self.hub.retains(topic) {
                return Probe::Live { local: true, peers: Vec::new() };
            }
            log::raw(&request::drop_log_line(topic, id));
            self.hub.notify_dropped(topic, id, clock::now_ms());
            Probe::Dropped
        })
    }

    fn deliver<'a>(&'a self, _probe: &'a Probe, ev: &'a Event) -> BoxFuture<'a, TopicResult> {
        Box::pin(async move { local_result_retained(&self.hub, &ev.topic, self.hub.publish(ev)) })
    }

    fn topics(&self, q: ListQuery) -> BoxFuture<'_, Result<Page<TopicView>, GatewayError>> {
        Box::pin(async move {
            let mut reg = self.registry();
            reg.expire(clock::now_ms(), self.lease_ms);
            reg.topics(q.limit, q.cursor.as_deref())
        })
    }

    fn connections(&self, q: ListQuery) -> BoxFuture<'_, Result<Page<ConnectionView>, GatewayError>> {
        Box::pin(async move {
            let mut reg = self.registry();
            reg.expire(clock::now_ms(), self.lease_ms);
            reg.connections(q.limit, q.cursor.as_deref(), q.topic.as_deref())
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
