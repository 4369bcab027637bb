//! One publish, from the probes to the `202` body. The runtime asks each topic's owner whether
//! it takes the event ([`Probed`]), then [`PublishPlan::probed`] says whether the body must be
//! read at all ([`Step`]) and [`PublishPlan::targets`] which topics get it; the runtime delivers
//! and hands back what each topic did ([`PublishPlan::settle`]); [`PublishPlan::finish`] returns
//! the per-topic results, the counts, the drop log lines and the `202` body.
//!
//! A runtime whose topic owner probes and delivers in one call (a Cloudflare topic object that
//! gets a single-topic publish with the body unread) skips the probe and settles at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::GatewayError;
use crate::metrics::Counts;
use crate::protocol::drop_rule;

/// What a publish did on one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicResult {
    /// Handed to this many connections.
    Delivered(usize),
    /// Nobody was subscribed.
    Dropped,
    /// The topic retains events (`RETENTION`): the event was stored for replay, and handed to
    /// this many connections (possibly 0: a retained topic keeps events with nobody connected).
    Retained(usize),
}

impl TopicResult {
    /// Combines what several owners (nodes, shards) did with one topic's event: counts add up,
    /// and the event is dropped only if every owner dropped it.
    pub fn merge(self, other: TopicResult) -> TopicResult {
        match (self, other) {
            (TopicResult::Retained(a), o) | (o, TopicResult::Retained(a)) => TopicResult::Retained(a + o.delivered()),
            (TopicResult::Delivered(a), TopicResult::Delivered(b)) => TopicResult::Delivered(a + b),
            (TopicResult::Delivered(n), TopicResult::Dropped) | (TopicResult::Dropped, TopicResult::Delivered(n)) => {
                TopicResult::Delivered(n)
            }
            (TopicResult::Dropped, TopicResult::Dropped) => TopicResult::Dropped,
        }
    }

    /// Connections the event was handed to.
    pub fn delivered(self) -> usize {
        match self {
            TopicResult::Delivered(n) | TopicResult::Retained(n) => n,
            TopicResult::Dropped => 0,
        }
    }

    /// The same delivery, on a topic that retained the event.
    pub fn retained(self) -> TopicResult {
        TopicResult::Retained(self.delivered())
    }

    /// What one owner's delivery to `count` connections means, on a topic that may retain
    /// events: a retained topic never drops (the event is stored), others drop with nobody.
    pub fn of_delivery(count: Option<usize>, retained: bool) -> TopicResult {
        match (count, retained) {
            (c, true) => TopicResult::Retained(c.unwrap_or(0)),
            (Some(n), false) => TopicResult::Delivered(n),
            (None, false) => TopicResult::Dropped,
        }
    }
}

impl Counts {
    /// Counts one topic's publish by what it did there.
    pub fn published(&mut self, r: TopicResult) {
        self.publishes += 1;
        self.deliveries += r.delivered() as u64;
        if r == TopicResult::Dropped {
            self.drops += 1;
        }
    }
}

/// A topic owner's answer to "do you take this event?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probed {
    /// Someone subscribes, or the topic retains events: it gets the body.
    Takes,
    /// Nobody: dropped (the owner told the topic's tails; the plan logs the drop).
    Dropped,
    /// Where the topic lives could not be found out (native cluster: Redis unreachable): the
    /// whole publish is refused with this error, and nothing is delivered anywhere.
    Unavailable(GatewayError),
}

/// What the runtime does after the probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No topic takes the event: answer now ([`PublishPlan::finish`]); the body is never read.
    Answer,
    /// Read the body, deliver it to [`PublishPlan::targets`], settle each, then finish.
    ReadBody,
}

/// One publish in progress.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    id: String,
    topics: Vec<String>,
    results: Vec<Option<TopicResult>>,
}

/// A finished publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    /// Per topic, in request order.
    pub results: Vec<(String, TopicResult)>,
    /// Topics dropped (nobody subscribed, not retained).
    pub dropped: usize,
    /// Connections the event was handed to, over every topic.
    pub delivered: usize,
    /// One log line per dropped topic, to be written as they are.
    pub log: Vec<String>,
    /// The `202` body.
    pub body: String,
}

impl PublishPlan {
    /// A publish of event `id` to `topics` (validated, distinct).
    pub fn new(id: impl Into<String>, topics: Vec<String>) -> Self {
        let results = vec![None; topics.len()];
        Self { id: id.into(), topics, results }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// Takes one probe answer per topic, in topic order. Fails when any topic's owner could not
    /// be reached: nothing was delivered, so the publisher may retry the whole publish.
    pub fn probed(&mut self, probes: impl IntoIterator<Item = Probed>) -> Result<Step, GatewayError> {
        let mut takes = false;
        for (slot, probe) in self.results.iter_mut().zip(probes) {
            match probe {
                Probed::Takes => takes = true,
                Probed::Dropped => *slot = Some(TopicResult::Dropped),
                Probed::Unavailable(e) => return Err(e),
            }
        }
        Ok(if takes { Step::ReadBody } else { Step::Answer })
    }

    /// The topics that take the event and are not settled yet: `(index, topic)`.
    pub fn targets(&self) -> impl Iterator<Item = (usize, &str)> + '_ {
        self.topics.iter().enumerate().filter(|(i, _)| self.results[*i].is_none()).map(|(i, t)| (i, t.as_str()))
    }

    /// What topic `index` did with the event. A topic that took it at the probe may still
    /// answer [`TopicResult::Dropped`]: everyone left in between; it is logged as a drop.
    pub fn settle(&mut self, index: usize, result: TopicResult) {
        if let Some(slot) = self.results.get_mut(index) {
            *slot = Some(result);
        }
    }

    /// The results, counts, drop log lines and `202` body. A topic never settled (its delivery
    /// failed) counts as dropped.
    pub fn finish(self) -> PublishReport {
        let results: Vec<(String, TopicResult)> =
            self.topics.into_iter().zip(self.results).map(|(t, r)| (t, r.unwrap_or(TopicResult::Dropped))).collect();
        let log: Vec<String> =
            results.iter().filter(|(_, r)| *r == TopicResult::Dropped).map(|(t, _)| drop_rule::log_line(t, &self.id)).collect();
        PublishReport {
            dropped: log.len(),
            delivered: results.iter().map(|(_, r)| r.delivered()).sum(),
            body: accepted_body(&self.id, &results),
            log,
            results,
        }
    }
}

/// The `202` body: `{"id","delivered","topics":{t:{"delivered":n}|{"dropped":"no_subscribers"}}}`.
fn accepted_body(id: &str, results: &[(String, TopicResult)]) -> String {
    let mut topics = BTreeMap::new();
    let mut total = 0;
    for (topic, r) in results {
        let v = match r {
            TopicResult::Delivered(n) => {
                total += n;
                serde_json::json!({"delivered": n})
            }
            TopicResult::Dropped => serde_json::json!({"dropped": "no_subscribers"}),
            TopicResult::Retained(n) => {
                total += n;
                serde_json::json!({"delivered": n, "retained": true})
            }
        };
        topics.insert(topic.as_str(), v);
    }
    serde_json::json!({"id": id, "delivered": total, "topics": topics}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(topics: &[&str]) -> PublishPlan {
        PublishPlan::new("e1", topics.iter().map(|t| t.to_string()).collect())
    }

    #[test]
    fn nobody_anywhere_answers_without_the_body_and_logs_each_drop_once() {
        let mut p = plan(&["a", "b"]);
        assert_eq!(p.probed([Probed::Dropped, Probed::Dropped]).unwrap(), Step::Answer);
        assert_eq!(p.targets().count(), 0);
        let r = p.finish();
        assert_eq!(r.dropped, 2);
        assert_eq!(r.log.len(), 2);
        assert!(r.log[0].contains("\"topic\":\"a\"") && r.log[1].contains("\"topic\":\"b\""));
        assert_eq!(r.body, r#"{"delivered":0,"id":"e1","topics":{"a":{"dropped":"no_subscribers"},"b":{"dropped":"no_subscribers"}}}"#);
    }

    #[test]
    fn the_body_is_read_once_for_the_topics_that_take_it() {
        let mut p = plan(&["b", "a", "c"]);
        assert_eq!(p.probed([Probed::Dropped, Probed::Takes, Probed::Takes]).unwrap(), Step::ReadBody);
        assert_eq!(p.targets().collect::<Vec<_>>(), vec![(1, "a"), (2, "c")]);
        p.settle(1, TopicResult::Delivered(3));
        p.settle(2, TopicResult::Retained(0));
        let r = p.finish();
        assert_eq!(
            r.results,
            vec![("b".into(), TopicResult::Dropped), ("a".into(), TopicResult::Delivered(3)), ("c".into(), TopicResult::Retained(0))]
        );
        assert_eq!((r.dropped, r.delivered, r.log.len()), (1, 3, 1));
        assert_eq!(
            r.body,
            r#"{"delivered":3,"id":"e1","topics":{"a":{"delivered":3},"b":{"dropped":"no_subscribers"},"c":{"delivered":0,"retained":true}}}"#
        );
    }

    #[test]
    fn everyone_leaving_between_probe_and_delivery_is_a_logged_drop() {
        let mut p = plan(&["a"]);
        assert_eq!(p.probed([Probed::Takes]).unwrap(), Step::ReadBody);
        p.settle(0, TopicResult::Dropped);
        let r = p.finish();
        assert_eq!((r.dropped, r.log.len()), (1, 1));
    }

    #[test]
    fn an_unreachable_owner_refuses_the_whole_publish() {
        let mut p = plan(&["a", "b"]);
        let e = GatewayError::Unavailable { what: "redis".into(), retry_after_s: 2 };
        assert_eq!(p.probed([Probed::Takes, Probed::Unavailable(e.clone())]).unwrap_err(), e);
    }

    #[test]
    fn a_single_call_owner_settles_without_a_probe_and_unsettled_is_dropped() {
        let mut p = plan(&["a", "b"]);
        p.settle(0, TopicResult::Delivered(1));
        let r = p.finish();
        assert_eq!(r.results[1].1, TopicResult::Dropped);
        assert_eq!((r.dropped, r.delivered), (1, 1));
    }

    #[test]
    fn results_merge_across_owners() {
        use TopicResult::*;
        assert_eq!(Retained(2).merge(Delivered(3)), Retained(5));
        assert_eq!(Dropped.merge(Retained(0)), Retained(0));
        assert_eq!(Delivered(2).merge(Delivered(3)), Delivered(5));
        assert_eq!(Dropped.merge(Delivered(0)), Delivered(0));
        assert_eq!(Delivered(1).merge(Dropped), Delivered(1));
        assert_eq!(Dropped.merge(Dropped), Dropped);
        assert_eq!(TopicResult::of_delivery(None, true), Retained(0));
        assert_eq!(TopicResult::of_delivery(Some(2), false), Delivered(2));
        assert_eq!(TopicResult::of_delivery(None, false), Dropped);
    }
}
