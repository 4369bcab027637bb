//! A connection's outlet: a bounded queue of encoded frames and a close signal. The topic state
//! (core) hands frames to [`QueueSink`] without waiting; the connection's task drains the queue.
//! A bare-socket SSE connection is written by a writer instead ([`writer`]): its frames
//! are staged for the writer, which writes them to the socket itself and leaves to the
//! connection's task only what the socket does not take at once ([`Receiver::use_writer`]).
//!
//! One task serves a connection, so one waker per connection is enough: a frame, the end of the
//! queue and a close all wake it through the [`Closer`]'s `AtomicWaker` (no lock, no list of
//! waiters; the task registers it once per wait, and a wake before that is seen by the check
//! that follows the registration).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use sse_core::topic::{SendResult, Sink};
use tokio::net::TcpStream;

use crate::metrics::LatencyBatch;
pub(crate) mod writer;

use writer::{push_chunk, write_now, Writer};

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
    /// The subscriber token it opened with expired (`SUBSCRIBER_TOKEN_EXPIRY=close`): the client
    /// should reconnect with a fresh token.
    TokenExpired,
}

impl CloseReason {
    /// The `reason` of the `event: reconnect` frame that ends the stream (none for an evicted
    /// connection: it is closed at once, its queue is already full).
    pub fn reconnect_reason(self) -> Option<&'static str> {
        match self {
            CloseReason::Evicted => None,
            CloseReason::Shutdown => Some("shutdown"),
            CloseReason::Isolated => Some("cluster_unreachable"),
            CloseReason::TokenExpired => Some(sse_core::token::EXPIRED_REASON),
        }
    }
}

/// The close signal of one connection, shared by every topic it is attached to, and the waker
/// of the task that serves the connection.
#[derive(Debug, Default)]
pub struct Closer {
    waker: AtomicWaker,
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
            CloseReason::TokenExpired => 4,
        };
        let _ = self.reason.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }

    /// Why the connection is being closed, once [`Closer::close`] was called.
    pub fn reason(&self) -> Option<CloseReason> {
        match self.reason.load(Ordering::Acquire) {
            1 => Some(CloseReason::Evicted),
            2 => Some(CloseReason::Shutdown),
            3 => Some(CloseReason::Isolated),
            4 => Some(CloseReason::TokenExpired),
            _ => None,
        }
    }

    /// Wakes the connection's task on the next frame, end of queue or close. Register, then
    /// check what woke it: a wake in between is not lost.
    pub fn register(&self, cx: &Context<'_>) {
        self.waker.register(cx.waker());
    }

    /// Ready with the reason once [`Closer::close`] was called.
    pub fn poll_closed(&self, cx: &Context<'_>) -> Poll<CloseReason> {
        if let Some(r) = self.reason() {
            return Poll::Ready(r);
        }
        self.register(cx);
        self.reason().map_or(Poll::Pending, Poll::Ready)
    }

    /// Waits until [`Closer::close`] is called (returns at once if it already was). Only the
    /// connection's own task waits on it.
    pub async fn closed(&self) -> CloseReason {
        poll_fn(|cx| self.poll_closed(cx)).await
    }
}

/// A frame handed to connection queues: the encoded bytes, shared by every queue, and when
/// the publish was handed to the queues ([`crate::metrics::mono_ns`]; 0 for a frame that is not
/// a publish's, such as a keepalive: nothing to measure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Bytes,
    pub published_at: u64,
}

impl Frame {
    /// A publish's frame, stamped `published_at`.
    pub fn published(text: String, published_at: u64) -> Frame {
        Frame { bytes: Bytes::from(text), published_at }
    }
}

impl Frame {
    /// Whether `other` is this very frame (the same bytes, the same stamp).
    pub fn same(&self, other: &Frame) -> bool {
        self.bytes.as_ptr() == other.bytes.as_ptr() && self.bytes.len() == other.bytes.len() && self.published_at == other.published_at
    }
}

impl From<Bytes> for Frame {
    fn from(bytes: Bytes) -> Frame {
        Frame { bytes, published_at: 0 }
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Frame {
        Frame { bytes: Bytes::from(text), published_at: 0 }
    }
}

/// The sending half of a connection's queue, one clone per topic.
#[derive(Debug)]
pub struct QueueSink {
    queue: Arc<Queue>,
    closer: Arc<Closer>,
}

/// A connection's queue of encoded frames: bounded, one receiver, a sender per topic. Idle, it
/// holds no buffer at all (a subscriber spends most of its life idle, so this is most of what
/// an idle connection costs).
///
/// Written by a writer (bare socket), the queue holds only what the writer left to the
/// connection's task. The writer writes to the socket only while the task does not
/// ([`TASK_OWNS`] clear), and the task only while the writer does not ([`WRITING`] clear): one
/// control word holds both, so the bytes of two writes never mix. A frame goes through it
/// without a lock: the lock guards the frames queued for the task.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Queue {
    /// [`CLOSED`], [`TASK_OWNS`], [`WRITING`]. First, with what the writer reads next to it.
    ctl: AtomicU32,
    /// The writer's mark of its current round of several publishes ([`Queue::mark`]); only its
    /// writer touches it.
    mark: AtomicU32,
    /// Frames accepted and not yet taken for a write (staged for the writer, or queued): what
    /// the bound counts.
    len: AtomicUsize,
    /// The writer and the socket, once the connection is written by a writer.
    socket: OnceLock<Socket>,
    capacity: usize,
    closer: Arc<Closer>,
    state: Mutex<QueueState>,
}

/// The receiver is gone.
const CLOSED: u32 = 1;
/// The connection's task writes (its queue, `unsent`); a writer only queues for it. Always set
/// without a writer.
const TASK_OWNS: u32 = 2;
/// A writer is writing to the socket: the task must not, yet.
const WRITING: u32 = 4;

#[derive(Debug)]
struct Socket {
    writer: Arc<Writer>,
    stream: TcpStream,
}

#[derive(Debug, Default)]
struct QueueState {
    frames: VecDeque<Bytes>,
    senders: usize,
    /// Bytes of a write that the socket did not take, already framed: the task writes them
    /// before anything queued.
    unsent: Option<Bytes>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stream(&self) -> &TcpStream {
        &self.socket.get().expect("written by a writer").stream
    }

    /// Asks the processor to bring in the start of this queue (its control word, counters and
    /// socket) ahead of use: with thousands of connections a queue is seldom still in the cache
    /// when its turn comes, and that wait was most of the user-space time per delivery of a
    /// large fan-out. A hint only: nothing on processors without one.
    #[inline(always)]
    pub(crate) fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = std::ptr::from_ref(self).cast::<i8>();
            // SAFETY: every x86-64 processor has SSE, and a prefetch reads nothing and never
            // faults, whatever the address.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p);
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
            }
        }
    }

    fn taken(&self, n: usize) {
        if n > 0 {
            self.len.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// The writer's turn for one frame staged for this connection: written straight to the
    /// socket, unless the connection's task is writing (then queued for it). What the socket
    /// does not take is left to the task.
    pub(crate) fn deliver(&self, frame: &Frame, out: &mut Vec<u8>, latency: &mut LatencyBatch) {
        loop {
            let c = self.ctl.load(Ordering::Acquire);
            if c & CLOSED != 0 {
                return;
            }
            if c & TASK_OWNS != 0 {
                let mut st = self.lock();
                // Handed back meanwhile (under this lock): write it after all.
                if self.ctl.load(Ordering::Acquire) & TASK_OWNS == 0 {
                    continue;
                }
                st.frames.push_back(frame.bytes.clone());
                drop(st);
                self.closer.pending.queued(frame.published_at);
                self.closer.waker.wake();
                return;
            }
            if self.ctl.compare_exchange(c, c | WRITING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                break;
            }
        }
        self.taken(1);
        out.clear();
        push_chunk(out, &frame.bytes);
        self.write(out, frame.published_at, latency);
    }

    /// A writer's first look at a round of several publishes (`round` even, never 0): marks
    /// this connection as in the round once (`round`) or more than once (`round + 1`).
    pub(crate) fn mark(&self, round: u32) {
        let m = self.mark.load(Ordering::Relaxed);
        let seen = m == round || m == round + 1;
        self.mark.store(if seen { round + 1 } else { round }, Ordering::Relaxed);
    }

    /// Whether this connection takes just one frame of the round `round` and nothing else is
    /// pending for it (gathered, staged, or queued for its task): then [`Queue::deliver`] can
    /// write it at once, with no gathering, and its order holds.
    pub(crate) fn alone_in(&self, round: u32) -> bool {
        self.mark.load(Ordering::Relaxed) == round && self.len.load(Ordering::Acquire) == 1
    }

    /// Records that this connection's frames of round `round` go through [`Queue::gather`]
    /// (it is not [`Queue::marked_alone`] in it any more, whatever arrives meanwhile).
    pub(crate) fn mark_gathered(&self, round: u32) {
        self.mark.store(round + 1, Ordering::Relaxed);
    }

    /// Whether this connection was found [`Queue::alone_in`] round `round` (its one frame of it
    /// not gathered): its frame is then written by [`Queue::deliver`].
    pub(crate) fn marked_alone(&self, round: u32) -> bool {
        self.mark.load(Ordering::Relaxed) == round
    }

    /// Several publishes waiting: queues `frame` for [`Queue::flush`]. True for the first
    /// frame gathered (the connection then needs a flush).
    pub(crate) fn gather(&self, frame: &Frame) -> bool {
        let mut st = self.lock();
        let c = self.ctl.load(Ordering::Acquire);
        if c & CLOSED != 0 {
            return false;
        }
        st.frames.push_back(frame.bytes.clone());
        let first = st.frames.len() == 1;
        drop(st);
        self.closer.pending.queued(frame.published_at);
        if c & TASK_OWNS != 0 {
            self.closer.waker.wake();
            return false;
        }
        first
    }

    /// Writes what [`Queue::gather`] queued, in one write (unless the task writes now).
    pub(crate) fn flush(&self, out: &mut Vec<u8>, latency: &mut LatencyBatch) {
        out.clear();
        {
            let mut st = self.lock();
            let c = self.ctl.load(Ordering::Acquire);
            if c & CLOSED != 0 || st.frames.is_empty() {
                return;
            }
            if c & TASK_OWNS != 0 || self.ctl.compare_exchange(c, c | WRITING, Ordering::AcqRel, Ordering::Acquire).is_err() {
                // The task took the connection over (to close it): the frames are its own.
                drop(st);
                self.closer.waker.wake();
                return;
            }
            let n = st.frames.len();
            for f in st.frames.drain(..) {
                push_chunk(out, &f);
            }
            shrink(&mut st.frames);
            self.taken(n);
        }
        self.write(out, self.closer.pending.take(), latency);
    }

    /// Writes `out` (the writer, with [`WRITING`] set); what the socket does not take goes to
    /// the task, which takes over the connection until it has written it.
    fn write(&self, out: &[u8], at: u64, latency: &mut LatencyBatch) {
        let n = write_now(self.stream(), out);
        latency.observe(at);
        if n < out.len() {
            let mut st = self.lock();
            if self.ctl.load(Ordering::Acquire) & CLOSED == 0 {
                st.unsent = Some(Bytes::copy_from_slice(&out[n..]));
            }
            let _ = self.ctl.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| Some((c | TASK_OWNS) & !WRITING));
            drop(st);
            self.closer.waker.wake();
            return;
        }
        // The task may have taken the connection over meanwhile (to close it): it waits for
        // this write to end.
        if self.ctl.fetch_and(!WRITING, Ordering::AcqRel) & TASK_OWNS != 0 {
            self.closer.waker.wake();
        }
    }
}

/// The socket of a connection written by a writer, for its task (reads, and the writes the
/// writer left to it).
pub(crate) struct SocketRef(Arc<Queue>);

impl std::ops::Deref for SocketRef {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        self.0.stream()
    }
}

/// The receiving half of a connection's queue. Dropping it closes the queue.
#[derive(Debug)]
pub struct Receiver {
    queue: Arc<Queue>,
    /// Its waker.
    closer: Arc<Closer>,
}

/// [`Receiver::try_recv`] found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Empty;

/// Above this many slots, a queue that was emptied gives its buffer back.
const KEEP_SLOTS: usize = 8;

impl Receiver {
    /// The next frame; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let mut got = None;
        let n = poll_fn(|cx| self.poll_take(cx, 1, |f| got = Some(f))).await;
        debug_assert!(n == usize::from(got.is_some()));
        got
    }

    /// Waits for at least one frame, then moves up to `limit` frames onto `buf`. Returns how many
    /// (0 once every sender is gone and the queue is empty).
    pub async fn recv_many(&mut self, buf: &mut Vec<Bytes>, limit: usize) -> usize {
        poll_fn(|cx| self.poll_take(cx, limit, |f| buf.push(f))).await
    }

    /// Ready once up to `limit` (at least one) queued frames were handed to `each`, oldest
    /// first, with how many; ready with 0 once every sender is gone and the queue is empty.
    pub fn poll_take(&mut self, cx: &Context<'_>, limit: usize, mut each: impl FnMut(Bytes)) -> Poll<usize> {
        if let Some(n) = self.take(limit, &mut each) {
            return Poll::Ready(n);
        }
        self.closer.register(cx);
        self.take(limit, each).map_or(Poll::Pending, Poll::Ready)
    }

    /// Hands up to `limit` (at least one) queued frames to `each`: how many, 0 if the queue has
    /// ended, `None` if it is empty and may still get some.
    fn take(&mut self, limit: usize, mut each: impl FnMut(Bytes)) -> Option<usize> {
        let mut st = self.queue.lock();
        let ended = st.senders == 0 && self.queue.len.load(Ordering::Acquire) == 0;
        if self.queue.ctl.load(Ordering::Acquire) & (TASK_OWNS | WRITING) != TASK_OWNS {
            // The writer writes this connection (or is finishing a write): nothing for the task.
            return ended.then_some(0);
        }
        if st.frames.is_empty() {
            return ended.then_some(0);
        }
        let n = st.frames.len().min(limit.max(1));
        for f in st.frames.drain(..n) {
            each(f);
        }
        shrink(&mut st.frames);
        self.queue.taken(n);
        Some(n)
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Result<Bytes, Empty> {
        let mut st = self.queue.lock();
        let f = st.frames.pop_front().ok_or(Empty)?;
        shrink(&mut st.frames);
        self.queue.taken(1);
        Ok(f)
    }

    /// Hands up to `limit` queued frames to `each`, oldest first, without waiting. Returns how
    /// many.
    pub fn drain(&mut self, limit: usize, mut each: impl FnMut(Bytes)) -> usize {
        let mut st = self.queue.lock();
        let n = st.frames.len().min(limit);
        for f in st.frames.drain(..n) {
            each(f);
        }
        shrink(&mut st.frames);
        self.queue.taken(n);
        n
    }

    /// From now on the connection is written by `writer` on `stream` ([`writer`]). The
    /// task keeps writing what is queued already, then hands the connection over
    /// ([`Receiver::hand_back`]). Returns the socket, for the task.
    pub(crate) fn use_writer(&mut self, writer: Arc<Writer>, stream: TcpStream) -> SocketRef {
        let _st = self.queue.lock();
        // Set under the lock: a sender sees the writer, or queues before it is set.
        if self.queue.socket.set(Socket { writer, stream }).is_err() {
            unreachable!("a connection gets one writer");
        }
        SocketRef(self.queue.clone())
    }

    /// Moves what the writer could not write onto `out`: true if there was some.
    pub(crate) fn take_unsent(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(rest) = self.queue.lock().unsent.take() else { return false };
        out.extend_from_slice(&rest);
        true
    }

    /// After the task wrote everything it took: if nothing else is queued, the writer writes
    /// the connection again.
    pub(crate) fn hand_back(&mut self) {
        if self.queue.socket.get().is_none() || self.closer.reason().is_some() {
            return;
        }
        let st = self.queue.lock();
        if st.frames.is_empty() && st.unsent.is_none() {
            self.queue.ctl.fetch_and(!TASK_OWNS, Ordering::AcqRel);
        }
    }

    /// The connection is being closed: the task takes it over from the writer, to write what is
    /// queued and its last frame. False while the writer is still writing (the task is woken
    /// when it is done).
    pub(crate) fn claim(&mut self) -> bool {
        self.queue.ctl.fetch_or(TASK_OWNS, Ordering::AcqRel) & WRITING == 0
    }

    /// Closes the queue: frames queued are dropped, senders get [`SendResult::Closed`].
    pub fn close(&mut self) {
        let mut st = self.queue.lock();
        self.queue.ctl.fetch_or(CLOSED, Ordering::AcqRel);
        st.frames = VecDeque::new();
        st.unsent = None;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.close();
    }
}

fn shrink(frames: &mut VecDeque<Bytes>) {
    if frames.is_empty() && frames.capacity() > KEEP_SLOTS {
        *frames = VecDeque::new();
    }
}

impl QueueSink {
    /// A queue of `capacity` frames: the sink, the receiver and the close signal.
    pub fn channel(capacity: usize) -> (QueueSink, Receiver, Arc<Closer>) {
        let closer = Arc::new(Closer::default());
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState { senders: 1, ..QueueState::default() }),
            capacity: capacity.max(1),
            closer: closer.clone(),
            socket: OnceLock::new(),
            ctl: AtomicU32::new(TASK_OWNS),
            mark: AtomicU32::new(0),
            len: AtomicUsize::new(0),
        });
        (QueueSink { queue: queue.clone(), closer: closer.clone() }, Receiver { queue, closer: closer.clone() }, closer)
    }

    pub fn closer(&self) -> &Arc<Closer> {
        &self.closer
    }
}

impl Clone for QueueSink {
    fn clone(&self) -> Self {
        self.queue.lock().senders += 1;
        QueueSink { queue: self.queue.clone(), closer: self.closer.clone() }
    }
}

impl Drop for QueueSink {
    fn drop(&mut self) {
        let last = {
            let mut st = self.queue.lock();
            st.senders -= 1;
            st.senders == 0
        };
        if last {
            // The receiver sees the end once it has read what is queued.
            self.closer.waker.wake();
        }
    }
}

impl Sink for QueueSink {
    type Frame = Frame;

    fn prefetch(&self) {
        self.queue.prefetch();
    }

    fn try_send(&mut self, frame: &Frame) -> SendResult {
        let q = &*self.queue;
        if q.ctl.load(Ordering::Acquire) & CLOSED != 0 {
            return SendResult::Closed;
        }
        if q.len.fetch_add(1, Ordering::AcqRel) >= q.capacity {
            q.taken(1);
            // Too slow: the whole connection goes, not just this topic.
            self.closer.close(CloseReason::Evicted);
            return SendResult::Full;
        }
        let mut socket = q.socket.get();
        if socket.is_none() {
            let mut st = q.lock();
            // The writer is set under this lock: a frame is queued before it, or staged after.
            socket = q.socket.get();
            if socket.is_none() {
                st.frames.push_back(frame.bytes.clone());
                drop(st);
                self.closer.waker.wake();
                self.closer.pending.queued(frame.published_at);
                return SendResult::Sent;
            }
        }
        if let Some(socket) = socket {
            // Written by a writer: it gets the frame (once per publish for all of its
            // connections) and writes it, or queues it if the task is writing.
            writer::stage(&socket.writer, frame, &self.queue);
        }
        SendResult::Sent
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
        let f: Frame = Bytes::from_static(b"x").into();
        assert_eq!(sink.try_send(&f), SendResult::Sent);
        assert_eq!(sink.try_send(&f), SendResult::Full);
        assert_eq!(closer.closed().await, CloseReason::Evicted);
        closer.close(CloseReason::Shutdown);
        assert_eq!(closer.closed().await, CloseReason::Evicted, "the first reason wins");
        rx.close();
        assert_eq!(rx.try_recv(), Err(Empty));
        assert_eq!(sink.try_send(&f), SendResult::Closed);
    }

    #[tokio::test]
    async fn frames_in_order_then_the_end_when_every_sender_is_gone() {
        let (mut a, mut rx, _closer) = QueueSink::channel(8);
        let mut b = a.clone();
        for i in 0..3u8 {
            assert_eq!(a.try_send(&Bytes::from(vec![i]).into()), SendResult::Sent);
        }
        assert_eq!(b.try_send(&Bytes::from_static(b"b").into()), SendResult::Sent);
        assert_eq!(rx.recv().await.unwrap(), Bytes::from(vec![0u8]));
        let mut batch = Vec::new();
        assert_eq!(rx.recv_many(&mut batch, 2).await, 2);
        assert_eq!(batch, vec![Bytes::from(vec![1u8]), Bytes::from(vec![2u8])]);
        drop(a);
        let waiter = tokio::spawn(async move {
            let got = rx.recv().await;
            (got, rx.recv().await)
        });
        tokio::task::yield_now().await;
        drop(b);
        let (got, end) = waiter.await.unwrap();
        assert_eq!(got.as_deref(), Some(&b"b"[..]), "what was queued is still read");
        assert_eq!(end, None, "then the end");
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_on_send_and_an_emptied_queue_gives_its_buffer_back() {
        let (mut sink, mut rx, _closer) = QueueSink::channel(64);
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await;
            (first, rx)
        });
        tokio::task::yield_now().await;
        assert_eq!(sink.try_send(&Bytes::from_static(b"x").into()), SendResult::Sent);
        let (first, mut rx) = waiter.await.unwrap();
        assert_eq!(first.as_deref(), Some(&b"x"[..]));
        for _ in 0..40 {
            sink.try_send(&Bytes::from_static(b"y").into());
        }
        let mut batch = Vec::new();
        assert_eq!(rx.recv_many(&mut batch, 512).await, 40);
        assert_eq!(rx.queue.lock().frames.capacity(), 0);
    }

    #[tokio::test]
    async fn one_waker_serves_frames_the_end_and_a_close() {
        // A task waiting on its queue and its close at once, as a subscriber's task does.
        let (mut sink, mut rx, closer) = QueueSink::channel(8);
        let waiter = {
            let closer = closer.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let why = poll_fn(|cx| {
                    if let Poll::Ready(why) = closer.poll_closed(cx) {
                        return Poll::Ready(why);
                    }
                    let _ = rx.poll_take(cx, 8, |f| got.push(f));
                    Poll::Pending
                })
                .await;
                (got, why)
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(sink.try_send(&Bytes::from_static(b"a").into()), SendResult::Sent);
        tokio::task::yield_now().await;
        closer.close(CloseReason::TokenExpired);
        let (got, why) = tokio::time::timeout(std::time::Duration::from_secs(2), waiter).await.expect("woken").unwrap();
        assert_eq!(got, vec![Bytes::from_static(b"a")], "woken by the frame");
        assert_eq!(why, CloseReason::TokenExpired, "then by the close");
        assert_eq!(closer.reason(), Some(CloseReason::TokenExpired));
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
