//! The Worker: validates and authenticates with the core, then routes. A subscription to one
//! topic is handed to that topic's object whole (its SSE stream flows straight through); a
//! subscription to several topics is merged here from one stream per topic object; WebSocket
//! clients are bridged here. A publish goes to each topic object with the body unread.

use futures_util::future::join_all;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use sse_core::frame::{self, Format, SseItem, SseParser};
use sse_core::request::{self, Publish, PublishHeaders, Query, Subscribe, TopicResult};
use sse_core::routes::{self, Route};
use sse_core::topic::Transport;
use sse_core::{Config, GatewayError};
use worker::{Env, Headers, Method, Request, RequestInit, Response, Stub, WebSocketPair};

use crate::body;
use crate::http::{self, header};

pub async fn handle(req: Request, env: Env) -> Response {
    let (method, path) = (req.method().to_string(), req.path());
    match dispatch(req, env).await {
        Ok(resp) => resp,
        Err(e) => {
            // Every rejected request is logged once, here.
            if e.status() < 500 {
                http::log(&request::rejected_log_line(&method, &path, &e));
            }
            http::error(&e)
        }
    }
}

async fn dispatch(req: Request, env: Env) -> Result<Response, GatewayError> {
    let method = req.method().to_string();
    let url = req.url().map_err(|_| GatewayError::InvalidRequest("bad url".into()))?;
    let route = routes::route(&method, url.path())?;
    let sizes: Vec<(usize, usize)> = req.headers().entries().map(|(k, v)| (k.len(), v.len())).collect();
    routes::check_header_bytes(sizes.into_iter())?;
    match route {
        Route::Preflight => return Ok(http::preflight()),
        Route::Healthz => return Ok(http::json(200, routes::health_body("cloudflare"))),
        Route::AdminUi => return admin_ui(req, &env).await,
        // Prometheus text is the native runtime's; here the counts are in /admin/api/stats.
        Route::Metrics => return Err(GatewayError::NotFound),
        _ => {}
    }
    let cfg = http::config(&env)?;
    if route.needs_key() {
        let h = req.headers();
        let auth = header(h, "authorization");
        let key = header(h, "x-api-key");
        let Some(key_index) = cfg.api_keys.key_index(auth.as_deref().map(str::as_bytes), key.as_deref().map(str::as_bytes)) else {
            return Err(GatewayError::Unauthorized);
        };
        if route == Route::Publish && cfg.publish_rate_per_key > 0 {
            take_publish_token(&env, &cfg, key_index).await?;
        }
    }
    let query = Query::parse(url.query().unwrap_or(""))?;
    match route {
        Route::Sse => subscribe_sse(req, &env, &cfg, &query).await,
        Route::Ws => subscribe_ws(req, &env, &cfg, &query).await,
        Route::Publish => publish(req, &env, &cfg).await,
        Route::AdminTopics | Route::AdminConnections | Route::AdminStats => {
            let path = match route {
                Route::AdminTopics => "topics",
                Route::AdminConnections => "connections",
                _ => "stats",
            };
            let target = format!("https://registry/{path}?{}", url.query().unwrap_or(""));
            let resp = registry(&env)?.fetch_with_str(&target).await.map_err(http::internal)?;
            Ok(resp)
        }
        Route::AdminTail(topic) => {
            let id = routes::connection_id(http::now_ms(), http::random_u32());
            let target = attach_url(&topic, &id, std::slice::from_ref(&topic), Transport::Sse, Format::Tail, &node(&req), true, None);
            topic_stub(&env, &topic)?.fetch_with_str(&target).await.map_err(http::internal)
        }
        Route::Preflight | Route::Healthz | Route::AdminUi | Route::Metrics => unreachable!("answered above"),
    }
}

/// The admin UI from the ASSETS binding (`admin/dist`): `/admin` and `/admin/` serve index.html,
/// `/admin/<file>` the file. As on the native runtime, a missing path whose last segment has no
/// dot is a client-side route of the single-page app (index.html, e.g. `/admin/connections`),
/// and a missing file is the gateway's JSON 404.
async fn admin_ui(req: Request, env: &Env) -> Result<Response, GatewayError> {
    let mut url = req.url().map_err(|_| GatewayError::NotFound)?;
    let path = url.path().strip_prefix("/admin").unwrap_or("/").to_string();
    url.set_path(if path.is_empty() { "/" } else { &path });
    let assets = env.assets("ASSETS").map_err(http::internal)?;
    let resp = assets.fetch(url.to_string(), None).await.map_err(http::internal)?;
    if resp.status_code() != 404 {
        return Ok(resp);
    }
    if path.rsplit('/').next().is_some_and(|last| last.contains('.')) {
        return Err(GatewayError::NotFound);
    }
    url.set_path("/");
    url.set_query(None);
    assets.fetch(url.to_string(), None).await.map_err(http::internal)
}

/// One publish token from the API key's `LimiterObject` (`key-<index>`): 429 when it has none.
async fn take_publish_token(env: &Env, cfg: &Config, key_index: usize) -> Result<(), GatewayError> {
    let stub = env.durable_object("LIMITER").and_then(|ns| ns.get_by_name(&format!("key-{key_index}"))).map_err(http::internal)?;
    let url = format!("https://limiter/take?rate={}&burst={}", cfg.publish_rate_per_key, cfg.publish_burst_per_key);
    let mut resp = stub.fetch_with_str(&url).await.map_err(http::internal)?;
    match resp.status_code() {
        200 => Ok(()),
        429 => {
            let retry_s = resp.headers().get("retry-after").ok().flatten().and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
            Err(GatewayError::RateLimited { retry_after_ms: retry_s * 1_000 })
        }
        other => Err(GatewayError::Internal(format!("limiter object answered {other}: {}", resp.text().await.unwrap_or_default()))),
    }
}

pub fn topic_stub(env: &Env, topic: &str) -> Result<Stub, GatewayError> {
    env.durable_object("TOPIC").and_then(|ns| ns.get_by_name(topic)).map_err(http::internal)
}

pub fn registry(env: &Env) -> Result<Stub, GatewayError> {
    env.durable_object("REGISTRY").and_then(|ns| ns.get_by_name("registry")).map_err(http::internal)
}

fn node(req: &Request) -> String {
    match req.cf().map(|cf| cf.colo()) {
        Some(colo) if !colo.is_empty() => colo,
        _ => "local".to_string(),
    }
}

/// The internal URL that attaches a connection to a topic object.
#[allow(clippy::too_many_arguments)]
fn attach_url(topic: &str, id: &str, topics: &[String], transport: Transport, format: Format, node: &str, hello: bool, last_event_id: Option<&str>) -> String {
    let transport = match transport {
        Transport::Sse => "sse",
        Transport::Ws => "ws",
    };
    let format = match format {
        Format::Sse => "sse",
        Format::SseEnvelope => "sse_envelope",
        Format::Ws => "ws",
        Format::Tail => "tail",
    };
    // The last event id has the topic alphabet (validated): nothing to escape.
    let resume = last_event_id.map(|l| format!("&last_event_id={l}")).unwrap_or_default();
    format!(
        "https://topic/attach?topic={topic}&id={id}&topics={}&transport={transport}&format={format}&node={}&hello={}{resume}",
        topics.join(","),
        url_encode(node),
        u8::from(hello)
    )
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.:".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// Opens one SSE stream per topic from the topic objects. Fails (and closes what was opened) if
/// any topic refuses, e.g. 503 at its connection limit.
async fn open_upstreams(env: &Env, cfg: &Config, sub: &Subscribe, id: &str, format: Format, node: &str) -> Result<Vec<worker::ByteStream>, GatewayError> {
    let calls = sub.topics.iter().map(|topic| async move {
        let url = attach_url(topic, id, &sub.topics, sub.transport, format, node, false, sub.last_event_id.as_deref());
        topic_stub(env, topic)?.fetch_with_str(&url).await.map_err(http::internal)
    });
    let mut streams = Vec::new();
    let mut failure = None;
    for result in join_all(calls).await {
        match result {
            Ok(mut resp) if resp.status_code() == 200 => streams.push(resp.stream().map_err(http::internal)?),
            Ok(mut resp) => {
                let text = resp.text().await.unwrap_or_default();
                failure.get_or_insert(error_from_object(resp.status_code(), &text, cfg));
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        None => Ok(streams),
        // Dropping the opened streams cancels them; their objects detach the connection.
        Some(e) => Err(e),
    }
}

/// Rebuilds the error a topic object answered (it uses the same configuration).
fn error_from_object(status: u16, body: &str, cfg: &Config) -> GatewayError {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let msg = v["error"]["message"].as_str().unwrap_or(body).to_string();
    match status {
        503 => GatewayError::ConnectionLimit(msg),
        413 => GatewayError::PayloadTooLarge { max: cfg.max_body_bytes },
        415 => GatewayError::UnsupportedBody,
        400 => GatewayError::InvalidRequest(msg),
        _ => GatewayError::Internal(format!("topic object answered {status}: {msg}")),
    }
}

/// Merges per-topic SSE streams into whole frames. Keepalives of every stream but the first are
/// dropped so the client gets one per interval.
fn merge_frames(streams: Vec<worker::ByteStream>) -> impl Stream<Item = String> {
    let per_topic = streams.into_iter().enumerate().map(|(i, s)| {
        s.scan(String::new(), move |buf, chunk| {
            let mut frames = Vec::new();
            match chunk.ok().and_then(|c| String::from_utf8(c).ok()) {
                Some(text) => buf.push_str(&text),
                // A broken upstream ends the whole connection; the client reconnects.
                None => return futures_util::future::ready(None),
            }
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                if i == 0 || frame != frame::KEEPALIVE {
                    frames.push(frame);
                }
            }
            futures_util::future::ready(Some(stream::iter(frames)))
        })
        .flatten()
        .boxed_local()
    });
    // The connection ends as soon as any topic's stream ends.
    stream::select_all(per_topic.map(|s| s.chain(stream::once(async { String::new() })).boxed_local()))
        .take_while(|f| futures_util::future::ready(!f.is_empty()))
}

/// The subscription a `/sse` or `/ws` request asks for.
fn subscription(req: &Request, transport: Transport, query: &Query, cfg: &Config) -> Result<Subscribe, GatewayError> {
    let h = req.headers();
    let (topics, last_id) = (header(h, "x-sse-topic"), header(h, "last-event-id"));
    Subscribe::parse(transport, topics.as_deref().map(str::as_bytes), last_id.as_deref().map(str::as_bytes), query, cfg)
}

/// The validated publish headers of a request (the body is not touched).
pub fn publish_headers(h: &Headers, cfg: &Config, with_length: bool) -> Result<Publish, GatewayError> {
    let (topic, id, event) = (header(h, "x-sse-topic"), header(h, "x-sse-id"), header(h, "x-sse-event"));
    let length = if with_length { header(h, "content-length") } else { None };
    fn bytes(v: &Option<String>) -> Option<&[u8]> {
        v.as_deref().map(str::as_bytes)
    }
    Publish::parse(
        PublishHeaders { topic: bytes(&topic), id: bytes(&id), event: bytes(&event), content_length: bytes(&length) },
        cfg,
    )
}

async fn subscribe_sse(req: Request, env: &Env, cfg: &Config, query: &Query) -> Result<Response, GatewayError> {
    let sub = subscription(&req, Transport::Sse, query, cfg)?;
    let id = routes::connection_id(http::now_ms(), http::random_u32());
    let node = node(&req);
    if let [topic] = sub.topics.as_slice() {
        // One topic: the topic object serves the stream itself.
        let url = attach_url(topic, &id, &sub.topics, Transport::Sse, sub.format, &node, true, sub.last_event_id.as_deref());
        return topic_stub(env, topic)?.fetch_with_str(&url).await.map_err(http::internal);
    }
    let upstreams = open_upstreams(env, cfg, &sub, &id, sub.format, &node).await?;
    let open = frame::encode_open(cfg.retry_ms, &id, &sub.topics);
    let body = stream::once(async move { open })
        .chain(merge_frames(upstreams))
        .map(|f| Ok::<Vec<u8>, worker::Error>(f.into_bytes()));
    Ok(http::sse(Response::from_stream(body).map_err(http::internal)?))
}

async fn subscribe_ws(req: Request, env: &Env, cfg: &Config, query: &Query) -> Result<Response, GatewayError> {
    let h = req.headers();
    if !header(h, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(GatewayError::UpgradeRequired);
    }
    let sub = subscription(&req, Transport::Ws, query, cfg)?;
    let id = routes::connection_id(http::now_ms(), http::random_u32());
    let upstreams = open_upstreams(env, cfg, &sub, &id, Format::SseEnvelope, &node(&req)).await?;
    let pair = WebSocketPair::new().map_err(http::internal)?;
    let (client, server) = (pair.client, pair.server);
    server.accept().map_err(http::internal)?;
    server.send_with_str(frame::encode_ws_open(&id, &sub.topics)).map_err(http::internal)?;
    wasm_bindgen_futures::spawn_local(bridge_ws(server, upstreams));
    Response::from_websocket(client).map_err(http::internal)
}

/// Relays the envelopes of every topic stream to the WebSocket until either side ends.
async fn bridge_ws(ws: worker::WebSocket, upstreams: Vec<worker::ByteStream>) {
    enum Step {
        Frame(String),
        ClientGone,
    }
    let Ok(events) = ws.events() else { return };
    let client_gone = events
        .filter_map(|e| {
            futures_util::future::ready(match e {
                Ok(worker::WebsocketEvent::Message(_)) => None,
                _ => Some(Step::ClientGone),
            })
        })
        .boxed_local();
    let frames = merge_frames(upstreams).map(Step::Frame).chain(stream::once(async { Step::ClientGone }));
    let mut steps = stream::select(frames.boxed_local(), client_gone);
    let mut parser = SseParser::new();
    while let Some(step) = steps.next().await {
        match step {
            Step::Frame(f) => {
                for item in parser.push(&f) {
                    if let SseItem::Event(ev) = item {
                        if ws.send_with_str(&ev.data).is_err() {
                            let _ = ws.close(Some(1011), Some("send failed"));
                            return;
                        }
                    }
                }
            }
            Step::ClientGone => break,
        }
    }
    let _ = ws.close(Some(1000), Some("closed"));
}

/// What a topic object answers to a publish or a liveness probe.
#[derive(Debug, Deserialize)]
pub struct ObjectResult {
    #[serde(default)]
    pub live: Option<bool>,
    #[serde(default)]
    pub delivered: Option<usize>,
    #[serde(default)]
    pub dropped: Option<bool>,
    /// The topic retains events: the event was stored for replay (even with nobody connected).
    #[serde(default)]
    pub retained: Option<bool>,
}

impl ObjectResult {
    fn topic_result(&self) -> TopicResult {
        if self.retained == Some(true) {
            return TopicResult::Retained(self.delivered.unwrap_or(0));
        }
        match self.delivered {
            Some(n) if self.dropped != Some(true) => TopicResult::Delivered(n),
            _ => TopicResult::Dropped,
        }
    }
}

async fn object_call(stub: Stub, req: Request, cfg: &Config) -> Result<ObjectResult, GatewayError> {
    let mut resp = stub.fetch_with_request(req).await.map_err(http::internal)?;
    let text = resp.text().await.map_err(http::internal)?;
    if resp.status_code() != 200 {
        return Err(error_from_object(resp.status_code(), &text, cfg));
    }
    serde_json::from_str(&text).map_err(|e| GatewayError::Internal(format!("topic object answer: {e}")))
}

async fn publish(req: Request, env: &Env, cfg: &Config) -> Result<Response, GatewayError> {
    let p = publish_headers(req.headers(), cfg, true)?;
    if let [topic] = p.topics.as_slice() {
        // One topic: hand the request over with its body unread; the object reads it only if
        // it has subscribers.
        let result = object_call(topic_stub(env, topic)?, req, cfg).await?;
        let body = request::publish_response(&p.id, &[(topic.clone(), result.topic_result())]);
        return Ok(http::json(202, body));
    }
    publish_many(req, env, cfg, &p).await
}

/// Several topics: ask each object whether it is live (the dead ones log the drop), read the
/// body once only if one is, then deliver it to the live ones.
async fn publish_many(mut req: Request, env: &Env, cfg: &Config, p: &Publish) -> Result<Response, GatewayError> {
    let probes = p.topics.iter().map(|topic| async move {
        let url = format!("https://topic/live?topic={topic}&id={}", p.id);
        let probe = Request::new(&url, Method::Get).map_err(http::internal)?;
        object_call(topic_stub(env, topic)?, probe, cfg).await
    });
    let live: Vec<bool> = join_all(probes)
        .await
        .into_iter()
        .map(|r| r.map(|o| o.live == Some(true)))
        .collect::<Result<_, _>>()?;
    let mut results: Vec<(String, TopicResult)> = p.topics.iter().map(|t| (t.clone(), TopicResult::Dropped)).collect();
    if live.iter().any(|l| *l) {
        let data = body::read_text(&mut req, cfg.max_body_bytes).await?;
        let ts = http::now_ms();
        let deliveries = p.topics.iter().zip(&live).filter(|(_, l)| **l).map(|(topic, _)| {
            let data = data.clone();
            async move {
                let headers = Headers::new();
                let _ = headers.set("x-sse-id", &p.id);
                if let Some(ev) = &p.event {
                    let _ = headers.set("x-sse-event", ev);
                }
                let _ = headers.set("x-sse-ts", &ts.to_string());
                let mut init = RequestInit::new();
                init.with_method(Method::Post).with_headers(headers).with_body(Some(data.into()));
                let deliver = Request::new_with_init(&format!("https://topic/deliver?topic={topic}"), &init).map_err(http::internal)?;
                Ok::<_, GatewayError>((topic.clone(), object_call(topic_stub(env, topic)?, deliver, cfg).await?.topic_result()))
            }
        });
        for delivered in join_all(deliveries).await {
            let (topic, r) = delivered?;
            if let Some(slot) = results.iter_mut().find(|(t, _)| *t == topic) {
                slot.1 = r;
            }
        }
    }
    Ok(http::json(202, request::publish_response(&p.id, &results)))
}
