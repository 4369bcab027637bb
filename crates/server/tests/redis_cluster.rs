//! The gateway on a real Redis Cluster: three `redis-server --cluster-enabled yes` shards
//! (slots spread by `redis-cli --cluster create`) and three gateway nodes given
//! `REDIS_CLUSTER_URLS`. Every key carries a hash tag, so each script and pipeline stays in one
//! slot; these tests check that everything a cluster of nodes does works there.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_three_shards_fan_out_list_resume_and_drop_a_killed_node() {
    let mut c = Cluster::start_on_redis_cluster(3, 3, &[("RETENTION", "rt-*=100/600s")]).await;
    let mut s1 = Subscriber::open(&c.base(0), "fan").await;
    let mut s3 = Subscriber::open(&c.base(2), "fan").await;
    let _own = Subscriber::open(&c.base(1), "own-2").await;
    for i in 0..200 {
        let r = publish(&c.base(1), "fan", &format!("e{i}"), &format!("n{i}")).await;
        assert_eq!(r["topics"]["fan"]["delivered"], 2, "event {i}: {r}");
    }
    for s in [&mut s1, &mut s3] {
        for i in 0..200 {
            let e = s.next(Duration::from_secs(10)).await.unwrap_or_else(|| panic!("event {i} missing"));
            assert_eq!(e.id, Some(format!("e{i}")));
        }
    }
    // A subscriber told it is connected gets a publish made at once on another node.
    for i in 0..10 {
        let topic = format!("race-{i}");
        let mut s = Subscriber::open(&c.base(i % 3), &topic).await;
        assert_eq!(publish(&c.base((i + 1) % 3), &topic, "x", "y").await["delivered"], 1);
        assert_eq!(s.next(Duration::from_secs(5)).await.unwrap().id.as_deref(), Some("x"));
    }
    // Listings read every node's slot and the topic index.
    let topics = all_topics(&c.base(0)).await;
    assert!(topics.contains(&("fan".to_string(), 2)) && topics.contains(&("own-2".to_string(), 1)), "{topics:?}");
    let conns = all_connections(&c.base(2)).await;
    assert_eq!(conns.len(), 3, "{conns:?}");
    // The state is spread over the shards (the nodes' tags hash to different slots).
    let rc = c.redis_cluster.as_ref().unwrap();
    let per_shard = rc.keys_per_shard();
    assert!(per_shard.iter().filter(|n| **n > 0).count() >= 2, "keys per shard {per_shard:?}");
    // A retained topic's stream lives in its topic's slot: a resume on another node replays.
    for i in 0..3 {
        publish(&c.base(0), "rt-a", &format!("r{i}"), "z").await;
    }
    let mut late = Subscriber::open_with(&c.base(2), "rt-a", &[("last-event-id", "r0")]).await;
    for want in ["r1", "r2"] {
        assert_eq!(late.next(Duration::from_secs(5)).await.unwrap().id.as_deref(), Some(want));
    }
    // A killed node leaves routing and the listings within its TTL.
    c.kill(2);
    let killed = Instant::now();
    let n2 = c.base(1);
    eventually("node-3 unlisted", Duration::from_millis(TTL_MS + 3_000), || async { all_connections(&n2).await.len() == 2 }).await;
    assert!(killed.elapsed() <= Duration::from_millis(TTL_MS + 700), "after {:?}", killed.elapsed());
    assert_eq!(publish(&n2, "fan", "after", "x").await["delivered"], 1);
    eprintln!("keys per shard: {per_shard:?}");
}
