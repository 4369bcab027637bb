//! The Worker: validates and authenticates with the core, then routes. A WebSocket client of one
//! topic is handed to that topic's object, which accepts the socket itself (so it can hibernate);
//! every other subscriber's stream (SSE, admin tail, a WebSocket of several topics) is held here
//! and joined to each topic's object over an internal WebSocket (`holder`). A publish goes to
//! each topic object with the body unread.

use futures_util::future::join_all;
use sse_core::auth::KeyGrant;
use sse_core::frame::{self, Format};
use sse_core::protocol::answer::decode_error;
use sse_core::protocol::{Attach, Deliver, Holder, ObjectAnswer, ProbeRequest, Probed, PublishPlan, Step, TopicResult};
use sse_core::request::{self, Credentials, ListQuery, Publish, PublishHeaders, Query, Subscribe};
use sse_core::routes::{self, Route};
use sse_core::topic::Transport;
use sse_core::{metrics, registry};
use sse_core::{Config, GatewayError};
use worker::{Env, Headers, Method, Request, Response};

use crate::body;
use crate::holder;
use crate::http::{self, header};
use crate::stubs::{self, internal_url, topic_stub};

pub async fn handle(req: Request, env: Env) -> Response {
    let (method, path) = (req.method().to_string(), req.path());
    let origin = header(req.headers(), "origin");
    let resp = match dispatch(req, env.clone()).await {
        Ok(resp) => resp,
        Err(e) => {
            // Every error answer is logged once, here, by the core's rule.
            http::log(&request::rejected_log_line(&method, &path, &e));
            http::error(&e)
        }
    };
    http::cors(resp, origin.as_deref(), &env)
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
    let key = if route.needs_key() {
        let h = req.headers();
        let (auth, key) = (header(h, "authorization"), header(h, "x-api-key"));
        let grant = cfg.api_keys.grant(bytes(&auth), bytes(&key))?;
        grant.check_route(&route)?;
        if route == Route::Publish && cfg.publish_rate_per_key > 0 {
            take_publish_token(&env, &cfg, grant.index).await?;
        }
        Some(grant)
    } else {
        None
    };
    let query = Query::parse(url.query().unwrap_or(""))?;
    match route {
        Route::Sse => subscribe_sse(req, &env, &cfg, &query).await,
        Route::Ws => subscribe_ws(req, &env, &cfg, &query).await,
        Route::Publish => publish(req, &env, &cfg, key).await,
        Route::AdminTopics | Route::AdminConnections | Route::AdminStats => {
            let path = match route {
                Route::AdminTopics => "topics",
                Route::AdminConnections => "connections",
                _ => "stats",
            };
            admin_listing(&env, &cfg, path, url.query().unwrap_or(""), &query).await
        }
        Route::AdminTail(topic) => {
            let id = routes::connection_id(http::now_ms(), http::random_u32());
            let attach = Attach {
                topic: topic.clone(),
                conn_id: id.clone(),
                topics: vec![topic.clone()],
                transport: Transport::Sse,
                format: Format::Tail,
                node: node(&req),
                hello: false,
                last_event_id: None,
                shard: 0,
                sub: None,
            };
            let sockets = holder::join(&env, &cfg, std::slice::from_ref(&attach)).await?;
            // A tail is not in the registry: nothing to tell it (`topics` empty).
            let held = holder::Held {
                env: env.clone(),
                registry_shards: cfg.registry_shards,
                conn_id: id.clone(),
                topics: Vec::new(),
                sockets,
                closes_at_ms: None,
            };
            holder::sse(held, frame::encode_open(cfg.retry_ms, &id, &attach.topics), &cfg)
        }
        Route::Preflight | Route::Healthz | Route::AdminUi | Route::Metrics => unreachable!("answered above"),
    }
}

/// An admin listing or the stats, from the registry shards: one shard is asked as it is; with
/// several, each is asked (only the topic's own for `?topic=`) and the core merges the pages.
async fn admin_listing(env: &Env, cfg: &Config, path: &str, raw_query: &str, query: &Query) -> Result<Response, GatewayError> {
    let shards = cfg.registry_shards;
    let list = if path == "stats" { None } else { Some(ListQuery::parse(query)?) };
    if let Some(l) = &list {
        registry::check_cursor(path, l.cursor.as_deref())?;
    }
    let asked = registry::shards_to_ask(list.as_ref().and_then(|l| l.topic.as_deref()), shards);
    let calls = asked.iter().map(|&i| async move {
        let mut resp = stubs::registry(env, i, shards)?
            .fetch_with_str(&stubs::registry_url(path, raw_query, i, shards))
            .await
            .map_err(http::internal)?;
        let text = resp.text().await.map_err(http::internal)?;
        Ok::<_, GatewayError>((resp.status_code(), text))
    });
    let mut bodies = Vec::new();
    for r in join_all(calls).await {
        let (status, text) = r?;
        if status != 200 {
            return Err(decode_error(status, &text, cfg.max_body_bytes));
        }
        bodies.push(text);
    }
    let body = match (&list, bodies.as_slice()) {
        (_, [one]) => one.clone(),
        (None, _) => metrics::merge_stats(&bodies)?,
        (Some(l), _) => registry::merge_pages(&bodies, path, l.limit)?,
    };
    Ok(http::json(200, body))
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

fn node(req: &Request) -> String {
    match req.cf().map(|cf| cf.colo()) {
        Some(colo) if !colo.is_empty() => colo,
        _ => "local".to_string(),
    }
}

/// The attach of connection `id` to `topic`.
fn attach(topic: &str, id: &str, sub: &Subscribe, format: Format, node: &str, hello: bool) -> Attach {
    Attach {
        topic: topic.to_string(),
        conn_id: id.to_string(),
        topics: sub.topics.clone(),
        transport: sub.transport,
        format,
        node: node.to_string(),
        hello,
        last_event_id: sub.last_event_id.clone(),
        shard: 0,
        sub: sub.grant.as_ref().and_then(|g| g.sub.clone()),
    }
}

/// The subscription a `/sse` or `/ws` request asks for.
fn subscription(req: &Request, transport: Transport, query: &Query, cfg: &Config) -> Result<Subscribe, GatewayError> {
    let h = req.headers();
    let (topics, last_id) = (header(h, "x-sse-topic"), header(h, "last-event-id"));
    let mut sub = Subscribe::parse(transport, bytes(&topics), bytes(&last_id), query, cfg)?;
    // Private topics: checked here, before any Durable Object is asked (a refused subscriber
    // costs no object request). The cookie is used only as `Origin` and the host allow.
    let (authorization, cookie, origin) = (header(h, "authorization"), header(h, "cookie"), header(h, "origin"));
    let url = req.url().map_err(|_| GatewayError::InvalidRequest("bad url".into()))?;
    let host = url.host_str().map(|host| match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    });
    let creds = Credentials { authorization: bytes(&authorization), cookie: bytes(&cookie), origin: bytes(&origin), host: bytes(&host) };
    sub.authorize(cfg, creds, query, http::now_ms() / 1000)?;
    Ok(sub)
}

/// A header value read as text, as the core's parsers take it (bytes).
fn bytes(v: &Option<String>) -> Option<&[u8]> {
    v.as_deref().map(str::as_bytes)
}

/// The validated publish headers of a request (the body is not touched).
pub fn publish_headers(h: &Headers, cfg: &Config, with_length: bool) -> Result<Publish, GatewayError> {
    let (topic, id, event) = (header(h, "x-sse-topic"), header(h, "x-sse-id"), header(h, "x-sse-event"));
    let length = if with_length { header(h, "content-length") } else { None };
    Publish::parse(PublishHeaders { topic: bytes(&topic), id: bytes(&id), event: bytes(&event), content_length: bytes(&length) }, cfg)
}

/// A subscriber connection the Worker holds, joined over `sockets`.
fn held(env: &Env, cfg: &Config, id: &str, sub: &Subscribe, sockets: Vec<worker::WebSocket>) -> holder::Held {
    holder::Held {
        env: env.clone(),
        registry_shards: cfg.registry_shards,
        conn_id: id.to_string(),
        topics: sub.topics.clone(),
        sockets,
        closes_at_ms: sub.closes_at_ms(cfg),
    }
}

async fn subscribe_sse(req: Request, env: &Env, cfg: &Config, query: &Query) -> Result<Response, GatewayError> {
    let sub = subscription(&req, Transport::Sse, query, cfg)?;
    let id = routes::connection_id(http::now_ms(), http::random_u32());
    let node = node(&req);
    let attaches: Vec<Attach> = sub.topics.iter().map(|t| attach(t, &id, &sub, sub.format, &node, false)).collect();
    let sockets = holder::join(env, cfg, &attaches).await?;
    let held = held(env, cfg, &id, &sub, sockets);
    holder::sse(held, frame::encode_open(cfg.retry_ms, &id, &sub.topics), cfg)
}

async fn subscribe_ws(req: Request, env: &Env, cfg: &Config, query: &Query) -> Result<Response, GatewayError> {
    let h = req.headers();
    if !header(h, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(GatewayError::UpgradeRequired);
    }
    let sub = subscription(&req, Transport::Ws, query, cfg)?;
    let id = routes::connection_id(http::now_ms(), http::random_u32());
    let node = node(&req);
    let attaches: Vec<Attach> = sub.topics.iter().map(|t| attach(t, &id, &sub, Format::Ws, &node, true)).collect();
    if let ([one], true) = (attaches.as_slice(), Holder::hands_over(&sub, cfg)) {
        // One topic: the object accepts the client's socket itself and sends the opening.
        return holder::attach_call(env, cfg, one).await;
    }
    let attaches: Vec<Attach> = attaches.into_iter().map(|a| Attach { hello: false, ..a }).collect();
    let sockets = holder::join(env, cfg, &attaches).await?;
    let held = held(env, cfg, &id, &sub, sockets);
    holder::websocket(held, frame::encode_ws_open(&id, &sub.topics))
}

/// Answers a publish from its finished plan: the drop lines logged once, here; the 202 body.
fn accepted(plan: PublishPlan) -> Response {
    let report = plan.finish();
    for line in &report.log {
        http::log(line);
    }
    http::json(202, report.body)
}

async fn publish(req: Request, env: &Env, cfg: &Config, key: Option<KeyGrant<'_>>) -> Result<Response, GatewayError> {
    let p = publish_headers(req.headers(), cfg, true)?;
    // A scoped key's topics, before the body is touched.
    if let Some(key) = key {
        key.check_publish(&p.topics)?;
    }
    let mut plan = PublishPlan::new(p.id.clone(), p.topics.clone());
    if let [topic] = p.topics.as_slice() {
        // One topic: hand the request over with its body unread; the object reads it only if
        // the topic takes the event (the drop rule, decided there).
        let answer = stubs::object_call(&topic_stub(env, topic)?, req, cfg.max_body_bytes).await?;
        plan.settle(0, answer.result());
        return Ok(accepted(plan));
    }
    publish_many(req, env, cfg, &p, plan).await
}

/// Several topics: ask each object whether it takes the event (the others tell their tails),
/// read the body once only if one does, then deliver it to those.
async fn publish_many(mut req: Request, env: &Env, cfg: &Config, p: &Publish, mut plan: PublishPlan) -> Result<Response, GatewayError> {
    let probes = plan.topics().iter().map(|topic| {
        let probe = ProbeRequest { topic: topic.clone(), id: plan.id().to_string() };
        async move {
            let req = Request::new(&internal_url(&probe.encode()), Method::Get).map_err(http::internal)?;
            stubs::object_call(&topic_stub(env, &probe.topic)?, req, cfg.max_body_bytes).await
        }
    });
    let probed: Vec<Probed> = join_all(probes)
        .await
        .into_iter()
        .map(|r| r.map(|a| if a == ObjectAnswer::Live(true) { Probed::Takes } else { Probed::Dropped }))
        .collect::<Result<_, _>>()?;
    if plan.probed(probed)? == Step::Answer {
        return Ok(accepted(plan));
    }
    let data = body::read_text(&mut req, cfg.max_body_bytes).await?;
    let ts = http::now_ms();
    let deliveries = plan.targets().map(|(i, topic)| {
        let msg = Deliver { topic: topic.to_string(), id: p.id.clone(), event: p.event.clone(), ts, seq: None };
        let data = data.clone();
        async move {
            let deliver = stubs::deliver_request(&msg, data, "")?;
            Ok::<_, GatewayError>((i, stubs::object_call(&topic_stub(env, &msg.topic)?, deliver, cfg.max_body_bytes).await?.result()))
        }
    });
    let delivered: Vec<(usize, TopicResult)> = join_all(deliveries).await.into_iter().collect::<Result<_, _>>()?;
    for (i, r) in delivered {
        plan.settle(i, r);
    }
    Ok(accepted(plan))
}
