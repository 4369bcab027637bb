//! This node's live counters, kept with relaxed atomics (no lock on the publish or write path),
//! turned into the core's [`Stats`] for `GET /metrics` (Prometheus text) and
//! `GET /admin/api/stats` (JSON).
//!
//! Publish→write latency: [`Hub`](crate::hub::Hub) stamps each publish once (a monotonic
//! timestamp carried by the publish's frames, [`crate::sink::Frame`]); each connection's queue
//! keeps the stamp of its oldest frame not yet written (one atomic per connection, set by the
//! first stamped frame after a write). The connection's writer takes that stamp when it writes a
//! batch and records `now - stamp` once per write. So the histogram counts writes (not frames),
//! each measured for the oldest frame it carried: from the hub handing the event to the queues
//! (after the publish body was read and, in a cluster, forwarded to this node) to the batch
//! being handed to the HTTP layer (SSE) or flushed to the socket (WebSocket).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use sse_core::frame::Format;
use sse_core::metrics::{bucket_index, Counts, Histogram, Stats, LATENCY_SLOTS};

const R: Ordering = Ordering::Relaxed;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds on a process-wide monotonic clock, never 0 (0 means "no stamp").
pub fn mono_ns() -> u64 {
    (epoch().elapsed().as_nanos() as u64).saturating_add(1)
}

/// Per-connection: the stamp of the oldest frame queued since the last write.
#[derive(Debug, Default)]
pub struct Pending(AtomicU64);

impl Pending {
    /// Called by the queue after a frame stamped `at` was queued (0: not a publish's frame,
    /// e.g. a keepalive or a tail notice: nothing to measure).
    pub fn queued(&self, at: u64) {
        if at != 0 && self.0.load(R) == 0 {
            let _ = self.0.compare_exchange(0, at, R, R);
        }
    }

    /// Called by the writer after a write: the stamp to measure from, cleared.
    pub fn take(&self) -> u64 {
        if self.0.load(R) == 0 {
            return 0;
        }
        self.0.swap(0, R)
    }
}

/// Writes measured by one writer between two [`Metrics::written_batch`]: the histogram's
/// shared atomics are touched once per batch, not once per write, and the clock is read once
/// per [`CLOCK_READS_EVERY`] writes (a few µs apart; the first bucket is 500 µs).
#[derive(Debug)]
pub struct LatencyBatch {
    counts: [u64; LATENCY_SLOTS],
    sum_us: u64,
    n: u64,
    now: u64,
    /// Writes left before the clock is read again.
    fresh: u32,
}

/// See [`LatencyBatch`].
const CLOCK_READS_EVERY: u32 = 16;

impl Default for LatencyBatch {
    fn default() -> Self {
        LatencyBatch { counts: [0; LATENCY_SLOTS], sum_us: 0, n: 0, now: 0, fresh: 0 }
    }
}

impl LatencyBatch {
    /// A write whose oldest frame was stamped `at` (0: nothing to measure).
    pub fn observe(&mut self, at: u64) {
        if at == 0 {
            return;
        }
        if self.fresh == 0 {
            self.now = mono_ns();
            self.fresh = CLOCK_READS_EVERY;
        }
        self.fresh -= 1;
        let us = self.now.saturating_sub(at) / 1_000;
        self.counts[bucket_index(us)] += 1;
        self.sum_us += us;
        self.n += 1;
    }

    /// The writer is about to wait or yield: the next write reads the clock again.
    pub fn stale(&mut self) {
        self.fresh = 0;
    }
}

/// A histogram of atomics with the core's buckets.
#[derive(Debug, Default)]
struct AtomicHistogram {
    counts: [AtomicU64; LATENCY_SLOTS],
    sum_us: AtomicU64,
}

impl AtomicHistogram {
    fn observe(&self, us: u64) {
        self.counts[bucket_index(us)].fetch_add(1, R);
        self.sum_us.fetch_add(us, R);
    }

    fn snapshot(&self) -> Histogram {
        let mut h = Histogram { sum_us: self.sum_us.load(R), ..Default::default() };
        for (o, c) in h.counts.iter_mut().zip(&self.counts) {
            *o = c.load(R);
        }
        h
    }
}

/// The node's counters. Evictions and replayed events are the hub's own counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open connections: SSE, WebSocket, admin tails.
    conns: [AtomicU64; 3],
    publishes: AtomicU64,
    drops: AtomicU64,
    deliveries: AtomicU64,
    latency: AtomicHistogram,
    /// Errors are not the hot path: a lock is fine.
    rejected: Mutex<BTreeMap<&'static str, u64>>,
}

fn slot(format: Format) -> usize {
    match format {
        Format::Ws => 1,
        Format::Tail => 2,
        Format::Sse | Format::SseEnvelope => 0,
    }
}

impl Metrics {
    pub fn new() -> Self {
        let _ = epoch();
        Self::default()
    }

    pub fn conn_opened(&self, format: Format) {
        self.conns[slot(format)].fetch_add(1, R);
    }

    pub fn conn_closed(&self, format: Format) {
        self.conns[slot(format)].fetch_sub(1, R);
    }

    /// A publish accepted by this node: `topics` topics, `dropped` of them dropped.
    pub fn published(&self, topics: usize, dropped: usize) {
        self.publishes.fetch_add(topics as u64, R);
        if dropped > 0 {
            self.drops.fetch_add(dropped as u64, R);
        }
    }

    pub fn delivered(&self, n: usize) {
        if n > 0 {
            self.deliveries.fetch_add(n as u64, R);
        }
    }

    /// A write of a connection whose oldest unwritten frame was stamped `at` (0: nothing to
    /// measure, e.g. a keepalive).
    pub fn written(&self, at: u64) {
        if at != 0 {
            self.latency.observe(mono_ns().saturating_sub(at) / 1_000);
        }
    }

    /// Adds what a writer measured since its last call ([`LatencyBatch`]), and clears it.
    pub fn written_batch(&self, batch: &mut LatencyBatch) {
        if batch.n == 0 {
            return;
        }
        for (i, c) in batch.counts.iter_mut().enumerate() {
            if *c > 0 {
                self.latency.counts[i].fetch_add(*c, R);
                *c = 0;
            }
        }
        self.latency.sum_us.fetch_add(batch.sum_us, R);
        batch.sum_us = 0;
        batch.n = 0;
    }

    pub fn rejected(&self, code: &'static str) {
        let mut m = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(code).or_insert(0) += 1;
    }

    /// A snapshot; `topics`, `evictions` and `replayed` come from the hub.
    pub fn stats(&self, node: &str, topics: usize, evictions: u64, replayed: u64) -> Stats {
        let rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.to_string(), *v)).collect();
        Stats {
            scope: "node",
            runtime: "native",
            node: Some(node.to_string()),
            connections_sse: self.conns[0].load(R),
            connections_ws: self.conns[1].load(R),
            tails: self.conns[2].load(R),
            topics: topics as u64,
            counts: Counts {
                publishes: self.publishes.load(R),
                deliveries: self.deliveries.load(R),
                drops: self.drops.load(R),
                evictions,
                replayed,
            },
            rejected,
            latency: Some(self.latency.snapshot()),
            uptime_ms: epoch().elapsed().as_millis() as u64,
            hibernatable: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_keeps_the_oldest_stamp_of_a_publish_only() {
        let p = Pending::default();
        p.queued(0);
        assert_eq!(p.take(), 0, "no stamp outside a publish");
        let first = mono_ns();
        p.queued(first);
        p.queued(mono_ns());
        assert_eq!(p.take(), first, "the oldest");
        assert_eq!(p.take(), 0);
    }

    #[test]
    fn counts_and_latency() {
        let m = Metrics::new();
        m.conn_opened(Format::Sse);
        m.conn_opened(Format::SseEnvelope);
        m.conn_opened(Format::Ws);
        m.conn_closed(Format::Sse);
        m.published(3, 1);
        m.delivered(4);
        m.rejected("unauthorized");
        m.written(0);
        m.written(mono_ns());
        let s = m.stats("n1", 2, 1, 0);
        assert_eq!((s.connections_sse, s.connections_ws, s.tails), (1, 1, 0));
        assert_eq!((s.counts.publishes, s.counts.drops, s.counts.deliveries, s.counts.evictions), (3, 1, 4, 1));
        assert_eq!(s.rejected.get("unauthorized"), Some(&1));
        assert_eq!(s.latency.unwrap().count(), 1);
    }
}
