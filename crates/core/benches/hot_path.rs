//! Micro-benchmarks of the core's hot path (criterion): what every publish, every admin page and
//! every private subscription (token verification) costs before any I/O.
//!
//!   cargo bench -p sse-core --bench hot_path            (all)
//!   cargo bench -p sse-core --bench hot_path -- frame   (a group)
//!
//! `make bench` runs them with short timings and puts the means in
//! `benchmark-results/<timestamp>/micro.json` and `latest.md`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use sse_core::frame::{self, Event, Format};
use sse_core::registry::{self, ConnSummary, Registry, RegistryUpdate};
use sse_core::request::{Publish, PublishHeaders};
use sse_core::token::{self, PrivateTopics, TokenSettings};
use sse_core::topic::{ConnInfo, SendResult, Sink, TopicState, Transport};
use sse_core::{names, Config};

/// A sink that accepts every frame and only counts: the fan-out decision without the queue.
#[derive(Clone, Default)]
struct CountSink(u64);

impl Sink for CountSink {
    type Frame = Arc<str>;
    fn try_send(&mut self, frame: &Arc<str>) -> SendResult {
        self.0 += frame.len() as u64;
        SendResult::Sent
    }
}

fn event(data_len: usize, lines: usize) -> Event {
    let line = "x".repeat((data_len / lines.max(1)).max(1));
    let data = vec![line; lines.max(1)].join("\n");
    Event {
        topic: "orders.eu-west".into(),
        id: "evt-1763784000123".into(),
        event: Some("order.created".into()),
        data,
        ts: 1_763_784_000_123,
    }
}

fn conn(i: usize, format: Format) -> ConnInfo {
    ConnInfo {
        id: format!("c{:012x}-{:08x}", 0x18f3a5b2c4du64 + i as u64, i),
        topics: vec!["orders.eu-west".into()],
        transport: Transport::Sse,
        format,
        connected_at: 1_763_784_000_000,
        node: "node-1".into(),
        sub: None,
    }
}

fn topic_with(n: usize, format: Format) -> TopicState<CountSink> {
    let mut t = TopicState::new("orders.eu-west", usize::MAX);
    for i in 0..n {
        t.attach(conn(i, format), CountSink::default()).expect("attach");
    }
    t
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    for (name, len, lines) in [("64B", 64, 1), ("4KiB", 4096, 1), ("4KiB-64-lines", 4096, 64)] {
        let ev = event(len, lines);
        g.throughput(Throughput::Bytes(ev.data.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode_sse", name), &ev, |b, ev| b.iter(|| frame::encode(black_box(ev), Format::Sse)));
        g.bench_with_input(BenchmarkId::new("encode_envelope", name), &ev, |b, ev| {
            b.iter(|| frame::encode(black_box(ev), Format::SseEnvelope))
        });
    }
    let topics: Vec<String> = vec!["orders".into(), "user:42".into()];
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_open", |b| b.iter(|| frame::encode_open(3000, black_box("c018f3a5b2c4d-5f1e2a3b"), black_box(&topics))));
    g.finish();
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("topic");
    // Publish to a topic of n plain SSE subscribers: encode once, hand the frame to each.
    for n in [1usize, 100, 10_000] {
        let ev = event(64, 1);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("publish_64B", n), |b| {
            let mut t = topic_with(n, Format::Sse);
            b.iter(|| t.publish(black_box(&ev)))
        });
    }
    // Mixed formats: one encoding per format in use.
    {
        let ev = event(64, 1);
        let mut t = topic_with(0, Format::Sse);
        for i in 0..1000 {
            let f = [Format::Sse, Format::SseEnvelope, Format::Ws][i % 3];
            t.attach(conn(i, f), CountSink::default()).expect("attach");
        }
        g.throughput(Throughput::Elements(1000));
        g.bench_function("publish_64B_three_formats/1000", |b| b.iter(|| t.publish(black_box(&ev))));
    }
    // The drop decision: a topic nobody subscribes (only a tail would be told).
    g.throughput(Throughput::Elements(1));
    let ev = event(64, 1);
    g.bench_function("publish_no_subscriber", |b| {
        let mut t = topic_with(0, Format::Sse);
        b.iter(|| t.publish(black_box(&ev)))
    });
    g.bench_function("is_live/10000", |b| {
        let t = topic_with(10_000, Format::Sse);
        b.iter(|| black_box(&t).is_live())
    });
    g.bench_function("attach_detach/10000", |b| {
        b.iter_batched(
            || (topic_with(10_000, Format::Sse), conn(20_000, Format::Sse)),
            |(mut t, c)| {
                let id = c.id.clone();
                t.attach(c, CountSink::default()).expect("attach");
                let gone = t.detach(&id);
                // Returned, so the 10,000-entry topic is dropped outside the timing.
                (t, gone)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("request");
    let cfg = Config::default();
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_publish_headers", |b| {
        let h = PublishHeaders {
            topic: Some(b"orders.eu-west, user:42"),
            id: Some(b"evt-1763784000123"),
            event: Some(b"order.created"),
            content_length: Some(b"64"),
        };
        b.iter(|| Publish::parse(black_box(h), &cfg))
    });
    g.bench_function("parse_topic_list/8", |b| b.iter(|| names::parse_topic_list(black_box("a.1, b.2,c:3 , d-4,e_5,f.6,g.7,h.8"), 64)));
    g.finish();
}

fn registry_with(conns: usize, topics: usize) -> Registry {
    let mut r = Registry::new();
    for i in 0..conns {
        let topic = format!("topic-{:05}", i % topics);
        let c = ConnSummary {
            id: conn(i, Format::Sse).id,
            transport: Transport::Sse,
            connected_at: 1_763_784_000_000,
            node: "node-1".into(),
            events_sent: i as u64,
            topics: Vec::new(),
            sub: None,
        };
        r.apply(RegistryUpdate::Attach { topic, conn: c }, 1_763_784_000_000);
    }
    r
}

fn pagination(c: &mut Criterion) {
    let mut g = c.benchmark_group("registry");
    let r = registry_with(100_000, 1_000);
    let first = r.connections(100, None, None).expect("page");
    let middle_key = conn(50_000, Format::Sse).id;
    let middle = registry::encode_cursor(registry::CONN_CURSOR, &middle_key);
    for limit in [100usize, 500] {
        g.throughput(Throughput::Elements(limit as u64));
        g.bench_function(BenchmarkId::new("connections_first_page_of_100k", limit), |b| {
            b.iter(|| r.connections(black_box(limit), None, None))
        });
        g.bench_function(BenchmarkId::new("connections_middle_page_of_100k", limit), |b| {
            b.iter(|| r.connections(black_box(limit), Some(&middle), None))
        });
    }
    g.throughput(Throughput::Elements(100));
    g.bench_function("connections_of_one_topic_page/100", |b| b.iter(|| r.connections(100, None, Some(black_box("topic-00042")))));
    g.bench_function("topics_page/100", |b| b.iter(|| r.topics(black_box(100), None)));
    g.throughput(Throughput::Elements(1));
    let cursor = first.next_cursor.clone().expect("more pages");
    g.bench_function("cursor_decode", |b| b.iter(|| registry::decode_cursor(registry::CONN_CURSOR, black_box(&cursor))));
    g.bench_function("page_body_json/100", |b| b.iter(|| black_box(&first).body("connections")));
    g.finish();
}

/// Fixed keys of the token benchmark (the same test keys as the core's token tests).
const TOKEN_SECRET: &str = "rotation-secret-one-0123456789abcdef";
const ES_SCALAR: &str = "03e4df70c114eda578d0257f08c77781814942cdb4c9b7b7dad733535d896213";
const ES_PUB: &str =
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEK/5EZpMCVg8dL0v1TNB9RK7kvF1LJuyPKAq1EK6KHjrQYPDnQer/HCN2LYZ/suHoxE8ZGVBjGhRphbuoTt76aw==";
const ED_SEED: &str = "46b565ff3a7bbe01b62958ce8042c6494cd5c9a2d46fd75f57e49ce2873f4bd5";
const ED_PUB: &str = "MCowBQYDK2VwAyEAaUuVrdTm2Fd4wFkHh6KUTLRp4iZKMSfPsYU72FIgJtU=";
const TOKEN_NOW: u64 = 1_763_784_000;

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex")).collect()
}

/// A compact JWS of `header` and `claims`, signed by `sign` over the signing input.
fn jws(header: &str, claims: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let sig = sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Verifying one subscriber token per algorithm (a typical token: sub, exp, iat, two topics),
/// the subscribe check of a private topic with it, reading the token settings, and the cost of a
/// public subscription (no verification at all).
fn tokens(c: &mut Criterion) {
    // One `signature::Signer` trait for both curves.
    use ed25519_dalek::Signer as _;
    use hmac::Mac;

    let settings = TokenSettings::from_lookup(|k| match k {
        "SUBSCRIBER_TOKEN_SECRETS" => Some(TOKEN_SECRET.to_string()),
        "SUBSCRIBER_TOKEN_PUBLIC_KEYS" => Some(format!("es-1:ES256:{ES_PUB},ed-1:EdDSA:{ED_PUB}")),
        _ => None,
    })
    .expect("token settings");
    let claims = format!(r#"{{"sub":"alice","exp":{},"iat":{TOKEN_NOW},"topics":["orders.*","user:42"]}}"#, TOKEN_NOW + 600);
    let es_key = p256::ecdsa::SigningKey::from_slice(&unhex(ES_SCALAR)).expect("P-256 key");
    let ed_key = ed25519_dalek::SigningKey::from_bytes(&unhex(ED_SEED).try_into().expect("32 bytes"));
    let hs256 = jws(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, |m| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(TOKEN_SECRET.as_bytes()).expect("key");
        mac.update(m);
        mac.finalize().into_bytes().to_vec()
    });
    let es256 = jws(r#"{"alg":"ES256","typ":"JWT","kid":"es-1"}"#, &claims, |m| {
        let sig: p256::ecdsa::Signature = es_key.sign(m);
        sig.to_bytes().to_vec()
    });
    let eddsa = jws(r#"{"alg":"EdDSA","typ":"JWT","kid":"ed-1"}"#, &claims, |m| ed_key.sign(m).to_bytes().to_vec());

    let mut g = c.benchmark_group("token");
    g.throughput(Throughput::Elements(1));
    for (name, t) in [("HS256", &hs256), ("ES256", &es256), ("EdDSA", &eddsa)] {
        assert!(token::verify(t, &settings, TOKEN_NOW).is_ok(), "{name} token does not verify");
        g.bench_with_input(BenchmarkId::new("verify", name), t, |b, t| b.iter(|| token::verify(black_box(t), &settings, TOKEN_NOW)));
    }
    let private = PrivateTopics::parse("user:*").expect("pattern");
    let asked: Vec<String> = vec!["news".into(), "user:42".into()];
    g.bench_function("check_subscribe_private_HS256", |b| {
        b.iter(|| token::check_subscribe(&private, &settings, black_box(&asked), Some(black_box(&hs256)), TOKEN_NOW))
    });
    // Reading the settings (the Worker builds its Config per request): decoding and checking
    // one P-256 and one Ed25519 public key, keying one HMAC.
    g.bench_function("settings_from_lookup", |b| {
        let keys = format!("es-1:ES256:{ES_PUB},ed-1:EdDSA:{ED_PUB}");
        b.iter(|| {
            TokenSettings::from_lookup(|k| match k {
                "SUBSCRIBER_TOKEN_SECRETS" => Some(TOKEN_SECRET.to_string()),
                "SUBSCRIBER_TOKEN_PUBLIC_KEYS" => Some(black_box(&keys).clone()),
                _ => None,
            })
        })
    });
    let public: Vec<String> = vec!["news".into(), "orders.eu-west".into()];
    g.bench_function("check_subscribe_public", |b| {
        b.iter(|| token::check_subscribe(&private, &settings, black_box(&public), None, TOKEN_NOW))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = frames, fanout, requests, pagination, tokens
}
criterion_main!(benches);
