//! Between nodes, over HTTP/2 (cleartext, one multiplexed connection per peer), authenticated by
//! the cluster secret:
//!
//! - `/_cluster/stream`: events for the nodes that hold their topics. Each peer has one lane
//!   with one connection to it (an HTTP/1.1 request upgraded to [`STREAM_PROTOCOL`], then binary
//!   frames both ways): events queue in the lane in publish order, and the lane sends whatever
//!   is waiting as one [`DeliverBatch`] frame, one in flight at a time, so under load many
//!   events share one frame and a topic's events reach the peer in order. The peer answers with
//!   a [`BatchAnswer`] frame: how many of its connections took each.
//! - `/_cluster/placement`: a node's [`PlacementNotice`] (the placement cache, `cache.rs`).
//! - `/_cluster/dropped`: tells a peer's tails that an event was dropped.
//!
//! (Why HTTP and not Redis pub/sub: docs/architecture.md, "How events travel between nodes".)

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::join_all;
use futures_util::task::AtomicWaker;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sse_core::frame::Event;
use sse_core::protocol::answer::decode_error;
use sse_core::protocol::cluster::{
    frame_with, stream_answer, stream_request, take_frame, BatchAnswer, DeliverBatch, PlacementNotice, KEY_HEADER,
};
use sse_core::protocol::{DroppedNotice, TopicResult};
use sse_core::{auth, GatewayError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::cache::Placement;
use crate::hub::Hub;
use crate::objects::{delivered, BoxFuture, HeaderLookup, InternalEndpoint, Peer, PendingStream, StreamIo, UnreadBody};

/// The calls, under `/_cluster/`.
const PLACEMENT: &str = "placement";
const DROPPED: &str = "dropped";

/// At most this many events, and about this much data, in one batch.
const BATCH_EVENTS: usize = 512;
const BATCH_BYTES: usize = 4 << 20;
/// A lane checks a frame's deadline this many times per `FORWARD_TIMEOUT_MS`.
const DEADLINE_TICKS: u32 = 10;
/// How many times a lane lets the runtime run before it sends, while each time brings more.
const GATHER_ROUNDS: usize = 8;
/// A receiving stream keeps its events' room between batches up to this much data in all.
const KEEP_DATA_BYTES: usize = 1 << 20;
/// The largest frame (or request body) a node accepts from another: a full batch.
pub const INTERNAL_MAX_BODY: usize = 16 << 20;

struct Job {
    event: Arc<(Event, Option<u64>)>,
    done: Arc<Tally>,
    /// Whether `done` has this job's result yet (a job dropped unanswered counts as dropped).
    told: bool,
}

impl Job {
    fn answer(mut self, r: TopicResult) {
        self.told = true;
        self.done.add(r);
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.told {
            self.done.add(TopicResult::Dropped);
        }
    }
}

/// One publish's answers from its peers' lanes, added up; its task is woken once, by the last.
struct Tally {
    left: AtomicUsize,
    sum: Mutex<TopicResult>,
    waker: AtomicWaker,
}

impl Tally {
    fn add(&self, r: TopicResult) {
        {
            let mut sum = self.sum.lock().unwrap_or_else(|p| p.into_inner());
            *sum = std::mem::replace(&mut *sum, TopicResult::Dropped).merge(r);
        }
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.waker.wake();
        }
    }

    async fn all(&self) -> TopicResult {
        std::future::poll_fn(|cx| {
            if self.left.load(Ordering::Acquire) == 0 {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.left.load(Ordering::Acquire) == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        std::mem::replace(&mut *self.sum.lock().unwrap_or_else(|p| p.into_inner()), TopicResult::Dropped)
    }
}

#[derive(Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<HttpConnector, Full<Bytes>>,
    secret: Arc<str>,
    timeout: Duration,
    /// The body limit every node applies to publishes (to read a peer's `413` back).
    max_body_bytes: usize,
    /// One lane per peer address.
    lanes: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
}

impl Forwarder {
    pub fn new(secret: &str, timeout_ms: u64, max_body_bytes: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(timeout_ms)));
        let client = Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
        Self {
            inner: Arc::new(Inner {
                client,
                secret: secret.into(),
                timeout: Duration::from_millis(timeout_ms),
                max_body_bytes,
                lanes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Hands `ev` to every peer's lane; what their connections took, added up. A peer that
    /// cannot be reached counts as having delivered nothing (logged). `seq`: the event's
    /// per-topic retention sequence, for a retained topic.
    pub async fn deliver_all(&self, peers: &[Peer], ev: &Event, seq: Option<u64>) -> TopicResult {
        if peers.is_empty() {
            return TopicResult::Dropped;
        }
        let event = Arc::new((ev.clone(), seq));
        let done =
            Arc::new(Tally { left: AtomicUsize::new(peers.len()), sum: Mutex::new(TopicResult::Dropped), waker: AtomicWaker::new() });
        for p in peers {
            // A lane that is gone drops the job: it counts as dropped.
            let _ = self.lane(p).send(Job { event: event.clone(), done: done.clone(), told: false });
        }
        done.all().await
    }

    fn lane(&self, peer: &Peer) -> mpsc::UnboundedSender<Job> {
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = lanes.get(&*peer.addr).filter(|l| !l.is_closed()) {
            return l.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(self.clone().run_lane(peer.clone(), rx));
        lanes.insert(peer.addr.to_string(), tx.clone());
        tx
    }

    /// Sends what waits for `peer`, one batch at a time, until the forwarder is dropped.
    async fn run_lane(self, peer: Peer, mut rx: mpsc::UnboundedReceiver<Job>) {
        let mut jobs = Vec::with_capacity(64);
        let mut stream: Option<Stream> = None;
        let mut out = Vec::new();
        let mut tick = tokio::time::interval((self.inner.timeout / DEADLINE_TICKS).max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while rx.recv_many(&mut jobs, BATCH_EVENTS).await > 0 {
            // Let the publishes that are ready on this thread queue theirs too, so they share
            // this frame (on a busy node, otherwise, most frames would carry one event).
            // Each yield lets the runtime poll its sockets once; go on while that brought more.
            for _ in 0..GATHER_ROUNDS {
                tokio::task::yield_now().await;
                let before = jobs.len();
                while jobs.len() < BATCH_EVENTS {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                if jobs.len() == before || jobs.len() >= BATCH_EVENTS {
                    break;
                }
            }
            while !jobs.is_empty() {
                let mut bytes = 0;
                let n = jobs
                    .iter()
                    .position(|j| {
                        bytes += j.event.0.data.len();
                        bytes > BATCH_BYTES
                    })
                    .unwrap_or(jobs.len())
                    .max(1);
                let rest = jobs.split_off(n);
                let batch = std::mem::replace(&mut jobs, rest);
                out.clear();
                frame_with(&mut out, |o| DeliverBatch::write(batch.iter().map(|j| (&j.event.0, j.event.1)), o));
                let answer = {
                    // The deadline is checked at the lane's ticks (a timer armed per tick, not
                    // per frame).
                    let started = Instant::now();
                    let exchange = self.exchange(&peer, &mut stream, &out, batch.len());
                    tokio::pin!(exchange);
                    loop {
                        tokio::select! {
                            biased;
                            r = &mut exchange => break r,
                            _ = tick.tick() => {
                                if started.elapsed() >= self.inner.timeout {
                                    break Err(format!("no answer within {:?}", self.inner.timeout));
                                }
                            }
                        }
                    }
                };
                match answer {
                    Ok(results) => {
                        for (job, r) in batch.into_iter().zip(results) {
                            job.answer(r);
                        }
                    }
                    Err(e) => {
                        // The connection's state is unknown: the next batch opens a new one.
                        stream = None;
                        let first = &batch[0].event.0;
                        tracing::warn!(peer = %peer.node, addr = %peer.addr, events = batch.len(), topic = %first.topic, id = %first.id, error = %e, "forwarding events failed");
                        for job in batch {
                            job.answer(TopicResult::Dropped);
                        }
                    }
                }
            }
        }
    }

    /// Sends one framed batch on the lane's stream (opened if needed) and reads its answer.
    async fn exchange(&self, peer: &Peer, stream: &mut Option<Stream>, frame: &[u8], n: usize) -> Result<Vec<TopicResult>, String> {
        if stream.is_none() {
            *stream = Some(Stream::open(&peer.addr, &self.inner.secret).await?);
        }
        let s = stream.as_mut().expect("opened");
        s.io.write_all(frame).await.map_err(|e| e.to_string())?;
        let payload = s.read_frame().await?;
        BatchAnswer::read(&payload, n).map_err(|e| e.to_string())
    }

    /// Posts a call; the peer's `200` body, or why there is none.
    async fn post(&self, addr: &str, call: &str, body: Bytes) -> Result<String, String> {
        self.post_with(addr, call, Vec::new(), body).await
    }

    async fn post_with(&self, addr: &str, call: &str, headers: Vec<(&'static str, String)>, body: Bytes) -> Result<String, String> {
        let inner = &self.inner;
        let mut req = hyper::Request::post(format!("http://{addr}/_cluster/{call}")).header(KEY_HEADER, &*inner.secret);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let call = async {
            let resp = inner.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if !status.is_success() {
                return Err(decode_error(status.as_u16(), &text, inner.max_body_bytes).to_string());
            }
            Ok(text)
        };
        tokio::time::timeout(inner.timeout, call).await.map_err(|_| format!("no answer within {:?}", inner.timeout))?
    }

    /// Sends `notice` to every peer at once and waits for their answers (or the forward
    /// timeout). Those that could not take it catch up at their next placement sync.
    pub async fn announce(&self, peers: &[(String, String)], notice: &PlacementNotice) {
        let body = Bytes::from(notice.encode());
        let calls = peers.iter().map(|(id, addr)| {
            let body = body.clone();
            async move {
                if let Err(e) = self.post(addr, PLACEMENT, body).await {
                    tracing::warn!(peer = %id, addr = %addr, gen = notice.gen, error = %e, "a peer did not take this node's placement notice; it catches up at its next sync");
                }
            }
        });
        join_all(calls).await;
    }

    /// Tells `peer`'s tails of a topic that an event was dropped.
    pub async fn dropped(&self, peer: &Peer, notice: &DroppedNotice) {
        if let Err(e) = self.post_with(&peer.addr, DROPPED, notice.headers(), Bytes::new()).await {
            tracing::debug!(peer = %peer.node, error = %e, "telling a peer's tails of a drop failed");
        }
    }
}

/// The receiving side of the calls above.
pub struct Endpoint {
    pub hub: Arc<Hub>,
    pub placement: Arc<Placement>,
    pub secret: String,
}

impl Endpoint {
    /// Every call must present the cluster secret.
    fn check(&self, header: HeaderLookup<'_>) -> Result<(), GatewayError> {
        let presented = header(KEY_HEADER).unwrap_or_default();
        if auth::ct_eq(self.secret.as_bytes(), presented.as_bytes()) {
            Ok(())
        } else {
            Err(GatewayError::Unauthorized)
        }
    }

    async fn call(&self, call: &str, header: HeaderLookup<'_>, body: UnreadBody) -> Result<String, GatewayError> {
        self.check(header)?;
        match call {
            PLACEMENT => {
                let notice = PlacementNotice::decode(&body.await?)?;
                self.placement.apply_notice(notice);
                Ok("{}".into())
            }
            DROPPED => {
                let n = DroppedNotice::decode(header, crate::clock::now_ms())?;
                self.hub.notify_dropped(&n.topic, &n.id, n.ts);
                Ok("{}".into())
            }
            _ => Err(GatewayError::NotFound),
        }
    }
}

impl InternalEndpoint for Endpoint {
    fn handle<'a>(&'a self, call: &'a str, header: HeaderLookup<'a>, body: UnreadBody) -> BoxFuture<'a, Result<String, GatewayError>> {
        Box::pin(self.call(call, header, body))
    }

    fn stream(&self, header: HeaderLookup<'_>, io: PendingStream) -> Result<BoxFuture<'static, ()>, GatewayError> {
        self.check(header)?;
        let hub = self.hub.clone();
        Ok(Box::pin(async move {
            if let Some(io) = io.await {
                if let Err(e) = serve(hub, io).await {
                    tracing::warn!(error = %e, "a node-to-node stream ended with an error");
                }
            }
        }))
    }
}

/// The receiving side of a lane: each batch frame delivered here, in order, and answered.
async fn serve(hub: Arc<Hub>, mut io: Box<dyn StreamIo>) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(16 << 10);
    let mut out = Vec::new();
    let mut delivered_here = Vec::new();
    let mut events = Vec::new();
    loop {
        while let Some((range, used)) = take_frame(&buf, INTERNAL_MAX_BODY).map_err(|e| e.to_string())? {
            let n = DeliverBatch::read_into(&buf[range], &mut events).map_err(|e| e.to_string())?;
            buf.advance(used);
            delivered_here.clear();
            delivered_here.extend(events[..n].iter().map(|(ev, seq)| delivered(&hub.deliver(ev, *seq))));
            frame_with(&mut out, |o| BatchAnswer::write(&delivered_here, o));
            if events.iter().map(|(e, _)| e.data.capacity()).sum::<usize>() > KEEP_DATA_BYTES {
                // Large events' room is not kept for the next batches.
                events.clear();
            }
        }
        if !out.is_empty() {
            io.write_all(&out).await.map_err(|e| e.to_string())?;
            out.clear();
        }
        if io.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Ok(());
        }
    }
}

/// The sending side's connection to a peer.
struct Stream {
    io: TcpStream,
    buf: BytesMut,
}

impl Stream {
    /// Connects and upgrades `POST /_cluster/stream`.
    async fn open(addr: &str, secret: &str) -> Result<Stream, String> {
        let io = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        io.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut s = Stream { io, buf: BytesMut::with_capacity(4 << 10) };
        s.io.write_all(stream_request(addr, secret).as_bytes()).await.map_err(|e| e.to_string())?;
        let end = loop {
            if let Some(end) = stream_answer(&s.buf)? {
                break end;
            }
            if s.buf.len() > 16 << 10 || s.io.read_buf(&mut s.buf).await.map_err(|e| e.to_string())? == 0 {
                return Err("the peer closed the stream's upgrade".into());
            }
        };
        s.buf.advance(end);
        Ok(s)
    }

    async fn read_frame(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some((range, used)) = take_frame(&self.buf, INTERNAL_MAX_BODY).map_err(|e| e.to_string())? {
                let payload = self.buf[range].to_vec();
                self.buf.advance(used);
                return Ok(payload);
            }
            if self.io.read_buf(&mut self.buf).await.map_err(|e| e.to_string())? == 0 {
                return Err("the peer closed the stream".into());
            }
        }
    }
}
