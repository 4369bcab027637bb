//! Load figures for one native node (the release binary, started here as its own process; this
//! process is the client; loopback only; bounded in time):
//!
//! - idle memory: RSS of the node before and after N idle SSE connections (VmRSS from
//!   /proc/<pid>/status), per 1,000 connections;
//! - fan-out: N subscribers of one topic, E events published one after another; deliveries/s =
//!   N × E / (time from the first publish until every subscriber has every event).
//!
//!   bash scripts/bench-native.sh            (builds target/release/sse-gateway first)
//!   IDLE_CONNS=5000 FANOUT_SUBS=10000 FANOUT_EVENTS=100 bash scripts/bench-native.sh
//!
//! Writes benchmark-results/native-load.json and .md.

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Barrier, Semaphore};

const KEY: &str = "bench-key";

fn env_num(k: &str, default: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/sse-gateway");
    assert!(bin.exists(), "{} missing: run scripts/build-server.sh (bash scripts/bench-native.sh does)", bin.display());
    let port = redis_server::free_port().unwrap();
    let child = Command::new(bin)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("API_KEYS", KEY)
        .env("NODE_ID", "bench")
        .env("HEARTBEAT_INTERVAL_MS", "300000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the gateway");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server { child, port }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

/// Opens an SSE connection and reads until the `connected` block has arrived.
async fn subscribe(port: u16, topic: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    tcp.write_all(format!("GET /sse?topic={topic} HTTP/1.1\r\nhost: b\r\n\r\n").as_bytes()).await.unwrap();
    let mut seen = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !seen.windows(17).any(|w| w == b"event: connected\n") || !seen.ends_with(b"\n\n\r\n") && !seen.ends_with(b"\n\n") {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before connected");
        seen.extend_from_slice(&buf[..n]);
    }
    tcp
}

async fn open_many(port: u16, n: usize, topic: &'static str) -> Vec<TcpStream> {
    let gate = Arc::new(Semaphore::new(256));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _p = gate.acquire().await.unwrap();
                subscribe(port, topic).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn idle(n: usize) -> serde_json::Value {
    let server = start_server();
    let pid = server.child.id();
    // warm up: one connection and one publish, so lazily allocated state is there
    let warm = subscribe(server.port, "warm").await;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let conns = open_many(server.port, n, "idle").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid);
    drop(conns);
    let per_1000 = (after.saturating_sub(before)) as f64 * 1000.0 / n as f64;
    serde_json::json!({"scenario": "idle SSE connections", "connections": n, "rss_before_kib": before, "rss_after_kib": after, "rss_per_1000_connections_kib": per_1000.round() as u64})
}

async fn publish(tcp: &mut TcpStream, id: &str, body: &str) {
    let req = format!(
        "POST /publish HTTP/1.1\r\nhost: b\r\nx-api-key: {KEY}\r\nx-sse-topic: fan\r\nx-sse-id: {id}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(i) = text.find("\r\n\r\n") {
            let len: usize = text
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap()))
                .unwrap();
            if got.len() >= i + 4 + len {
                assert!(text.starts_with("HTTP/1.1 202"), "{text}");
                return;
            }
        }
    }
}

async fn fanout(subs: usize, events: usize) -> serde_json::Value {
    let server = start_server();
    let conns = open_many(server.port, subs, "fan").await;
    let body = "x".repeat(64);
    // Every frame has the same length: ids e00000..e99999.
    let frame_len = format!("id: e{:05}\ndata: {body}\n\n", 0).len();
    let expected = frame_len * events;
    let start = Arc::new(Barrier::new(subs + 1));
    let readers: Vec<_> = conns
        .into_iter()
        .map(|mut tcp| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let mut buf = vec![0u8; 64 * 1024];
                let mut payload = 0usize;
                while payload < expected {
                    let n = tcp.read(&mut buf).await.unwrap();
                    assert!(n > 0, "closed early");
                    // chunked encoding: count only the frame bytes (chunk headers are \r\n-framed)
                    payload += frame_bytes(&buf[..n]);
                }
                Instant::now()
            })
        })
        .collect();
    start.wait().await;
    let mut publisher = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    publisher.set_nodelay(true).unwrap();
    let t0 = Instant::now();
    for i in 0..events {
        publish(&mut publisher, &format!("e{i:05}"), &body).await;
    }
    let published = t0.elapsed();
    let deadline = Duration::from_secs(120);
    let mut last = t0;
    for r in readers {
        let done = tokio::time::timeout(deadline, r).await.expect("all delivered in time").unwrap();
        last = last.max(done);
    }
    let elapsed = last - t0;
    let deliveries = subs * events;
    serde_json::json!({
        "scenario": "fan-out to one topic",
        "subscribers": subs,
        "events": events,
        "body_bytes": body.len(),
        "publish_seconds": (published.as_secs_f64() * 1000.0).round() / 1000.0,
        "all_delivered_seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "deliveries_per_second": (deliveries as f64 / elapsed.as_secs_f64()).round() as u64,
    })
}

/// Bytes of SSE frames in a read of a chunked body: counts `id:`-started frames by their
/// characters, skipping chunk-size lines (`<hex>\r\n`) and the CRLF after each chunk.
fn frame_bytes(b: &[u8]) -> usize {
    // Frames never contain '\r'; chunk framing is "<hex>\r\n" ... "\r\n". Remove every line
    // ending in \r\n (chunk sizes and the empty line after a chunk).
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' {
            i += 1;
            continue;
        }
        // a hex chunk-size line is followed by \r
        let mut j = i;
        while j < b.len() && b[j].is_ascii_hexdigit() {
            j += 1;
        }
        if j > i && j < b.len() && b[j] == b'\r' && (i == 0 || b[i - 1] == b'\n') {
            i = j;
            continue;
        }
        if b[i] != b'\n' || i == 0 || b[i - 1] != b'\r' {
            n += 1;
        }
        i += 1;
    }
    n
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let idle_n = env_num("IDLE_CONNS", 5_000);
    let subs = env_num("FANOUT_SUBS", 10_000);
    let events = env_num("FANOUT_EVENTS", 100);
    let mut results = Vec::new();
    let r = idle(idle_n).await;
    println!("{r}");
    results.push(r);
    let r = fanout(subs, events).await;
    println!("{r}");
    results.push(r);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benchmark-results");
    let _ = std::fs::create_dir_all(&dir);
    std::fs::write(dir.join("native-load.json"), serde_json::to_string_pretty(&results).unwrap() + "\n").unwrap();
    let md = format!(
        "# Native node under load\n\nWritten by `bash scripts/bench-native.sh` (crates/server/benches/load.rs): one release node, a separate client process, loopback, 2 cores shared by both.\n\n| scenario | figure |\n|---|---|\n| {} idle SSE connections | {} KiB RSS per 1,000 connections ({} → {} KiB) |\n| fan-out, {} subscribers × {} events of {} bytes | {} deliveries/s (all delivered in {} s) |\n",
        results[0]["connections"], results[0]["rss_per_1000_connections_kib"], results[0]["rss_before_kib"], results[0]["rss_after_kib"],
        results[1]["subscribers"], results[1]["events"], results[1]["body_bytes"], results[1]["deliveries_per_second"], results[1]["all_delivered_seconds"],
    );
    std::fs::write(dir.join("native-load.md"), md).unwrap();
}
