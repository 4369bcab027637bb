//! Retention and resume (`Last-Event-ID`), with no I/O.
//!
//! - [`Retention`]: the `RETENTION` setting, e.g. `orders.*=100/300s,chat:*=50`: topic patterns
//!   (`*` matches any run of characters, the first matching rule wins) → at most N events, and
//!   optionally none older than an age. Off (empty) by default: then every topic follows the plain
//!   drop rule.
//! - [`ReplayBuffer`]: the in-memory ring of one retained topic (native single node), trimmed by
//!   count and age. Each retained event gets a per-topic sequence number, 1, 2, 3, ...
//! - [`resume`]: given a topic's retained events (in sequence order) and a last event id, the
//!   events after it, or why they cannot be found ([`GapReason`]).
//!
//! Durable storage (Durable Object SQLite, Redis Streams) keeps the same rows
//! ([`Retained`]) and calls the same [`resume`].

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::frame::{self, Event, Format};

/// Most events one topic may retain (per rule).
pub const MAX_COUNT: usize = 10_000;
/// Longest age window: 7 days.
pub const MAX_AGE_MS: u64 = 7 * 24 * 3_600_000;

/// One topic's retention window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// At most this many events are kept (1..=[`MAX_COUNT`]).
    pub max_count: usize,
    /// Events older than this (ms, by publish time) are trimmed; `None` = count only.
    pub max_age_ms: Option<u64>,
}

/// One `pattern=count[/age]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub pattern: String,
    pub window: Window,
}

/// The `RETENTION` setting: rules, first match wins. Empty = nothing is retained.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    rules: Vec<Rule>,
}

impl Retention {
    /// No topic retains anything (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses `pattern=count[/age],...`. `age` is a whole number with a unit `ms`, `s`, `m`, `h`
    /// or `d`. Patterns use the topic alphabet plus `*`. Blank = no retention.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (pattern, spec) = item.split_once('=').ok_or_else(|| format!("{item:?}: expected pattern=count[/age]"))?;
            let pattern = pattern.trim();
            check_pattern(pattern).map_err(|m| format!("{item:?}: {m}"))?;
            let (count, age) = match spec.split_once('/') {
                Some((c, a)) => (c.trim(), Some(a.trim())),
                None => (spec.trim(), None),
            };
            let max_count: usize = count.parse().map_err(|_| format!("{item:?}: count {count:?} is not a whole number"))?;
            if !(1..=MAX_COUNT).contains(&max_count) {
                return Err(format!("{item:?}: count must be 1..={MAX_COUNT}"));
            }
            let max_age_ms = match age {
                None => None,
                Some(a) => Some(
                    parse_age(a)
                        .ok_or_else(|| format!("{item:?}: age {a:?} must be a whole number with ms, s, m, h or d, at most 7d, above 0"))?,
                ),
            };
            rules.push(Rule { pattern: pattern.to_string(), window: Window { max_count, max_age_ms } });
        }
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The window of `topic`: the first rule whose pattern matches, if any.
    pub fn window(&self, topic: &str) -> Option<Window> {
        self.rules.iter().find(|r| glob(&r.pattern, topic)).map(|r| r.window)
    }
}

fn parse_age(a: &str) -> Option<u64> {
    let split = a.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = a.split_at(split);
    let n: u64 = n.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    (1..=MAX_AGE_MS).contains(&ms).then_some(ms)
}

/// Checks a topic pattern: 1-128 bytes of the topic alphabet plus `*`. The same syntax serves
/// `RETENTION`, `PRIVATE_TOPICS` and the `topics` claim of subscriber tokens
/// ([`crate::token`]); the error text is safe to echo.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.len() > crate::names::MAX_NAME_LEN {
        return Err("the pattern must be 1-128 bytes".into());
    }
    if let Some(c) = pattern.chars().find(|&c| c != '*' && !(c.is_ascii_alphanumeric() || "_-.:".contains(c))) {
        return Err(format!("the pattern holds {c:?} (allowed: A-Z a-z 0-9 _ - . : and *)"));
    }
    Ok(())
}

/// `*` matches any run of bytes (possibly empty); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// One retained event with its per-topic sequence number (1, 2, 3, ... in publish order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    pub seq: u64,
    pub id: String,
    pub event: Option<String>,
    pub data: String,
    pub ts: u64,
}

impl Retained {
    pub fn to_event(&self, topic: &str) -> Event {
        Event { topic: topic.to_string(), id: self.id.clone(), event: self.event.clone(), data: self.data.clone(), ts: self.ts }
    }
}

/// Why a resume cannot start right after the client's last event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The topic's window does not hold the id and has never lost an event: the id was never
    /// published on this topic (or not while it was retained).
    UnknownId,
    /// The topic's window does not hold the id and has trimmed events: it may have been there
    /// and aged or counted out. Events may have been missed.
    Expired,
}

impl GapReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::UnknownId => "unknown_id",
            GapReason::Expired => "expired",
        }
    }
}

/// What a resume on one topic gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume<'a> {
    /// The retained events after the last id (possibly none), oldest first.
    After(&'a [Retained]),
    /// The id is not in the window: the client is told (a `replay-gap` frame), then gets live
    /// events only.
    Gap(GapReason),
}

/// Resumes after `last_id` in `entries` (ordered by `seq`, as retained now). The position is
/// the retained entry with that id, the latest one if the id was published several times (ids
/// are the publisher's and need not be unique or monotonic). `trimmed` says whether the topic
/// has ever trimmed an event (then a missing id is [`GapReason::Expired`]).
pub fn resume<'a>(entries: &'a [Retained], last_id: &str, trimmed: bool) -> Resume<'a> {
    match entries.iter().rposition(|e| e.id == last_id) {
        Some(i) => Resume::After(&entries[i + 1..]),
        None if trimmed => Resume::Gap(GapReason::Expired),
        None => Resume::Gap(GapReason::UnknownId),
    }
}

/// The frame telling a client its resume on `topic` has a gap: SSE `event: replay-gap` (no `id:`
/// line, so the client's last id is kept) with JSON data, or a WebSocket message with
/// `"type":"replay_gap"`.
pub fn encode_gap(topic: &str, last_event_id: &str, reason: GapReason, format: Format) -> String {
    let v = serde_json::json!({"topic": topic, "last_event_id": last_event_id, "reason": reason.as_str()});
    match format {
        Format::Ws => {
            serde_json::json!({"type": "replay_gap", "topic": topic, "last_event_id": last_event_id, "reason": reason.as_str()}).to_string()
        }
        _ => frame::encode_sse(None, Some("replay-gap"), &v.to_string()),
    }
}

/// One retained topic's events in memory: a ring trimmed by count on every push and by age on
/// every push and read.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    window: Window,
    entries: VecDeque<Retained>,
    last_seq: u64,
    trimmed: bool,
}

impl ReplayBuffer {
    pub fn new(window: Window) -> Self {
        Self { window, entries: VecDeque::new(), last_seq: 0, trimmed: false }
    }

    /// Retains `ev` (published at `ev.ts`); returns its sequence number.
    pub fn push(&mut self, ev: &Event, now: u64) -> u64 {
        self.last_seq += 1;
        self.entries.push_back(Retained {
            seq: self.last_seq,
            id: ev.id.clone(),
            event: ev.event.clone(),
            data: ev.data.clone(),
            ts: ev.ts,
        });
        while self.entries.len() > self.window.max_count {
            self.entries.pop_front();
            self.trimmed = true;
        }
        self.trim(now);
        self.last_seq
    }

    /// Drops the events older than the age window.
    pub fn trim(&mut self, now: u64) {
        if let Some(age) = self.window.max_age_ms {
            let cutoff = now.saturating_sub(age);
            while self.entries.front().is_some_and(|e| e.ts < cutoff) {
                self.entries.pop_front();
                self.trimmed = true;
            }
        }
    }

    /// The retained events, oldest first (call [`ReplayBuffer::trim`] first for the age window).
    pub fn entries(&mut self) -> &[Retained] {
        self.entries.make_contiguous()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sequence number of the last event ever retained (0 = none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Whether an event was ever trimmed.
    pub fn trimmed(&self) -> bool {
        self.trimmed
    }
}

/// Live events that may overlap a replay: the connection attaches to the live topic first, then
/// reads the retained snapshot (whose last sequence is `snapshot_last`). A queued live event with
/// a sequence ≤ `snapshot_last` was already replayed and is skipped; later ones are delivered.
/// Events without a sequence (topic not retained) are always delivered.
pub fn deliver_live(seq: Option<u64>, snapshot_last: u64) -> bool {
    seq.is_none_or(|s| s > snapshot_last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(id: &str, ts: u64) -> Event {
        Event { topic: "t".into(), id: id.into(), event: None, data: format!("d{id}"), ts }
    }

    #[test]
    fn parse_rules() {
        let r = Retention::parse(" orders.*=100/300s , chat:*=50,x=1/2h").unwrap();
        assert_eq!(r.window("orders.eu"), Some(Window { max_count: 100, max_age_ms: Some(300_000) }));
        assert_eq!(r.window("chat:1"), Some(Window { max_count: 50, max_age_ms: None }));
        assert_eq!(r.window("x"), Some(Window { max_count: 1, max_age_ms: Some(7_200_000) }));
        assert_eq!(r.window("orders"), None);
        assert!(Retention::parse("").unwrap().is_empty());
        assert!(Retention::parse(" , ").unwrap().is_empty());
        for bad in ["orders", "=5", "a=0", "a=10001", "a=x", "a=5/10", "a=5/0s", "a=5/8d", "a b=5", "a=5/3w", "a=-1"] {
            assert!(Retention::parse(bad).is_err(), "{bad} should be rejected");
        }
        let first = Retention::parse("a*=1,ab=2").unwrap();
        assert_eq!(first.window("ab").unwrap().max_count, 1, "the first match wins");
    }

    #[test]
    fn glob_matches() {
        assert!(glob("*", "anything"));
        assert!(glob("orders.*", "orders."));
        assert!(glob("orders.*", "orders.eu.west"));
        assert!(!glob("orders.*", "orders"));
        assert!(glob("*:42", "user:42"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn ring_trims_by_count_and_age() {
        let mut b = ReplayBuffer::new(Window { max_count: 3, max_age_ms: Some(1_000) });
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            assert_eq!(b.push(&ev(id, 100 * i as u64), 100 * i as u64), i as u64 + 1);
        }
        assert_eq!(b.entries().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["b", "c", "d"]);
        assert!(b.trimmed());
        b.trim(1_150);
        assert_eq!(b.entries().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["c", "d"]);
        b.trim(5_000);
        assert!(b.is_empty());
        assert_eq!(b.last_seq(), 4);
    }

    #[test]
    fn resume_after_the_latest_entry_with_the_id() {
        let mut b = ReplayBuffer::new(Window { max_count: 10, max_age_ms: None });
        for id in ["a", "b", "a", "c"] {
            b.push(&ev(id, 1), 1);
        }
        let e = b.entries().to_vec();
        assert_eq!(resume(&e, "a", false), Resume::After(&e[3..]));
        assert_eq!(resume(&e, "c", false), Resume::After(&[][..]));
        assert_eq!(resume(&e, "zz", false), Resume::Gap(GapReason::UnknownId));
        assert_eq!(resume(&e, "zz", true), Resume::Gap(GapReason::Expired));
    }

    #[test]
    fn gap_frames() {
        assert_eq!(
            encode_gap("t", "x", GapReason::Expired, Format::Sse),
            "event: replay-gap\ndata: {\"last_event_id\":\"x\",\"reason\":\"expired\",\"topic\":\"t\"}\n\n"
        );
        let ws: serde_json::Value = serde_json::from_str(&encode_gap("t", "x", GapReason::UnknownId, Format::Ws)).unwrap();
        assert_eq!(ws["type"], "replay_gap");
        assert_eq!(ws["reason"], "unknown_id");
        assert_eq!(ws["topic"], "t");
    }

    proptest! {
        /// Replay-then-live has no gap and no duplicate: whatever the point where a subscriber
        /// attaches (publishes before it are in the snapshot, some published "during" the replay
        /// land both in the snapshot and the live queue), resuming after any retained id and then
        /// filtering the live queue by the snapshot's last sequence gives exactly the events after
        /// that id, once each, in order.
        #[test]
        fn replay_then_live_no_gap_no_duplicate(
            n in 1usize..60, cap in 1usize..80, resume_at in 0usize..60, attach_at in 0usize..60, overlap in 0usize..10,
        ) {
            let ids: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
            let resume_at = resume_at % n;
            let attach_at = attach_at.max(resume_at + 1).min(n);
            let snap_at = (attach_at + overlap).min(n);
            let mut b = ReplayBuffer::new(Window { max_count: cap, max_age_ms: None });
            let mut live = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let seq = b.push(&ev(id, 1), 1);
                if i + 1 == snap_at {
                    break;
                }
                let _ = seq;
            }
            // The connection attached after `attach_at` publishes: the ones from there on are
            // queued live (with their sequence), including those up to the snapshot.
            for (i, id) in ids.iter().enumerate().skip(attach_at) {
                live.push((i as u64 + 1, id.clone()));
            }
            let snapshot_last = b.last_seq();
            let trimmed = b.trimmed();
            let got: Vec<String> = match resume(b.entries(), &ids[resume_at], trimmed) {
                Resume::After(rest) => {
                    let mut out: Vec<String> = rest.iter().map(|r| r.id.clone()).collect();
                    out.extend(live.iter().filter(|(s, _)| deliver_live(Some(*s), snapshot_last)).map(|(_, id)| id.clone()));
                    out
                }
                Resume::Gap(reason) => {
                    // Only when the id was trimmed out of the window.
                    prop_assert_eq!(reason, GapReason::Expired);
                    prop_assert!(snap_at - resume_at > cap);
                    return Ok(());
                }
            };
            prop_assert_eq!(got, ids[resume_at + 1..].to_vec());
        }
    }
}
