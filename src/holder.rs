//! The client streams the Worker holds, so that topic objects can hibernate: every SSE client,
//! every admin tail and every WebSocket client of several topics. For each topic the Worker joins
//! the topic's object over an internal WebSocket ([`join`]); the object sends each frame already
//! encoded in the connection's format, and the Worker writes it to the client as it is, merging
//! the topics of a multi-topic connection in arrival order (each topic's own order is kept).
//! That per-frame path is `src/relay.js` ([`Relay`]): a frame goes from the socket's `message`
//! event to the client without entering the Worker's wasm (waking a wasm task per frame cost
//! 15-25 % more CPU per delivery on `wrangler dev`).
//!
//! The Worker also does what the object no longer can without staying awake: the SSE keepalive
//! every heartbeat, noticing a client that left (its stream is cancelled, or a write fails) and
//! a subscriber too slow to read (more than `QUEUE_CAPACITY` frames unread). Either way it ends
//! the internal sockets with the core's close code ([`Close`]), and each object's
//! `websocket_close` removes the connection (and logs and counts an eviction).

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{join_all, select, Either};
use futures_util::stream::StreamExt;
use js_sys::{Array, Function, Object, Reflect, Uint8Array};
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

#[wasm_bindgen(module = "/src/relay.js")]
extern "C" {
    /// Relays every message of `sockets` into the stream of `controller`; calls `on_end` once
    /// with the outcome that ended it, and returns the function that ends it from here.
    #[wasm_bindgen(js_name = relayToStream)]
    fn relay_to_stream(sockets: &Array, controller: &StreamController, on_end: &JsValue) -> Function;
    /// Relays every message of `sockets` to the client's WebSocket, as [`relay_to_stream`].
    #[wasm_bindgen(js_name = relayToSocket)]
    fn relay_to_socket(sockets: &Array, client: &JsValue, on_end: &JsValue) -> Function;
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

/// The outcome names of `src/relay.js`, and the close each stands for.
const OUTCOMES: [(&str, Close); 3] = [("full", Close::SlowConsumer), ("closed", Close::Normal), ("upstream", Close::Failed)];

/// What ended a relay (anything unknown: it failed).
fn ending(outcome: &str) -> Close {
    OUTCOMES.iter().find(|(name, _)| *name == outcome).map_or(Close::Failed, |&(_, close)| close)
}

/// The name `src/relay.js` gives `close` (what the Worker ends a relay with).
fn outcome_of(close: Close) -> &'static str {
    OUTCOMES.iter().find(|(_, c)| *c == close).map_or("upstream", |&(name, _)| name)
}

/// A relay of a held connection's internal sockets (`src/relay.js`).
struct Relay {
    /// Ends the relay from the Worker's side, with an outcome name.
    end: Function,
    /// The outcome that ended it, sent once.
    ended: oneshot::Receiver<String>,
}

impl Relay {
    /// Starts relaying `sockets` with `start` (given the sockets and the end callback).
    fn start(sockets: &[WebSocket], start: impl FnOnce(&Array, &JsValue) -> Function) -> Relay {
        let (tx, ended) = oneshot::channel();
        let on_end = Closure::once_into_js(move |outcome: String| {
            let _ = tx.send(outcome);
        });
        let list: Array = sockets.iter().map(|ws| JsValue::from(ws.as_ref().clone())).collect();
        Relay { end: start(&list, &on_end), ended }
    }

    /// Runs until the relay ends or `watch` (what the Worker itself watches: the client, the
    /// keepalives) ends it first; answers how it ended.
    async fn run(self, watch: impl Future<Output = Close>) -> Close {
        match select(self.ended, Box::pin(watch)).await {
            Either::Left((outcome, _)) => outcome.map_or(Close::Failed, |o| ending(&o)),
            Either::Right((close, ended)) => {
                // The first end wins: a frame that filled the stream meanwhile may have.
                let _ = self.end.call1(&JsValue::UNDEFINED, &JsValue::from_str(outcome_of(close)));
                ended.await.map_or(close, |o| ending(&o))
            }
        }
    }
}

/// A connection whose stream the Worker holds.
pub struct Held {
    pub env: Env,
    pub registry_shards: usize,
    pub conn_id: String,
    /// The topics it joined, one internal socket each.
    pub topics: Vec<String>,
    pub sockets: Vec<WebSocket>,
    /// When its subscriber token expires and the Worker closes it (milliseconds since the
    /// epoch; [`sse_core::request::Subscribe::closes_at_ms`]).
    pub closes_at_ms: Option<u64>,
}

/// Resolves at `at_ms` (milliseconds since the epoch); never for `None`.
async fn deadline(at_ms: Option<u64>) {
    match at_ms {
        Some(at) => Delay::from(Duration::from_millis(at.saturating_sub(http::now_ms()))).await,
        None => futures_util::future::pending().await,
    }
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
/// then every frame of the internal sockets (relayed by `src/relay.js`, never through the
/// Worker's wasm), and a keepalive every `heartbeat_ms`.
pub fn sse(held: Held, first: String, cfg: &Config) -> Result<Response, GatewayError> {
    let (mut sink, body, cancelled) = StreamSink::new(cfg.queue_capacity + 1).map_err(http::internal)?;
    let _ = sink.try_send(&first);
    let heartbeat = Duration::from_millis(cfg.heartbeat_ms);
    let relay = Relay::start(&held.sockets, |list, on_end| relay_to_stream(list, &sink.0, on_end));
    wasm_bindgen_futures::spawn_local(async move {
        let keepalive = Uint8Array::from(frame::KEEPALIVE.as_bytes());
        // What the Worker watches itself: the client leaving (its stream cancelled), the
        // keepalives (a write that fails, or finds the stream full) and the token's expiry.
        let expires = held.closes_at_ms;
        let watch = async {
            let mut gone = cancelled;
            let mut expired = Box::pin(deadline(expires));
            loop {
                match select(gone, select(expired, Box::pin(Delay::from(heartbeat)))).await {
                    Either::Left(_) => break Close::Normal,
                    Either::Right((Either::Left(_), _)) => {
                        // The last frame: come back with a fresh token.
                        let last = frame::encode_reconnect(sse_core::token::EXPIRED_REASON);
                        let _ = sink.send_chunk(&Uint8Array::from(last.as_bytes()));
                        break Close::Normal;
                    }
                    Either::Right((Either::Right((_, still_expiring)), still)) => {
                        gone = still;
                        expired = still_expiring;
                    }
                }
                if let Some(close) = Close::after_send(sink.send_chunk(&keepalive)) {
                    break close;
                }
            }
        };
        let end = relay.run(watch).await;
        held.finish(end);
        drop(sink);
    });
    Ok(http::sse(ResponseBuilder::new().stream(body)))
}

/// A WebSocket client of several topics: the Worker accepts it and relays each topic's
/// envelopes to it (`src/relay.js`). `first` is the opening message.
pub fn websocket(held: Held, first: String) -> Result<Response, GatewayError> {
    let pair = worker::WebSocketPair::new().map_err(http::internal)?;
    let (client, server) = (pair.client, pair.server);
    server.accept().map_err(http::internal)?;
    server.send_with_str(first).map_err(http::internal)?;
    let relay = Relay::start(&held.sockets, |list, on_end| relay_to_socket(list, server.as_ref(), on_end));
    wasm_bindgen_futures::spawn_local(async move {
        let Ok(client_events) = server.events() else {
            let end = relay.run(async { Close::Failed }).await;
            held.finish(end);
            return;
        };
        let expired = std::cell::Cell::new(false);
        let watch = async {
            let mut events = client_events;
            let mut expires = Box::pin(deadline(held.closes_at_ms));
            loop {
                match select(events.next(), expires).await {
                    // A subscriber only listens; `ping` gets `pong`, as the objects answer it.
                    Either::Left((Some(Ok(WebsocketEvent::Message(m))), still)) => {
                        if m.text().as_deref() == Some("ping") {
                            let _ = server.send_with_str("pong");
                        }
                        expires = still;
                    }
                    Either::Left(_) => break,
                    Either::Right(_) => {
                        // The last message: come back with a fresh token.
                        let _ = server.send_with_str(frame::encode_ws_reconnect(sse_core::token::EXPIRED_REASON));
                        expired.set(true);
                        break;
                    }
                }
            }
            Close::Normal
        };
        let end = relay.run(watch).await;
        held.finish(end);
        let (code, reason) = if expired.get() { sse_core::token::EXPIRED_CLOSE } else { (end.code(), end.reason()) };
        let _ = server.close(Some(code), Some(reason));
    });
    Response::from_websocket(client).map_err(http::internal)
}

/// Ends every internal socket of a connection with `end`.
fn finish(sockets: &[WebSocket], end: Close) {
    for ws in sockets {
        let _ = ws.close(Some(end.code()), Some(end.reason()));
    }
}
