//! The client streams the Worker holds, so that topic objects can hibernate: every SSE client,
//! every admin tail and every WebSocket client of several topics. For each topic the Worker joins
//! the topic's object over an internal WebSocket ([`join`]); the object sends each frame already
//! encoded in the connection's format, and the Worker writes it to the client as it is, merging
//! the topics of a multi-topic connection in arrival order (each topic's own order is kept).
//!
//! The Worker also does what the object no longer can without staying awake: the SSE keepalive
//! every heartbeat, noticing a client that left (its stream is cancelled, or a write fails) and
//! a subscriber too slow to read (more than `QUEUE_CAPACITY` frames unread). Either way it ends
//! the internal sockets with the core's close code ([`Close`]), and each object's
//! `websocket_close` removes the connection (and logs and counts an eviction).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use js_sys::{ArrayBuffer, Object, Reflect, Uint8Array};
use sse_core::frame;
use sse_core::protocol::answer::decode_error;
use sse_core::protocol::{Attach, Close, ObjectAnswer};
use sse_core::registry::RegistryUpdate;
use sse_core::topic::{SendResult, Sink};
use sse_core::{Config, GatewayError};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{Delay, Env, Headers, Method, Request, RequestInit, Response, ResponseBuilder, WebSocket, WebsocketEvent};

use crate::http;
use crate::stubs;

#[wasm_bindgen]
extern "C" {
    /// The controller of a `ReadableStream` built on an underlying source of ours.
    type StreamController;
    #[wasm_bindgen(method, catch)]
    fn enqueue(this: &StreamController, chunk: &Uint8Array) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn close(this: &StreamController) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, getter, js_name = desiredSize)]
    fn desired_size(this: &StreamController) -> Option<f64>;

    #[wasm_bindgen(js_name = ReadableStream)]
    type JsReadableStream;
    #[wasm_bindgen(constructor, js_class = "ReadableStream", catch)]
    fn new_with_source(source: &Object, strategy: &Object) -> std::result::Result<JsReadableStream, JsValue>;
}

/// A client's SSE stream: a JS `ReadableStream` (the response body) whose controller the Worker
/// keeps; a frame is enqueued straight into it. Its queue holds at most `capacity` unread frames.
struct StreamSink(StreamController);

impl StreamSink {
    /// A stream that holds up to `capacity` unread frames, its sink, and a receiver that
    /// resolves when the client's side cancels the stream (the client went away).
    fn new(capacity: usize) -> worker::Result<(StreamSink, worker::web_sys::ReadableStream, oneshot::Receiver<()>)> {
        let slot: Rc<RefCell<Option<JsValue>>> = Rc::default();
        let start = {
            let slot = slot.clone();
            Closure::once_into_js(move |controller: JsValue| {
                *slot.borrow_mut() = Some(controller);
            })
        };
        let (tx, rx) = oneshot::channel();
        let cancel = Closure::once_into_js(move |_reason: JsValue| {
            let _ = tx.send(());
        });
        let source = Object::new();
        Reflect::set(&source, &"start".into(), &start)?;
        Reflect::set(&source, &"cancel".into(), &cancel)?;
        let strategy = Object::new();
        Reflect::set(&strategy, &"highWaterMark".into(), &JsValue::from_f64(capacity as f64))?;
        // `start` runs inside the constructor.
        let stream = JsReadableStream::new_with_source(&source, &strategy)?;
        let controller = slot.borrow_mut().take().ok_or_else(|| worker::Error::RustError("ReadableStream did not call start".into()))?;
        Ok((StreamSink(controller.unchecked_into()), stream.unchecked_into(), rx))
    }
}

impl StreamSink {
    /// Enqueues a chunk as it is (a topic object's binary frame, or a keepalive made once).
    fn send_chunk(&mut self, chunk: &Uint8Array) -> SendResult {
        // Enqueuing fails once the stream is closed or cancelled (the client went away).
        if self.0.enqueue(chunk).is_err() {
            return SendResult::Closed;
        }
        // More than `capacity` frames unread: too slow.
        match self.0.desired_size() {
            Some(d) if d < 0.0 => SendResult::Full,
            Some(_) => SendResult::Sent,
            None => SendResult::Closed,
        }
    }
}

impl Sink for StreamSink {
    type Frame = String;

    fn try_send(&mut self, frame: &String) -> SendResult {
        self.send_chunk(&Uint8Array::from(frame.as_bytes()))
    }
}

impl Drop for StreamSink {
    /// The client's stream ends (after the frames already queued) with its holder.
    fn drop(&mut self) {
        let _ = self.0.close();
    }
}

/// Joins each attach's topic object over an internal WebSocket; all or none (a topic that
/// refuses, e.g. 503 at its connection limit, closes the sockets already opened).
pub async fn join(env: &Env, cfg: &Config, attaches: &[Attach]) -> Result<Vec<WebSocket>, GatewayError> {
    let calls = attaches.iter().map(|a| async move {
        attach_call(env, cfg, a)
            .await?
            .websocket()
            .ok_or_else(|| GatewayError::Internal("the topic object answered 101 without a socket".into()))
    });
    let mut sockets = Vec::new();
    let mut failure = None;
    for result in join_all(calls).await {
        match result {
            Ok(ws) => sockets.push(ws),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        None => Ok(sockets),
        Some(e) => {
            for ws in &sockets {
                let _ = ws.accept();
                let _ = ws.close(Some(Close::Normal.code()), Some(Close::Normal.reason()));
            }
            Err(e)
        }
    }
}

/// Attaches `a` at the topic's object, or at the shard it sends the subscriber to (a hot topic,
/// [`sse_core::protocol::shards`]): the `101` answer with the socket, or the error.
pub async fn attach_call(env: &Env, cfg: &Config, a: &Attach) -> Result<Response, GatewayError> {
    let mut a = a.clone();
    // The home names a shard; a shard always accepts (or refuses): two calls at most.
    for _ in 0..2 {
        let mut resp =
            stubs::attach_stub(env, &a.topic, a.shard)?.fetch_with_request(upgrade_request(&a)?).await.map_err(http::internal)?;
        if resp.status_code() == 101 {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        match (resp.status_code(), ObjectAnswer::decode(&text)) {
            (200, Ok(ObjectAnswer::Shard(i))) if a.shard == 0 && i > 0 => a.shard = i,
            (status, _) => return Err(decode_error(status, &text, cfg.max_body_bytes)),
        }
    }
    Err(GatewayError::Internal("a topic shard sent the subscriber on again".into()))
}

/// The internal request that attaches `a` over a WebSocket.
pub fn upgrade_request(a: &Attach) -> Result<Request, GatewayError> {
    let headers = Headers::new();
    headers.set("upgrade", "websocket").map_err(http::internal)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    Request::new_with_init(&stubs::internal_url(&a.encode()), &init).map_err(http::internal)
}

/// What happened next on a held connection.
enum Step {
    Frame(String),
    /// A frame sent as binary: written to the client's stream without being read.
    Chunk(Uint8Array),
    /// A topic object closed its socket (it was reset, or evicted the connection).
    UpstreamEnded,
    Keepalive,
    ClientGone,
}

/// The frames of the internal sockets, merged, then `UpstreamEnded` when any of them ends.
fn upstream_steps<'a>(events: Vec<worker::EventStream<'a>>) -> stream::LocalBoxStream<'a, Step> {
    let per_socket = events.into_iter().map(|s| {
        s.map(|e| match e {
            Ok(WebsocketEvent::Message(m)) => {
                let data = m.as_ref().data();
                match data.dyn_ref::<ArrayBuffer>() {
                    Some(buf) => Step::Chunk(Uint8Array::new(buf)),
                    None => m.text().map_or(Step::UpstreamEnded, Step::Frame),
                }
            }
            Ok(WebsocketEvent::Close(_)) | Err(_) => Step::UpstreamEnded,
        })
        .chain(stream::once(async { Step::UpstreamEnded }))
        .boxed_local()
    });
    stream::select_all(per_socket).boxed_local()
}

/// A connection whose stream the Worker holds.
pub struct Held {
    pub env: Env,
    pub registry_shards: usize,
    pub conn_id: String,
    /// The topics it joined, one internal socket each.
    pub topics: Vec<String>,
    pub sockets: Vec<WebSocket>,
}

impl Held {
    /// Ends every internal socket with `end`. When a topic object ended one first (it was reset,
    /// and will not report the connection gone), the registry is told here.
    fn finish(&self, end: Close) {
        finish(&self.sockets, end);
        if end != Close::Failed {
            return;
        }
        let updates: Vec<RegistryUpdate> =
            self.topics.iter().map(|t| RegistryUpdate::Detach { topic: t.clone(), id: self.conn_id.clone() }).collect();
        let (env, shards) = (self.env.clone(), self.registry_shards);
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = stubs::report(&env, shards, &updates).await {
                http::log(&serde_json::json!({"level": "warn", "msg": "registry update failed", "error": e}).to_string());
            }
        });
    }
}

/// The SSE response of a client whose stream the Worker holds: `first` (the opening block),
/// then every frame of the internal sockets, and a keepalive every `heartbeat_ms`.
pub fn sse(held: Held, first: String, cfg: &Config) -> Result<Response, GatewayError> {
    let (mut sink, body, cancelled) = StreamSink::new(cfg.queue_capacity + 1).map_err(http::internal)?;
    let _ = sink.try_send(&first);
    let heartbeat = Duration::from_millis(cfg.heartbeat_ms);
    wasm_bindgen_futures::spawn_local(async move {
        let Some(events) = listen(&held.sockets) else { return };
        let ticks = stream::unfold((), move |()| async move {
            Delay::from(heartbeat).await;
            Some((Step::Keepalive, ()))
        });
        let gone = stream::once(async move {
            let _ = cancelled.await;
            Step::ClientGone
        });
        let mut steps = stream::select(stream::select(upstream_steps(events), ticks.boxed_local()), gone.boxed_local());
        let keepalive = Uint8Array::from(frame::KEEPALIVE.as_bytes());
        let end = loop {
            let sent = match steps.next().await {
                Some(Step::Frame(f)) => sink.try_send(&f),
                Some(Step::Chunk(c)) => sink.send_chunk(&c),
                Some(Step::Keepalive) => sink.send_chunk(&keepalive),
                Some(Step::ClientGone) => break Close::Normal,
                Some(Step::UpstreamEnded) | None => break Close::Failed,
            };
            match sent {
                SendResult::Sent => {}
                SendResult::Full => break Close::SlowConsumer,
                SendResult::Closed => break Close::Normal,
            }
        };
        drop(steps);
        held.finish(end);
        drop(sink);
    });
    Ok(http::sse(ResponseBuilder::new().stream(body)))
}

/// A WebSocket client of several topics: the Worker accepts it and relays each topic's
/// envelopes to it. `first` is the opening message.
pub fn websocket(held: Held, first: String) -> Result<Response, GatewayError> {
    let pair = worker::WebSocketPair::new().map_err(http::internal)?;
    let (client, server) = (pair.client, pair.server);
    server.accept().map_err(http::internal)?;
    server.send_with_str(first).map_err(http::internal)?;
    wasm_bindgen_futures::spawn_local(async move {
        let Some(events) = listen(&held.sockets) else { return };
        let Ok(client_events) = server.events() else { return };
        let client_steps = client_events.filter_map(|e| {
            futures_util::future::ready(match e {
                // A subscriber only listens; `ping` gets `pong`, as the objects answer it.
                Ok(WebsocketEvent::Message(m)) => {
                    if m.text().as_deref() == Some("ping") {
                        let _ = server.send_with_str("pong");
                    }
                    None
                }
                _ => Some(Step::ClientGone),
            })
        });
        let mut steps = stream::select(upstream_steps(events), client_steps.boxed_local());
        let end = loop {
            match steps.next().await {
                Some(Step::Frame(f)) => {
                    if server.send_with_str(&f).is_err() {
                        break Close::Normal;
                    }
                }
                Some(Step::ClientGone) => break Close::Normal,
                Some(Step::UpstreamEnded) | None => break Close::Failed,
                // Internal sockets of a WebSocket connection carry text only.
                Some(Step::Keepalive | Step::Chunk(_)) => {}
            }
        };
        drop(steps);
        held.finish(end);
        let _ = server.close(Some(end.code()), Some(end.reason()));
    });
    Response::from_websocket(client).map_err(http::internal)
}

/// Starts listening on the internal sockets (the listeners are added before `accept`, so no
/// frame the object sent first is missed).
fn listen(sockets: &[WebSocket]) -> Option<Vec<worker::EventStream<'_>>> {
    let mut events = Vec::with_capacity(sockets.len());
    for ws in sockets {
        match ws.events() {
            Ok(e) => events.push(e),
            Err(_) => {
                finish(sockets, Close::Failed);
                return None;
            }
        }
        let _ = ws.accept();
    }
    Some(events)
}

/// Ends every internal socket of a connection with `end`.
fn finish(sockets: &[WebSocket], end: Close) {
    for ws in sockets {
        let _ = ws.close(Some(end.code()), Some(end.reason()));
    }
}
