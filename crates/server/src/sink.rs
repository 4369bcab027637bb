//! A connection's outlet: a bounded queue of encoded frames and a close signal. The topic state
//! (core) hands frames to [`QueueSink`] without waiting; the connection's task drains the queue.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use sse_core::topic::{SendResult, Sink};
use tokio::sync::{mpsc, Notify};

/// Why a connection is being closed by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its queue was full: the client reads too slowly.
    Evicted,
    /// The node is shutting down: the client should reconnect elsewhere.
    Shutdown,
    /// The node lost Redis for so long that the cluster no longer routes events to it: the
    /// client should reconnect elsewhere (cluster only).
    Isolated,
}

impl CloseReason {
    /// The `reason` of the `event: reconnect` frame that ends the stream (none for an evicted
    /// connection: it is closed at once, its queue is already full).
    pub fn reconnect_reason(self) -> Option<&'static str> {
        match self {
            CloseReason::Evicted => None,
            CloseReason::Shutdown => Some("shutdown"),
            CloseReason::Isolated => Some("cluster_unreachable"),
        }
    }
}

/// The close signal of one connection, shared by every topic it is attached to.
#[derive(Debug, Default)]
pub struct Closer {
    notify: Notify,
    reason: AtomicU8,
    /// When the oldest frame not yet written was published (for the latency histogram).
    pub pending: crate::metrics::Pending,
}

impl Closer {
    /// Asks the connection to close; the first reason wins.
    pub fn close(&self, reason: CloseReason) {
        let code = match reason {
            CloseReason::Evicted => 1,
            CloseReason::Shutdown => 2,
            CloseReason::Isolated => 3,
        };
        let _ = self.reason.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.notify.notify_one();
    }

    /// Waits until [`Closer::close`] is called (returns at once if it already was).
    pub async fn closed(&self) -> CloseReason {
        loop {
            match self.reason.load(Ordering::Acquire) {
                1 => return CloseReason::Evicted,
                2 => return CloseReason::Shutdown,
                3 => return CloseReason::Isolated,
                _ => self.notify.notified().await,
            }
        }
    }
}

/// The sending half of a connection's queue, one clone per topic.
#[derive(Debug, Clone)]
pub struct QueueSink {
    tx: mpsc::Sender<Bytes>,
    closer: Arc<Closer>,
}

impl QueueSink {
    /// A queue of `capacity` frames: the sink, the receiver and the close signal.
    pub fn channel(capacity: usize) -> (QueueSink, mpsc::Receiver<Bytes>, Arc<Closer>) {
        let (tx, rx) = mpsc::channel(capacity);
        let closer = Arc::new(Closer::default());
        (QueueSink { tx, closer: closer.clone() }, rx, closer)
    }

    pub fn closer(&self) -> &Arc<Closer> {
        &self.closer
    }
}

impl Sink for QueueSink {
    type Frame = Bytes;

    fn try_send(&mut self, frame: &Bytes) -> SendResult {
        match self.tx.try_send(frame.clone()) {
            Ok(()) => {
                self.closer.pending.queued();
                SendResult::Sent
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Too slow: the whole connection goes, not just this topic.
                self.closer.close(CloseReason::Evicted);
                SendResult::Full
            }
            Err(mpsc::error::TrySendError::Closed(_)) => SendResult::Closed,
        }
    }
}

/// Concatenates frames into one write (no copy for a single frame).
pub fn concat(frames: &mut Vec<Bytes>) -> Bytes {
    match frames.len() {
        0 => Bytes::new(),
        1 => frames.pop().expect("one frame"),
        _ => {
            let mut out = Vec::with_capacity(frames.iter().map(Bytes::len).sum());
            for f in frames.drain(..) {
                out.extend_from_slice(&f);
            }
            Bytes::from(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_evicts_and_signals() {
        let (mut sink, mut rx, closer) = QueueSink::channel(1);
        let f = Bytes::from_static(b"x");
        assert_eq!(sink.try_send(&f), SendResult::Sent);
        assert_eq!(sink.try_send(&f), SendResult::Full);
        assert_eq!(closer.closed().await, CloseReason::Evicted);
        closer.close(CloseReason::Shutdown);
        assert_eq!(closer.closed().await, CloseReason::Evicted, "the first reason wins");
        rx.close();
        while rx.try_recv().is_ok() {}
        assert_eq!(sink.try_send(&f), SendResult::Closed);
    }

    #[test]
    fn concat_batches() {
        let mut v = vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")];
        assert_eq!(concat(&mut v), Bytes::from_static(b"abc"));
        assert!(v.is_empty());
        let one = Bytes::from_static(b"z");
        let mut v = vec![one.clone()];
        assert_eq!(concat(&mut v).as_ptr(), one.as_ptr());
    }
}
