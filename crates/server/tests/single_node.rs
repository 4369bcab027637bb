//! One node, in process (the library API) or as the binary: WebSocket keepalive and limits,
//! slow-consumer eviction, in-process publish. Raw sockets where the bytes matter.

mod support;

use std::time::{Duration, Instant};

use sse_gateway_server::{Config, TopicResult};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn ws_handshake(base: &str, topic: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /ws?topic={topic} HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tcp
}

/// Reads one unmasked server frame: (opcode, payload).
async fn frame(tcp: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    tcp.read_exact(&mut h).await.ok()?;
    let mut len = (h[1] & 0x7f) as usize;
    if len == 126 {
        let mut l = [0u8; 2];
        tcp.read_exact(&mut l).await.ok()?;
        len = u16::from_be_bytes(l) as usize;
    } else if len == 127 {
        let mut l = [0u8; 8];
        tcp.read_exact(&mut l).await.ok()?;
        len = u64::from_be_bytes(l) as usize;
    }
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).await.ok()?;
    Some((h[0] & 0x0f, payload))
}

fn masked_text(len: usize) -> Vec<u8> {
    let mut f = vec![0x81u8, 0x80 | 127];
    f.extend_from_slice(&(len as u64).to_be_bytes());
    f.extend_from_slice(&[1, 2, 3, 4]);
    f.extend((0..len).map(|i| b'a' ^ [1u8, 2, 3, 4][i % 4]));
    f
}

#[tokio::test]
async fn websocket_pings_and_closes_a_client_that_never_answers() {
    let (_gw, base) = serve(&[("HEARTBEAT_INTERVAL_MS", "500")]).await;
    let mut tcp = ws_handshake(&base, "wsping").await;
    let (op, hello) = frame(&mut tcp).await.unwrap();
    assert_eq!(op, 1);
    assert!(String::from_utf8_lossy(&hello).contains(r#""type":"connected""#));
    let start = Instant::now();
    let mut pings = 0;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), frame(&mut tcp)).await.expect("a frame in time") {
            Some((0x9, _)) => pings += 1,
            Some((0x8, payload)) => break payload,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(pings, 2, "two unanswered pings, then the close");
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1001);
    assert!(start.elapsed() < Duration::from_millis(2_000), "closed after {:?}", start.elapsed());
}

#[tokio::test]
async fn websocket_client_messages_are_ignored_but_an_oversized_one_closes_with_1009() {
    let (gw, base) = serve(&[("WS_MAX_MESSAGE_BYTES", "1024")]).await;
    let mut tcp = ws_handshake(&base, "wsbig").await;
    frame(&mut tcp).await.unwrap();
    tcp.write_all(&masked_text(100)).await.unwrap();
    let r = gw.publish(&["wsbig"], "after-small", None, "still here").await.unwrap();
    assert_eq!(r, vec![("wsbig".to_string(), TopicResult::Delivered(1))]);
    let (op, msg) = frame(&mut tcp).await.unwrap();
    assert_eq!(op, 1);
    assert!(String::from_utf8_lossy(&msg).contains("still here"));
    tcp.write_all(&masked_text(5_000)).await.unwrap();
    let (op, close) = tokio::time::timeout(Duration::from_secs(3), frame(&mut tcp)).await.unwrap().unwrap();
    assert_eq!(op, 0x8);
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1009);
}

#[tokio::test]
async fn a_slow_subscriber_is_evicted_and_the_others_get_everything() {
    let (gw, base) = serve(&[("QUEUE_CAPACITY", "4"), ("MAX_BODY_BYTES", "65536")]).await;
    let addr = base.trim_start_matches("http://").to_string();
    // The slow one: subscribes, then never reads.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(format!("GET /sse?topic=busy HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let mut fast = Subscriber::open(&base, "busy").await;
    let body = "x".repeat(60_000);
    let mut delivered_to = Vec::new();
    for i in 0..200 {
        let r = gw.publish(&["busy"], &format!("b{i}"), None, &body).await.unwrap();
        if let TopicResult::Delivered(n) = r[0].1 {
            delivered_to.push(n);
        }
        // Let the fast one keep up, as a reading client does.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1), fast.events.recv()).await {}
    }
    assert_eq!(delivered_to.first(), Some(&2));
    assert_eq!(delivered_to.last(), Some(&1), "the slow subscriber was evicted: {delivered_to:?}");
    assert_eq!(gw.stats().evicted, 1);
    let conns = all_connections(&base).await;
    assert_eq!(conns.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), vec![fast.id.as_str()]);
}

#[tokio::test]
async fn in_process_publish_follows_the_http_rules() {
    let (gw, base) = serve(&[]).await;
    let mut s = Subscriber::open(&base, "lib").await;
    let r = gw.publish(&["lib", "nobody"], "e1", Some("kind"), "from rust").await.unwrap();
    assert_eq!(r, vec![("lib".to_string(), TopicResult::Delivered(1)), ("nobody".to_string(), TopicResult::Dropped)]);
    let e = s.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!((e.id.as_deref(), e.event.as_deref(), e.data.as_str()), (Some("e1"), Some("kind"), "from rust"));
    assert_eq!(gw.publish(&["a b"], "e2", None, "x").await.unwrap_err().code(), "invalid_topic");
    assert_eq!(gw.publish(&["lib"], "e\n3", None, "x").await.unwrap_err().code(), "invalid_id");
    let big = "y".repeat(Config::default().max_body_bytes + 1);
    assert_eq!(gw.publish(&["lib"], "e4", None, &big).await.unwrap_err().status(), 413);
}

#[tokio::test]
async fn a_trickling_publisher_gets_408() {
    let (_gw, base) = serve(&[("PUBLISH_BODY_TIMEOUT_MS", "300")]).await;
    let _s = Subscriber::open(&base, "slowpub").await;
    let addr = base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /publish HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\nx-sse-topic: slowpub\r\nx-sse-id: t1\r\ncontent-length: 100\r\n\r\nabc"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await.expect("answered").unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
}

#[test]
fn invalid_configuration_exits_2_with_a_message() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sse-gateway"))
        .env("API_KEYS", "k")
        .env("MAX_BODY_BYTES", "5000000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("MAX_BODY_BYTES=5000000 is out of range"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sse-gateway")).env_remove("API_KEYS").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("API_KEYS"));
}

#[tokio::test]
async fn node_connection_limit_answers_503_with_retry_after_and_frees_slots() {
    let (_gw, base) = serve(&[("MAX_CONNECTIONS_PER_NODE", "3")]).await;
    let a = Subscriber::open(&base, "nl1").await;
    let _b = Subscriber::open(&base, "nl2").await;
    let _c = Subscriber::open(&base, "nl3,nl4").await;
    let (status, body) = get(&format!("{base}/sse?topic=nl5"), &[]).await.unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("connection_limit")), "{body}");
    // the retry-after header, raw
    let addr = base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET /sse?topic=nl6 HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tcp.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 503") && text.contains("retry-after: 5"), "{text}");
    drop(a);
    eventually("a slot frees when a connection leaves", Duration::from_secs(5), || async {
        get(&format!("{base}/admin/api/topics"), &[("x-api-key", KEY)]).await.map(|(_, v)| v["total"] == 3).unwrap_or(false)
    })
    .await;
    let _d = Subscriber::open(&base, "nl7").await;
}

#[tokio::test]
async fn publish_rate_limit_per_key_answers_429_with_retry_after() {
    let (_gw, base) = serve(&[("API_KEYS", "k-one,k-two"), ("PUBLISH_RATE_PER_KEY", "2"), ("PUBLISH_BURST_PER_KEY", "3")]).await;
    let url = format!("{base}/publish");
    let send = |key: &'static str| {
        let url = url.clone();
        async move { request("POST", &url, &[("x-api-key", key), ("x-sse-topic", "rl"), ("x-sse-id", "e1")], "x").await.unwrap() }
    };
    for _ in 0..3 {
        assert_eq!(send("k-one").await.0, 202);
    }
    let (status, body) = send("k-one").await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert_eq!(send("k-two").await.0, 202, "another key has its own bucket");
    // the retry-after header: 1 s (a token comes back within 500 ms at 2/s)
    let addr = base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("POST /publish HTTP/1.1\r\nhost: {addr}\r\nx-api-key: k-one\r\nx-sse-topic: rl\r\nx-sse-id: e2\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tcp.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 429") && text.contains("retry-after: 1\r\n"), "{text}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(send("k-one").await.0, 202, "refilled");
    // a wrong key is 401, not 429
    assert_eq!(send("nope").await.0, 401);
}

/// `GET` over a raw socket: (status line, headers + body as text).
async fn raw_get(base: &str, path: &str, headers: &str) -> (String, String) {
    let addr = base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n{headers}connection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut resp)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), format!("{head}\n\n{body}"))
}

/// The samples of a Prometheus text body: every line is a comment or `name{labels} value`.
fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    let body = text.split_once("\n\n").unwrap().1;
    let mut out = std::collections::BTreeMap::new();
    for line in body.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let open = series.find('{').unwrap_or_else(|| panic!("no labels: {line}"));
        assert!(series.ends_with('}'), "{line}");
        let name = &series[..open];
        assert!(name.starts_with("sse_gateway_") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
        let labels = &series[open + 1..series.len() - 1];
        for pair in labels.split(',') {
            let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("label {pair}: {line}"));
            assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && v.starts_with('"') && v.ends_with('"'), "{line}");
        }
        assert!(labels.contains("node=\"solo\""), "{line}");
        out.insert(series.to_string(), value.parse::<f64>().unwrap_or_else(|_| panic!("value: {line}")));
    }
    out
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_move_with_publishes_deliveries_drops() {
    let (gw, base) = serve(&[("QUEUE_CAPACITY", "4")]).await;
    let (status, text) = raw_get(&base, "/metrics", "").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(text.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{text}");
    let before = samples(&text);
    assert_eq!(before["sse_gateway_publishes_total{node=\"solo\"}"], 0.0);
    let mut s = Subscriber::open(&base, "m-live").await;
    publish(&base, "m-live,m-dead", "e1", "hello").await;
    assert!(s.next(Duration::from_secs(5)).await.is_some());
    assert_eq!(request("POST", &format!("{base}/publish"), &[("x-sse-topic", "x"), ("x-sse-id", "e")], "").await.unwrap().0, 401);
    // The slow one: subscribes, never reads, and is evicted.
    let addr = base.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(format!("GET /sse?topic=m-slow HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    eventually("slow subscriber attached", Duration::from_secs(5), || async { gw.metrics().connections() == 2 }).await;
    let body = "x".repeat(60_000);
    for i in 0..100 {
        gw.publish(&["m-slow"], &format!("s{i}"), None, &body).await.unwrap();
        if gw.stats().evicted == 1 {
            break;
        }
    }
    let after = samples(&raw_get(&base, "/metrics", "").await.1);
    let v = |k: &str| after.get(&format!("sse_gateway_{k}")).copied().unwrap_or_else(|| panic!("{k} missing: {after:?}"));
    assert!(v("publishes_total{node=\"solo\"}") >= 3.0, "2 topics + the slow ones");
    assert_eq!(v("drops_total{node=\"solo\"}"), 1.0);
    assert!(v("deliveries_total{node=\"solo\"}") >= 2.0);
    assert_eq!(v("evictions_total{node=\"solo\"}"), 1.0);
    assert_eq!(v("connections{node=\"solo\",transport=\"sse\"}"), 1.0, "the evicted one is gone");
    assert_eq!(v("rejected_requests_total{code=\"unauthorized\",node=\"solo\"}"), 1.0);
    assert!(v("topics{node=\"solo\"}") >= 1.0);
    let count = v("publish_to_write_seconds_count{node=\"solo\"}");
    assert!(count >= 1.0, "the live subscriber's write was measured");
    assert_eq!(v("publish_to_write_seconds_bucket{node=\"solo\",le=\"+Inf\"}"), count);
    // Buckets in the order of their bounds (the map orders keys as text: "+Inf" first).
    let le = |k: &str| {
        let v = k.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_else(|| panic!("no le: {k}"));
        if v == "+Inf" {
            f64::INFINITY
        } else {
            v.parse::<f64>().unwrap_or_else(|_| panic!("le {v}"))
        }
    };
    let mut buckets: Vec<(f64, f64)> =
        after.iter().filter(|(k, _)| k.starts_with("sse_gateway_publish_to_write_seconds_bucket")).map(|(k, n)| (le(k), *n)).collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 1, "histogram buckets: {buckets:?}");
    let mut last = 0.0;
    for (bound, n) in &buckets {
        assert!(*n >= last, "cumulative at le={bound}: {buckets:?}");
        last = *n;
    }
    // The admin API's JSON has the same counts (and needs the key).
    let (st, _) = get(&format!("{base}/admin/api/stats"), &[]).await.unwrap();
    assert_eq!(st, 401);
    let (st, json) = get(&format!("{base}/admin/api/stats"), &[("x-api-key", KEY)]).await.unwrap();
    assert_eq!(st, 200);
    assert_eq!(
        (json["scope"].as_str(), json["node"].as_str(), json["drops"].as_u64(), json["evictions"].as_u64()),
        (Some("node"), Some("solo"), Some(1), Some(1)),
        "{json}"
    );
    assert_eq!(json["connections"], 1);
    drop(s);
}

#[tokio::test]
async fn metrics_can_require_the_api_key() {
    let (_gw, base) = serve(&[("METRICS_REQUIRE_KEY", "1")]).await;
    assert!(raw_get(&base, "/metrics", "").await.0.starts_with("HTTP/1.1 401"));
    let (status, text) = raw_get(&base, "/metrics", &format!("x-api-key: {KEY}\r\n")).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(text.contains("sse_gateway_publishes_total{node=\"solo\"} 0"));
}

/// Reads from `tcp` until `needle` was seen (or 5 s passed); everything read as text.
async fn read_until(tcp: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&got).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).to_string()
}

/// The same subscription as a connection's first request (held on the bare socket), with its
/// head split over several writes, as HTTP/1.0, and behind another request on a keep-alive
/// connection (both served by hyper): the same headers, frames and events.
#[tokio::test]
async fn a_subscription_is_served_alike_on_the_bare_socket_and_by_hyper() {
    let (gw, base) = serve(&[]).await;
    let addr = base.trim_start_matches("http://").to_string();
    let head = |v: &str| format!("GET /sse?topic=alike HTTP/{v}\r\nhost: {addr}\r\n\r\n");
    let mut split = TcpStream::connect(&addr).await.unwrap();
    let h = head("1.1");
    for part in [&h[..5], &h[5..20], &h[20..]] {
        split.write_all(part.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut old = TcpStream::connect(&addr).await.unwrap();
    old.write_all(head("1.0").as_bytes()).await.unwrap();
    let mut behind = TcpStream::connect(&addr).await.unwrap();
    behind.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    assert!(read_until(&mut behind, "\"ok\"").await.starts_with("HTTP/1.1 200"));
    behind.write_all(head("1.1").as_bytes()).await.unwrap();
    let mut opened = Vec::new();
    for tcp in [&mut split, &mut old, &mut behind] {
        let text = read_until(tcp, "event: connected").await;
        let lower = text.to_ascii_lowercase();
        assert!(lower.starts_with("http/1.1 200") || lower.starts_with("http/1.0 200"), "{text}");
        for h in ["content-type: text/event-stream", "cache-control: no-cache", "x-accel-buffering: no", "access-control-allow-origin: *"] {
            assert!(lower.contains(h), "{h} in {text}");
        }
        opened.push(text);
    }
    assert!(opened[0].to_ascii_lowercase().contains("transfer-encoding: chunked"), "{}", opened[0]);
    let r = gw.publish(&["alike"], "e1", None, "same").await.unwrap();
    assert_eq!(r[0].1, TopicResult::Delivered(3));
    for tcp in [&mut split, &mut old, &mut behind] {
        let text = read_until(tcp, "data: same").await;
        assert!(text.contains("id: e1\n"), "{text}");
    }
}

/// A subscription refused on the bare socket gets the JSON error hyper would give, and the
/// connection is closed after it.
#[tokio::test]
async fn a_refused_subscription_on_the_bare_socket_gets_a_json_error() {
    let (_gw, base) = serve(&[]).await;
    let (status, text) = raw_get(&base, "/sse?topic=bad%20topic", "").await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    let body = text.split_once("\n\n").unwrap().1;
    let v: serde_json::Value = serde_json::from_str(body).expect(body);
    assert_eq!(v["error"]["code"], "invalid_topic", "{body}");
    assert!(text.to_ascii_lowercase().contains("content-type: application/json"), "{text}");
    let (status, _) = raw_get(&base, "/sse", "").await;
    assert!(status.starts_with("HTTP/1.1 400"), "no topic: {status}");
}

/// A connection that never sends a complete first request head is closed after
/// `REQUEST_HEAD_TIMEOUT_MS`; one that does in time is served.
#[tokio::test]
async fn a_connection_silent_past_the_head_timeout_is_closed() {
    let (_gw, base) = serve(&[("REQUEST_HEAD_TIMEOUT_MS", "300")]).await;
    let addr = base.trim_start_matches("http://").to_string();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut trickle = TcpStream::connect(&addr).await.unwrap();
    trickle.write_all(b"GET /sse?topic=slow HTTP/1.1\r\n").await.unwrap();
    let start = Instant::now();
    for tcp in [&mut silent, &mut trickle] {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.expect("closed within 5 s").unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "closed after {took:?}");
    let (status, _) = raw_get(&base, "/healthz", "").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}
