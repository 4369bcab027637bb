//! `deliver`: an event whose body was already read, handed to a topic's owner: by the Worker to
//! a topic object (`POST /deliver`); native nodes batch events instead ([`super::cluster`]).
//! The event's fields travel as headers and its data as the body. [`DroppedNotice`] tells an
//! owner's tails (admin observers) that an event was dropped (`POST /_cluster/dropped`).

use crate::error::{GatewayError, Result};
use crate::frame::Event;
use crate::names;

pub const TOPIC: &str = "x-sse-topic";
pub const ID: &str = "x-sse-id";
pub const EVENT: &str = "x-sse-event";
pub const TS: &str = "x-sse-ts";
pub const SEQ: &str = "x-sse-seq";

/// An event for a topic's owner; its data is the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    pub topic: String,
    pub id: String,
    pub event: Option<String>,
    /// Publish time (ms since the Unix epoch): the same on every owner.
    pub ts: u64,
    /// The event's per-topic retention sequence, when the topic retains events in shared
    /// storage (native cluster: resuming connections skip what their replay held).
    pub seq: Option<u64>,
}

impl Deliver {
    pub const PATH: &'static str = "/deliver";

    /// The message of `ev` (its data goes as the body).
    pub fn of(ev: &Event, seq: Option<u64>) -> Deliver {
        Deliver { topic: ev.topic.clone(), id: ev.id.clone(), event: ev.event.clone(), ts: ev.ts, seq }
    }

    /// The headers that carry it.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![(TOPIC, self.topic.clone()), (ID, self.id.clone()), (TS, self.ts.to_string())];
        if let Some(e) = &self.event {
            h.push((EVENT, e.clone()));
        }
        if let Some(s) = self.seq {
            h.push((SEQ, s.to_string()));
        }
        h
    }

    /// Reads it from the headers (`header(name)`: the value, if present and text), checking
    /// every field; a missing or unreadable `ts` is `now`.
    pub fn decode(header: impl Fn(&str) -> Option<String>, now: u64) -> Result<Deliver> {
        let (topic, id, ts) = notice_fields(&header, now)?;
        let event = header(EVENT);
        if let Some(e) = &event {
            names::check_event(e)?;
        }
        let seq = header(SEQ).and_then(|s| s.parse().ok());
        Ok(Deliver { topic, id, event, ts, seq })
    }

    /// The event, with the body that came with the message.
    pub fn into_event(self, data: String) -> Event {
        Event { topic: self.topic, id: self.id, event: self.event, data, ts: self.ts }
    }
}

/// An event was dropped on `topic`: the owner tells its tails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedNotice {
    pub topic: String,
    pub id: String,
    pub ts: u64,
}

impl DroppedNotice {
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![(TOPIC, self.topic.clone()), (ID, self.id.clone()), (TS, self.ts.to_string())]
    }

    pub fn decode(header: impl Fn(&str) -> Option<String>, now: u64) -> Result<DroppedNotice> {
        let (topic, id, ts) = notice_fields(&header, now)?;
        Ok(DroppedNotice { topic, id, ts })
    }
}

fn notice_fields(header: &impl Fn(&str) -> Option<String>, now: u64) -> Result<(String, String, u64)> {
    let topic = header(TOPIC).ok_or(GatewayError::MissingTopic)?;
    names::check_topic(&topic)?;
    let id = header(ID).ok_or(GatewayError::MissingId)?;
    names::check_id(&id)?;
    let ts = header(TS).and_then(|t| t.parse().ok()).unwrap_or(now);
    Ok((topic, id, ts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(h: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<&str, String> = h.into_iter().collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn round_trips_with_and_without_the_optional_fields() {
        let ev = Event { topic: "t".into(), id: "e1".into(), event: Some("update".into()), data: "x\ny".into(), ts: 42 };
        for seq in [None, Some(7)] {
            let d = Deliver::of(&ev, seq);
            let back = Deliver::decode(lookup(d.headers()), 0).unwrap();
            assert_eq!(back, d);
            assert_eq!(back.into_event("x\ny".into()), ev);
        }
        let plain = Deliver { event: None, ..Deliver::of(&ev, None) };
        assert_eq!(Deliver::decode(lookup(plain.headers()), 0).unwrap(), plain);
        let n = DroppedNotice { topic: "t".into(), id: "e".into(), ts: 9 };
        assert_eq!(DroppedNotice::decode(lookup(n.headers()), 0).unwrap(), n);
    }

    #[test]
    fn decode_checks_every_field() {
        let good = || vec![(TOPIC, "t".to_string()), (ID, "e".to_string())];
        assert_eq!(Deliver::decode(lookup(good()), 5).unwrap().ts, 5);
        let code = |h: Vec<(&'static str, String)>| Deliver::decode(lookup(h), 0).unwrap_err().code();
        assert_eq!(code(vec![(ID, "e".into())]), "missing_topic");
        assert_eq!(code(vec![(TOPIC, "t".into())]), "missing_id");
        assert_eq!(code(vec![(TOPIC, "a b".into()), (ID, "e".into())]), "invalid_topic");
        assert_eq!(code(vec![(TOPIC, "t".into()), (ID, "e\r\nid: x".into())]), "invalid_id");
        let mut h = good();
        h.push((EVENT, "a\nb".into()));
        assert_eq!(code(h), "invalid_event");
    }
}
