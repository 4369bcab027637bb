//! The gateway's counts, defined once for both runtimes: a [`Stats`] snapshot (counters, gauges
//! and the publish→write latency [`Histogram`]), its Prometheus text rendering (`GET /metrics`
//! on the native runtime) and its JSON shape (`GET /admin/api/stats` on both).
//!
//! The runtimes keep the live counters themselves (atomics natively, plain integers in a
//! Durable Object) and build a [`Stats`] when asked; rendering is deterministic: metrics in a
//! fixed order, label sets sorted.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::json;

/// Upper bounds of the latency buckets, in microseconds (0.5 ms … 1 s); one more bucket, `+Inf`,
/// takes the rest.
pub const LATENCY_BUCKETS_US: [u64; 11] = [500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000];
/// Buckets including `+Inf`.
pub const LATENCY_SLOTS: usize = LATENCY_BUCKETS_US.len() + 1;

/// Prefix of every metric name.
pub const PREFIX: &str = "sse_gateway_";

/// The bucket a latency of `us` microseconds falls in (`LATENCY_BUCKETS_US.len()` is `+Inf`).
pub fn bucket_index(us: u64) -> usize {
    LATENCY_BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(LATENCY_BUCKETS_US.len())
}

/// A fixed-bucket latency histogram. `counts` are per bucket (not cumulative); the renderings
/// make them cumulative.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    pub counts: [u64; LATENCY_SLOTS],
    /// Sum of every observation, in microseconds.
    pub sum_us: u64,
}

impl Histogram {
    pub fn observe(&mut self, us: u64) {
        self.counts[bucket_index(us)] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Cumulative counts per bucket, `+Inf` last (equal to [`Histogram::count`]).
    pub fn cumulative(&self) -> [u64; LATENCY_SLOTS] {
        let mut out = [0; LATENCY_SLOTS];
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            out[i] = acc;
        }
        out
    }

    /// The upper bound (ms) of the bucket holding quantile `q` (0–1); `None` when empty or past
    /// the last finite bucket. An estimate for displays, not an exact percentile.
    pub fn quantile_upper_ms(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let cum = self.cumulative();
        let i = cum.iter().position(|&c| c >= rank)?;
        LATENCY_BUCKETS_US.get(i).map(|&us| us as f64 / 1000.0)
    }
}

/// Counters a topic owner accumulates between two reports (Cloudflare topic objects send them
/// with their heartbeat snapshot), or totals once added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Events accepted per topic: a publish to three topics counts three.
    #[serde(default)]
    pub publishes: u64,
    /// Events handed to a subscriber's queue (one per connection per topic).
    #[serde(default)]
    pub deliveries: u64,
    /// Events dropped because the topic had no subscriber (and no retention).
    #[serde(default)]
    pub drops: u64,
    /// Connections closed because their queue was full.
    #[serde(default)]
    pub evictions: u64,
    /// Retained events replayed to resuming subscribers.
    #[serde(default)]
    pub replayed: u64,
}

impl Counts {
    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    pub fn add(&mut self, o: &Counts) {
        self.publishes = self.publishes.saturating_add(o.publishes);
        self.deliveries = self.deliveries.saturating_add(o.deliveries);
        self.drops = self.drops.saturating_add(o.drops);
        self.evictions = self.evictions.saturating_add(o.evictions);
        self.replayed = self.replayed.saturating_add(o.replayed);
    }
}

/// A snapshot of the counts of one node (native) or one deployment (Cloudflare).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// `"node"` (one native node) or `"deployment"` (Cloudflare, from the registry).
    pub scope: &'static str,
    /// `"native"` or `"cloudflare"`.
    pub runtime: &'static str,
    /// The native node id; `None` on Cloudflare.
    pub node: Option<String>,
    /// Open subscriber connections by transport (`sse`, `ws`).
    pub connections_sse: u64,
    pub connections_ws: u64,
    /// Open admin tails (not subscribers).
    pub tails: u64,
    /// Live topics.
    pub topics: u64,
    pub counts: Counts,
    /// Requests answered with an error, by error code (native only).
    pub rejected: BTreeMap<String, u64>,
    /// Publish→write latency (native only).
    pub latency: Option<Histogram>,
    /// Milliseconds since the counters started (the process, or the registry object).
    pub uptime_ms: u64,
    /// Connections held as hibernatable WebSockets (Cloudflare: all of them; `None` natively).
    pub hibernatable: Option<u64>,
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Seconds, as Prometheus prints them: shortest exact decimal of `us` microseconds.
fn seconds(us: u64) -> String {
    let whole = us / 1_000_000;
    let frac = us % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:06}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

impl Stats {
    /// Subscriber connections (SSE + WebSocket).
    pub fn connections(&self) -> u64 {
        self.connections_sse + self.connections_ws
    }

    /// The Prometheus text exposition (format 0.0.4). Every sample has a `node` label.
    pub fn prometheus(&self) -> String {
        let node = label(self.node.as_deref().unwrap_or(self.runtime));
        let mut out = String::with_capacity(4096);
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {PREFIX}{name} {help}");
            let _ = writeln!(out, "# TYPE {PREFIX}{name} {kind}");
        };
        head(
            &mut out,
            "connections",
            "gauge",
            "Open subscriber connections on this node, by transport (admin tails as transport=\"tail\").",
        );
        for (t, v) in [("sse", self.connections_sse), ("tail", self.tails), ("ws", self.connections_ws)] {
            let _ = writeln!(out, "{PREFIX}connections{{node=\"{node}\",transport=\"{t}\"}} {v}");
        }
        head(&mut out, "topics", "gauge", "Live topics on this node (with at least one connection or tail).");
        let _ = writeln!(out, "{PREFIX}topics{{node=\"{node}\"}} {}", self.topics);
        let c = &self.counts;
        for (name, help, v) in [
            ("publishes_total", "Events accepted by this node, per topic (a publish to three topics counts three).", c.publishes),
            ("deliveries_total", "Events handed to a connection's queue on this node (one per connection per topic).", c.deliveries),
            ("drops_total", "Events accepted by this node and dropped because their topic had no subscriber anywhere, per topic.", c.drops),
            ("evictions_total", "Connections closed because their queue was full (slow consumers).", c.evictions),
            ("replayed_events_total", "Retained events replayed to subscribers resuming with Last-Event-ID.", c.replayed),
        ] {
            head(&mut out, name, "counter", help);
            let _ = writeln!(out, "{PREFIX}{name}{{node=\"{node}\"}} {v}");
        }
        head(&mut out, "rejected_requests_total", "counter", "Requests answered with an error, by error code.");
        for (code, v) in &self.rejected {
            let _ = writeln!(out, "{PREFIX}rejected_requests_total{{code=\"{}\",node=\"{node}\"}} {v}", label(code));
        }
        if let Some(h) = &self.latency {
            let name = "publish_to_write_seconds";
            head(&mut out, name, "histogram", "Time from the hub handing an event to a connection's queue to the write of that frame to the connection (per write, the oldest frame in it).");
            let cum = h.cumulative();
            for (i, v) in cum.iter().enumerate() {
                let le = LATENCY_BUCKETS_US.get(i).map_or("+Inf".to_string(), |&us| seconds(us));
                let _ = writeln!(out, "{PREFIX}{name}_bucket{{node=\"{node}\",le=\"{le}\"}} {v}");
            }
            let _ = writeln!(out, "{PREFIX}{name}_sum{{node=\"{node}\"}} {}", seconds(h.sum_us));
            let _ = writeln!(out, "{PREFIX}{name}_count{{node=\"{node}\"}} {}", h.count());
        }
        head(&mut out, "uptime_seconds", "gauge", "Seconds since this node's counters started.");
        let _ = writeln!(out, "{PREFIX}uptime_seconds{{node=\"{node}\"}} {}", seconds(self.uptime_ms * 1000));
        out
    }

    /// The `GET /admin/api/stats` body.
    pub fn json(&self) -> serde_json::Value {
        let latency = self.latency.as_ref().map(|h| {
            let cum = h.cumulative();
            let buckets: Vec<serde_json::Value> = cum
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let le = LATENCY_BUCKETS_US.get(i).map_or(json!("+Inf"), |&us| json!(us as f64 / 1000.0));
                    json!({"le_ms": le, "count": v})
                })
                .collect();
            json!({
                "count": h.count(),
                "sum_ms": h.sum_us as f64 / 1000.0,
                "p50_ms_at_most": h.quantile_upper_ms(0.5),
                "p99_ms_at_most": h.quantile_upper_ms(0.99),
                "buckets": buckets,
            })
        });
        let mut out = json!({
            "scope": self.scope,
            "runtime": self.runtime,
            "node": self.node,
            "connections": self.connections(),
            "connections_by_transport": {"sse": self.connections_sse, "ws": self.connections_ws},
            "tails": self.tails,
            "topics": self.topics,
            "publishes": self.counts.publishes,
            "deliveries": self.counts.deliveries,
            "drops": self.counts.drops,
            "evictions": self.counts.evictions,
            "replayed": self.counts.replayed,
            "rejected": self.rejected,
            "publish_to_write": latency,
            "uptime_ms": self.uptime_ms,
        });
        if let Some(n) = self.hibernatable {
            out["connections_hibernatable"] = json!(n);
        }
        out
    }
}

/// One deployment's stats from the stats of its registry shards: counts summed, the longest
/// uptime, the rest from the first shard.
pub fn merge_stats(bodies: &[String]) -> Result<String, crate::GatewayError> {
    let bad = |e: &dyn std::fmt::Display| crate::GatewayError::Internal(format!("registry shard stats: {e}"));
    let mut pages = bodies.iter().map(|b| serde_json::from_str::<serde_json::Value>(b).map_err(|e| bad(&e)));
    let mut out = pages.next().ok_or_else(|| bad(&"no shard"))??;
    for page in pages {
        let page = page?;
        for path in [
            &["connections"][..],
            &["connections_by_transport", "sse"],
            &["connections_by_transport", "ws"],
            &["connections_hibernatable"],
            &["tails"],
            &["topics"],
            &["publishes"],
            &["deliveries"],
            &["drops"],
            &["evictions"],
            &["replayed"],
        ] {
            let get = |v: &serde_json::Value| path.iter().try_fold(v, |v, k| v.get(*k)).and_then(serde_json::Value::as_u64);
            if let (Some(a), Some(b)) = (get(&out), get(&page)) {
                let slot = path.iter().fold(&mut out, |v, k| &mut v[*k]);
                *slot = json!(a + b);
            }
        }
        let (a, b) = (out["uptime_ms"].as_u64().unwrap_or(0), page["uptime_ms"].as_u64().unwrap_or(0));
        out["uptime_ms"] = json!(a.max(b));
    }
    Ok(out.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stats {
        let mut h = Histogram::default();
        for us in [100, 500, 501, 3_000, 3_000, 2_000_000] {
            h.observe(us);
        }
        let mut rejected = BTreeMap::new();
        rejected.insert("unauthorized".to_string(), 2);
        rejected.insert("invalid_topic".to_string(), 1);
        Stats {
            scope: "node",
            runtime: "native",
            node: Some("n\"1".into()),
            connections_sse: 2,
            connections_ws: 1,
            tails: 0,
            topics: 2,
            counts: Counts { publishes: 5, deliveries: 7, drops: 1, evictions: 1, replayed: 3 },
            rejected,
            latency: Some(h),
            uptime_ms: 1_500,
            hibernatable: None,
        }
    }

    #[test]
    fn shard_stats_add_up() {
        let shard = |sse: u64, ws: u64, uptime: u64| {
            let mut st = sample();
            st.scope = "deployment";
            st.runtime = "cloudflare";
            st.latency = None;
            st.connections_sse = sse;
            st.connections_ws = ws;
            st.uptime_ms = uptime;
            st.hibernatable = Some(sse + ws);
            st.json().to_string()
        };
        let merged: serde_json::Value = serde_json::from_str(&merge_stats(&[shard(2, 1, 10), shard(3, 0, 30)]).unwrap()).unwrap();
        assert_eq!(merged["connections"], 6);
        assert_eq!(merged["connections_by_transport"]["sse"], 5);
        assert_eq!(merged["connections_hibernatable"], 6);
        assert_eq!(merged["publishes"], 10);
        assert_eq!(merged["uptime_ms"], 30);
        assert_eq!(merged["scope"], "deployment");
        assert!(merge_stats(&[]).is_err());
        assert!(!sample().json().as_object().unwrap().contains_key("connections_hibernatable"));
    }

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(500), 0);
        assert_eq!(bucket_index(501), 1);
        assert_eq!(bucket_index(1_000_000), 10);
        assert_eq!(bucket_index(1_000_001), 11);
    }

    #[test]
    fn histogram_is_cumulative() {
        let h = sample().latency.unwrap();
        assert_eq!(h.counts, [2, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(h.cumulative(), [2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 6]);
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum_us, 2_007_101);
        assert_eq!(h.quantile_upper_ms(0.5), Some(1.0));
        assert_eq!(h.quantile_upper_ms(0.8), Some(5.0));
        assert_eq!(h.quantile_upper_ms(1.0), None, "in +Inf");
        assert_eq!(Histogram::default().quantile_upper_ms(0.5), None);
    }

    #[test]
    fn prometheus_text_is_deterministic_and_well_formed() {
        let s = sample();
        let text = s.prometheus();
        assert_eq!(text, s.prometheus());
        let mut names = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                names.push(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            // name{labels} value
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.starts_with(PREFIX), "{line}");
            assert!(series.ends_with('}') && series.contains("node=\"n\\\"1\""), "{line}");
        }
        assert_eq!(names.len(), 10);
        assert!(text.contains("sse_gateway_connections{node=\"n\\\"1\",transport=\"ws\"} 1\n"));
        assert!(text.contains("sse_gateway_rejected_requests_total{code=\"invalid_topic\",node=\"n\\\"1\"} 1\nsse_gateway_rejected_requests_total{code=\"unauthorized\""));
        assert!(text.contains("sse_gateway_publish_to_write_seconds_bucket{node=\"n\\\"1\",le=\"0.0005\"} 2\n"));
        assert!(text.contains("le=\"0.001\"} 3\n"));
        assert!(text.contains("le=\"1\"} 5\n"));
        assert!(text.contains("le=\"+Inf\"} 6\n"));
        assert!(text.contains("sse_gateway_publish_to_write_seconds_sum{node=\"n\\\"1\"} 2.007101\n"));
        assert!(text.contains("sse_gateway_publish_to_write_seconds_count{node=\"n\\\"1\"} 6\n"));
        assert!(text.contains("sse_gateway_uptime_seconds{node=\"n\\\"1\"} 1.5\n"));
        // Without a latency histogram (Cloudflare's counts), no histogram family.
        let cf = Stats { latency: None, ..s };
        assert!(!cf.prometheus().contains("publish_to_write"));
    }

    #[test]
    fn json_shape() {
        let v = sample().json();
        assert_eq!(v["connections"], 3);
        assert_eq!(v["connections_by_transport"], json!({"sse": 2, "ws": 1}));
        assert_eq!((v["publishes"].as_u64(), v["deliveries"].as_u64(), v["drops"].as_u64()), (Some(5), Some(7), Some(1)));
        assert_eq!(v["rejected"]["unauthorized"], 2);
        let l = &v["publish_to_write"];
        assert_eq!(l["count"], 6);
        assert_eq!(l["buckets"][0], json!({"le_ms": 0.5, "count": 2}));
        assert_eq!(l["buckets"][11], json!({"le_ms": "+Inf", "count": 6}));
        let empty = Stats { scope: "deployment", runtime: "cloudflare", ..Default::default() }.json();
        assert_eq!(empty["publish_to_write"], serde_json::Value::Null);
        assert_eq!(empty["node"], serde_json::Value::Null);
    }

    #[test]
    fn counts_add_up_and_default_missing_fields() {
        let mut a = Counts { publishes: 1, ..Default::default() };
        a.add(&Counts { publishes: 2, drops: 1, ..Default::default() });
        assert_eq!((a.publishes, a.drops), (3, 1));
        assert!(Counts::default().is_zero());
        let c: Counts = serde_json::from_str(r#"{"publishes":4}"#).unwrap();
        assert_eq!(c.publishes, 4);
    }
}
