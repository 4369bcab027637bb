//! The connect scenarios, `connect-public` and `connect-token`, run back to back on the same
//! target: how fast the server takes new SSE subscriptions, and what a subscriber token adds.
//!
//! Both open N subscriptions over a few topics, a fixed number in flight. Each connection is
//! timed from the TCP connect to the end of the `event: connected` block (response head and
//! first frame read), then closed with a reset (`SO_LINGER 0`). `connect-token` subscribes to
//! private topics (`PRIVATE_TOPICS`, [`PRIVATE_PREFIX`]) with a fresh HS256 token per connection
//! in `?token=`, all minted by the generator before the first connection opens;
//! `connect-public` subscribes to public topics with no token. Before either, a short untimed
//! warm-up over the same topics (the server's allocator, and under wrangler dev the topics'
//! Durable Objects, are then in the same state for both).
//!
//! Server CPU per connect is the CPU time of the server processes from just before the first
//! timed connect until the server has let go of the last connection (its descriptors are back,
//! at most 2 s after the last close), over the connections opened.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use memchr::memmem;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::http::{parse_head, ChunkDecoder};
use crate::suite::{gen_cpu_ms, per_process, Scn, ScnKind};
use crate::targets::{Target, PRIVATE_PREFIX, TOKEN_SECRET};
use crate::util;

/// A token is valid this long after it is minted (far beyond the scenario).
const TOKEN_TTL_S: u64 = 600;

/// An HS256 JWT (compact JWS) over `claims` (a JSON object, as text).
pub fn mint_hs256(secret: &[u8], claims: &str) -> String {
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(head.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{head}.{body}.{sig}")
}

/// The token of connection `i`: subject `bench-<i>`, granting exactly `topic`.
fn token_for(i: usize, topic: &str) -> String {
    let now = util::now_us() / 1_000_000;
    let claims = format!(r#"{{"sub":"bench-{i}","iat":{now},"exp":{},"topics":["{topic}"]}}"#, now + TOKEN_TTL_S);
    mint_hs256(TOKEN_SECRET.as_bytes(), &claims)
}

/// The topic of connection `i` (public, or private with a token).
fn topic_of(prefix: &str, topics: usize, token: bool, i: usize) -> String {
    let k = i % topics.max(1);
    if token {
        format!("{PRIVATE_PREFIX}{prefix}{k}")
    } else {
        format!("{prefix}{k}")
    }
}

/// One timed subscription: connect, request, head, then the body up to the end of the
/// `event: connected` block. Returns the time it took; the stream is closed with a reset.
async fn one(to: &Dest, i: usize, topic: &str, token: Option<&str>) -> Result<Duration, String> {
    let target = to.addrs[i % to.addrs.len()];
    let mut path = to.path.replace("{topic}", topic);
    if let Some(tok) = token {
        path.push_str("&token=");
        path.push_str(tok);
    }
    let req = format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n");
    let t0 = Instant::now();
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    let _ = util::set_linger_zero(std::os::fd::AsRawFd::as_raw_fd(&sock));
    let mut s = sock.connect(target).await.map_err(|e| format!("connect {target}: {e}"))?;
    s.write_all(req.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(2048);
    let mut body = Vec::with_capacity(512);
    let mut dechunk: Option<Option<ChunkDecoder>> = None;
    let mut consumed = 0;
    loop {
        let n = s.read_buf(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if dechunk.is_none() {
            if let Some(h) = parse_head(&buf) {
                let h = h?;
                if h.status != 200 {
                    let b = String::from_utf8_lossy(&buf[h.len..]).chars().take(200).collect::<String>();
                    return Err(format!("status {} {b}", h.status));
                }
                dechunk = Some(h.chunked.then(ChunkDecoder::default));
                consumed = h.len;
            }
        }
        if let Some(d) = dechunk.as_mut() {
            let fresh = &buf[consumed..];
            let ended = match d {
                Some(d) => d.feed(fresh, &mut body).map_err(|e| format!("chunked body: {e}"))?,
                None => {
                    body.extend_from_slice(fresh);
                    false
                }
            };
            consumed = buf.len();
            if let Some(at) = memmem::find(&body, b"event: connected") {
                if memmem::find(&body[at..], b"\n\n").is_some() {
                    return Ok(t0.elapsed());
                }
            }
            if ended {
                return Err("the stream ended before the connected block".into());
            }
        }
        if n == 0 {
            return Err(if dechunk.is_none() { "closed before the response head" } else { "closed before the connected block" }.into());
        }
    }
}

/// Where connections go: the target's subscribe addresses (in turn) and path.
struct Dest {
    addrs: Vec<SocketAddr>,
    path: &'static str,
}

struct Phase {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    hist: Histogram<u64>,
    mint_us: f64,
    elapsed: Duration,
}

/// Opens connections `first..first + n`, `inflight` at a time. With `token`, every connection's
/// token is minted first, before any connection opens: the phase's rate is the server's and the
/// connections', not the minting's.
async fn phase(to: &Rc<Dest>, prefix: &str, s: &Scn, token: bool, first: usize, n: usize, inflight: usize) -> Phase {
    let next = Rc::new(Cell::new(first));
    let end = first + n;
    let m0 = Instant::now();
    let tokens: Rc<Vec<String>> =
        Rc::new(if token { (first..end).map(|i| token_for(i, &topic_of(prefix, s.topics, true, i))).collect() } else { Vec::new() });
    let mint_us = m0.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
    let out =
        Rc::new(RefCell::new(Phase { ok: 0, failed: 0, first_error: None, hist: util::new_hist(), mint_us, elapsed: Duration::ZERO }));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..inflight.max(1).min(n.max(1)) {
        let (to, next, out, tokens, prefix, topics) = (to.clone(), next.clone(), out.clone(), tokens.clone(), prefix.to_string(), s.topics);
        tasks.push(tokio::task::spawn_local(async move {
            loop {
                let i = next.get();
                if i >= end {
                    break;
                }
                next.set(i + 1);
                let topic = topic_of(&prefix, topics, token, i);
                let tok = tokens.get(i - first).map(String::as_str);
                let r = tokio::time::timeout(Duration::from_secs(20), one(&to, i, &topic, tok)).await;
                let mut o = out.borrow_mut();
                match r {
                    Ok(Ok(d)) => {
                        o.ok += 1;
                        o.hist.saturating_record((d.as_micros() as u64).max(1));
                    }
                    Ok(Err(e)) => {
                        o.failed += 1;
                        o.first_error.get_or_insert(e);
                    }
                    Err(_) => {
                        o.failed += 1;
                        o.first_error.get_or_insert_with(|| "no connected block within 20 s".into());
                    }
                }
            }
        }));
    }
    for h in tasks {
        let _ = h.await;
    }
    let mut p = Rc::try_unwrap(out).ok().expect("every task is done").into_inner();
    p.elapsed = started.elapsed();
    p
}

/// Runs one connect scenario on `t` (topics named from `prefix`).
pub async fn run(t: &Target, s: &Scn, prefix: &str) -> Result<Value, String> {
    let to = Rc::new(Dest { addrs: t.sub_addrs.clone(), path: t.sub_path() });
    let token = s.kind == ScnKind::ConnectToken;
    let inflight = s.pub_conns;
    let fd_base = t.fds();
    let mut r = json!({
        "id": s.id,
        "kind": s.kind.name(),
        "description": s.description,
        "params": {"connections": s.subs, "topics": s.topics, "in_flight": inflight, "token": token,
                   "private_topics": if token { Value::from(format!("{PRIVATE_PREFIX}*")) } else { Value::Null }},
    });
    // The private topics must be private here (PRIVATE_TOPICS set on the target): one
    // subscription without a token has to be refused.
    if token {
        let topic = topic_of(prefix, s.topics, true, 0);
        match tokio::time::timeout(Duration::from_secs(20), one(&to, 0, &topic, None)).await {
            Ok(Err(e)) if e.starts_with("status 401") => r["without_token"] = json!("refused (401)"),
            other => {
                return Err(format!(
                    "{topic} is not private on this target (PRIVATE_TOPICS={PRIVATE_PREFIX}* not in effect?): without a token: {other:?}"
                ))
            }
        }
    }
    // Warm-up, untimed: every topic once, then some more.
    let warm_n = (s.subs / 10).clamp(s.topics, 200);
    let w = phase(&to, prefix, s, token, 0, warm_n, inflight).await;
    r["warmup"] = json!({"connections": warm_n, "connected": w.ok, "failed": w.failed, "first_error": w.first_error});
    if w.ok == 0 {
        return Err(format!("warm-up: no connection reached the connected block ({})", w.first_error.unwrap_or_default()));
    }
    settle(t, fd_base, Duration::from_secs(2)).await;
    t.all_alive()?;

    let cpu0 = t.snapshot();
    let g0 = gen_cpu_ms(&[]);
    let m0 = util::cpu_ticks();
    let p = phase(&to, prefix, s, token, warm_n, s.subs, inflight).await;
    // The server's share of closing: until its descriptors are back (bounded).
    let settled = settle(t, fd_base, Duration::from_secs(2)).await;
    let cpu1 = t.snapshot();
    let g1 = gen_cpu_ms(&[]);
    let m1 = util::cpu_ticks();

    let secs = p.elapsed.as_secs_f64().max(1e-9);
    let wall = (cpu1.at - cpu0.at).as_secs_f64().max(1e-9);
    let server_cpu_s = (cpu1.cpu_ms() - cpu0.cpu_ms()) / 1000.0;
    let (user_s, sys_s) = ((cpu1.user_ms() - cpu0.user_ms()) / 1000.0, (cpu1.sys_ms() - cpu0.sys_ms()) / 1000.0);
    let per = |x: f64| if p.ok > 0 { util::round(x * 1e6 / p.ok as f64, 1) } else { 0.0 };
    r["connect"] = json!({
        "requested": s.subs,
        "connected": p.ok,
        "failed": p.failed,
        "first_error": p.first_error,
        "in_flight": inflight,
        "seconds": util::round(secs, 3),
        "per_second": util::round(p.ok as f64 / secs, 0),
        "time_to_connected_ms": util::hist_summary_ms(&p.hist),
        "token_mint_us_mean": if token { util::round(p.mint_us, 2) } else { 0.0 },
    });
    r["server"] = json!({
        "cpu_seconds": util::round(server_cpu_s, 3),
        "user_cpu_seconds": util::round(user_s, 3),
        "system_cpu_seconds": util::round(sys_s, 3),
        "wall_seconds": util::round(wall, 3),
        "cpu_percent_of_one_core": util::round(server_cpu_s * 100.0 / wall, 1),
        "cpu_us_per_connect": per(server_cpu_s),
        "user_cpu_us_per_connect": per(user_s),
        "system_cpu_us_per_connect": per(sys_s),
        "connections_let_go": settled,
        "rss_end_kib": cpu1.rss_kib(),
        "per_process": per_process(&cpu0, &cpu1),
    });
    r["generator"] =
        json!({"cpu_seconds": util::round((g1 - g0) / 1000.0, 3), "cpu_percent_of_one_core": util::round((g1 - g0) / 10.0 / wall, 1)});
    let tck = util::clk_tck() as f64;
    let busy: Vec<f64> = m0.iter().zip(&m1).map(|(a, b)| (b.0 - a.0) as f64 * 100.0 / ((b.1 - a.1) as f64).max(1.0)).collect();
    let busy_s: f64 = m0.iter().zip(&m1).map(|(a, b)| (b.0 - a.0) as f64 / tck).sum();
    r["machine"] = json!({
        "cpu_busy_percent": busy.iter().map(|b| util::round(*b, 1)).collect::<Vec<_>>(),
        "other_processes_cpu_seconds": util::round((busy_s - server_cpu_s - (g1 - g0) / 1000.0).max(0.0), 2),
        "load_average_1m": util::loadavg(),
    });
    r["server_fds_after"] = json!({"baseline": fd_base, "now": t.fds()});
    t.all_alive()?;
    Ok(r)
}

/// Waits until the server holds no more descriptors than `base` (+ a few), at most `max`;
/// whether it got there.
async fn settle(t: &Target, base: usize, max: Duration) -> bool {
    let deadline = Instant::now() + max;
    loop {
        if t.fds() <= base + 4 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `connect-token` against `connect-public` of the same target and run: token ÷ public.
pub fn compare(public: &Value, token: &Value) -> Value {
    let r = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => Value::from(util::round(a / b, 3)),
        _ => Value::Null,
    };
    let (p, t) = (&public["connect"], &token["connect"]);
    json!({
        "connects_per_second": r(&t["per_second"], &p["per_second"]),
        "p50_time_to_connected": r(&t["time_to_connected_ms"]["p50"], &p["time_to_connected_ms"]["p50"]),
        "p99_time_to_connected": r(&t["time_to_connected_ms"]["p99"], &p["time_to_connected_ms"]["p99"]),
        "server_cpu_per_connect": r(&token["server"]["cpu_us_per_connect"], &public["server"]["cpu_us_per_connect"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mints_the_rfc_example() {
        // The HS256 example of jwt.io (secret "your-256-bit-secret").
        let t = mint_hs256(b"your-256-bit-secret", r#"{"sub":"1234567890","name":"John Doe","iat":1516239022}"#);
        assert_eq!(
            t,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        );
    }

    #[test]
    fn topics_and_tokens() {
        assert_eq!(topic_of("r1s2-", 10, false, 13), "r1s2-3");
        assert_eq!(topic_of("r1s2-", 10, true, 13), format!("{PRIVATE_PREFIX}r1s2-3"));
        let a = token_for(1, "bench-priv-x");
        let b = token_for(2, "bench-priv-x");
        assert_ne!(a, b);
        assert_eq!(a.split('.').count(), 3);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)));
    }
}
