//! A subscriber connection as the gateway holds it: its queue, its close signal, the replay to
//! send first, and a guard that detaches it from every topic when the connection ends, whatever
//! ends it (client gone, eviction, shutdown). Also the one step of every SSE stream's writer
//! loop ([`Connection::next_sse_write`]), shared by the bare-socket and the hyper paths.

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use sse_core::frame::{self, Format};
use sse_core::GatewayError;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::objects::Namespace;
use crate::sink::{CloseReason, Closer, Receiver};

/// Most frames taken from the queue for one write of an SSE stream.
pub const SSE_BATCH: usize = 512;

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
    pub(crate) ns: Arc<dyn Namespace>,
    pub(crate) live: Arc<Live>,
    pub(crate) id: String,
    pub(crate) topics: Vec<String>,
    pub(crate) format: Format,
    /// The timer that closes the connection when its token expires ([`Connection::close_at`]).
    pub(crate) expiry: Option<AbortHandle>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(timer) = self.expiry.take() {
            timer.abort();
        }
        for t in &self.topics {
            self.ns.get(t).detach(&self.id);
        }
        self.ns.hub().metrics.conn_closed(self.format);
        self.live.closed();
    }
}

/// What an SSE stream writes next ([`Connection::next_sse_write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseWrite {
    /// Frames from the queue: write them, then wait for the next.
    Frames,
    /// The gateway closes the connection (shutdown, isolation): every frame still queued, then
    /// `event: reconnect`. Write them, then end the stream.
    Last,
    /// End the stream now: evicted (closed at once, its queue is full) or the queue ended.
    End,
}

impl Connection {
    /// Closes the connection with [`CloseReason::TokenExpired`] at `at_ms` (milliseconds since
    /// the epoch; at once if that is past), unless it ends first. `None`: never.
    pub fn close_at(&mut self, at_ms: Option<u64>) {
        let Some(at_ms) = at_ms else { return };
        let wait = Duration::from_millis(at_ms.saturating_sub(crate::clock::now_ms()));
        let closer = self.closer.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            closer.close(CloseReason::TokenExpired);
        });
        self.guard.expiry = Some(timer.abort_handle());
    }

    /// Records a write for the latency histogram (the age of the oldest frame it carried).
    pub fn written(&self) {
        self.guard.ns.hub().metrics.written(self.closer.pending.take());
    }

    /// Waits for what the stream writes next and hands its frames to `each`, oldest first: up
    /// to [`SSE_BATCH`] frames already queued go out in one write.
    pub async fn next_sse_write(&mut self, mut each: impl FnMut(Bytes)) -> SseWrite {
        poll_fn(|cx| self.poll_sse_write(cx, &mut each)).await
    }

    /// [`Connection::next_sse_write`] as a poll, for a task that also polls its socket: a close
    /// first (the frames still queued, then `event: reconnect`), else the queued frames.
    pub fn poll_sse_write(&mut self, cx: &Context<'_>, mut each: impl FnMut(Bytes)) -> Poll<SseWrite> {
        if let Some(last) = self.last_write(&mut each) {
            return Poll::Ready(last);
        }
        if let Poll::Ready(n) = self.rx.poll_take(cx, SSE_BATCH, &mut each) {
            return Poll::Ready(if n == 0 { SseWrite::End } else { SseWrite::Frames });
        }
        // `poll_take` registered the waker: a close (or the end of the writer's last write)
        // since the first look is seen now.
        self.last_write(each).map_or(Poll::Pending, Poll::Ready)
    }

    /// How the stream ends if the gateway is closing it (`None` also while a writer finishes
    /// its write to the connection: the task is woken after it).
    fn last_write(&mut self, mut each: impl FnMut(Bytes)) -> Option<SseWrite> {
        let why = self.closer.reason()?.reconnect_reason();
        let Some(why) = why else { return Some(SseWrite::End) };
        if !self.rx.claim() {
            return None;
        }
        self.rx.drain(usize::MAX, &mut each);
        each(Bytes::from(frame::encode_reconnect(why)));
        Some(SseWrite::Last)
    }
}

/// This node's open connections: the `MAX_CONNECTIONS_PER_NODE` limit, and what a shutdown
/// waits for.
#[derive(Debug, Default)]
pub struct Live {
    count: AtomicUsize,
    all_closed: Notify,
}

impl Live {
    /// Counts a new connection; 503 when the node already holds `max` (0: no limit).
    pub fn open(&self, max: usize) -> Result<(), GatewayError> {
        let before = self.count.fetch_add(1, Ordering::AcqRel);
        if max > 0 && before >= max {
            self.closed();
            return Err(GatewayError::ConnectionLimit(format!("this node already has {max} connections")));
        }
        Ok(())
    }

    pub fn closed(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_closed.notify_waiters();
        }
    }

    /// Returns once no connection is open.
    pub async fn all_closed(&self) {
        while self.count.load(Ordering::Acquire) > 0 {
            let notified = self.all_closed.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                break;
            }
            notified.await;
        }
    }
}
