//! Retention and resume on one node (in-memory rings): `RETENTION`, `Last-Event-ID`, replay then
//! live with no gap and no duplicate, `replay-gap` frames.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sse_gateway_server::TopicResult;
use support::*;

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_retained_topic_keeps_events_and_a_resume_gets_them_then_live_ones() {
    let (gw, base) = serve(&[("RETENTION", "r.*=3,other=10")]).await;
    for i in 1..=5 {
        let v = publish(&base, "r.a", &format!("e{i}"), &format!("body {i}")).await;
        assert_eq!(v["topics"]["r.a"], serde_json::json!({"delivered": 0, "retained": true}), "{v}");
    }
    // Not retained: the plain drop rule.
    let v = publish(&base, "plain", "p1", "x").await;
    assert_eq!(v["topics"]["plain"]["dropped"], "no_subscribers");

    let mut s = Subscriber::open_with(&base, "r.a", &[("last-event-id", "e3")]).await;
    for want in ["e4", "e5"] {
        let e = s.next(T).await.expect("replayed");
        assert_eq!(e.id.as_deref(), Some(want));
    }
    let r = gw.publish(&["r.a"], "e6", None, "live").await.unwrap();
    assert_eq!(r[0].1, TopicResult::Retained(1));
    let e = s.next(T).await.unwrap();
    assert_eq!((e.id.as_deref(), e.data.as_str()), (Some("e6"), "live"));

    // e1 was counted out (window of 3): expired.
    let mut old = Subscriber::open_with(&base, "r.a", &[("last-event-id", "e1")]).await;
    let gap = old.next(T).await.unwrap();
    assert_eq!(gap.event.as_deref(), Some("replay-gap"));
    assert_eq!(gap.id, None, "a replay-gap frame has no id: the client keeps its last id");
    let v: serde_json::Value = serde_json::from_str(&gap.data).unwrap();
    assert_eq!(v, serde_json::json!({"topic": "r.a", "last_event_id": "e1", "reason": "expired"}));

    // A topic that never trimmed: unknown id.
    publish(&base, "other", "o1", "x").await;
    let mut unknown = Subscriber::open_with(&base, "other", &[("last-event-id", "nope")]).await;
    let gap = unknown.next(T).await.unwrap();
    assert_eq!(gap.event.as_deref(), Some("replay-gap"));
    assert!(gap.data.contains("\"reason\":\"unknown_id\""), "{}", gap.data);

    // Multi-topic: each topic resumes after the id if it retains it; the others say so.
    let mut multi = Subscriber::open_with(&base, "r.a,other,plain", &[("last-event-id", "e5")]).await;
    let first = multi.next(T).await.unwrap();
    assert_eq!(first.id.as_deref(), Some("e6"));
    let second = multi.next(T).await.unwrap();
    assert_eq!(second.event.as_deref(), Some("replay-gap"));
    assert!(second.data.contains("\"topic\":\"other\""));
    // `plain` retains nothing: no frame for it.
    assert!(multi.next(Duration::from_millis(300)).await.is_none());
    assert_eq!(gw.stats().replayed, 3);
    assert_eq!((gw.stats().retained_topics, gw.stats().retained_events), (2, 4));
}

/// Subscribers resume while a publisher bursts: each ends with exactly the events after its
/// last id, in order, once each.
#[tokio::test]
async fn resume_during_a_burst_has_no_gap_and_no_duplicate() {
    const N: usize = 3_000;
    let (gw, base) = serve(&[("RETENTION", "burst=10000"), ("QUEUE_CAPACITY", "100000")]).await;
    gw.publish(&["burst"], "e0", None, "0").await.unwrap();
    let published = Arc::new(AtomicUsize::new(1));
    let publisher = {
        let (gw, published) = (gw.clone(), published.clone());
        tokio::spawn(async move {
            for i in 1..N {
                gw.publish(&["burst"], &format!("e{i}"), None, &i.to_string()).await.unwrap();
                published.store(i + 1, Ordering::Release);
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut checks = Vec::new();
    for _ in 0..8 {
        let last = published.load(Ordering::Acquire) - 1;
        let s = Subscriber::open_with(&base, "burst", &[("last-event-id", &format!("e{last}"))]).await;
        checks.push((last, s));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    publisher.await.unwrap();
    for (last, mut s) in checks {
        let mut got = Vec::new();
        while got.len() < N - 1 - last {
            let e = s.next(T).await.unwrap_or_else(|| panic!("resumed after e{last}: stalled after {} events", got.len()));
            got.push(e.id.unwrap());
        }
        let want: Vec<String> = (last + 1..N).map(|i| format!("e{i}")).collect();
        assert_eq!(got, want, "resumed after e{last}");
        assert!(s.next(Duration::from_millis(100)).await.is_none(), "no duplicate after the last event");
    }
}
