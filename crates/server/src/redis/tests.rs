//! The adapter against a real `redis-server` started by each test on a free port. If
//! `redis-server` is missing these tests fail and say how to install it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sse_core::frame::{Event, Format};
use sse_core::protocol::TopicResult;
use sse_core::request::ListQuery;

use super::redis_server::RedisServer;
use super::RedisNamespace;
use crate::config::ServerConfig;
use crate::hub::{conn_info, Hub};
use crate::objects::{Namespace, Probe};
use crate::sink::QueueSink;

fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e}"))
}

fn config(redis: &RedisServer, node: &str, ttl_ms: u64) -> ServerConfig {
    let refresh = (ttl_ms / 4).max(200).to_string();
    let ttl = ttl_ms.to_string();
    let pairs: HashMap<&str, String> = [
        ("REDIS_URL", redis.url()),
        ("API_KEYS", "k".into()),
        ("NODE_ID", node.into()),
        ("LISTEN_ADDR", "127.0.0.1:1".into()),
        // Nothing listens there: notices to it fail at once (connection refused), so these
        // in-process nodes learn of each other through Redis (the placement sync).
        ("ADVERTISE_ADDR", "127.0.0.1:1".into()),
        ("NODE_TTL_MS", ttl),
        ("NODE_REFRESH_MS", refresh),
        ("HEARTBEAT_INTERVAL_MS", "500".into()),
    ]
    .into_iter()
    .collect();
    ServerConfig::from_lookup(|k| pairs.get(k).cloned()).expect("valid test config")
}

async fn node(redis: &RedisServer, id: &str, ttl_ms: u64) -> RedisNamespace {
    let cfg = config(redis, id, ttl_ms);
    let (hub, changes) = Hub::new(100);
    RedisNamespace::connect(Arc::new(hub), changes, &cfg, cfg.cluster.as_ref().unwrap()).await.expect("connects")
}

/// Attaches a subscriber (or a tail) and waits until it is recorded in Redis.
async fn attach(ns: &RedisNamespace, id: &str, topics: &[&str], format: Format) -> crate::sink::Receiver {
    let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    let (sink, rx, _closer) = QueueSink::channel(16);
    let info = conn_info(id, &topics, format, ns.node_id(), 1);
    for t in &topics {
        ns.hub().attach(t, info.clone(), sink.clone()).expect("attach").await.expect("recorded");
    }
    rx
}

async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not true within {within:?}");
}

fn q(limit: usize, cursor: Option<String>, topic: Option<&str>) -> ListQuery {
    ListQuery { limit, cursor, topic: topic.map(str::to_string) }
}

#[tokio::test]
async fn placement_follows_first_and_last_connection() {
    let r = redis();
    let (a, b) = (node(&r, "node-a", 10_000).await, node(&r, "node-b", 10_000).await);
    assert!(b.holders("t1").await.unwrap().is_empty());
    let _c1 = attach(&a, "c1", &["t1"], Format::Sse).await;
    let _c2 = attach(&a, "c2", &["t1", "t2"], Format::Sse).await;
    let h = b.holders("t1").await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!((&*h[0].peer.node, &*h[0].peer.addr, h[0].peer.subscribers > 0, h[0].tails), ("node-a", "127.0.0.1:1", true, false));
    // b sees the topic live at a, and would forward there.
    match b.probe("t1", "e1").await {
        Probe::Live { local, peers } => assert_eq!((local, peers.len(), &*peers[0].node), (false, 1, "node-a")),
        other => panic!("t1 is live at node-a: {other:?}"),
    }
    a.hub().detach("t1", "c1");
    a.hub().detach("t1", "c2");
    eventually("t1 leaves placement", Duration::from_secs(3), || async { b.holders("t1").await.unwrap().is_empty() }).await;
    assert_eq!(b.probe("t1", "e2").await, Probe::Dropped);
    // c2 is still on t2, and listed with every topic it subscribed to.
    let page = b.connections(q(10, None, None)).await.unwrap();
    assert_eq!(page.items.iter().map(|c| (c.id.as_str(), c.node.as_str())).collect::<Vec<_>>(), vec![("c2", "node-a")]);
    assert_eq!(page.items[0].topics, vec!["t1", "t2"]);
    let topics = b.topics(q(10, None, None)).await.unwrap();
    assert_eq!(topics.items.iter().map(|t| (t.topic.as_str(), t.connections)).collect::<Vec<_>>(), vec![("t2", 1)]);
}

#[tokio::test]
async fn a_connections_token_sub_is_in_its_record() {
    let r = redis();
    let (a, b) = (node(&r, "node-a", 10_000).await, node(&r, "node-b", 10_000).await);
    let topics = vec!["t1".to_string(), "t2".to_string()];
    let (sink, _rx, _closer) = QueueSink::channel(16);
    let info = sse_core::topic::ConnInfo { sub: Some("alice".into()), ..conn_info("c1", &topics, Format::Ws, a.node_id(), 1) };
    for t in &topics {
        a.hub().attach(t, info.clone(), sink.clone()).expect("attach").await.expect("recorded");
    }
    let _c2 = attach(&a, "c2", &["t1"], Format::Sse).await;
    // Listed by any node, with the sub of the token it opened with (none for c2).
    let page = b.connections(q(10, None, Some("t1"))).await.unwrap();
    assert_eq!(page.items.iter().map(|c| (c.id.as_str(), c.sub.as_deref())).collect::<Vec<_>>(), vec![("c1", Some("alice")), ("c2", None)]);
    let body: serde_json::Value = serde_json::from_str(&page.body("connections")).unwrap();
    assert_eq!(body["connections"][0]["sub"], "alice");
    assert!(body["connections"][1].get("sub").is_none(), "{body}");
}

#[tokio::test]
async fn tails_are_placed_but_never_make_a_topic_live() {
    let r = redis();
    let (a, b) = (node(&r, "node-a", 10_000).await, node(&r, "node-b", 10_000).await);
    let mut tail = attach(&a, "tail1", &["t"], Format::Tail).await;
    let h = b.holders("t").await.unwrap();
    assert_eq!((h[0].peer.subscribers, h[0].tails), (0, true));
    assert_eq!(b.probe("t", "d1").await, Probe::Dropped, "a tail is not a subscriber");
    let dropped = tokio::time::timeout(Duration::from_secs(1), tail.recv()).await;
    // b cannot reach node-a (nothing listens at its address); the drop notice to a's tail is best effort. Only a's own
    // probe tells its tails directly:
    drop(dropped);
    assert_eq!(a.probe("t", "d2").await, Probe::Dropped);
    let frame = loop {
        let f = tokio::time::timeout(Duration::from_secs(2), tail.recv()).await.expect("tail frame").expect("open");
        if f.starts_with(b"id: d2") {
            break f;
        }
    };
    assert!(std::str::from_utf8(&frame).unwrap().contains("event: dropped"));
    assert!(b.topics(q(10, None, None)).await.unwrap().items.is_empty(), "tailed topics are not listed");
}

#[tokio::test]
async fn listings_page_across_nodes_without_repeats_or_gaps() {
    let r = redis();
    let (a, b) = (node(&r, "node-a", 10_000).await, node(&r, "node-b", 10_000).await);
    let mut keep = Vec::new();
    for i in 0..7 {
        keep.push(attach(&a, &format!("ca{i}"), &["shared"], Format::Sse).await);
    }
    for i in 0..5 {
        keep.push(attach(&b, &format!("cb{i}"), &["shared", &format!("own{i}")], Format::Ws).await);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = a.connections(q(3, cursor.clone(), None)).await.unwrap();
        assert!(page.items.len() <= 3);
        assert!(page.total >= 12, "total {}", page.total);
        seen.extend(page.items.into_iter().map(|c| c.id));
        // Churn between pages: a connection arrives, another leaves.
        let _late = attach(&b, &format!("c-late-{}", seen.len()), &["shared"], Format::Sse).await;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let stable: Vec<String> = (0..7).map(|i| format!("ca{i}")).chain((0..5).map(|i| format!("cb{i}"))).collect();
    for id in &stable {
        assert_eq!(seen.iter().filter(|s| *s == id).count(), 1, "{id} in {seen:?}");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "sorted by id");
    let own = b.connections(q(500, None, Some("own3"))).await.unwrap();
    assert_eq!(own.items.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec!["cb3"]);
    assert_eq!(own.total, 1);
    let topics = b.topics(q(2, None, None)).await.unwrap();
    assert_eq!(topics.items[0].topic, "own0");
    let forged = a.connections(q(3, Some("c1.zz".into()), None)).await.unwrap_err();
    assert_eq!(forged.code(), "invalid_cursor");
}

#[tokio::test]
async fn a_dead_node_disappears_within_its_ttl_and_is_purged() {
    let r = redis();
    let a = node(&r, "node-a", 10_000).await;
    let b = node(&r, "node-b", 1_500).await;
    let _c = attach(&b, "cb", &["t"], Format::Sse).await;
    // (node-a learns of node-b at its next placement sync: nothing listens at node-b's address
    // for its notice.)
    eventually("node-a sees node-b's topic", Duration::from_secs(2), || async { a.holders("t").await.unwrap().len() == 1 }).await;
    // node-b "dies": it stops refreshing its identity (its process would be gone).
    b.stop_liveness_for_test();
    let died = Instant::now();
    eventually("node-b's topic leaves placement", Duration::from_secs(5), || async { a.holders("t").await.unwrap().is_empty() }).await;
    assert!(died.elapsed() <= Duration::from_millis(1_500 + 500), "gone after {:?}", died.elapsed());
    assert!(a.connections(q(10, None, None)).await.unwrap().items.is_empty());
    assert!(a.topics(q(10, None, None)).await.unwrap().items.is_empty());
    assert_eq!(a.probe("t", "e").await, Probe::Dropped);
    // node-a's liveness task purges the dead node's keys.
    let mut conn = a.conn.clone();
    eventually("node-b's keys purged", Duration::from_secs(10), || {
        let mut conn = conn.clone();
        async move {
            let n: i64 = redis::cmd("EXISTS")
                .arg("sse:{n:node-b}:recs")
                .arg("sse:{n:node-b}:conns")
                .arg("sse:{n:node-b}:place")
                .query_async(&mut conn)
                .await
                .unwrap();
            n == 0
        }
    })
    .await;
    let members: Vec<String> = redis::cmd("SMEMBERS").arg("sse:nodes").query_async(&mut conn).await.unwrap();
    assert_eq!(members, vec!["node-a"]);
}

/// A node that registers while another node's liveness task purges dead nodes is in the node
/// set once it has registered: the purge counts a listed node without an identity as dead, so
/// the identity is written before the node is listed. A node that comes back after its identity
/// expired (one the purge may be removing at that moment) is listed again within moments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_registering_while_another_purges_stays_listed() {
    let r = redis();
    let a = node(&r, "node-a", 10_000).await;
    let b = node(&r, "node-b", 10_000).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let purger = {
        let (node, mut conn, stop) = (a.node.clone(), a.conn.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                node.purge_dead(&mut conn).await.expect("purge");
            }
        })
    };
    let mut conn = b.conn.clone();
    let reader = b.conn.clone();
    let listed = |id: String| {
        let (mut conn, nodes) = (reader.clone(), b.node.keys.nodes());
        async move { redis::cmd("SISMEMBER").arg(nodes).arg(id).query_async::<bool>(&mut conn).await.unwrap() }
    };
    // Nodes starting for the first time.
    let mut missing = Vec::new();
    for i in 0..300 {
        let mut fresh = b.node.clone();
        fresh.identity.id = format!("fresh-{i}");
        fresh.register(&mut conn).await.expect("registers");
        if !listed(fresh.identity.id.clone()).await {
            missing.push(fresh.identity.id.clone());
        }
        fresh.deregister(&mut conn).await.expect("leaves");
    }
    assert!(missing.is_empty(), "registered but not in the node set: {missing:?}");
    // node-b coming back after its identity was gone (its state is purged meanwhile).
    for _ in 0..100 {
        b.node.deregister(&mut conn).await.expect("leaves");
        b.node.register(&mut conn).await.expect("registers");
        eventually("node-b listed again", Duration::from_millis(500), || listed("node-b".into())).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    purger.await.unwrap();
}

#[tokio::test]
async fn a_node_restarted_with_the_same_id_starts_clean() {
    let r = redis();
    let a = node(&r, "node-a", 10_000).await;
    let old = node(&r, "node-b", 10_000).await;
    let _c = attach(&old, "stale", &["t"], Format::Sse).await;
    old.stop_liveness_for_test();
    // The same node id comes back (its old process was killed) before the TTL expired.
    let _new = node(&r, "node-b", 10_000).await;
    assert!(a.holders("t").await.unwrap().is_empty(), "the old run's placement is gone");
    assert!(a.connections(q(10, None, None)).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn redis_restart_is_recovered_without_manual_steps() {
    let mut r = redis();
    let a = node(&r, "node-a", 2_000).await;
    let b = node(&r, "node-b", 2_000).await;
    let _c = attach(&a, "c1", &["t"], Format::Sse).await;
    r.restart().expect("redis restarts");
    let took = eventually("placement back after a redis restart", Duration::from_secs(10), || async {
        b.holders("t").await.map(|h| h.len() == 1).unwrap_or(false)
    })
    .await;
    eprintln!("placement recovered {took:?} after the restart");
    let page = eventually("records back", Duration::from_secs(5), || async {
        b.connections(q(10, None, None)).await.map(|p| p.items.len() == 1).unwrap_or(false)
    });
    page.await;
}

#[tokio::test]
async fn local_delivery_counts_and_tail_only_nodes_see_published() {
    let r = redis();
    let a = node(&r, "node-a", 10_000).await;
    let mut sub = attach(&a, "s1", &["t"], Format::Sse).await;
    let probe = a.probe("t", "e1").await;
    assert_eq!(probe, Probe::Live { local: true, peers: vec![] });
    let ev = Event { topic: "t".into(), id: "e1".into(), event: None, data: "x".into(), ts: 1 };
    assert_eq!(a.deliver(&probe, &ev).await, TopicResult::Delivered(1));
    assert_eq!(&sub.recv().await.unwrap()[..], b"id: e1\ndata: x\n\n");
    // A node with only a tail of a topic live elsewhere tells its tail `published`.
    let (hub, _changes) = Hub::new(10);
    let (sink, mut rx, _) = QueueSink::channel(4);
    drop(hub.attach("t", conn_info("tl", &["t".into()], Format::Tail, "n", 1), sink).unwrap());
    assert_eq!(hub.deliver(&ev, None), sse_core::topic::Outcome::Dropped);
    assert!(std::str::from_utf8(&rx.recv().await.unwrap()).unwrap().contains("event: published"));
}

/// A node whose hub knows `retention` (events in Redis Streams, as `Gateway::new` does it).
async fn retaining_node(redis: &RedisServer, id: &str, retention: &str) -> RedisNamespace {
    let cfg = config(redis, id, 10_000);
    let (hub, changes) = Hub::new(100);
    let hub = hub.with_stream_retention(sse_core::replay::Retention::parse(retention).unwrap());
    RedisNamespace::connect(Arc::new(hub), changes, &cfg, cfg.cluster.as_ref().unwrap()).await.expect("connects")
}

fn event(topic: &str, id: &str) -> Event {
    Event { topic: topic.into(), id: id.into(), event: None, data: format!("d-{id}"), ts: 1 }
}

fn ids(frames: &[bytes::Bytes]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            let s = String::from_utf8_lossy(f);
            s.lines().find_map(|l| l.strip_prefix("id: ").map(str::to_string)).unwrap_or_else(|| s.into_owned())
        })
        .collect()
}

#[tokio::test]
async fn retained_topic_stores_in_a_stream_with_nobody_connected_and_resumes_without_duplicates() {
    let r = redis();
    let (a, b) = (retaining_node(&r, "node-a", "rt*=5").await, retaining_node(&r, "node-b", "rt*=5").await);
    // Nobody anywhere: still stored, answered retained.
    for i in 1..=7 {
        let ev = event("rt1", &format!("e{i}"));
        let probe = b.probe("rt1", &ev.id).await;
        assert!(probe.is_live(), "{probe:?}");
        assert_eq!(b.deliver(&probe, &ev).await, TopicResult::Retained(0));
    }
    // Not retained: the drop rule as before.
    assert_eq!(b.probe("other", "x").await, Probe::Dropped);
    let mut conn = redis::Client::open(r.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let len: usize = redis::cmd("XLEN").arg("sse:{t:rt1}:rt").query_async(&mut conn).await.unwrap();
    assert_eq!(len, 5, "trimmed by count");

    // A subscriber resumes on node a after e4: attached (held), recorded, then the snapshot.
    let topics = vec!["rt1".to_string()];
    let (sink, mut rx, _closer) = QueueSink::channel(16);
    let info = conn_info("c1", &topics, Format::Sse, "node-a", 1);
    let (done, frames) = a.hub().attach_resume("rt1", info, sink, Some("e4"), 1).expect("attach");
    assert!(frames.is_empty(), "the replay comes from redis");
    done.await.unwrap();
    // While the snapshot is read, e8 is stored and also arrives live (held).
    let e8 = event("rt1", "e8");
    let probe = b.probe("rt1", "e8").await;
    b.deliver(&probe, &e8).await;
    a.hub().deliver(&e8, Some(8));
    let frames = a.resume("rt1", "c1", "e4").await;
    assert_eq!(ids(&frames), ["e5", "e6", "e7", "e8"], "replay, and the held copy of e8 skipped");
    // A late live copy of a replayed event is skipped; later events are delivered.
    a.hub().deliver(&e8, Some(8));
    a.hub().deliver(&event("rt1", "e9"), Some(9));
    let got = rx.recv().await.unwrap();
    assert!(got.starts_with(b"id: e9"), "{got:?}");
    assert!(rx.try_recv().is_err(), "nothing else");

    // Ids not in the window: expired (this topic trimmed), unknown_id (one that never did).
    let resume = |topic: &'static str, conn: &'static str, last: &'static str| {
        let a = &a;
        async move {
            let topics = vec![topic.to_string()];
            let (sink, rx, _closer) = QueueSink::channel(16);
            let (done, _) = a.hub().attach_resume(topic, conn_info(conn, &topics, Format::Sse, "node-a", 1), sink, Some(last), 1).unwrap();
            done.await.unwrap();
            (a.resume(topic, conn, last).await, rx)
        }
    };
    let (gap, _rx2) = resume("rt1", "c2", "e1").await;
    assert!(String::from_utf8_lossy(&gap[0]).contains(r#""reason":"expired""#), "{gap:?}");
    b.deliver(&b.probe("rt2", "x1").await, &event("rt2", "x1")).await;
    let (gap, _rx3) = resume("rt2", "c3", "nope").await;
    assert_eq!(gap.len(), 1);
    assert!(String::from_utf8_lossy(&gap[0]).contains(r#""reason":"unknown_id""#), "{gap:?}");
    // After a gap, live events are delivered whatever their sequence.
}

#[tokio::test]
async fn retained_stream_trims_by_age_and_is_gone_after_a_redis_restart() {
    let mut r = redis();
    let b = retaining_node(&r, "node-b", "age*=100/300ms").await;
    for i in 1..=3 {
        let ev = event("age1", &format!("a{i}"));
        b.deliver(&b.probe("age1", &ev.id).await, &ev).await;
    }
    let mut conn = redis::Client::open(r.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let len: usize = redis::cmd("XLEN").arg("sse:{t:age1}:rt").query_async(&mut conn).await.unwrap();
    assert_eq!(len, 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let window = sse_core::replay::Window { max_count: 100, max_age_ms: Some(300) };
    let snap = super::retain::snapshot(&mut b.conn.clone(), &b.node.keys, "age1", window).await.unwrap();
    assert!(snap.entries.is_empty(), "aged out");
    // Redis restarted empty: the retained events are gone (no persistence in this test).
    let ev = event("age1", "a4");
    b.deliver(&b.probe("age1", "a4").await, &ev).await;
    r.restart().unwrap();
    let snap = eventually_snapshot(&b, window).await;
    assert!(snap.entries.is_empty() && snap.last_seq == 0, "{snap:?}");
}

async fn eventually_snapshot(b: &RedisNamespace, window: sse_core::replay::Window) -> crate::hub::Snapshot {
    for _ in 0..50 {
        if let Ok(s) = super::retain::snapshot(&mut b.conn.clone(), &b.node.keys, "age1", window).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("redis did not come back");
}

#[test]
fn a_test_server_is_not_mistaken_for_another_one_on_its_port() {
    // Two tests' servers could be handed the same free port: the second must notice it was
    // answered by the first, or the two tests share one Redis and purge each other's nodes.
    let first = redis();
    let mut second = redis();
    second.stop();
    second.port = first.port;
    let err = second.start_again().expect_err("the port is the first server's");
    assert!(err.contains("taken"), "{err}");
}
