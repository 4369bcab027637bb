//! The messages between the nodes of a native cluster, beside the single-event [`Deliver`]
//! (still what a Worker sends a topic object):
//!
//! - [`DeliverBatch`] (`POST /_cluster/deliver`): every event one node hands another in one
//!   request, in the order they were published, and [`BatchAnswer`], what the receiving node's
//!   connections took of each.
//! - [`PlacementNotice`] (`POST /_cluster/placement`): the topics where a node's presence changed
//!   (it gained or lost its first subscriber or tail), so every other node routes from memory.
//!   `gen` orders one node's notices and its placement in Redis: a reader keeps whatever it
//!   saw with the highest `gen` of that node's run (`started_at`).
//!
//! [`Deliver`]: super::Deliver

use serde::{Deserialize, Serialize};

use crate::error::{GatewayError, Result};
use crate::frame::Event;
use crate::names;
use crate::protocol::TopicResult;

/// One event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchedEvent {
    pub topic: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub ts: u64,
    /// The per-topic retention sequence (retained topics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub data: String,
}

impl BatchedEvent {
    pub fn of(ev: &Event, seq: Option<u64>) -> BatchedEvent {
        BatchedEvent { topic: ev.topic.clone(), id: ev.id.clone(), event: ev.event.clone(), ts: ev.ts, seq, data: ev.data.clone() }
    }

    /// The event and its sequence.
    pub fn into_parts(self) -> (Event, Option<u64>) {
        (Event { topic: self.topic, id: self.id, event: self.event, data: self.data, ts: self.ts }, self.seq)
    }
}

/// Several events for one node, in publish order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverBatch {
    pub events: Vec<BatchedEvent>,
}

impl DeliverBatch {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a batch serialises")
    }

    /// Reads a batch, checking every name as a publish would.
    pub fn decode(body: &str) -> Result<DeliverBatch> {
        let batch: DeliverBatch = serde_json::from_str(body).map_err(|e| GatewayError::InvalidRequest(format!("deliver batch: {e}")))?;
        for e in &batch.events {
            names::check_topic(&e.topic)?;
            names::check_id(&e.id)?;
            if let Some(t) = &e.event {
                names::check_event(t)?;
            }
        }
        Ok(batch)
    }
}

/// What one node did with each event of a batch, in the batch's order: how many of its
/// connections took it, or `None` when nobody there subscribes to its topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAnswer {
    pub delivered: Vec<Option<usize>>,
}

impl BatchAnswer {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("an answer serialises")
    }

    /// The answer to a batch of `n` events; one of another length is an error.
    pub fn decode(body: &str, n: usize) -> Result<Vec<TopicResult>> {
        let a: BatchAnswer = serde_json::from_str(body).map_err(|e| GatewayError::InvalidRequest(format!("deliver answer: {e}")))?;
        if a.delivered.len() != n {
            return Err(GatewayError::InvalidRequest(format!("deliver answer: {} results for {n} events", a.delivered.len())));
        }
        Ok(a.delivered.into_iter().map(|c| TopicResult::of_delivery(c, false)).collect())
    }
}

/// A topic's presence on one node: whether it has subscribers there, and admin tails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub subscribers: bool,
    pub tails: bool,
}

impl Presence {
    pub fn of(subscribers: usize, tails: usize) -> Presence {
        Presence { subscribers: subscribers > 0, tails: tails > 0 }
    }

    pub fn is_empty(self) -> bool {
        !self.subscribers && !self.tails
    }

    /// How a node records it in its placement hash: `"subscribers tails"`.
    pub fn record(subscribers: usize, tails: usize) -> String {
        format!("{subscribers} {tails}")
    }

    /// Reads that record (`None` if it is not one).
    pub fn parse_record(s: &str) -> Option<(usize, usize)> {
        let (a, b) = s.split_once(' ')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }
}

/// One node's presence changes, sent to every other node before its new subscribers are told
/// they are connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementNotice {
    pub node: String,
    /// `host:port` the node advertises.
    pub addr: String,
    pub started_at: u64,
    pub gen: u64,
    /// Topic → its presence on `node` now (empty: gone from there).
    pub topics: Vec<(String, Presence)>,
}

impl PlacementNotice {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a notice serialises")
    }

    pub fn decode(body: &str) -> Result<PlacementNotice> {
        let n: PlacementNotice = serde_json::from_str(body).map_err(|e| GatewayError::InvalidRequest(format!("placement notice: {e}")))?;
        names::check_name(&n.node).map_err(|m| GatewayError::InvalidRequest(format!("placement notice: node {m}")))?;
        for (t, _) in &n.topics {
            names::check_topic(t)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(topic: &str, id: &str, data: &str) -> Event {
        Event { topic: topic.into(), id: id.into(), event: None, data: data.into(), ts: 7 }
    }

    #[test]
    fn a_batch_round_trips_in_order_with_sequences() {
        let b =
            DeliverBatch { events: vec![BatchedEvent::of(&ev("a", "1", "x\ny"), None), BatchedEvent::of(&ev("b", "2", "\"q\""), Some(9))] };
        let back = DeliverBatch::decode(&b.encode()).unwrap();
        assert_eq!(back, b);
        let (e, seq) = back.events[1].clone().into_parts();
        assert_eq!((e.topic.as_str(), e.data.as_str(), seq), ("b", "\"q\"", Some(9)));
    }

    #[test]
    fn a_batch_with_a_bad_name_or_shape_is_refused() {
        let bad = r#"{"events":[{"topic":"a b","id":"1","ts":1,"data":""}]}"#;
        assert!(matches!(DeliverBatch::decode(bad), Err(GatewayError::InvalidTopic(_))));
        assert!(matches!(DeliverBatch::decode("{"), Err(GatewayError::InvalidRequest(_))));
        let bad_event = r#"{"events":[{"topic":"a","id":"1","event":"x\ny","ts":1,"data":""}]}"#;
        assert!(DeliverBatch::decode(bad_event).is_err());
    }

    #[test]
    fn an_answer_must_have_one_result_per_event() {
        let a = BatchAnswer { delivered: vec![Some(2), None] }.encode();
        assert_eq!(BatchAnswer::decode(&a, 2).unwrap(), vec![TopicResult::Delivered(2), TopicResult::Dropped]);
        assert!(BatchAnswer::decode(&a, 3).is_err());
    }

    #[test]
    fn a_notice_round_trips_and_checks_names() {
        let n = PlacementNotice {
            node: "n-1".into(),
            addr: "h:1".into(),
            started_at: 5,
            gen: 3,
            topics: vec![("t".into(), Presence::of(2, 0))],
        };
        assert_eq!(PlacementNotice::decode(&n.encode()).unwrap(), n);
        let bad = r#"{"node":"n 1","addr":"h:1","started_at":1,"gen":1,"topics":[]}"#;
        assert!(PlacementNotice::decode(bad).is_err());
        assert_eq!(Presence::parse_record(&Presence::record(3, 1)), Some((3, 1)));
        assert_eq!(Presence::parse_record("x"), None);
    }
}
