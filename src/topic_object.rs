//! `TopicObject`: one Durable Object per topic. It owns the topic's connections (each an SSE
//! stream fed by a bounded queue), publishes into them, sends keepalives on an alarm, reports
//! to the registry, and forgets the topic when its last connection leaves.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::mpsc;
use futures_util::StreamExt;
use serde_json::json;
use sse_core::frame::{self, Event, Format};
use sse_core::registry::{ConnSummary, RegistryUpdate};
use sse_core::request::{self, Query};
use sse_core::topic::{ConnInfo, Outcome, Removed, SendResult, Sink, TopicState, Transport};
use sse_core::{names, Config, GatewayError};
use worker::{durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result, State};

use crate::body;
use crate::gateway;
use crate::http::{self, header};

/// The sending half of a connection's bounded queue.
pub struct ChannelSink(mpsc::Sender<Rc<str>>);

impl Sink for ChannelSink {
    type Frame = Rc<str>;

    fn try_send(&mut self, frame: &Rc<str>) -> SendResult {
        match self.0.try_send(frame.clone()) {
            Ok(()) => SendResult::Sent,
            Err(e) if e.is_full() => SendResult::Full,
            Err(_) => SendResult::Closed,
        }
    }
}

#[durable_object]
pub struct TopicObject {
    state: State,
    env: Env,
    cfg: RefCell<Option<Config>>,
    topic: RefCell<Option<TopicState<ChannelSink>>>,
    alarm_set: Cell<bool>,
}

impl DurableObject for TopicObject {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, cfg: RefCell::new(None), topic: RefCell::new(None), alarm_set: Cell::new(false) }
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
            let Some(state) = slot.as_mut() else { return Response::empty() };
            let removed = state.keepalive();
            let snapshot = RegistryUpdate::Snapshot { topic: state.topic().to_string(), conns: summaries(state) };
            (removed, snapshot)
        };
        self.removed(&removed);
        self.report(vec![snapshot]);
        self.forget_if_empty();
        if self.topic.borrow().is_some() {
            self.ensure_alarm(&cfg).await?;
        }
        Response::empty()
    }
}

fn summaries(state: &TopicState<ChannelSink>) -> Vec<ConnSummary> {
    state.subscribers().map(|c| summary(&c.info, c.events_sent)).collect()
}

fn summary(info: &ConnInfo, events_sent: u64) -> ConnSummary {
    ConnSummary {
        id: info.id.clone(),
        transport: info.transport,
        connected_at: info.connected_at,
        node: info.node.clone(),
        events_sent,
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
            (Method::Get, "/attach") => self.attach(&query, cfg).await,
            (Method::Post, "/publish") => self.publish(req, cfg).await,
            (Method::Get, "/live") => {
                let (topic, id) = (param(&query, "topic")?, param(&query, "id")?);
                let live = self.is_live();
                if !live {
                    self.dropped(topic, id);
                }
                Ok(http::json(200, json!({"live": live}).to_string()))
            }
            (Method::Post, "/deliver") => self.deliver(req, &query, cfg).await,
            _ => Err(GatewayError::NotFound),
        }
    }

    fn is_live(&self) -> bool {
        self.topic.borrow().as_ref().is_some_and(|t| t.is_live())
    }

    /// Logs a drop once and tells the tails.
    fn dropped(&self, topic: &str, id: &str) {
        http::log(&request::drop_log_line(topic, id));
        if let Some(state) = self.topic.borrow_mut().as_mut() {
            state.notify_dropped(id, http::now_ms());
        }
    }

    async fn attach(&self, q: &Query, cfg: &Config) -> std::result::Result<Response, GatewayError> {
        let topic = param(q, "topic")?.to_string();
        let id = param(q, "id")?.to_string();
        let format = match param(q, "format")? {
            "sse" => Format::Sse,
            "sse_envelope" => Format::SseEnvelope,
            "tail" => Format::Tail,
            _ => return Err(GatewayError::InvalidRequest("format".into())),
        };
        let transport = if q.get("transport") == Some("ws") { Transport::Ws } else { Transport::Sse };
        let topics = names::parse_topic_list(param(q, "topics")?, cfg.max_topics)?;
        let info = ConnInfo {
            id: id.clone(),
            topics: topics.clone(),
            transport,
            format,
            connected_at: http::now_ms(),
            node: q.get("node").unwrap_or("local").to_string(),
        };
        let (mut tx, rx) = mpsc::channel::<Rc<str>>(cfg.queue_capacity);
        if q.get("hello") == Some("1") {
            let _ = tx.try_send(Rc::from(frame::encode_open(cfg.retry_ms, &id, &topics)));
        }
        {
            let mut slot = self.topic.borrow_mut();
            let state = slot.get_or_insert_with(|| TopicState::new(topic.clone(), cfg.max_connections_per_topic));
            state.attach(info.clone(), ChannelSink(tx))?;
        }
        if format != Format::Tail {
            self.report(vec![RegistryUpdate::Attach { topic, conn: summary(&info, 0) }]);
        }
        self.ensure_alarm(cfg).await.map_err(http::internal)?;
        let body = rx.map(|f| Ok::<Vec<u8>, worker::Error>(f.as_bytes().to_vec()));
        Ok(http::sse(Response::from_stream(body).map_err(http::internal)?))
    }

    /// A publish forwarded by the Worker with its body unread.
    async fn publish(&self, mut req: Request, cfg: &Config) -> std::result::Result<Response, GatewayError> {
        let p = gateway::publish_headers(req.headers(), cfg, false)?;
        let [topic] = p.topics.as_slice() else {
            return Err(GatewayError::InvalidRequest("one topic per object".into()));
        };
        if !self.is_live() {
            // The drop path: the body is never read.
            self.dropped(topic, &p.id);
            return Ok(http::json(200, json!({"dropped": true}).to_string()));
        }
        let data = body::read_text(&mut req, cfg.max_body_bytes).await?;
        Ok(self.fan_out(Event { topic: topic.clone(), id: p.id, event: p.event, data, ts: http::now_ms() }))
    }

    /// A delivery of a multi-topic publish whose body the Worker already read.
    async fn deliver(&self, mut req: Request, q: &Query, cfg: &Config) -> std::result::Result<Response, GatewayError> {
        let topic = param(q, "topic")?.to_string();
        let h = req.headers();
        let id = header(h, "x-sse-id").ok_or(GatewayError::MissingId)?;
        names::check_id(&id)?;
        let event = header(h, "x-sse-event");
        if let Some(e) = &event {
            names::check_event(e)?;
        }
        let ts = header(h, "x-sse-ts").and_then(|t| t.parse().ok()).unwrap_or_else(http::now_ms);
        let data = body::read_text(&mut req, cfg.max_body_bytes).await?;
        Ok(self.fan_out(Event { topic, id, event, data, ts }))
    }

    fn fan_out(&self, ev: Event) -> Response {
        let outcome = match self.topic.borrow_mut().as_mut() {
            Some(state) => state.publish(&ev),
            None => Outcome::Dropped,
        };
        let body = match outcome {
            Outcome::Dropped => {
                http::log(&request::drop_log_line(&ev.topic, &ev.id));
                json!({"dropped": true})
            }
            Outcome::Delivered { count, removed } => {
                self.removed(&removed);
                self.forget_if_empty();
                json!({"delivered": count})
            }
        };
        http::json(200, body.to_string())
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
        for r in removed.iter().filter(|r| r.reason == SendResult::Full) {
            http::log(&json!({"level": "warn", "msg": "slow consumer evicted", "topic": topic, "connection": r.id}).to_string());
        }
        self.report(removed.iter().map(|r| RegistryUpdate::Detach { topic: topic.clone(), id: r.id.clone() }).collect());
    }

    /// The topic disappears from this object's memory with its last connection.
    fn forget_if_empty(&self) {
        let mut slot = self.topic.borrow_mut();
        if slot.as_ref().is_some_and(|t| t.is_empty()) {
            *slot = None;
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
            let Ok(stub) = gateway::registry(&env) else { return };
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

fn param<'a>(q: &'a Query, key: &str) -> std::result::Result<&'a str, GatewayError> {
    q.get(key).ok_or_else(|| GatewayError::InvalidRequest(format!("missing {key}")))
}
