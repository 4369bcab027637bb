//! The single-node namespace: topics live in this process only, the registry is the core's
//! in-memory [`Registry`]. The default when `REDIS_URL` is not set, and what an embedding
//! service gets.

use std::sync::{Arc, Mutex};

use sse_core::frame::{Event, Format};
use sse_core::protocol::{drop_rule, TopicResult};
use sse_core::registry::{ConnectionView, Page, Registry, RegistryUpdate, TopicView};
use sse_core::request::ListQuery;
use sse_core::GatewayError;
use tokio::sync::mpsc;

use crate::clock;
use crate::hub::{Change, Hub};
use crate::objects::{delivered, BoxFuture, Namespace, Probe};

pub struct MemoryNamespace {
    hub: Arc<Hub>,
    registry: Arc<Mutex<Registry>>,
    lease_ms: u64,
}

impl MemoryNamespace {
    /// Takes the hub and its change feed; spawns the task that records changes. `lease_ms`:
    /// how long a listed connection lives without a heartbeat (`Config::registry_lease_ms`).
    pub fn new(hub: Arc<Hub>, changes: mpsc::UnboundedReceiver<Change>, lease_ms: u64) -> Self {
        let registry = Arc::new(Mutex::new(Registry::new()));
        tokio::spawn(record(changes, registry.clone()));
        Self { hub, registry, lease_ms }
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
                            reg.apply(RegistryUpdate::Attach { topic, conn: info.summary(0) }, now);
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
            if drop_rule::takes(self.hub.is_live(topic), self.hub.retains(topic)) {
                return Probe::Live { local: true, peers: Vec::new() };
            }
            self.hub.notify_dropped(topic, id, clock::now_ms());
            Probe::Dropped
        })
    }

    fn deliver<'a>(&'a self, _probe: &'a Probe, ev: &'a Event) -> BoxFuture<'a, TopicResult> {
        Box::pin(async move { TopicResult::of_delivery(delivered(&self.hub.publish(ev)), self.hub.retains(&ev.topic)) })
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
