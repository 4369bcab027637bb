//! A real cluster for tests: a throwaway redis-server and gateway node processes (the
//! `sse-gateway` binary cargo built), on free ports, plus small HTTP and SSE clients.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use redis_server::{free_port, RedisCluster, RedisServer};
use sse_core::frame::{ParsedEvent, SseItem, SseParser};
use tokio::sync::mpsc;

mod redis_server;

pub const KEY: &str = "test-key";
pub const TTL_MS: u64 = 3_000;
pub const HEARTBEAT_MS: u64 = 1_000;

pub struct Node {
    pub id: String,
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

pub struct Cluster {
    pub redis: RedisServer,
    pub nodes: Vec<Node>,
    /// More environment for every node (e.g. `RETENTION`).
    pub env: Vec<(String, String)>,
    /// A node (0-based) whose `REDIS_URL` goes through [`CutProxy`], and that proxy.
    pub proxied: Option<(usize, CutProxy)>,
    /// With [`Cluster::start_on_redis_cluster`]: the nodes use it (`REDIS_CLUSTER_URLS`).
    pub redis_cluster: Option<RedisCluster>,
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, &[]).await
    }

    /// [`Cluster::start`] with more environment for every node.
    pub async fn start_with(n: usize, env: &[(&str, &str)]) -> Cluster {
        let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut c = Cluster { redis, nodes: Vec::new(), env, proxied: None, redis_cluster: None };
        c.start_nodes(n).await;
        c
    }

    /// `n` nodes on a Redis Cluster of `shards` shards, with more environment for every node.
    pub async fn start_on_redis_cluster(n: usize, shards: usize, env: &[(&str, &str)]) -> Cluster {
        let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
        let rc = RedisCluster::start(shards).unwrap_or_else(|e| panic!("{e}"));
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut c = Cluster { redis, nodes: Vec::new(), env, proxied: None, redis_cluster: Some(rc) };
        c.start_nodes(n).await;
        c
    }

    /// [`Cluster::start`], node `via` (0-based) reaching Redis through a [`CutProxy`] (the
    /// others directly), so that it alone can be cut off from Redis.
    pub async fn start_proxied(n: usize, via: usize) -> Cluster {
        let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
        let proxy = CutProxy::start(redis.port).await;
        let mut c = Cluster { redis, nodes: Vec::new(), env: Vec::new(), proxied: Some((via, proxy)), redis_cluster: None };
        c.start_nodes(n).await;
        c
    }

    /// The proxy of [`Cluster::start_proxied`].
    pub fn proxy(&self) -> &CutProxy {
        &self.proxied.as_ref().expect("started with start_proxied").1
    }

    async fn start_nodes(&mut self, n: usize) {
        let c = self;
        for i in 1..=n {
            let port = free_port().expect("a free port");
            c.nodes.push(Node { id: format!("node-{i}"), port, child: None });
            c.spawn(i - 1).await;
        }
    }

    /// Starts node `i` (0-based) again, on its port.
    pub async fn spawn(&mut self, i: usize) {
        let redis_url = match &self.proxied {
            Some((via, p)) if *via == i => format!("redis://127.0.0.1:{}", p.port),
            _ => self.redis.url(),
        };
        let (redis_var, redis_url) = match &self.redis_cluster {
            Some(rc) => ("REDIS_CLUSTER_URLS", rc.urls()),
            None => ("REDIS_URL", redis_url),
        };
        let node = &mut self.nodes[i];
        let child = Command::new(env!("CARGO_BIN_EXE_sse-gateway"))
            .env("LISTEN_ADDR", format!("127.0.0.1:{}", node.port))
            .env("NODE_ID", &node.id)
            .env(redis_var, redis_url)
            .env("API_KEYS", KEY)
            .env("HEARTBEAT_INTERVAL_MS", HEARTBEAT_MS.to_string())
            .env("NODE_TTL_MS", TTL_MS.to_string())
            .env("NODE_REFRESH_MS", "500")
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sse-gateway");
        node.child = Some(child);
        let base = node.base();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = get(&format!("{base}/healthz"), &[]).await {
                return;
            }
            assert!(Instant::now() < deadline, "{base} did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: the node cannot deregister.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self, i: usize) -> std::process::ExitStatus {
        let mut c = self.nodes[i].child.take().expect("running");
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        c.wait().expect("exit status")
    }

    pub fn base(&self, i: usize) -> String {
        self.nodes[i].base()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Result<(u16, serde_json::Value), String> {
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)))
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Result<(u16, serde_json::Value), String> {
    request("GET", url, headers, "").await
}

pub async fn publish(base: &str, topics: &str, id: &str, body: &str) -> serde_json::Value {
    let (status, json) =
        request("POST", &format!("{base}/publish"), &[("x-api-key", KEY), ("x-sse-topic", topics), ("x-sse-id", id)], body)
            .await
            .expect("publish answered");
    assert_eq!(status, 202, "{json}");
    json
}

/// A publish whose answer may be an error: (status, retry-after, body).
pub async fn try_publish(base: &str, topics: &str, id: &str, body: &str) -> (u16, Option<String>, serde_json::Value) {
    let req = hyper::Request::post(format!("{base}/publish"))
        .header("x-api-key", KEY)
        .header("x-sse-topic", topics)
        .header("x-sse-id", id)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req))
        .await
        .expect("answered within 10 s")
        .expect("publish answered");
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, retry, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// Records a measured figure for test-results/faults.{json,md} (scripts/test-native.sh cluster
/// collects the `FAULT-FIGURE` lines from the test log): rounded to 100 ms.
pub fn figure(name: &str, what: &str, took: Duration) {
    let ms = ((took.as_millis() as u64 + 50) / 100) * 100;
    eprintln!("FAULT-FIGURE {name} {ms} {what}");
}

pub async fn admin(base: &str, path: &str) -> serde_json::Value {
    let (status, json) = get(&format!("{base}{path}"), &[("x-api-key", KEY)]).await.expect("admin answered");
    assert_eq!(status, 200, "{json}");
    json
}

/// Every topic listed, following cursors.
pub async fn all_topics(base: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = admin(base, &format!("/admin/api/topics?limit=500&cursor={cursor}")).await;
        for t in page["topics"].as_array().unwrap() {
            out.push((t["topic"].as_str().unwrap().to_string(), t["connections"].as_u64().unwrap()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return out,
        }
    }
}

/// Every connection listed as (id, node), following cursors.
pub async fn all_connections(base: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = admin(base, &format!("/admin/api/connections?limit=500&cursor={cursor}")).await;
        for c in page["connections"].as_array().unwrap() {
            out.push((c["id"].as_str().unwrap().to_string(), c["node"].as_str().unwrap().to_string()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return out,
        }
    }
}

/// An SSE subscriber: events arrive on `events`; dropping it closes the connection.
pub struct Subscriber {
    pub id: String,
    pub events: mpsc::UnboundedReceiver<ParsedEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    pub async fn open(base: &str, topics: &str) -> Subscriber {
        Self::open_with(base, topics, &[]).await
    }

    /// [`Subscriber::open`] with more request headers (e.g. `last-event-id`).
    pub async fn open_with(base: &str, topics: &str, headers: &[(&str, &str)]) -> Subscriber {
        let mut req = hyper::Request::get(format!("{base}/sse")).header("x-sse-topic", topics);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::new())).unwrap();
        let resp = client().request(req).await.expect("subscribe");
        assert_eq!(resp.status(), 200);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut body = resp.into_body();
            let mut parser = SseParser::new();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    for item in parser.push(&String::from_utf8_lossy(data)) {
                        if let SseItem::Event(e) = item {
                            if tx.send(e).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let connected = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("connected in time").expect("stream open");
        assert_eq!(connected.event.as_deref(), Some("connected"));
        let v: serde_json::Value = serde_json::from_str(&connected.data).unwrap();
        Subscriber { id: v["connection_id"].as_str().unwrap().to_string(), events: rx, task }
    }

    pub async fn next(&mut self, within: Duration) -> Option<ParsedEvent> {
        tokio::time::timeout(within, self.events.recv()).await.ok().flatten()
    }

    /// Whether the stream ended within `within` with no further event.
    pub async fn ended(&mut self, within: Duration) -> bool {
        matches!(tokio::time::timeout(within, self.events.recv()).await, Ok(None))
    }
}

/// A subscription that may be refused: (status, retry-after, JSON error body). A stream that
/// opens (200) is closed at once.
pub async fn try_subscribe(base: &str, topics: &str) -> (u16, Option<String>, serde_json::Value) {
    let req = hyper::Request::get(format!("{base}/sse")).header("x-sse-topic", topics).body(Full::new(Bytes::new())).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req))
        .await
        .expect("answered within 10 s")
        .expect("subscribe answered");
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    if status == 200 {
        return (status, retry, serde_json::Value::Null);
    }
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, retry, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// Polls `check` until it is true; returns how long that took, or panics after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not true within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP proxy to Redis for one node, that can cut it off: [`CutProxy::cut`] closes every
/// proxied connection and blackholes new ones (accepted, never answered, closed on restore);
/// [`CutProxy::restore`] forwards again.
pub struct CutProxy {
    pub port: u16,
    cut: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CutProxy {
    pub async fn start(redis_port: u16) -> CutProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let port = listener.local_addr().unwrap().port();
        let (tx, _) = tokio::sync::watch::channel(false);
        let cut = std::sync::Arc::new(tx);
        let state = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                let mut rx = state.subscribe();
                tokio::spawn(async move {
                    if *rx.borrow_and_update() {
                        // Blackholed: held open, nothing read or answered, until restored.
                        let _ = rx.wait_for(|c| !*c).await;
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", redis_port)).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        CutProxy { port, cut, task }
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

/// A gateway served in this process on a free port, with `pairs` as its environment
/// (on top of the test API key and node id).
#[allow(dead_code)]
pub async fn serve(pairs: &[(&str, &str)]) -> (sse_gateway_server::Gateway, String) {
    let mut env: Vec<(String, String)> = vec![("API_KEYS".into(), KEY.into()), ("NODE_ID".into(), "solo".into())];
    env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let lookup = |k: &str| env.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let mut cfg = sse_gateway_server::ServerConfig::from_lookup(lookup).expect("valid config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cfg.listen_addr = listener.local_addr().unwrap();
    let base = format!("http://{}", cfg.listen_addr);
    let gw = sse_gateway_server::Gateway::new(cfg).await.expect("gateway");
    tokio::spawn(gw.clone().serve(listener, std::future::pending()));
    (gw, base)
}
