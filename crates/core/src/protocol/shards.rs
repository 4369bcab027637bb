//! `shards`: a hot topic spread over several owners (Cloudflare topic objects). The topic's own
//! object, its home, holds up to `TOPIC_SHARD_SIZE` subscribers; past that it sends each new
//! subscriber to a shard object (`<topic>#<i>`, i ≥ 1: `#` is not in the topic alphabet, so no
//! topic can take a shard's name), filling the lowest shard that has room. A publish reaches the
//! home, which delivers to its own subscribers and forwards the event to every shard that may
//! hold some; each subscriber is on one object only, so it gets each event exactly once, and in
//! publish order (the home forwards in the order it handles publishes).
//!
//! The home knows its shards from their reports ([`ShardReport`]): a shard says when it became
//! full, had room again, or became empty, with how many connections it has accepted in all. The
//! home marks a shard non-empty the moment it sends it a subscriber, so a publish right after a
//! subscriber's `connected` always reaches it; an `empty` report counts only once every
//! subscriber sent there has arrived. Retained events, replay and admin tails stay at the home:
//! a subscriber resuming with `Last-Event-ID` on a retained topic is always accepted there.

use serde::{Deserialize, Serialize};

use crate::error::{GatewayError, Result};
use crate::frame::Format;
use crate::protocol::Attach;
use crate::request::Query;

/// Whether an attach may be sent to a shard: a subscriber's first attach at the topic's own
/// object. Admin tails and subscribers resuming on a retained topic (`retained`) stay at the
/// topic's own object, which keeps the retained events.
pub fn may_place(a: &Attach, retained: bool) -> bool {
    a.shard == 0 && a.format != Format::Tail && !(retained && a.last_event_id.is_some())
}

/// The name of shard `index` (≥ 1) of `topic`'s object.
pub fn object_name(topic: &str, index: u32) -> String {
    format!("{topic}#{index}")
}

/// How full a shard is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    Empty,
    Room,
    Full,
}

impl Fill {
    /// The fill of an owner with `subscribers` of at most `size`.
    pub fn of(subscribers: usize, size: usize) -> Fill {
        match subscribers {
            0 => Fill::Empty,
            n if n >= size => Fill::Full,
            _ => Fill::Room,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Fill::Empty => "empty",
            Fill::Room => "room",
            Fill::Full => "full",
        }
    }
}

/// What a shard tells its home after an attach or a detach changed its [`Fill`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardReport {
    pub index: u32,
    pub fill: Fill,
    /// Connections the shard has accepted since it started holding this topic.
    pub accepted: u64,
    /// Subscribers it holds now.
    pub held: u64,
}

impl ShardReport {
    pub const PATH: &'static str = "/shard-report";

    /// The report a shard with `before` and then `after` subscribers sends (None: no change).
    pub fn of_change(index: u32, before: usize, after: usize, size: usize, accepted: u64) -> Option<ShardReport> {
        let fill = Fill::of(after, size);
        (fill != Fill::of(before, size)).then_some(ShardReport { index, fill, accepted, held: after as u64 })
    }

    /// The path and query of the internal request to the home.
    pub fn encode(&self) -> String {
        format!("{}?shard={}&fill={}&accepted={}&held={}", Self::PATH, self.index, self.fill.name(), self.accepted, self.held)
    }

    pub fn decode(q: &Query) -> Result<ShardReport> {
        let bad = |k: &str| GatewayError::InvalidRequest(format!("shard report: invalid {k}"));
        let index = q.get("shard").and_then(|v| v.parse::<u32>().ok()).filter(|&i| i >= 1).ok_or_else(|| bad("shard"))?;
        let fill =
            [Fill::Empty, Fill::Room, Fill::Full].into_iter().find(|f| Some(f.name()) == q.get("fill")).ok_or_else(|| bad("fill"))?;
        let accepted = q.get("accepted").and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| bad("accepted"))?;
        let held = q.get("held").and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| bad("held"))?;
        Ok(ShardReport { index, fill, accepted, held })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    fill: Fill,
    /// Subscribers the home has sent to this shard.
    sent: u64,
    /// From the shard's latest report: connections it had accepted, and held.
    #[serde(default)]
    acked: u64,
    #[serde(default)]
    held: u64,
}

impl Entry {
    /// Subscribers the shard holds as far as the home can tell: its last report plus those
    /// sent since.
    fn estimate(&self) -> u64 {
        self.held + self.sent.saturating_sub(self.acked)
    }
}

/// The home's view of its shards (kept in its storage: it must outlive an eviction).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSet {
    shards: Vec<Entry>,
}

impl ShardSet {
    /// Where a new subscriber goes, given the home's own subscriber count: `None` = the home,
    /// `Some(i)` = shard `i` (a new shard when every one is full).
    pub fn place(&mut self, home_subscribers: usize, size: usize) -> Option<u32> {
        if home_subscribers < size {
            return None;
        }
        let i = match self.shards.iter().position(|e| e.fill != Fill::Full && e.estimate() < size as u64) {
            Some(i) => i,
            None => {
                self.shards.push(Entry { fill: Fill::Empty, sent: 0, acked: 0, held: 0 });
                self.shards.len() - 1
            }
        };
        let e = &mut self.shards[i];
        e.sent += 1;
        if e.fill == Fill::Empty {
            e.fill = Fill::Room;
        }
        Some(i as u32 + 1)
    }

    /// Takes a shard's report. A report written before the shard received every subscriber
    /// sent to it cannot say it is empty (or has room): only `full` is taken then.
    pub fn report(&mut self, r: ShardReport) {
        let Some(e) = (r.index as usize).checked_sub(1).and_then(|i| self.shards.get_mut(i)) else { return };
        if r.accepted >= e.sent || r.fill == Fill::Full {
            e.fill = r.fill;
        }
        if r.accepted >= e.acked {
            e.acked = r.accepted;
            e.held = r.held;
        }
        while self.shards.last().is_some_and(|e| e.fill == Fill::Empty && e.sent == 0) {
            self.shards.pop();
        }
    }

    /// The shards a publish must reach.
    pub fn live(&self) -> impl Iterator<Item = u32> + '_ {
        self.shards.iter().enumerate().filter(|(_, e)| e.fill != Fill::Empty).map(|(i, _)| i as u32 + 1)
    }

    /// How many shard objects the topic has used (the highest index).
    pub fn len(&self) -> u32 {
        self.shards.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Whether any shard may hold a subscriber.
    pub fn any_live(&self) -> bool {
        self.live().next().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_home_fills_first_then_the_lowest_shard_with_room() {
        let mut s = ShardSet::default();
        assert_eq!(s.place(1, 2), None);
        assert!(!s.any_live());
        assert_eq!(s.place(2, 2), Some(1));
        assert_eq!(s.live().collect::<Vec<_>>(), vec![1], "live as soon as a subscriber is sent there");
        assert_eq!(s.place(2, 2), Some(1));
        // Two sent to shard 1: full as far as the home can tell, before any report.
        assert_eq!(s.place(2, 2), Some(2));
        s.report(ShardReport { index: 1, fill: Fill::Full, accepted: 2, held: 2 });
        assert_eq!(s.place(2, 2), Some(2));
        assert_eq!(s.place(2, 2), Some(3));
        // Shard 1 had a detach: room again; the next subscriber goes back to it.
        s.report(ShardReport { index: 1, fill: Fill::Room, accepted: 2, held: 1 });
        assert_eq!(s.place(2, 2), Some(1));
        assert_eq!(s.len(), 3);
        assert_eq!(s.live().collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn tails_resumes_and_shard_attaches_are_never_placed() {
        let a = Attach {
            topic: "t".into(),
            conn_id: "c".into(),
            topics: vec!["t".into()],
            transport: crate::topic::Transport::Sse,
            format: Format::Sse,
            node: "n".into(),
            hello: false,
            last_event_id: Some("e1".into()),
            shard: 0,
            sub: None,
        };
        assert!(may_place(&a, false), "an id on a topic that retains nothing is no resume");
        assert!(!may_place(&a, true));
        assert!(may_place(&Attach { last_event_id: None, ..a.clone() }, true));
        assert!(!may_place(&Attach { format: Format::Tail, last_event_id: None, ..a.clone() }, false));
        assert!(!may_place(&Attach { shard: 2, last_event_id: None, ..a }, false));
    }

    #[test]
    fn an_empty_report_older_than_a_placement_is_ignored() {
        let mut s = ShardSet::default();
        assert_eq!(s.place(5, 5), Some(1));
        s.report(ShardReport { index: 1, fill: Fill::Room, accepted: 1, held: 1 });
        // A second subscriber is sent while the shard reports its first one gone.
        assert_eq!(s.place(5, 5), Some(1));
        s.report(ShardReport { index: 1, fill: Fill::Empty, accepted: 1, held: 0 });
        assert!(s.any_live(), "the second subscriber may be attaching there");
        s.report(ShardReport { index: 1, fill: Fill::Empty, accepted: 2, held: 0 });
        assert!(!s.any_live());
        s.report(ShardReport { index: 9, fill: Fill::Full, accepted: 1, held: 1 });
        assert!(!s.any_live(), "an unknown shard is ignored");
    }

    #[test]
    fn reports_change_only_when_the_fill_does_and_round_trip() {
        assert_eq!(ShardReport::of_change(1, 0, 1, 3, 1).map(|r| r.fill), Some(Fill::Room));
        assert_eq!(ShardReport::of_change(1, 1, 2, 3, 2), None);
        assert_eq!(ShardReport::of_change(1, 2, 3, 3, 3).map(|r| r.fill), Some(Fill::Full));
        assert_eq!(ShardReport::of_change(1, 3, 2, 3, 3).map(|r| r.fill), Some(Fill::Room));
        assert_eq!(ShardReport::of_change(1, 1, 0, 3, 3).map(|r| r.fill), Some(Fill::Empty));
        let r = ShardReport { index: 4, fill: Fill::Full, accepted: 77, held: 77 };
        let path = r.encode();
        let q = Query::parse(path.split_once('?').unwrap().1).unwrap();
        assert_eq!(ShardReport::decode(&q).unwrap(), r);
        for bad in [
            "shard=0&fill=full&accepted=1&held=1",
            "shard=1&fill=half&accepted=1&held=1",
            "shard=1&fill=full&held=1",
            "shard=1&fill=full&accepted=1",
        ] {
            assert!(ShardReport::decode(&Query::parse(bad).unwrap()).is_err(), "{bad}");
        }
        assert_eq!(object_name("user:42", 3), "user:42#3");
        let set = ShardSet { shards: vec![Entry { fill: Fill::Room, sent: 3, acked: 1, held: 1 }] };
        assert_eq!(serde_json::from_str::<ShardSet>(&serde_json::to_string(&set).unwrap()).unwrap(), set);
    }
}
