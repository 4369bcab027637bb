//! `TopicObject`: one Durable Object per topic. It owns the topic's connections (each an SSE
//! stream fed by a bounded queue), publishes into them, sends keepalives on an alarm, reports
//! to the registry, and forgets the topic when its last connection leaves.
//!
//! A topic that `RETENTION` names also keeps its recent events in this object's SQLite storage
//! (table `replay_events`, trimmed by count and age on every insert and read), with or without
//! connections, and replays them to a subscriber that attaches with a last event id. A Durable
//! Object runs one event at a time and the storage calls are synchronous, so the snapshot of the
//! table and the attachment happen with no publish in between: no gap, no duplicate.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Object, Reflect, Uint8Array};
use serde_json::json;
use sse_core::frame::{self, Event, Format};
use sse_core::metrics::Counts;
use sse_core::protocol::conn::{self, Removals, Resumer};
use sse_core::protocol::{drop_rule, Attach, Deliver, ObjectAnswer, ProbeRequest, TopicResult};
use sse_core::registry::RegistryUpdate;
use sse_core::replay::{Retained, Window};
use sse_core::request::Query;
use sse_core::topic::{Outcome, Removed, SendResult, Sink, TopicState};
use sse_core::{Config, GatewayError};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{durable_object, DurableObject, Env, Method, Request, RequestInit, Response, ResponseBuilder, Result, SqlStorageValue, State};

use crate::body;
use crate::http::{self, header};
use crate::router;

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

/// An encoded frame as one JS `Uint8Array`, made once per publish (per format in use) and
/// enqueued as is into every subscriber's stream: no copy and no allocation per delivery.
#[derive(Clone)]
pub struct Chunk(Uint8Array);

impl From<String> for Chunk {
    fn from(s: String) -> Self {
        Chunk(Uint8Array::from(s.as_bytes()))
    }
}

/// A connection's SSE stream: a JS `ReadableStream` (the response body) whose controller this
/// object keeps. A publish enqueues straight into it — no channel, no task to wake, no pull
/// per delivery. Its queue holds at most `capacity` frames the client has not read yet.
pub struct StreamSink(StreamController);

impl StreamSink {
    /// A stream that holds up to `capacity` unread frames, and its sink.
    fn new(capacity: usize) -> Result<(StreamSink, worker::web_sys::ReadableStream)> {
        let slot: Rc<RefCell<Option<JsValue>>> = Rc::default();
        let start = {
            let slot = slot.clone();
            Closure::once_into_js(move |controller: JsValue| {
                *slot.borrow_mut() = Some(controller);
            })
        };
        let source = Object::new();
        Reflect::set(&source, &"start".into(), &start)?;
        let strategy = Object::new();
        Reflect::set(&strategy, &"highWaterMark".into(), &JsValue::from_f64(capacity as f64))?;
        // `start` runs inside the constructor.
        let stream = JsReadableStream::new_with_source(&source, &strategy)?;
        let controller = slot.borrow_mut().take().ok_or_else(|| worker::Error::RustError("ReadableStream did not call start".into()))?;
        Ok((StreamSink(controller.unchecked_into()), stream.unchecked_into()))
    }
}

impl Sink for StreamSink {
    type Frame = Chunk;

    fn try_send(&mut self, frame: &Chunk) -> SendResult {
        // Enqueuing fails once the stream is closed or cancelled (the client went away).
        if self.0.enqueue(&frame.0).is_err() {
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

impl Drop for StreamSink {
    /// A connection removed from the topic ends its stream (after the frames already queued).
    fn drop(&mut self) {
        let _ = self.0.close();
    }
}

#[durable_object]
pub struct TopicObject {
    state: State,
    env: Env,
    cfg: RefCell<Option<Config>>,
    topic: RefCell<Option<TopicState<StreamSink>>>,
    alarm_set: Cell<bool>,
    /// Whether the replay tables exist (created on first use).
    tables: Cell<bool>,
    /// What happened since the last report (publishes, deliveries, drops, evictions, replayed):
    /// sent to the registry with the heartbeat snapshot, in the same request, then reset.
    counts: Cell<Counts>,
}

impl DurableObject for TopicObject {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            cfg: RefCell::new(None),
            topic: RefCell::new(None),
            alarm_set: Cell::new(false),
            tables: Cell::new(false),
            counts: Cell::new(Counts::default()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let result = match self.config() {
            Ok(cfg) => self.route(req, &cfg).await,
            Err(e) => Err(e),
        };
        Ok(result.unwrap_or_else(|e| http::error(&e)))
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_set.set(false);
        let cfg = match self.config() {
            Ok(c) => c,
            Err(e) => return Ok(http::error(&e)),
        };
        let (removed, snapshot) = {
            let mut slot = self.topic.borrow_mut();
            match slot.as_mut() {
                Some(state) => {
                    let removed = state.keepalive();
                    let snapshot = RegistryUpdate::Snapshot { topic: state.topic().to_string(), conns: conn::summaries(state) };
                    (removed, Some(snapshot))
                }
                // No connection (the alarm was set to report counts, e.g. drops).
                None => (Vec::new(), None),
            }
        };
        self.removed(&removed);
        let counts = self.counts.take();
        let mut updates: Vec<RegistryUpdate> = snapshot.into_iter().collect();
        if !counts.is_zero() {
            // The object's name is its topic, but it is only known from requests: the registry
            // adds counts up without looking at the topic.
            let topic = self.topic.borrow().as_ref().map(|t| t.topic().to_string()).unwrap_or_default();
            updates.push(RegistryUpdate::Counts { topic, counts });
        }
        self.report(updates);
        self.forget_if_empty();
        if self.topic.borrow().is_some() {
            self.ensure_alarm(&cfg).await?;
        }
        Response::empty()
    }
}

impl TopicObject {
    fn config(&self) -> std::result::Result<Config, GatewayError> {
        if let Some(c) = self.cfg.borrow().as_ref() {
            return Ok(c.clone());
        }
        let c = http::config(&self.env)?;
        *self.cfg.borrow_mut() = Some(c.clone());
        Ok(c)
    }

    async fn route(&self, req: Request, cfg: &Config) -> std::result::Result<Response, GatewayError> {
        let url = req.url().map_err(|_| GatewayError::InvalidRequest("bad url".into()))?;
        let query = Query::parse(url.query().unwrap_or(""))?;
        match (req.method(), url.path()) {
            (Method::Get, Attach::PATH) => self.attach(&Attach::decode(&query, cfg.max_topics)?, cfg).await,
            (Method::Post, "/publish") => self.publish(req, cfg).await,
            (Method::Get, ProbeRequest::PATH) => {
                let probe = ProbeRequest::decode(&query)?;
                let live = drop_rule::takes(self.is_live(), cfg.retention.window(&probe.topic).is_some());
                if !live {
                    self.dropped(&probe.id);
                    self.count(cfg, |c| c.published(TopicResult::Dropped)).await;
                }
                Ok(answer(ObjectAnswer::Live(live)))
            }
            (Method::Post, Deliver::PATH) => self.deliver(req, cfg).await,
            _ => Err(GatewayError::NotFound),
        }
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

    async fn attach(&self, a: &Attach, cfg: &Config) -> std::result::Result<Response, GatewayError> {
        let (topic, id, format) = (a.topic.clone(), a.conn_id.clone(), a.format);
        let info = a.conn_info(http::now_ms());
        // The replay: read synchronously, right before the attachment (no publish can run in
        // between), and queued ahead of every live frame.
        let replay = match (&a.last_event_id, cfg.retention.window(&topic)) {
            (Some(last), Some(window)) if format != Format::Tail => {
                let resumer = Resumer { topic: &topic, last_id: last, format, transport: a.transport };
                self.resume_frames(resumer, window).map_err(http::internal)?
            }
            _ => Vec::new(),
        };
        let (mut sink, body) = StreamSink::new(cfg.queue_capacity + replay.len() + 1).map_err(http::internal)?;
        if a.hello {
            let _ = sink.try_send(&Chunk::from(frame::encode_open(cfg.retry_ms, &id, &a.topics)));
        }
        for f in replay {
            let _ = sink.try_send(&Chunk::from(f));
        }
        {
            let mut slot = self.topic.borrow_mut();
            let state = slot.get_or_insert_with(|| TopicState::new(topic.clone(), cfg.max_connections_per_topic));
            state.attach(info.clone(), sink)?;
        }
        if format != Format::Tail {
            self.report(vec![RegistryUpdate::Attach { topic, conn: info.summary(0) }]);
        }
        self.ensure_alarm(cfg).await.map_err(http::internal)?;
        Ok(http::sse(ResponseBuilder::new().stream(body)))
    }

    /// A publish forwarded by the Worker with its body unread.
    async fn publish(&self, mut req: Request, cfg: &Config) -> std::result::Result<Response, GatewayError> {
        let p = router::publish_headers(req.headers(), cfg, false)?;
        let [topic] = p.topics.as_slice() else {
            return Err(GatewayError::InvalidRequest("one topic per object".into()));
        };
        let window = cfg.retention.window(topic);
        if !drop_rule::takes(self.is_live(), window.is_some()) {
            // The drop path: the body is never read.
            self.dropped(&p.id);
            self.count(cfg, |c| c.published(TopicResult::Dropped)).await;
            return Ok(answer(ObjectAnswer::Done(TopicResult::Dropped)));
        }
        let data = body::read_text(&mut req, cfg.max_body_bytes).await?;
        let ev = Event { topic: topic.clone(), id: p.id, event: p.event, data, ts: http::now_ms() };
        self.retain(&ev, window)?;
        let resp = self.fan_out(ev, window.is_some());
        self.ensure_alarm(cfg).await.map_err(http::internal)?;
        Ok(resp)
    }

    /// A delivery of a multi-topic publish whose body the Worker already read.
    async fn deliver(&self, mut req: Request, cfg: &Config) -> std::result::Result<Response, GatewayError> {
        let h = req.headers().clone();
        let msg = Deliver::decode(|name| header(&h, name), http::now_ms())?;
        let data = body::read_text(&mut req, cfg.max_body_bytes).await?;
        let window = cfg.retention.window(&msg.topic);
        let ev = msg.into_event(data);
        self.retain(&ev, window)?;
        let resp = self.fan_out(ev, window.is_some());
        self.ensure_alarm(cfg).await.map_err(http::internal)?;
        Ok(resp)
    }

    /// Hands `ev` to every connection; answers what that did (a drop is logged by the Worker).
    fn fan_out(&self, ev: Event, retained: bool) -> Response {
        let outcome = match self.topic.borrow_mut().as_mut() {
            Some(state) => state.publish(&ev),
            None => Outcome::Dropped,
        };
        let count = match outcome {
            Outcome::Delivered { count, removed } => {
                self.removed(&removed);
                self.forget_if_empty();
                Some(count)
            }
            Outcome::Dropped => None,
        };
        let result = TopicResult::of_delivery(count, retained);
        let mut c = self.counts.get();
        c.published(result);
        self.counts.set(c);
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

    /// Reports connections that left (client gone, or evicted as too slow).
    fn removed(&self, removed: &[Removed]) {
        if removed.is_empty() {
            return;
        }
        let topic = match self.topic.borrow().as_ref() {
            Some(t) => t.topic().to_string(),
            None => return,
        };
        let removals = Removals::of(&topic, removed);
        let mut c = self.counts.get();
        c.evictions += removals.evicted;
        self.counts.set(c);
        for line in &removals.log {
            http::log(line);
        }
        self.report(removals.detached.into_iter().map(|id| RegistryUpdate::Detach { topic: topic.clone(), id }).collect());
    }

    /// The topic disappears from this object's memory with its last connection.
    fn forget_if_empty(&self) {
        let mut slot = self.topic.borrow_mut();
        if slot.as_ref().is_some_and(|t| t.is_empty()) {
            *slot = None;
        }
    }

    /// Counts something and makes sure an alarm will report it (an object with no connection
    /// has no alarm running otherwise). No subrequest: the alarm is this object's own storage.
    async fn count(&self, cfg: &Config, f: impl FnOnce(&mut Counts)) {
        let mut c = self.counts.get();
        f(&mut c);
        self.counts.set(c);
        if let Err(e) = self.ensure_alarm(cfg).await {
            http::log(&json!({"level": "warn", "msg": "could not set the alarm that reports counts", "error": e.to_string()}).to_string());
        }
    }

    async fn ensure_alarm(&self, cfg: &Config) -> Result<()> {
        if !self.alarm_set.replace(true) {
            self.state.storage().set_alarm(cfg.heartbeat_ms as i64).await?;
        }
        Ok(())
    }

    /// Sends registry updates without holding up the caller.
    fn report(&self, updates: Vec<RegistryUpdate>) {
        if updates.is_empty() {
            return;
        }
        let env = self.env.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let Ok(stub) = router::registry(&env) else { return };
            let body = serde_json::to_string(&updates).expect("updates serialise");
            let mut init = RequestInit::new();
            init.with_method(Method::Post).with_body(Some(body.into()));
            if let Ok(req) = Request::new_with_init("https://registry/update", &init) {
                if let Err(e) = stub.fetch_with_request(req).await {
                    http::log(&json!({"level": "warn", "msg": "registry update failed", "error": e.to_string()}).to_string());
                }
            }
        });
    }
}

/// The object's `200` answer to a probe, publish or deliver.
fn answer(a: ObjectAnswer) -> Response {
    http::json(200, a.encode())
}
