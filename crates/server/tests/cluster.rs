//! A real three-node cluster with a real Redis (processes started here, nothing mocked):
//! cross-node fan-out, the drop path at another node, a node killed and restarted, Redis
//! restarted under load, a node shut down gracefully.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One cluster at a time: the timing checks should not compete for two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_published_on_node_2_reach_nodes_1_and_3_once_in_order() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::start(3).await;
    let mut s1 = Subscriber::open(&c.base(0), "fan").await;
    let mut s3 = Subscriber::open(&c.base(2), "fan").await;
    for i in 0..1000 {
        let r = publish(&c.base(1), "fan", &format!("e{i}"), &format!("n{i}\nline2")).await;
        assert_eq!(r["topics"]["fan"]["delivered"], 2, "event {i}: {r}");
    }
    for s in [&mut s1, &mut s3] {
        for i in 0..1000 {
            let e = s.next(Duration::from_secs(10)).await.unwrap_or_else(|| panic!("event {i} missing"));
            assert_eq!(e.id.as_deref(), Some(format!("e{i}").as_str()));
            assert_eq!(e.data, format!("n{i}\nline2"));
        }
        assert!(s.next(Duration::from_millis(300)).await.is_none(), "no duplicates");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drop_path_at_another_node_never_waits_for_the_body() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::start(3).await;
    let _elsewhere = Subscriber::open(&c.base(0), "live-on-1").await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", c.nodes[1].port)).await.unwrap();
    let head = format!("POST /publish HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\nx-sse-topic: nobody-here,also-nobody\r\nx-sse-id: held\r\ncontent-length: 60000\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await.expect("answered while the body is held back").unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 202"), "{text}");
    assert!(text.contains(r#""nobody-here":{"dropped":"no_subscribers"}"#), "{text}");
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    // A topic live on node 1 only is read and forwarded from node 2.
    let r = publish(&c.base(1), "live-on-1", "x1", "hello").await;
    assert_eq!(r["delivered"], 1, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_placement_and_listings_within_the_ttl_then_rejoins() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::start(3).await;
    let s3 = Subscriber::open(&c.base(2), "on-3").await;
    let _s1 = Subscriber::open(&c.base(0), "on-1").await;
    let n2 = c.base(1);
    eventually("both listed", Duration::from_secs(3), || async { all_connections(&n2).await.len() == 2 }).await;
    assert_eq!(publish(&n2, "on-3", "before", "x").await["delivered"], 1);
    c.kill(2);
    let killed = Instant::now();
    let gone = eventually("node-3's topic and connection unlisted", Duration::from_millis(TTL_MS + 3_000), || async {
        let topics = all_topics(&n2).await;
        let conns = all_connections(&n2).await;
        !topics.iter().any(|(t, _)| t == "on-3") && !conns.iter().any(|(id, _)| *id == s3.id)
    })
    .await;
    assert!(killed.elapsed() <= Duration::from_millis(TTL_MS + 700), "unlisted {gone:?} after SIGKILL (TTL {TTL_MS} ms)");
    figure("node_sigkill_unlisted", &format!("node SIGKILLed: its topic and connection unlisted, publishes no longer routed to it (NODE_TTL_MS {TTL_MS})"), gone);
    // Publishes no longer go there: dropped at once, no forwarding attempt to wait for.
    let t = Instant::now();
    let r = publish(&n2, "on-3", "after", "x").await;
    assert_eq!(r["topics"]["on-3"], serde_json::json!({"dropped": "no_subscribers"}));
    assert!(t.elapsed() < Duration::from_millis(500));
    // The live node's state is untouched.
    assert_eq!(all_connections(&n2).await.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(), vec!["node-1"]);
    // Its Redis keys are purged by the survivors.
    let redis = redis::Client::open(c.redis.url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    eventually("node-3 purged from redis", Duration::from_secs(5), || {
        let mut conn = conn.clone();
        async move {
            let members: Vec<String> = redis::cmd("SMEMBERS").arg("sse:nodes").query_async(&mut conn).await.unwrap();
            !members.contains(&"node-3".to_string())
        }
    })
    .await;
    let placed: Vec<String> = redis::cmd("HKEYS").arg("sse:place:on-3").query_async(&mut conn).await.unwrap();
    assert!(placed.is_empty(), "{placed:?}");
    // Restarted, it rejoins.
    c.spawn(2).await;
    let mut again = Subscriber::open(&c.base(2), "on-3").await;
    let r = publish(&n2, "on-3", "rejoined", "y").await;
    assert_eq!(r["delivered"], 1, "{r}");
    assert_eq!(again.next(Duration::from_secs(5)).await.unwrap().id.as_deref(), Some("rejoined"));
    assert!(all_connections(&n2).await.iter().any(|(id, n)| *id == again.id && n == "node-3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_recovers_by_itself_when_redis_restarts_under_load() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::start(3).await;
    let mut s1 = Subscriber::open(&c.base(0), "load").await;
    let mut s3 = Subscriber::open(&c.base(2), "load").await;
    let n2 = c.base(1);
    let load = tokio::spawn(async move {
        // While Redis restarts a publish may be refused (503 unavailable, retry-after), never
        // left hanging and never half-delivered.
        let mut delivered = Vec::new();
        for i in 0..300 {
            let t = Instant::now();
            let (status, retry, r) = try_publish(&n2, "load", &format!("l{i}"), "x").await;
            assert!(t.elapsed() < Duration::from_secs(2), "publish {i} took {:?}", t.elapsed());
            match status {
                202 => delivered.push(r["delivered"].as_u64().unwrap()),
                503 => assert_eq!((r["error"]["code"].as_str(), retry.as_deref()), (Some("unavailable"), Some("2")), "{r}"),
                s => panic!("publish {i}: {s} {r}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        delivered
    });
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    c.redis.restart().expect("redis restarts (empty)");
    let restarted = Instant::now();
    let n2 = c.base(1);
    let took = eventually("placement back", Duration::from_secs(10), || async { try_publish(&n2, "load", &format!("probe-{}", restarted.elapsed().as_millis()), "p").await.2["delivered"] == 2 }).await;
    eprintln!("placement recovered {took:?} after the redis restart");
    figure("redis_restart_placement_back", "Redis restarted empty under a publish every 20 ms: a publish from another node reaches both subscribers again", took);
    let delivered = load.await.expect("every publish answered 202");
    assert_eq!(delivered.last(), Some(&2), "{delivered:?}");
    // The subscribers stayed connected and keep receiving.
    let r = publish(&c.base(1), "load", "final", "z").await;
    assert_eq!(r["delivered"], 2);
    for s in [&mut s1, &mut s3] {
        let mut last = None;
        while let Some(e) = s.next(Duration::from_millis(1_000)).await {
            last = e.id;
            if last.as_deref() == Some("final") {
                break;
            }
        }
        assert_eq!(last.as_deref(), Some("final"));
    }
    assert_eq!(all_topics(&c.base(0)).await, vec![("load".to_string(), 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shut_down_tells_subscribers_to_reconnect_and_deregisters_at_once() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::start(2).await;
    let mut s = Subscriber::open(&c.base(1), "bye").await;
    let n1 = c.base(0);
    eventually("listed", Duration::from_secs(3), || async { all_connections(&n1).await.len() == 1 }).await;
    let status = c.terminate(1);
    assert!(status.success(), "exit status {status:?}");
    let e = s.next(Duration::from_secs(5)).await.expect("a last frame");
    assert_eq!((e.event.as_deref(), e.id.as_deref()), (Some("reconnect"), None));
    assert!(s.next(Duration::from_secs(2)).await.is_none(), "the stream ended");
    // Deregistered: gone now, not after the TTL.
    assert!(all_connections(&n1).await.is_empty());
    assert!(all_topics(&n1).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_gets_a_quick_503_subscribers_stay_and_the_cluster_heals_by_itself() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::start(2).await;
    let mut s1 = Subscriber::open(&c.base(0), "cut").await;
    let n2 = c.base(1);
    assert_eq!(publish(&n2, "cut", "before", "x").await["delivered"], 1);
    assert_eq!(s1.next(Duration::from_secs(5)).await.unwrap().id.as_deref(), Some("before"));

    // Paused (SIGSTOP): connections stay open, nothing answers — the worst case, no RST.
    c.redis.pause();
    let paused = Instant::now();
    let mut worst = Duration::ZERO;
    for (i, base) in [&n2, &c.base(0), &n2].into_iter().enumerate() {
        let t = Instant::now();
        let (status, retry, r) = try_publish(base, "cut", &format!("paused-{i}"), "x").await;
        let took = t.elapsed();
        worst = worst.max(took);
        assert_eq!(status, 503, "{r}");
        assert_eq!((r["error"]["code"].as_str(), retry.as_deref()), (Some("unavailable"), Some("2")), "{r}");
        assert!(took <= Duration::from_secs(2), "503 after {took:?}");
    }
    figure("redis_paused_publish_503", "Redis paused (SIGSTOP): slowest of 3 publishes answered 503 unavailable (retry-after: 2)", worst);
    // Node 1's subscriber is still connected (its stream did not end) while Redis is away.
    while paused.elapsed() < Duration::from_millis(TTL_MS + 1_000) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(matches!(s1.events.try_recv(), Err(tokio::sync::mpsc::error::TryRecvError::Empty)), "the subscriber's stream is still open, nothing was delivered");
    c.redis.resume();
    let resumed = Instant::now();
    let healed = eventually("delivered from node 2 again after SIGCONT", Duration::from_secs(15), || async {
        let (status, _, r) = try_publish(&n2, "cut", "after-pause", "y").await;
        status == 202 && r["delivered"] == 1
    })
    .await;
    assert_eq!(s1.next(Duration::from_secs(5)).await.unwrap().id.as_deref(), Some("after-pause"));
    figure("redis_paused_recovered", &format!("Redis resumed (SIGCONT) after {} s paused, longer than NODE_TTL_MS: a publish from another node delivered again", (TTL_MS + 1_000) / 1_000), healed);
    eprintln!("paused→503 worst {worst:?}; recovered {healed:?} after SIGCONT ({:?} since)", resumed.elapsed());

    // Killed (connection refused): the same 503, quickly; a new, empty Redis heals the same way.
    c.redis.stop();
    let t = Instant::now();
    let (status, retry, r) = try_publish(&n2, "cut", "down", "x").await;
    let down = t.elapsed();
    assert_eq!((status, retry.as_deref()), (503, Some("2")), "{r}");
    assert!(down <= Duration::from_secs(2), "503 after {down:?}");
    figure("redis_down_publish_503", "Redis killed (connection refused): publish answered 503 unavailable (retry-after: 2)", down);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(matches!(s1.events.try_recv(), Err(tokio::sync::mpsc::error::TryRecvError::Empty)), "the subscriber's stream is still open");
    c.redis.start_again().expect("redis starts again (empty)");
    let healed = eventually("delivered from node 2 again after the new redis", Duration::from_secs(15), || async {
        let (status, _, r) = try_publish(&n2, "cut", "after-down", "z").await;
        status == 202 && r["delivered"] == 1
    })
    .await;
    assert_eq!(s1.next(Duration::from_secs(5)).await.unwrap().id.as_deref(), Some("after-down"));
    figure("redis_down_recovered", "Redis killed for 1 s then started again empty: a publish from another node delivered again", healed);
    assert_eq!(all_topics(&n2).await, vec![("cut".to_string(), 1)]);
}
