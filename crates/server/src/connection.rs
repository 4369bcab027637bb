//! Opening a subscriber connection: an id, a bounded queue, the attachment to each topic (all
//! or none), and a guard that detaches it from every topic when the connection ends, whatever
//! ends it (client gone, eviction, shutdown).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use sse_core::frame::Format;
use sse_core::{routes, GatewayError};

use crate::gateway::Inner;
use crate::sink::{Closer, QueueSink, Receiver};
use crate::{clock, hub};

/// How long a subscriber waits for its attachment to be recorded (Redis) before it is told it
/// is connected anyway; the heartbeat re-asserts it later.
const RECORD_WAIT: Duration = Duration::from_secs(3);

/// An open connection: its frames arrive on `rx`; `closer` fires when the gateway closes it.
pub struct Connection {
    pub id: String,
    pub rx: Receiver,
    pub closer: Arc<Closer>,
    /// Frames to send before anything from `rx`: the replay of a resuming subscriber (retained
    /// events after its `Last-Event-ID`, or `replay-gap` frames), topic after topic.
    pub replay: Vec<Bytes>,
    /// Held for its `Drop`: detaches the connection when the connection ends.
    pub guard: Guard,
}

/// Detaches the connection from its topics when dropped.
pub struct Guard {
    inner: Arc<Inner>,
    id: String,
    topics: Vec<String>,
    format: Format,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for t in &self.topics {
            self.inner.ns.get(t).detach(&self.id);
        }
        self.inner.hub.metrics.conn_closed(self.format);
        self.inner.conn_closed();
    }
}

impl Connection {
    /// Records a write for the latency histogram (the age of the oldest frame it carried).
    pub fn written(&self) {
        self.guard.inner.hub.metrics.written(self.closer.pending.take());
    }
}

impl Inner {
    /// Attaches a new connection to `topics` (a tail when `format` is `Tail`).
    pub async fn open(self: &Arc<Self>, topics: &[String], format: Format) -> Result<Connection, GatewayError> {
        self.open_resume(topics, format, None).await
    }

    /// [`Inner::open`] for a subscriber resuming after `last_id` (its `Last-Event-ID`).
    pub async fn open_resume(self: &Arc<Self>, topics: &[String], format: Format, last_id: Option<&str>) -> Result<Connection, GatewayError> {
        self.conn_opened()?;
        let now = clock::now_ms();
        let id = routes::connection_id(now, fastrand::u32(..));
        let (sink, rx, closer) = QueueSink::channel(self.cfg.core.queue_capacity);
        let info = hub::conn_info(&id, topics, format, &self.cfg.node_id, now);
        self.hub.metrics.conn_opened(format);
        let mut guard = Guard { inner: self.clone(), id: id.clone(), topics: Vec::with_capacity(topics.len()), format };
        let mut recorded = Vec::with_capacity(topics.len());
        let mut replay = Vec::new();
        for t in topics {
            // On an error (503) the guard detaches what was attached so far.
            let (done, frames) = self.ns.get(t).attach_resume(info.clone(), sink.clone(), last_id)?;
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
}
