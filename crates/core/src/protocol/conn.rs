//! What a topic's owner reports and decides about its connections, the same on every runtime:
//! the connection summaries the registry lists, what a removal during a publish or keepalive
//! means (an eviction is counted and logged; every removal is a detach), and a resume after
//! `Last-Event-ID` from a retained snapshot, in the connection's wire format and transport.

use crate::frame::{self, Format};
use crate::registry::ConnSummary;
use crate::replay::{self, GapReason, Resume, Retained};
use crate::topic::{ConnInfo, Removed, SendResult, Sink, TopicState, Transport};

impl ConnInfo {
    /// The registry's record of this connection, with what the topic delivered to it.
    pub fn summary(&self, events_sent: u64) -> ConnSummary {
        ConnSummary {
            id: self.id.clone(),
            transport: self.transport,
            connected_at: self.connected_at,
            node: self.node.clone(),
            events_sent,
            topics: Vec::new(),
            sub: self.sub.clone(),
        }
    }
}

/// Every subscriber (tails excluded) of a topic, as the registry lists them.
pub fn summaries<S: Sink>(state: &TopicState<S>) -> Vec<ConnSummary> {
    state.subscribers().map(|c| c.info.summary(c.events_sent)).collect()
}

/// What the connections removed by a publish or a keepalive mean for the owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removals {
    /// Connections whose queue was full (slow consumers), to count.
    pub evicted: u64,
    /// One warning per eviction, to be written as it is.
    pub log: Vec<String>,
    /// Every removed connection: each leaves the topic (registry detach).
    pub detached: Vec<String>,
}

impl Removals {
    pub fn of(topic: &str, removed: &[Removed]) -> Removals {
        let mut out = Removals::default();
        for r in removed {
            if r.reason == SendResult::Full {
                out.evicted += 1;
                out.log.push(eviction_log_line(topic, &r.id));
            }
            out.detached.push(r.id.clone());
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.detached.is_empty()
    }
}

/// The one log line of a slow consumer evicted from `topic`.
pub fn eviction_log_line(topic: &str, connection: &str) -> String {
    serde_json::json!({"level": "warn", "msg": "slow consumer evicted: its queue was full", "topic": topic, "connection": connection})
        .to_string()
}

/// A resume on one topic: what the connection gets before any live frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// The retained events after the last id, or one `replay-gap` frame.
    pub frames: Vec<String>,
    /// Events replayed (0 after a gap).
    pub replayed: usize,
    /// Live events with a sequence up to this were in the replay (0 after a gap: deliver
    /// everything live); see [`replay::deliver_live`].
    pub floor: u64,
}

/// A connection resuming on `topic` after `last_id`.
#[derive(Debug, Clone, Copy)]
pub struct Resumer<'a> {
    pub topic: &'a str,
    pub last_id: &'a str,
    /// The format of the frames the owner produces for it.
    pub format: Format,
    /// How the client is connected: a WebSocket client whose owner produces SSE frames (the
    /// Worker bridges them) gets its gap message inside an SSE frame.
    pub transport: Transport,
}

impl Resumer<'_> {
    /// The resume from the retained `entries` (oldest first), `trimmed` if the topic ever lost
    /// an event, `last_seq` the last sequence it gave out.
    pub fn from_snapshot(&self, entries: &[Retained], trimmed: bool, last_seq: u64) -> Resumed {
        match replay::resume(entries, self.last_id, trimmed) {
            Resume::After(rest) => Resumed {
                frames: rest.iter().map(|r| frame::encode(&r.to_event(self.topic), self.format)).collect(),
                replayed: rest.len(),
                floor: last_seq,
            },
            Resume::Gap(reason) => self.gap(reason),
        }
    }

    /// The resume when the retained events could not be read: a gap (`expired`).
    pub fn unreadable(&self) -> Resumed {
        self.gap(GapReason::Expired)
    }

    fn gap(&self, reason: GapReason) -> Resumed {
        let frame = match (self.transport, self.format) {
            (Transport::Ws, f) if f != Format::Ws => {
                frame::encode_sse(None, Some("replay-gap"), &replay::encode_gap(self.topic, self.last_id, reason, Format::Ws))
            }
            (_, f) => replay::encode_gap(self.topic, self.last_id, reason, f),
        };
        Resumed { frames: vec![frame], replayed: 0, floor: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{parse_all, SseItem};

    fn retained(seq: u64, id: &str) -> Retained {
        Retained { seq, id: id.into(), event: None, data: format!("d{id}"), ts: 1 }
    }

    fn resumer(format: Format, transport: Transport) -> Resumer<'static> {
        Resumer { topic: "t", last_id: "b", format, transport }
    }

    #[test]
    fn resumes_after_the_last_id_in_the_connections_format() {
        let e = [retained(1, "a"), retained(2, "b"), retained(3, "c")];
        let r = resumer(Format::Sse, Transport::Sse).from_snapshot(&e, false, 3);
        assert_eq!(r, Resumed { frames: vec!["id: c\ndata: dc\n\n".into()], replayed: 1, floor: 3 });
        let ws = resumer(Format::Ws, Transport::Ws).from_snapshot(&e, false, 3);
        assert!(ws.frames[0].starts_with("{\"topic\":\"t\""));
    }

    #[test]
    fn a_gap_is_told_in_the_transport_the_client_reads() {
        let e = [retained(5, "x")];
        let sse = resumer(Format::Sse, Transport::Sse).from_snapshot(&e, true, 5);
        assert_eq!((sse.replayed, sse.floor), (0, 0));
        assert!(sse.frames[0].starts_with("event: replay-gap\n"));
        // A WebSocket client bridged from SSE frames: the WebSocket message travels as data.
        let bridged = resumer(Format::SseEnvelope, Transport::Ws).from_snapshot(&e, false, 5);
        let items = parse_all(&bridged.frames[0]);
        let SseItem::Event(ev) = &items[0] else { panic!("{items:?}") };
        let msg: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!((msg["type"].as_str(), msg["reason"].as_str()), (Some("replay_gap"), Some("unknown_id")));
        // A WebSocket connection fed WebSocket messages gets the message itself.
        let direct = resumer(Format::Ws, Transport::Ws).unreadable();
        let msg: serde_json::Value = serde_json::from_str(&direct.frames[0]).unwrap();
        assert_eq!(msg["reason"], "expired");
    }

    #[test]
    fn removals_count_and_log_evictions_and_detach_everyone() {
        let removed = [Removed { id: "a".into(), reason: SendResult::Full }, Removed { id: "b".into(), reason: SendResult::Closed }];
        let r = Removals::of("t", &removed);
        assert_eq!((r.evicted, r.log.len(), r.detached.clone()), (1, 1, vec!["a".to_string(), "b".to_string()]));
        assert!(r.log[0].contains("\"connection\":\"a\""));
        assert!(Removals::of("t", &[]).is_empty());
    }

    #[test]
    fn summaries_list_subscribers_not_tails() {
        #[derive(Debug)]
        struct Null;
        impl Sink for Null {
            type Frame = String;
            fn try_send(&mut self, _: &String) -> SendResult {
                SendResult::Sent
            }
        }
        let mut t = TopicState::new("t", 10);
        let info = |id: &str, format| ConnInfo {
            id: id.into(),
            topics: vec!["t".into()],
            transport: Transport::Sse,
            format,
            connected_at: 3,
            node: "n".into(),
            sub: None,
        };
        t.attach(info("s", Format::Sse), Null).unwrap();
        t.attach(ConnInfo { sub: Some("alice".into()), ..info("s2", Format::Ws) }, Null).unwrap();
        t.attach(info("tail", Format::Tail), Null).unwrap();
        let s = summaries(&t);
        let plain = ConnSummary {
            id: "s".into(),
            transport: Transport::Sse,
            connected_at: 3,
            node: "n".into(),
            events_sent: 0,
            topics: vec![],
            sub: None,
        };
        // The token's sub travels with the summary.
        assert_eq!(s, vec![plain.clone(), ConnSummary { id: "s2".into(), sub: Some("alice".into()), ..plain }]);
    }
}
