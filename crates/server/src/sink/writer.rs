//! The writers of bare-socket SSE connections: a few tasks (one per runtime worker) that write
//! publishes straight to their connections' sockets, instead of waking a task per connection
//! per event.
//!
//! - Each bare-socket connection belongs to one writer (round robin,
//!   [`Writers::assign`]), so a topic's fan-out is spread over every worker.
//! - A publish hands each writer the frame once, with the list of its connections that take it:
//!   the hub's fan-out stages them per writer ([`Scope`], [`stage`]) and hands the batches over
//!   when it leaves the topic's lock (in publish order, so each topic's order holds).
//! - The writer writes each connection's frame with one non-blocking write. When it has several
//!   batches waiting (publishes back to back), every connection gets all of its frames in one
//!   write. What a socket does not take goes to the connection's own task, which waits for the
//!   socket and writes it, then hands the connection back ([`crate::sink::Receiver`]).
//! - Queues stay bounded: a frame staged for a writer counts in its connection's queue until the
//!   writer has taken it, so a slow consumer is evicted exactly as before.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::net::TcpStream;

use super::{Frame, Queue};
use crate::metrics::{LatencyBatch, Metrics};

/// A writer yields to the other tasks of its worker after this many connections written (a
/// power of two). Publishes that arrive meanwhile join what it writes next: the more often it
/// lets them in, the more frames each write carries in a burst.
const YIELD_EVERY: usize = 64;
/// Emptied connection lists a writer keeps for the next publishes.
const SPARE_LISTS: usize = 16;
/// How many connections ahead of the one it writes a writer asks for the next ones' queues
/// ([`Queue::prefetch`]): each write is a system call, long enough to bring in the next.
const AHEAD: usize = 2;
/// The same, ahead of a pass that only reads each queue's counters (a few ns each).
const AHEAD_PASS: usize = 8;

/// The node's writers, started on first use.
pub struct Writers {
    all: OnceLock<Box<[Arc<Writer>]>>,
    next: AtomicUsize,
    metrics: Arc<Metrics>,
}

impl Writers {
    pub fn new(metrics: Arc<Metrics>) -> Writers {
        Writers { all: OnceLock::new(), next: AtomicUsize::new(0), metrics }
    }

    /// The writer of a new connection, in turn. The first call starts one writer per worker of
    /// the current runtime.
    pub fn assign(&self) -> Arc<Writer> {
        let all = self.all.get_or_init(|| {
            let n = tokio::runtime::Handle::current().metrics().num_workers().max(1);
            (0..n)
                .map(|_| {
                    let w = Arc::new(Writer { inbox: Mutex::default(), waker: AtomicWaker::new(), metrics: self.metrics.clone() });
                    tokio::spawn(w.clone().run());
                    w
                })
                .collect()
        });
        all[self.next.fetch_add(1, Ordering::Relaxed) % all.len()].clone()
    }
}

/// One writer: the batches handed to it, and its task's waker.
pub struct Writer {
    inbox: Mutex<Inbox>,
    waker: AtomicWaker,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

#[derive(Default)]
struct Inbox {
    batches: Vec<Batch>,
    /// Emptied connection lists, reused by the next publishes.
    spare: Vec<Vec<Arc<Queue>>>,
}

/// A frame and the writer's connections that take it, in the order they were handed it.
struct Batch {
    frame: Frame,
    conns: Vec<Arc<Queue>>,
}

impl Writer {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hand(&self, batch: Batch) {
        self.inbox().batches.push(batch);
        self.waker.wake();
    }

    fn list(&self) -> Vec<Arc<Queue>> {
        self.inbox().spare.pop().unwrap_or_default()
    }

    fn waiting(&self) -> bool {
        !self.inbox().batches.is_empty()
    }

    async fn run(self: Arc<Self>) {
        let mut taken: Vec<Batch> = Vec::new();
        let mut touched: VecDeque<Arc<Queue>> = VecDeque::new();
        let mut out = Vec::new();
        let mut latency = LatencyBatch::default();
        // Even, never 0 (see `Queue::mark`).
        let mut round: u32 = 0;
        loop {
            poll_fn(|cx| {
                if self.waiting() {
                    return Poll::Ready(());
                }
                self.waker.register(cx.waker());
                if self.waiting() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            std::mem::swap(&mut self.inbox().batches, &mut taken);
            if let [one] = &taken[..] {
                // One publish waiting: each connection's frame goes straight to its socket,
                // until more publishes arrive (the writer yields now and then): the rest of
                // this one is then gathered with them, for one write per connection.
                for (i, q) in one.conns.iter().enumerate() {
                    prefetch_next(&one.conns, i + AHEAD);
                    if i > 0 && i & (YIELD_EVERY - 1) == 0 {
                        latency.stale();
                        tokio::task::yield_now().await;
                        if self.waiting() {
                            for q in &one.conns[i..] {
                                if q.gather(&one.frame) {
                                    touched.push_back(q.clone());
                                }
                            }
                            break;
                        }
                    }
                    q.deliver(&one.frame, &mut out, &mut latency);
                }
                self.retire(&mut taken);
            }
            // Several publishes: a connection that takes more than one of them, or has frames
            // pending from before, gets this round's frames gathered in its queue behind them;
            // every connection with frames gathered is then written, oldest first, in one write
            // each; then the connections that take just one of them and have nothing pending
            // (several topics' publishes rather than a burst on one) are written at once, as
            // above. Publishes that arrive meanwhile make the next round, so a connection with
            // frames gathered waits at most for the rest of this round (it used to wait behind
            // the direct writes of every newer round while publishes kept arriving).
            let mut written = 0usize;
            loop {
                if taken.is_empty() && self.waiting() {
                    std::mem::swap(&mut self.inbox().batches, &mut taken);
                }
                if taken.is_empty() && touched.is_empty() {
                    break;
                }
                if !taken.is_empty() {
                    round = round.wrapping_add(2).max(2);
                    for b in &taken {
                        for (i, q) in b.conns.iter().enumerate() {
                            prefetch_next(&b.conns, i + AHEAD_PASS);
                            q.mark(round);
                        }
                    }
                    for b in &taken {
                        for (i, q) in b.conns.iter().enumerate() {
                            prefetch_next(&b.conns, i + AHEAD_PASS);
                            if !q.alone_in(round) {
                                q.mark_gathered(round);
                                if q.gather(&b.frame) {
                                    touched.push_back(q.clone());
                                }
                            }
                        }
                    }
                }
                while let Some(q) = touched.pop_front() {
                    q.flush(&mut out, &mut latency);
                    paced(&mut written, &mut latency).await;
                }
                for b in &taken {
                    for (i, q) in b.conns.iter().enumerate() {
                        prefetch_next(&b.conns, i + AHEAD);
                        if q.marked_alone(round) {
                            q.deliver(&b.frame, &mut out, &mut latency);
                            paced(&mut written, &mut latency).await;
                        }
                    }
                }
                self.retire(&mut taken);
            }
            self.metrics.written_batch(&mut latency);
            latency.stale();
            if out.capacity() > 64 * 1024 {
                out = Vec::new();
            }
        }
    }

    /// Done with `taken`: their connection lists are kept for the next publishes.
    fn retire(&self, taken: &mut Vec<Batch>) {
        let mut lists: [Option<Vec<Arc<Queue>>>; 4] = Default::default();
        let mut kept = 0;
        for b in taken.drain(..) {
            let mut conns = b.conns;
            conns.clear();
            if kept < lists.len() {
                lists[kept] = Some(conns);
                kept += 1;
            }
        }
        if kept > 0 {
            let mut inbox = self.inbox();
            for l in lists.iter_mut().take(kept) {
                if inbox.spare.len() < SPARE_LISTS {
                    inbox.spare.extend(l.take());
                }
            }
        }
    }
}

/// What the current thread's fan-out has staged for the writers, handed over when the
/// outermost [`Scope`] ends.
#[derive(Default)]
struct Staged {
    depth: usize,
    batches: Vec<(Arc<Writer>, Batch)>,
}

thread_local! {
    static STAGED: RefCell<Staged> = RefCell::new(Staged::default());
}

/// While one is alive on this thread, frames for writers are staged, then handed to each writer
/// once per frame when the outermost scope ends. The hub opens one under a topic's lock, so the
/// batches of a topic reach the writers in publish order.
pub(crate) struct Scope(());

impl Scope {
    pub(crate) fn enter() -> Scope {
        STAGED.with(|s| s.borrow_mut().depth += 1);
        Scope(())
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        STAGED.with(|s| {
            let mut s = s.borrow_mut();
            s.depth -= 1;
            if s.depth == 0 {
                for (w, b) in s.batches.drain(..) {
                    w.hand(b);
                }
            }
        });
    }
}

/// Counts a write of a round; every [`YIELD_EVERY`] writes the writer lets its worker's other
/// tasks run (publishes that arrive meanwhile wait in the inbox until the round is done).
async fn paced(written: &mut usize, latency: &mut LatencyBatch) {
    *written += 1;
    if *written & (YIELD_EVERY - 1) == 0 {
        latency.stale();
        tokio::task::yield_now().await;
    }
}

/// [`Queue::prefetch`] of the connection at `i`, if there is one.
#[inline(always)]
fn prefetch_next(conns: &[Arc<Queue>], i: usize) {
    if let Some(q) = conns.get(i) {
        q.prefetch();
    }
}

/// Hands `frame` for `queue` to `writer`: staged with the other connections of the same frame
/// inside a [`Scope`], at once outside one.
pub(crate) fn stage(writer: &Arc<Writer>, frame: &Frame, queue: &Arc<Queue>) {
    let now = STAGED.with(|s| {
        let mut s = s.borrow_mut();
        if s.depth == 0 {
            return true;
        }
        // A fan-out stages its connections one after the other: the batch is one of the last.
        if let Some((_, b)) = s.batches.iter_mut().rev().find(|(w, b)| Arc::ptr_eq(w, writer) && b.frame.same(frame)) {
            b.conns.push(queue.clone());
            return false;
        }
        let mut conns = writer.list();
        conns.push(queue.clone());
        s.batches.push((writer.clone(), Batch { frame: frame.clone(), conns }));
        false
    });
    if now {
        writer.hand(Batch { frame: frame.clone(), conns: vec![queue.clone()] });
    }
}

/// Writes as much of `buf` as the socket takes now: how many bytes (0 when it would block or
/// failed: the connection's task then finds out). Straight to the socket, without tokio's
/// readiness bookkeeping (one memory access per delivery fewer): a write that would block
/// leaves tokio's readiness as it was, so the task's first write finds it out again and then
/// waits as usual. The `send` is rustix's system call, without the C library's wrapper (a
/// cancellation point, which costs two calls of its own around every delivery).
pub(crate) fn write_now(stream: &TcpStream, buf: &[u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match rustix::net::send(stream, &buf[done..], NO_SIGNAL) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    done
}

/// A peer gone is an error of the write, not a `SIGPIPE` (as tokio's own writes do).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd", target_os = "netbsd", target_os = "openbsd"))]
const NO_SIGNAL: rustix::net::SendFlags = rustix::net::SendFlags::NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd", target_os = "netbsd", target_os = "openbsd")))]
const NO_SIGNAL: rustix::net::SendFlags = rustix::net::SendFlags::empty();

/// Appends `data` as one HTTP/1.1 chunk (nothing for no bytes: an empty chunk ends the body).
pub(crate) fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.reserve(data.len() + 20);
    // The size in hex, without the formatting machinery (this runs once per delivery).
    let mut digits = [0u8; 16];
    let mut n = data.len();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{QueueSink, Receiver};
    use sse_core::topic::{SendResult, Sink};
    use tokio::io::AsyncReadExt;

    /// A connection written by a writer: its sink, its receiver, and the client's end.
    async fn written_connection(writers: &Writers, capacity: usize) -> (QueueSink, Receiver, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (sink, mut rx, _closer) = QueueSink::channel(capacity);
        drop(rx.use_writer(writers.assign(), server));
        rx.hand_back();
        (sink, rx, client)
    }

    async fn read_exactly(client: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        tokio::time::timeout(std::time::Duration::from_secs(5), client.read_exact(&mut got)).await.expect("in time").unwrap();
        got
    }

    #[tokio::test]
    async fn the_writer_writes_each_frame_once_in_order_with_or_without_a_scope() {
        let writers = Writers::new(Arc::new(Metrics::new()));
        let (mut a, _rx_a, mut client_a) = written_connection(&writers, 64).await;
        let (mut b, _rx_b, mut client_b) = written_connection(&writers, 64).await;
        let mut want = Vec::new();
        for i in 0..20u8 {
            let f: Frame = bytes::Bytes::from(vec![b'a' + i]).into();
            push_chunk(&mut want, &f.bytes);
            if i % 2 == 0 {
                let _s = Scope::enter();
                assert_eq!(a.try_send(&f), SendResult::Sent);
                assert_eq!(b.try_send(&f), SendResult::Sent);
            } else {
                assert_eq!(a.try_send(&f), SendResult::Sent);
                assert_eq!(b.try_send(&f), SendResult::Sent);
            }
        }
        assert_eq!(read_exactly(&mut client_a, want.len()).await, want);
        assert_eq!(read_exactly(&mut client_b, want.len()).await, want);
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_waits_for_the_task_and_the_bound_still_evicts() {
        let writers = Writers::new(Arc::new(Metrics::new()));
        let (mut sink, mut rx, mut client) = written_connection(&writers, 4).await;
        // The client reads nothing: the socket fills, then the queue, then the connection goes.
        let big: Frame = bytes::Bytes::from(vec![b'x'; 1 << 20]).into();
        let mut sent = 0;
        let result = loop {
            match sink.try_send(&big) {
                SendResult::Sent => sent += 1,
                other => break other,
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            assert!(sent < 1000, "never evicted");
        };
        assert_eq!(result, SendResult::Full);
        assert_eq!(rx.closer.reason(), Some(crate::sink::CloseReason::Evicted));
        let mut rest = Vec::new();
        assert!(rx.take_unsent(&mut rest), "the writer left the rest of a write to the task");
        assert!(rx.try_recv().is_ok(), "and queued what came after for it");
        let head = read_exactly(&mut client, 8).await;
        assert_eq!(&head, b"100000\r\n", "the bytes written start with the first chunk");
    }

    #[test]
    fn frames_become_chunks() {
        let mut out = Vec::new();
        push_chunk(&mut out, b"data: a\n\n");
        push_chunk(&mut out, b"");
        push_chunk(&mut out, &[b'x'; 300]);
        let want = [&b"9\r\ndata: a\n\n\r\n12c\r\n"[..], &[b'x'; 300], b"\r\n"].concat();
        assert_eq!(out, want, "an empty frame writes no chunk: it would end the body");
        for len in [1usize, 15, 16, 255, 4096, 65_535, 1 << 20] {
            let mut out = Vec::new();
            push_chunk(&mut out, &vec![b'y'; len]);
            assert!(out.starts_with(format!("{len:x}\r\n").as_bytes()), "{len}");
        }
    }
}
