//! How should one node hand an event to another? Direct HTTP to the node's advertised address
//! versus Redis pub/sub on a per-node channel. 1,000 events of 256 bytes each way, on loopback:
//! delivery latency (send → the receiving node has it), publisher latency (send → the sender
//! knows it was taken), and throughput, sequential and with 32 in flight.
//!
//!   cargo bench -p sse-gateway-server --bench forward
//!
//! Needs `redis-server` (bash scripts/setup.sh --with-redis).

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use redis_server::RedisServer;

const EVENTS: usize = 1_000;
const CONCURRENCY: usize = 32;

struct Figures {
    delivery: Vec<Duration>,
    publisher: Vec<Duration>,
    total: Duration,
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e6
}

fn report(name: &str, mut f: Figures) -> serde_json::Value {
    let rate = EVENTS as f64 / f.total.as_secs_f64();
    let j = serde_json::json!({
        "transport": name,
        "events": EVENTS,
        "delivery_p50_us": pct(&mut f.delivery, 0.5).round() as u64,
        "delivery_p99_us": pct(&mut f.delivery, 0.99).round() as u64,
        "publisher_p50_us": pct(&mut f.publisher, 0.5).round() as u64,
        "publisher_p99_us": pct(&mut f.publisher, 0.99).round() as u64,
        "events_per_s": rate.round() as u64,
    });
    println!("{j}");
    j
}

async fn http_bench(concurrency: usize, h2: bool) -> Figures {
    let received: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::with_capacity(EVENTS)));
    let r2 = received.clone();
    let app = axum::Router::new().route(
        "/_cluster/deliver",
        post(move |body: Bytes| {
            let r2 = r2.clone();
            async move {
                assert_eq!(body.len(), 256);
                r2.lock().unwrap().push(Instant::now());
                r#"{"delivered":1}"#
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).http2_only(h2).build(connector);
    let payload = Bytes::from(vec![b'x'; 256]);
    let one = |i: usize| {
        let client = client.clone();
        let payload = payload.clone();
        async move {
            let req = hyper::Request::post(format!("http://{addr}/_cluster/deliver"))
                .header("x-sse-id", format!("e{i}"))
                .body(Full::new(payload))
                .unwrap();
            let start = Instant::now();
            let resp = client.request(req).await.unwrap();
            let _ = resp.into_body().collect().await.unwrap();
            (start, start.elapsed())
        }
    };
    // warm up the pool
    for i in 0..50 {
        one(i).await;
    }
    received.lock().unwrap().clear();
    let t0 = Instant::now();
    let results: Vec<(Instant, Duration)> = futures_util::stream::iter(0..EVENTS).map(one).buffered(concurrency).collect().await;
    let total = t0.elapsed();
    let mut recv = received.lock().unwrap().clone();
    recv.sort();
    let mut starts: Vec<Instant> = results.iter().map(|r| r.0).collect();
    starts.sort();
    let delivery = starts.iter().zip(&recv).map(|(s, r)| r.saturating_duration_since(*s)).collect();
    Figures { delivery, publisher: results.into_iter().map(|r| r.1).collect(), total }
}

async fn redis_bench(url: &str, concurrency: usize) -> Figures {
    let client = redis::Client::open(url).unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    let channel = format!("bench:node-b:{concurrency}");
    sub.subscribe(&channel).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    tokio::spawn(async move {
        let mut msgs = sub.on_message();
        while let Some(m) = msgs.next().await {
            let p: Vec<u8> = m.get_payload_bytes().to_vec();
            assert_eq!(p.len(), 256 + 16);
            if tx.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let payload = vec![b'x'; 256 + 16];
    let one = |_: usize| {
        let mut conn = conn.clone();
        let payload = payload.clone();
        let channel = channel.clone();
        async move {
            let start = Instant::now();
            let n: i64 = redis::cmd("PUBLISH").arg(&channel).arg(payload).query_async(&mut conn).await.unwrap();
            assert_eq!(n, 1);
            (start, start.elapsed())
        }
    };
    for i in 0..50 {
        one(i).await;
    }
    for _ in 0..50 {
        rx.recv().await.unwrap();
    }
    let t0 = Instant::now();
    let results: Vec<(Instant, Duration)> = futures_util::stream::iter(0..EVENTS).map(one).buffered(concurrency).collect().await;
    let mut recv = Vec::with_capacity(EVENTS);
    for _ in 0..EVENTS {
        recv.push(rx.recv().await.unwrap());
    }
    let total = t0.elapsed().max(*recv.last().unwrap() - t0);
    let delivery = results.iter().zip(&recv).map(|(s, r)| r.saturating_duration_since(s.0)).collect();
    Figures { delivery, publisher: results.into_iter().map(|r| r.1).collect(), total }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for (label, c) in [("sequential", 1), ("concurrent", CONCURRENCY)] {
        out.push(report(&format!("http/1.1 direct, {label}"), http_bench(c, false).await));
        out.push(report(&format!("http/2 (h2c) direct, {label}"), http_bench(c, true).await));
        out.push(report(&format!("redis pub/sub, {label}"), redis_bench(&redis.url(), c).await));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benchmark-results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("forward-transport.json"), serde_json::to_string_pretty(&out).unwrap() + "\n");
    let mut md = String::from("# Node-to-node event transport\n\nWritten by `bash scripts/bench-native.sh forward` (crates/server/benches/forward.rs): 1,000 events of 256 bytes, loopback, 2 cores; concurrent = 32 in flight. Delivery = send until the receiving node has the event; publisher = send until the sender knows it was taken.\n\n| transport | delivery p50 / p99 (µs) | publisher p50 / p99 (µs) | events/s |\n|---|---|---|---|\n");
    for r in &out {
        md.push_str(&format!(
            "| {} | {} / {} | {} / {} | {} |\n",
            r["transport"].as_str().unwrap_or(""),
            r["delivery_p50_us"],
            r["delivery_p99_us"],
            r["publisher_p50_us"],
            r["publisher_p99_us"],
            r["events_per_s"]
        ));
    }
    let _ = std::fs::write(dir.join("forward-transport.md"), md);
}
