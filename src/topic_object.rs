//! `TopicObject`: one Durable Object per topic, built to hibernate. Every connection it has is a
//! WebSocket it accepted through the Hibernation API (`accept_websocket_with_tags`), with what it
//! must know of the connection in the socket's attachment: the subscriber's own WebSocket (a
//! WebSocket client of one topic), or an internal socket from the Worker, which holds the
//! client's stream (SSE clients, admin tails, WebSocket clients of several topics) and writes the
//! frames this object sends, already encoded, to it.
//!
//! Between events the object holds no request, no stream and no recurring alarm, so the runtime
//! may evict it from memory; the sockets stay open. When an event wakes it (a publish, an attach,
//! a socket closing) it rebuilds its connections from `get_websockets()`. Keepalives come from
//! whoever holds the stream (the Worker for SSE; the runtime answers `ping` with `pong` on a
//! client's WebSocket without waking the object). A socket that closes reaches
//! `websocket_close`, which removes the connection; the last one leaving forgets the topic.
//!
//! A topic that `RETENTION` names also keeps its recent events in this object's SQLite storage
//! (table `replay_events`, trimmed by count and age), and replays them to a subscriber that
//! attaches with a last event id. A Durable Object runs one event at a time and the storage
//! calls are synchronous, so the snapshot of the table, the frames sent on the new socket and
//! its attachment happen with no publish in between: no gap, no duplicate.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use futures_util::future::join_all;

use js_sys::{ArrayBuffer, Uint8Array};
use serde_json::json;
use sse_core::frame::{self, Event, Format};
use sse_core::metrics::Counts;
use sse_core::protocol::conn::{Removals, Resumer};
use sse_core::protocol::shards::{self, Fill, ShardReport, ShardSet};
use sse_core::protocol::{drop_rule, Attach, Close, Deliver, Holder, ObjectAnswer, ProbeRequest, SocketAttachment, TopicResult};
use sse_core::registry::{ConnSummary, RegistryUpdate};
use sse_core::replay::{Retained, Window};
use sse_core::request::Query;
use sse_core::topic::{Outcome, Removed, SendResult, Sink, TopicState, Transport};
use sse_core::{Config, GatewayError};
use worker::durable::WebSocketIncomingMessage;
use worker::worker_sys::WebSocketRequestResponsePair;
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, SqlStorageValue, State, Storage, Stub, WebSocket, WebSocketPair,
};

use crate::body;
use crate::http::{self, header};
use crate::router;
use crate::stubs;

/// A frame for every connection of one format: its text, and the binary copy that internal
/// sockets get, made once per publish in JS memory and handed to each of them as is (the runtime
/// sends a buffer without copying it; nothing ever writes to it).
pub struct SocketFrame {
    text: String,
    bytes: OnceCell<ArrayBuffer>,
}

impl From<String> for SocketFrame {
    fn from(text: String) -> Self {
        SocketFrame { text, bytes: OnceCell::new() }
    }
}

/// A connection's socket. A frame is one message: binary on an internal socket whose holder
/// writes it to an SSE stream as is, text on a subscriber's own WebSocket (and on an internal
/// socket of a multi-topic WebSocket, whose holder relays text). Sending never waits; a send
/// that fails means the socket is gone.
pub struct SocketSink {
    ws: WebSocket,
    binary: bool,
}

impl SocketSink {
    fn new(ws: WebSocket, holder: Holder, format: Format) -> Self {
        SocketSink { ws, binary: holder.sends_binary(format) }
    }
}

impl Sink for SocketSink {
    type Frame = SocketFrame;

    fn try_send(&mut self, frame: &SocketFrame) -> SendResult {
        let sent = if self.binary {
            let bytes = frame.bytes.get_or_init(|| Uint8Array::from(frame.text.as_bytes()).buffer());
            self.ws.as_ref().send_with_array_buffer(bytes).is_ok()
        } else {
            self.ws.send_with_str(&frame.text).is_ok()
        };
        if sent {
            SendResult::Sent
        } else {
            SendResult::Closed
        }
    }
}

#[durable_object]
pub struct TopicObject {
    state: State,
    env: Env,
    /// The connections: rebuilt from the accepted sockets the first time this start needs them.
    topic: RefCell<Option<TopicState<SocketSink>>>,
    rebuilt: Cell<bool>,
    /// Whether the replay tables exist (created on first use).
    tables: Cell<bool>,
    /// What happened since the last report (publishes, deliveries, drops, evictions, replayed):
    /// sent to the registry by a one-shot alarm, then reset.
    counts: Cell<Counts>,
    alarm_set: Cell<bool>,
    /// Registry updates whose report failed: sent again by the alarm.
    pending: Rc<RefCell<Vec<RegistryUpdate>>>,
    /// When this start of the object began.
    started: u64,
    /// Whether this start was counted as a wake (only an object with connections counts one: the
    /// drop path writes nothing).
    wake_counted: Cell<bool>,
    /// This start's wake (number, time), until it has been reported.
    woke: Cell<Option<(u64, u64)>>,
    /// Which of the topic's objects this is: 0 = the topic's own (its home), `i` = shard `i`
    /// (learned from the attach, or from the sockets' attachments after a wake).
    shard: Cell<u32>,
    /// The home's shards (loaded from storage on first use).
    shards: RefCell<Option<ShardSet>>,
    /// The home's stubs of its shards, kept so that forwards to one shard stay in order.
    shard_stubs: RefCell<BTreeMap<u32, Rc<Stub>>>,
}

impl DurableObject for TopicObject {
    fn new(state: State, env: Env) -> Self {
        // A `ping` from a subscriber's WebSocket is answered by the runtime, without waking us.
        if let Ok(pair) = WebSocketRequestResponsePair::new("ping", "pong") {
            state.set_websocket_auto_response(&pair);
        }
        Self {
            started: http::now_ms(),
            wake_counted: Cell::new(false),
            state,
            env,
            topic: RefCell::new(None),
            rebuilt: Cell::new(false),
            tables: Cell::new(false),
            counts: Cell::new(Counts::default()),
            alarm_set: Cell::new(false),
            pending: Rc::default(),
            woke: Cell::new(None),
            shard: Cell::new(0),
            shards: RefCell::new(None),
            shard_stubs: RefCell::new(BTreeMap::new()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let result = match self.config() {
            Ok(cfg) => self.route(req, &cfg).await,
            Err(e) => Err(e),
        };
        Ok(result.unwrap_or_else(|e| http::error(&e)))
    }

    /// One-shot: reports the counts and any update whose report failed. Never re-armed while
    /// there is nothing to report, so an idle object has no alarm.
    async fn alarm(&self) -> Result<Response> {
        self.alarm_set.set(false);
        // Normally this start's own alarm; after a restart, the connections first.
        if let Ok(cfg) = self.config() {
            self.rebuild(&cfg);
        }
        let counts = self.counts.take();
        let mut updates: Vec<RegistryUpdate> = self.pending.borrow_mut().drain(..).collect();
        if !counts.is_zero() {
            let topic = self.topic_name().unwrap_or_default();
            updates.push(RegistryUpdate::Counts { topic, counts });
        }
        self.report(updates);
        Response::empty()
    }

    async fn websocket_message(&self, _ws: WebSocket, _message: WebSocketIncomingMessage) -> Result<()> {
        // Subscribers only listen; `ping` is answered by the runtime's auto-response.
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, _was_clean: bool) -> Result<()> {
        // Complete the closing handshake (the peer's close frame is answered).
        let _ = ws.close(Some(1000), Some("closed"));
        self.socket_gone(&ws, Close::from_code(u16::try_from(code).unwrap_or(1000))).await;
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.socket_gone(&ws, Close::Failed).await;
        Ok(())
    }
}

/// Adds `n` to the counter `key` of the object's storage (`wakes`, `accepted`): one row written,
/// none when `n` is 0 (then the counter is only read; 0 when there is none yet).
fn add_to_counter(state: &State, key: &str, n: u64) -> Result<u64> {
    let sql = state.storage().sql();
    if n > 0 {
        sql.exec("CREATE TABLE IF NOT EXISTS object_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)", None)?;
        sql.exec(
            "INSERT INTO object_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = v + excluded.v",
            vec![key.into(), SqlStorageValue::from(n as i64)],
        )?;
    }
    #[derive(serde::Deserialize)]
    struct V {
        v: i64,
    }
    // Reading before the table exists fails: nothing counted yet.
    let rows = sql.exec("SELECT v FROM object_meta WHERE k = ?", vec![key.into()]).and_then(|c| c.to_array::<V>()).unwrap_or_default();
    Ok(rows.first().map_or(0, |r| r.v.max(0) as u64))
}

/// What the object keeps with a socket.
fn attachment(ws: &WebSocket) -> Option<SocketAttachment> {
    ws.deserialize_attachment::<String>().ok().flatten().and_then(|t| SocketAttachment::decode(&t).ok())
}

impl TopicObject {
    /// The isolate's configuration (read once, `http::config`).
    fn config(&self) -> std::result::Result<std::rc::Rc<Config>, GatewayError> {
        http::config(&self.env)
    }

    async fn route(&self, req: Request, cfg: &Config) -> std::result::Result<Response, GatewayError> {
        let url = req.url().map_err(|_| GatewayError::InvalidRequest("bad url".into()))?;
        let query = Query::parse(url.query().unwrap_or(""))?;
        self.rebuild(cfg);
        match (req.method(), url.path()) {
            (Method::Get, Attach::PATH) => self.attach(&Attach::decode(&query, cfg.max_topics)?, cfg),
            (Method::Post, "/publish") => self.publish(req, cfg).await,
            (Method::Get, ShardReport::PATH) => {
                let r = ShardReport::decode(&query)?;
                self.with_shards(|set| set.report(r)).map_err(http::internal)?;
                Ok(http::json(200, "{}".into()))
            }
            (Method::Get, ProbeRequest::PATH) => {
                let probe = ProbeRequest::decode(&query)?;
                let live = drop_rule::takes(self.is_live() || self.shards_live(), cfg.retention.window(&probe.topic).is_some());
                if !live {
                    self.dropped(&probe.id);
                    self.count(cfg, |c| c.published(TopicResult::Dropped)).await;
                }
                Ok(answer(ObjectAnswer::Live(live)))
            }
            (Method::Post, Deliver::PATH) => {
                // From the topic's own object to one of its shards (which may have restarted
                // without a socket to learn its index from).
                if let Some(i) = query.get("shard").and_then(|v| v.parse::<u32>().ok()) {
                    self.shard.set(i);
                }
                self.deliver(req, cfg).await
            }
            _ => Err(GatewayError::NotFound),
        }
    }

    /// After a wake, the connections back from the sockets' attachments (nothing to do on the
    /// object's first start, or once done).
    fn rebuild(&self, cfg: &Config) {
        if self.rebuilt.replace(true) {
            return;
        }
        let mut slot = self.topic.borrow_mut();
        for ws in self.state.get_websockets() {
            let Some(a) = attachment(&ws) else {
                let _ = ws.close(Some(Close::Failed.code()), Some("no attachment"));
                continue;
            };
            let state = slot.get_or_insert_with(|| TopicState::new(a.topic.clone(), cfg.max_connections_per_topic));
            self.shard.set(a.shard);
            // Accepted before: the connection limit was checked then.
            let sink = SocketSink::new(ws, a.holder, a.conn.format);
            let _ = state.attach(a.conn, sink);
        }
        if slot.is_some() {
            self.note_wake();
        }
    }

    /// Counts this start as a wake, once, when it has connections (kept in storage).
    fn note_wake(&self) {
        if !self.wake_counted.replace(true) {
            if let Ok(n) = add_to_counter(&self.state, "wakes", 1) {
                self.woke.set(Some((n, self.started)));
            }
        }
    }

    fn subscribers(&self) -> usize {
        self.topic.borrow().as_ref().map_or(0, |t| t.subscriber_count())
    }

    /// Reads `f` of the home's shard set, loading it from storage on first use (a read only:
    /// the drop path writes nothing; a home that never had a shard has no table).
    fn read_shards<R>(&self, f: impl FnOnce(&ShardSet) -> R) -> R {
        let mut slot = self.shards.borrow_mut();
        let set = slot.get_or_insert_with(|| {
            #[derive(serde::Deserialize)]
            struct Row {
                v: String,
            }
            let sql = self.state.storage().sql();
            let rows = sql.exec("SELECT v FROM shard_set WHERE k = 'set'", None).and_then(|c| c.to_array::<Row>()).unwrap_or_default();
            rows.first().and_then(|r| serde_json::from_str(&r.v).ok()).unwrap_or_default()
        });
        f(set)
    }

    /// Changes the home's shard set with `f`, and keeps it in storage when it changed.
    fn with_shards<R>(&self, f: impl FnOnce(&mut ShardSet) -> R) -> Result<R> {
        let (out, changed) = {
            let mut before = self.read_shards(ShardSet::clone);
            let out = f(&mut before);
            let changed = self.read_shards(|s| *s != before).then_some(before);
            (out, changed)
        };
        if let Some(set) = changed {
            let sql = self.state.storage().sql();
            sql.exec("CREATE TABLE IF NOT EXISTS shard_set (k TEXT PRIMARY KEY, v TEXT NOT NULL)", None)?;
            sql.exec(
                "INSERT OR REPLACE INTO shard_set (k, v) VALUES ('set', ?)",
                vec![serde_json::to_string(&set).unwrap_or_default().into()],
            )?;
            *self.shards.borrow_mut() = Some(set);
        }
        Ok(out)
    }

    /// Whether a publish must reach the home's shards (always false on a shard).
    fn shards_live(&self) -> bool {
        self.shard.get() == 0 && self.read_shards(ShardSet::any_live)
    }

    /// Tells the home how full this shard is, when an attach or detach changed it.
    fn report_fill(&self, topic: &str, before: usize, cfg: &Config) {
        let index = self.shard.get();
        if index == 0 {
            return;
        }
        let accepted = self.count_accepted(0);
        if let Some(r) = ShardReport::of_change(index, before, self.subscribers(), cfg.topic_shard_size, accepted) {
            self.send_shard_report(topic, r);
        }
    }

    /// Sends a shard's report to the topic's own object, without holding up the caller.
    fn send_shard_report(&self, topic: &str, r: ShardReport) {
        let (env, topic) = (self.env.clone(), topic.to_string());
        wasm_bindgen_futures::spawn_local(async move {
            let sent =
                async { stubs::topic_stub(&env, &topic)?.fetch_with_str(&stubs::internal_url(&r.encode())).await.map_err(http::internal) };
            if let Err(e) = sent.await {
                http::log(&json!({"level": "warn", "msg": "shard report failed", "topic": topic, "error": e.to_string()}).to_string());
            }
        });
    }

    /// Adds `n` to the connections this shard has accepted (kept in storage); returns the total.
    fn count_accepted(&self, n: u64) -> u64 {
        add_to_counter(&self.state, "accepted", n).unwrap_or(0)
    }

    /// Forwards an event the home took to every shard that may hold subscribers, in parallel
    /// (each through the same stub as the previous events: in order); their deliveries added.
    async fn forward_to_shards(&self, ev: &Event, cfg: &Config) -> std::result::Result<usize, GatewayError> {
        let live: Vec<u32> = if self.shard.get() == 0 { self.read_shards(|s| s.live().collect()) } else { Vec::new() };
        let msg = Deliver::of(ev, None);
        let mut targets = Vec::with_capacity(live.len());
        for i in live {
            let cached = self.shard_stubs.borrow().get(&i).cloned();
            let stub = match cached {
                Some(stub) => stub,
                None => {
                    let stub = Rc::new(stubs::topic_shard_stub(&self.env, &ev.topic, i)?);
                    self.shard_stubs.borrow_mut().insert(i, stub.clone());
                    stub
                }
            };
            targets.push((i, stub));
        }
        let calls = targets.into_iter().map(|(i, stub)| {
            let (msg, data) = (&msg, ev.data.clone());
            async move {
                let req = stubs::deliver_request(msg, data, &format!("shard={i}"))?;
                Ok(stubs::object_call(&stub, req, cfg.max_body_bytes).await?.result().delivered())
            }
        });
        let mut total = 0;
        for r in join_all(calls).await {
            total += r?;
        }
        Ok(total)
    }

    fn topic_name(&self) -> Option<String> {
        self.topic.borrow().as_ref().map(|t| t.topic().to_string())
    }

    fn is_live(&self) -> bool {
        self.topic.borrow().as_ref().is_some_and(|t| t.is_live())
    }

    /// Tells the tails of a drop (the Worker logs it, from the publish plan).
    fn dropped(&self, id: &str) {
        if let Some(state) = self.topic.borrow_mut().as_mut() {
            state.notify_dropped(id, http::now_ms());
        }
    }

    /// Accepts the connection's socket: the opening block (when this object sends it) and the
    /// replay go on it first, in this same event, before any publish can.
    fn attach(&self, a: &Attach, cfg: &Config) -> std::result::Result<Response, GatewayError> {
        if shards::may_place(a, cfg.retention.window(&a.topic).is_some()) {
            // The home full: the subscriber goes to a shard (resumes and tails stay here).
            let home = self.subscribers();
            let (placed, grew) = self
                .with_shards(|s| {
                    let before = s.len();
                    (s.place(home, cfg.topic_shard_size), (s.len() != before).then_some(s.len()))
                })
                .map_err(http::internal)?;
            if let Some(i) = placed {
                if let Some(shards) = grew {
                    self.report(vec![RegistryUpdate::Shards { topic: a.topic.clone(), shards }]);
                }
                return Ok(answer(ObjectAnswer::Shard(i)));
            }
        }
        self.shard.set(a.shard);
        let before = self.subscribers();
        let att = SocketAttachment::of(a, http::now_ms());
        let replay = match (&a.last_event_id, cfg.retention.window(&a.topic)) {
            (Some(last), Some(window)) if a.format != Format::Tail => {
                let resumer = Resumer { topic: &a.topic, last_id: last, format: a.format, transport: a.transport };
                self.resume_frames(resumer, window).map_err(http::internal)?
            }
            _ => Vec::new(),
        };
        let pair = WebSocketPair::new().map_err(http::internal)?;
        let server = pair.server;
        {
            let mut slot = self.topic.borrow_mut();
            let state = slot.get_or_insert_with(|| TopicState::new(a.topic.clone(), cfg.max_connections_per_topic));
            // Refused (503 at the connection limit) before the socket is accepted.
            state.attach(att.conn.clone(), SocketSink::new(server.clone(), att.holder, att.conn.format))?;
        }
        self.state.accept_websocket_with_tags(&server, &[att.holder.tag()]);
        let sent = server.serialize_attachment(att.encode()).and_then(|()| {
            if a.hello {
                let open = match a.transport {
                    Transport::Ws => frame::encode_ws_open(&a.conn_id, &a.topics),
                    Transport::Sse => frame::encode_open(cfg.retry_ms, &a.conn_id, &a.topics),
                };
                server.send_with_str(open)?;
            }
            replay.iter().try_for_each(|f| server.send_with_str(f))
        });
        if let Err(e) = sent {
            self.topic.borrow_mut().as_mut().map(|s| s.detach(&a.conn_id));
            self.forget_if_empty();
            let _ = server.close(Some(Close::Failed.code()), Some(Close::Failed.reason()));
            return Err(http::internal(e));
        }
        self.note_wake();
        if a.format != Format::Tail {
            // With every topic of the connection: the registry shard of the first one lists it.
            let conn = ConnSummary { topics: a.topics.clone(), ..att.conn.summary(0) };
            self.report(vec![RegistryUpdate::Attach { topic: a.topic.clone(), conn }]);
            if a.shard > 0 {
                self.count_accepted(1);
                self.report_fill(&a.topic, before, cfg);
            }
        }
        Response::from_websocket(pair.client).map_err(http::internal)
    }

    /// A socket closed (or failed): its connection leaves the topic.
    async fn socket_gone(&self, ws: &WebSocket, close: Close) {
        let Ok(cfg) = self.config() else { return };
        self.rebuild(&cfg);
        let Some(a) = attachment(ws) else { return };
        let gone = self.topic.borrow_mut().as_mut().and_then(|s| s.detach(&a.conn.id)).is_some();
        if gone {
            let reason = if close == Close::SlowConsumer { SendResult::Full } else { SendResult::Closed };
            self.removed(&a.topic, &[Removed { id: a.conn.id, reason }]);
            self.forget_if_empty();
            // An eviction counted here is reported like any count.
            self.report_counts_soon(&cfg).await;
        }
    }

    /// A publish forwarded by the Worker with its body unread.
    async fn publish(&self, mut req: Request, cfg: &Config) -> std::result::Result<Response, GatewayError> {
        let p = router::publish_headers(req.headers(), cfg, false)?;
        let [topic] = p.topics.as_slice() else {
            return Err(GatewayError::InvalidRequest("one topic per object".into()));
        };
        let window = cfg.retention.window(topic);
        if !drop_rule::takes(self.is_live() || self.shards_live(), window.is_some()) {
            // The drop path: the body is never read.
            self.dropped(&p.id);
            self.count(cfg, |c| c.published(TopicResult::Dropped)).await;
            return Ok(answer(ObjectAnswer::Done(TopicResult::Dropped)));
        }
        let data = body::read_text(&mut req, cfg.max_body_bytes).await?;
        let ev = Event { topic: topic.clone(), id: p.id, event: p.event, data, ts: http::now_ms() };
        self.retain(&ev, window)?;
        Ok(self.fan_out(ev, window.is_some(), cfg).await)
    }

    /// A delivery of a multi-topic publish whose body the Worker already read.
    async fn deliver(&self, mut req: Request, cfg: &Config) -> std::result::Result<Response, GatewayError> {
        let h = req.headers().clone();
        let msg = Deliver::decode(|name| header(&h, name), http::now_ms())?;
        let data = body::read_text(&mut req, cfg.max_body_bytes).await?;
        // A shard delivers live only: the home keeps the retained events.
        let window = if self.shard.get() == 0 { cfg.retention.window(&msg.topic) } else { None };
        let ev = msg.into_event(data);
        self.retain(&ev, window)?;
        Ok(self.fan_out(ev, window.is_some(), cfg).await)
    }

    /// Hands `ev` to every connection; answers what that did (a drop is logged by the Worker).
    async fn fan_out(&self, ev: Event, retained: bool, cfg: &Config) -> Response {
        let outcome = match self.topic.borrow_mut().as_mut() {
            Some(state) => state.publish(&ev),
            None => Outcome::Dropped,
        };
        let mut count = match outcome {
            Outcome::Delivered { count, removed } => {
                self.removed(&ev.topic, &removed);
                self.forget_if_empty();
                Some(count)
            }
            Outcome::Dropped => {
                // A shard with nobody (e.g. after a restart that dropped its sockets) says so,
                // so that the topic's own object stops forwarding to it.
                let index = self.shard.get();
                if index > 0 {
                    self.send_shard_report(&ev.topic, ShardReport { index, fill: Fill::Empty, accepted: self.count_accepted(0), held: 0 });
                }
                None
            }
        };
        if self.shards_live() {
            match self.forward_to_shards(&ev, cfg).await {
                Ok(n) => count = Some(count.unwrap_or(0) + n),
                Err(e) => http::log(
                    &json!({"level": "error", "msg": "forward to topic shards failed", "topic": ev.topic, "error": e.to_string()})
                        .to_string(),
                ),
            }
        }
        let result = TopicResult::of_delivery(count, retained);
        // Counted once, by the home (a shard's deliveries are in the home's answer; a shard
        // reports only its evictions).
        if self.shard.get() == 0 {
            self.count(cfg, |c| c.published(result)).await;
        } else {
            self.report_counts_soon(cfg).await;
        }
        answer(ObjectAnswer::Done(result))
    }

    fn sql_tables(&self) -> Result<worker::SqlStorage> {
        let sql = self.state.storage().sql();
        if !self.tables.get() {
            sql.exec("CREATE TABLE IF NOT EXISTS replay_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, event TEXT, data TEXT NOT NULL, ts INTEGER NOT NULL)", None)?;
            sql.exec("CREATE TABLE IF NOT EXISTS replay_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)", None)?;
            self.tables.set(true);
        }
        Ok(sql)
    }

    /// Trims the table to the window; records that events were trimmed (for `expired`).
    fn trim(&self, sql: &worker::SqlStorage, window: Window) -> Result<()> {
        let mut gone = sql
            .exec(
                "DELETE FROM replay_events WHERE seq <= (SELECT MAX(seq) FROM replay_events) - ?",
                vec![SqlStorageValue::from(window.max_count as i64)],
            )?
            .rows_written();
        if let Some(age) = window.max_age_ms {
            let cutoff = http::now_ms().saturating_sub(age) as i64;
            gone += sql.exec("DELETE FROM replay_events WHERE ts < ?", vec![SqlStorageValue::from(cutoff)])?.rows_written();
        }
        if gone > 0 {
            sql.exec("INSERT OR REPLACE INTO replay_meta (k, v) VALUES ('trimmed', 1)", None)?;
        }
        Ok(())
    }

    /// Stores `ev` when its topic is retained (`window`), then trims.
    fn retain(&self, ev: &Event, window: Option<Window>) -> std::result::Result<(), GatewayError> {
        let Some(window) = window else { return Ok(()) };
        let store = || -> Result<()> {
            let sql = self.sql_tables()?;
            sql.exec(
                "INSERT INTO replay_events (id, event, data, ts) VALUES (?, ?, ?, ?)",
                vec![ev.id.as_str().into(), ev.event.clone().into(), ev.data.as_str().into(), SqlStorageValue::from(ev.ts as i64)],
            )?;
            self.trim(&sql, window)
        };
        store().map_err(http::internal)
    }

    /// The frames resuming after the connection's last event id, from the retained events.
    fn resume_frames(&self, resumer: Resumer<'_>, window: Window) -> Result<Vec<String>> {
        let sql = self.sql_tables()?;
        self.trim(&sql, window)?;
        let rows: Vec<Retained> = sql.exec("SELECT seq, id, event, data, ts FROM replay_events ORDER BY seq", None)?.to_array()?;
        let trimmed = !sql.exec("SELECT v FROM replay_meta WHERE k = 'trimmed'", None)?.to_array::<serde_json::Value>()?.is_empty();
        let last_seq = rows.last().map_or(0, |r| r.seq);
        let resumed = resumer.from_snapshot(&rows, trimmed, last_seq);
        let mut c = self.counts.get();
        c.replayed += resumed.replayed as u64;
        self.counts.set(c);
        Ok(resumed.frames)
    }

    /// Reports connections that left (client gone, or evicted as too slow) and closes their
    /// sockets (a no-op for one already closed).
    fn removed(&self, topic: &str, removed: &[Removed]) {
        if removed.is_empty() {
            return;
        }
        for ws in self.state.get_websockets() {
            if let Some(a) = attachment(&ws) {
                if let Some(r) = removed.iter().find(|r| r.id == a.conn.id) {
                    let close = if r.reason == SendResult::Full { Close::SlowConsumer } else { Close::Normal };
                    let _ = ws.close(Some(close.code()), Some(close.reason()));
                }
            }
        }
        if let Ok(cfg) = self.config() {
            let before = self.subscribers() + removed.len();
            self.report_fill(topic, before, &cfg);
        }
        let removals = Removals::of(topic, removed);
        let mut c = self.counts.get();
        c.evictions += removals.evicted;
        self.counts.set(c);
        for line in &removals.log {
            http::log(line);
        }
        self.report(removals.detached.into_iter().map(|id| RegistryUpdate::Detach { topic: topic.to_string(), id }).collect());
    }

    /// The topic disappears from this object's memory with its last connection.
    fn forget_if_empty(&self) {
        let mut slot = self.topic.borrow_mut();
        if slot.as_ref().is_some_and(|t| t.is_empty()) {
            *slot = None;
        }
    }

    /// Counts something and makes sure the one-shot alarm will report it. No subrequest: the
    /// alarm is this object's own storage.
    async fn count(&self, cfg: &Config, f: impl FnOnce(&mut Counts)) {
        let mut c = self.counts.get();
        f(&mut c);
        self.counts.set(c);
        if !self.alarm_set.replace(true) {
            if let Err(e) = self.state.storage().set_alarm(cfg.counts_report_ms() as i64).await {
                self.alarm_set.set(false);
                http::log(
                    &json!({"level": "warn", "msg": "could not set the alarm that reports counts", "error": e.to_string()}).to_string(),
                );
            }
        }
    }

    /// Makes sure the one-shot alarm will report what was counted without a publish (evictions).
    async fn report_counts_soon(&self, cfg: &Config) {
        if !self.counts.get().is_zero() {
            self.count(cfg, |_| {}).await;
        }
    }

    /// Sends registry updates without holding up the caller (with this start's wake, the first
    /// time). A report that fails is kept and sent again by the alarm.
    fn report(&self, mut updates: Vec<RegistryUpdate>) {
        let Some(topic) = updates.first().map(|u| u.topic().to_string()) else { return };
        if let Some((wakes, at)) = self.woke.take().filter(|_| self.shard.get() == 0) {
            updates.push(RegistryUpdate::Woke { topic, wakes, at });
        }
        let env = self.env.clone();
        let pending = self.pending.clone();
        let storage = self.storage_for_retry();
        let shards = self.config().map_or(1, |c| c.registry_shards);
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = stubs::report(&env, shards, &updates).await {
                http::log(&json!({"level": "warn", "msg": "registry update failed; retried", "error": e}).to_string());
                pending.borrow_mut().extend(updates);
                if let Some((storage, delay_ms)) = storage {
                    let _ = storage.set_alarm(delay_ms).await;
                }
            }
        });
    }

    /// The storage and delay of a retry alarm.
    fn storage_for_retry(&self) -> Option<(Storage, i64)> {
        let cfg = self.config().ok()?;
        Some((self.state.storage(), cfg.counts_report_ms() as i64))
    }
}

/// The object's `200` answer to a probe, publish or deliver.
fn answer(a: ObjectAnswer) -> Response {
    http::json(200, a.encode())
}
