//! The publisher: keep-alive connections that POST stamped events, at a fixed rate or as fast as
//! the server answers. Each connection owns a fixed set of topics (topic k goes through
//! connection k mod C), so the events of one topic leave in order and per-topic ordering can be
//! checked at the subscribers.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::http::Client;
use crate::sse::payload;
use crate::targets::Target;
use crate::util;

#[derive(Debug, Clone)]
pub struct Plan {
    pub topic_prefix: String,
    pub topics: usize,
    pub payload: usize,
    /// Publishes per second over all connections; 0 = as fast as the server answers.
    pub rate: f64,
    pub secs: f64,
    /// Stop after this many publishes in all (0 = no limit).
    pub max_events: u64,
    pub conns: usize,
    /// Publish sequence 0 once per topic (the warm-up) instead of the measured events.
    pub warmup: bool,
}

pub struct Outcome {
    pub sent: u64,
    pub accepted: u64,
    pub errors: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Accepted publishes per topic index.
    pub accepted_per_topic: Vec<u64>,
    /// Sum of what the server said each publish reached.
    pub server_reported: u64,
    pub dropped_responses: u64,
    /// Publishes that left more than 5 ms after their slot (fixed rate only).
    pub late: u64,
    pub first_error: Option<String>,
    pub started_us: u64,
    pub elapsed: Duration,
    pub rtt: Histogram<u64>,
    pub reconnects: u64,
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        json!({
            "sent": self.sent,
            "accepted": self.accepted,
            "errors": self.errors,
            "statuses": self.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "seconds": util::round(secs, 3),
            "per_second": util::round(self.sent as f64 / secs, 1),
            "server_reported_deliveries": self.server_reported,
            "dropped_responses": self.dropped_responses,
            "late": self.late,
            "reconnects": self.reconnects,
            "first_error": self.first_error,
            "request_latency_ms": util::hist_summary_ms(&self.rtt),
        })
    }
}

struct Acc {
    o: Outcome,
    remaining: u64,
}

pub async fn run(t: &Target, plan: &Plan) -> Outcome {
    let conns = plan.conns.max(1).min(plan.topics.max(1));
    let acc = Rc::new(RefCell::new(Acc {
        o: Outcome {
            sent: 0,
            accepted: 0,
            errors: 0,
            statuses: BTreeMap::new(),
            accepted_per_topic: vec![0; plan.topics],
            server_reported: 0,
            dropped_responses: 0,
            late: 0,
            first_error: None,
            started_us: util::now_us(),
            elapsed: Duration::ZERO,
            rtt: util::new_hist(),
            reconnects: 0,
        },
        remaining: if plan.max_events == 0 { u64::MAX } else { plan.max_events },
    }));
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(plan.secs.max(0.0));
    let mut tasks = Vec::new();
    for c in 0..conns {
        let my: Vec<usize> = (c..plan.topics).step_by(conns).collect();
        tasks.push(conn_loop(t, plan, my, t0, end, acc.clone()));
    }
    futures_join(tasks).await;
    let mut a = Rc::try_unwrap(acc).ok().expect("tasks done").into_inner();
    a.o.elapsed = t0.elapsed();
    a.o
}

/// Polls every future to completion on this task: they borrow the caller's data, so they are
/// driven together rather than spawned (the coordinator is single-threaded anyway).
async fn futures_join<F: std::future::Future<Output = ()>>(fs: Vec<F>) {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = fs.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        pinned.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pinned.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

async fn conn_loop(t: &Target, plan: &Plan, my: Vec<usize>, t0: Instant, end: Instant, acc: Rc<RefCell<Acc>>) {
    if my.is_empty() {
        return;
    }
    let mut client = Client::new(t.pub_addr);
    let share = my.len() as f64 / plan.topics.max(1) as f64;
    let rate = plan.rate * share;
    let n = my.len();
    let rounds = if plan.warmup { 1 } else { usize::MAX };
    let mut j: usize = 0;
    while j / n < rounds {
        {
            let mut a = acc.borrow_mut();
            if a.remaining == 0 {
                break;
            }
            a.remaining -= 1;
        }
        if !plan.warmup {
            if rate > 0.0 {
                let due = t0 + Duration::from_secs_f64(j as f64 / rate);
                if due >= end {
                    break;
                }
                let now = Instant::now();
                if due > now {
                    tokio::time::sleep_until(due.into()).await;
                } else if now - due > Duration::from_millis(5) {
                    acc.borrow_mut().o.late += 1;
                }
            } else if Instant::now() >= end && plan.max_events == 0 {
                break;
            }
        }
        let k = my[j % n];
        let seq = if plan.warmup { 0 } else { (j / n) as u64 + 1 };
        let topic = format!("{}{}", plan.topic_prefix, k);
        let body = payload(util::now_us(), seq, k as u32, plan.payload);
        let req = t.publish_req(&topic, &format!("e{seq}"), &body);
        let sent_at = Instant::now();
        let r = client.request(&req, Duration::from_secs(30)).await;
        let rtt = sent_at.elapsed();
        let mut a = acc.borrow_mut();
        a.o.sent += 1;
        a.o.rtt.saturating_record((rtt.as_micros() as u64).max(1));
        match r {
            Ok(resp) => {
                *a.o.statuses.entry(resp.status).or_default() += 1;
                let (ok, reached, dropped) = t.outcome(&resp);
                if ok {
                    a.o.accepted += 1;
                    a.o.accepted_per_topic[k] += 1;
                    a.o.server_reported += reached.unwrap_or(0);
                    if dropped {
                        a.o.dropped_responses += 1;
                    }
                } else {
                    a.o.errors += 1;
                    if a.o.first_error.is_none() {
                        a.o.first_error = Some(format!(
                            "status {}: {}",
                            resp.status,
                            String::from_utf8_lossy(&resp.body).chars().take(200).collect::<String>()
                        ));
                    }
                }
            }
            Err(e) => {
                a.o.errors += 1;
                a.o.first_error.get_or_insert_with(|| e.to_string());
            }
        }
        j += 1;
    }
    acc.borrow_mut().o.reconnects += client.connects.saturating_sub(1);
}
