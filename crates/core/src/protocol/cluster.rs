//! The messages between the nodes of a native cluster, beside the single-event [`Deliver`]
//! (still what a Worker sends a topic object):
//!
//! - [`DeliverBatch`]: every event one node hands another at once, in the order they were
//!   published, and [`BatchAnswer`], what the receiving node's connections took of each. They
//!   travel as length-prefixed binary frames ([`frame`], [`take_frame`]) on a connection each
//!   node keeps to each other (`POST /_cluster/stream`, upgraded), one batch in flight.
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

/// The version string of the node-to-node stream (the `upgrade` header of `/_cluster/stream`).
pub const STREAM_PROTOCOL: &str = "sse-cluster/1";

/// The header that carries the cluster secret on every node-to-node call.
pub const KEY_HEADER: &str = "x-sse-cluster-key";

/// The request that opens a node-to-node stream to `host` (a `host:port`).
pub fn stream_request(host: &str, secret: &str) -> String {
    format!(
        "POST /_cluster/stream HTTP/1.1\r\nhost: {host}\r\n{KEY_HEADER}: {secret}\r\nconnection: upgrade\r\nupgrade: {STREAM_PROTOCOL}\r\ncontent-length: 0\r\n\r\n"
    )
}

/// Whether an `upgrade` header asks for the node-to-node stream.
pub fn is_stream_upgrade(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case(STREAM_PROTOCOL)
}

/// The length of the answer's head in `buf` once it is whole (`Ok(None)`: not yet), or why the
/// peer did not open the stream (anything but `101`).
pub fn stream_answer(buf: &[u8]) -> std::result::Result<Option<usize>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else { return Ok(None) };
    let status = String::from_utf8_lossy(&buf[..end]).lines().next().unwrap_or_default().to_string();
    if status.starts_with("HTTP/1.1 101") {
        Ok(Some(end))
    } else {
        Err(format!("the peer refused the stream: {status}"))
    }
}

/// `payload` as a frame: its length (4 bytes, big-endian), then itself.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Appends a frame whose payload `write` appends (no copy).
pub fn frame_with(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// The first whole frame's payload range in `buf` and the frame's length, if `buf` holds one.
/// A frame longer than `max` is an error (the stream is then closed).
pub fn take_frame(buf: &[u8], max: usize) -> Result<Option<(std::ops::Range<usize>, usize)>> {
    let Some(head) = buf.get(..4) else { return Ok(None) };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > max {
        return Err(GatewayError::PayloadTooLarge { max });
    }
    Ok((buf.len() >= 4 + len).then_some((4..4 + len, 4 + len)))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Reads what [`put_str`] and the integer writers wrote.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(GatewayError::InvalidRequest("deliver batch: truncated".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn str(&mut self) -> Result<&'a str> {
        let n = self.u32()? as usize;
        let b = self.bytes(n)?;
        std::str::from_utf8(b).map_err(|_| GatewayError::InvalidRequest("deliver batch: not UTF-8".into()))
    }
}

/// Sets `s` to `v`, in the room it already has.
fn set(s: &mut String, v: &str) {
    s.clear();
    s.push_str(v);
}

/// Several events for one node, in publish order (binary; see [`DeliverBatch::write`]).
pub struct DeliverBatch;

impl DeliverBatch {
    /// Writes the events: their count, then per event topic, id, event (empty: none), ts,
    /// seq + 1 (0: none), data; strings as a 4-byte length and the bytes.
    pub fn write<'a>(events: impl ExactSizeIterator<Item = (&'a Event, Option<u64>)>, out: &mut Vec<u8>) {
        out.extend_from_slice(&(events.len() as u32).to_be_bytes());
        for (e, seq) in events {
            put_str(out, &e.topic);
            put_str(out, &e.id);
            put_str(out, e.event.as_deref().unwrap_or(""));
            out.extend_from_slice(&e.ts.to_be_bytes());
            out.extend_from_slice(&seq.map_or(0, |s| s.saturating_add(1)).to_be_bytes());
            put_str(out, &e.data);
        }
    }

    /// Reads them back, checking every name as a publish would.
    pub fn read(buf: &[u8]) -> Result<Vec<(Event, Option<u64>)>> {
        let mut events = Vec::new();
        let n = Self::read_into(buf, &mut events)?;
        events.truncate(n);
        Ok(events)
    }

    /// Reads them into the first entries of `events` (the receiving node keeps one such list
    /// per stream: once its strings are large enough, a batch allocates nothing); how many.
    pub fn read_into(buf: &[u8], events: &mut Vec<(Event, Option<u64>)>) -> Result<usize> {
        let mut r = Reader(buf);
        let n = r.u32()? as usize;
        for i in 0..n {
            if i == events.len() {
                events.push((Event { topic: String::new(), id: String::new(), event: None, data: String::new(), ts: 0 }, None));
            }
            let (e, seq) = &mut events[i];
            let topic = r.str()?;
            names::check_topic(topic)?;
            set(&mut e.topic, topic);
            let id = r.str()?;
            names::check_id(id)?;
            set(&mut e.id, id);
            match r.str()? {
                "" => e.event = None,
                name => {
                    names::check_event(name)?;
                    set(e.event.get_or_insert_with(String::new), name);
                }
            }
            e.ts = r.u64()?;
            *seq = r.u64()?.checked_sub(1);
            set(&mut e.data, r.str()?);
        }
        if !r.0.is_empty() {
            return Err(GatewayError::InvalidRequest("deliver batch: bytes after the last event".into()));
        }
        Ok(n)
    }
}

/// What one node did with each event of a batch, in the batch's order: how many of its
/// connections took it, or `None` when nobody there subscribes to its topic.
pub struct BatchAnswer;

impl BatchAnswer {
    /// Writes the count, then per event its connections (`u32::MAX`: nobody there).
    pub fn write(delivered: &[Option<usize>], out: &mut Vec<u8>) {
        out.extend_from_slice(&(delivered.len() as u32).to_be_bytes());
        for d in delivered {
            out.extend_from_slice(&d.map_or(u32::MAX, |n| n.min(u32::MAX as usize - 1) as u32).to_be_bytes());
        }
    }

    /// Reads the answer to a batch of `n` events.
    pub fn read(buf: &[u8], n: usize) -> Result<Vec<TopicResult>> {
        let mut r = Reader(buf);
        let got = r.u32()? as usize;
        if got != n || r.0.len() != 4 * n {
            return Err(GatewayError::InvalidRequest(format!("deliver answer: {got} results for {n} events")));
        }
        (0..n).map(|_| r.u32().map(|c| TopicResult::of_delivery((c != u32::MAX).then_some(c as usize), false))).collect()
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
    fn a_batch_round_trips_in_frames_and_refuses_damage() {
        let tick = Event { event: Some("tick".into()), ..ev("b", "2", "") };
        let events = vec![(ev("a", "1", "x\ny"), None), (tick, Some(0))];
        let mut framed = Vec::new();
        frame_with(&mut framed, |out| DeliverBatch::write(events.iter().map(|(e, s)| (e, *s)), out));
        framed.extend_from_slice(&[0, 0]);
        let (range, used) = take_frame(&framed, 1 << 20).unwrap().unwrap();
        assert_eq!(used, framed.len() - 2);
        let body = framed[range].to_vec();
        assert_eq!(DeliverBatch::read(&body).unwrap(), events);
        assert_eq!(take_frame(&framed[..10], 1 << 20).unwrap(), None);
        assert!(take_frame(&framed, 8).is_err(), "over the limit");
        assert!(DeliverBatch::read(&body[..body.len() - 1]).is_err(), "truncated");
        let mut longer = body.clone();
        longer.push(0);
        assert!(DeliverBatch::read(&longer).is_err(), "trailing bytes");
        let mut bad = Vec::new();
        DeliverBatch::write(std::iter::once((&ev("a b", "1", ""), None)), &mut bad);
        assert!(matches!(DeliverBatch::read(&bad), Err(GatewayError::InvalidTopic(_))));
        let mut plain = Vec::new();
        frame(&body, &mut plain);
        assert_eq!(&plain[4..], &body[..]);
    }

    #[test]
    fn a_reused_list_reads_each_batch_exactly() {
        let first = [(Event { event: Some("tick".into()), ..ev("a", "1", "longer data") }, Some(3)), (ev("b", "2", "x"), None)];
        let second = [(ev("c", "3", "y"), None)];
        let mut body = Vec::new();
        DeliverBatch::write(first.iter().map(|(e, s)| (e, *s)), &mut body);
        let mut events = Vec::new();
        assert_eq!(DeliverBatch::read_into(&body, &mut events).unwrap(), 2);
        assert_eq!(events, first);
        body.clear();
        DeliverBatch::write(second.iter().map(|(e, s)| (e, *s)), &mut body);
        assert_eq!(DeliverBatch::read_into(&body, &mut events).unwrap(), 1);
        assert_eq!(events[..1], second, "no event name, data or sequence left from the batch before");
    }

    #[test]
    fn the_stream_handshake() {
        let req = stream_request("h:1", "k");
        assert!(
            req.starts_with("POST /_cluster/stream HTTP/1.1\r\n") && req.contains("x-sse-cluster-key: k\r\n") && req.ends_with("\r\n\r\n")
        );
        assert!(is_stream_upgrade(" SSE-cluster/1") && !is_stream_upgrade("websocket"));
        let head = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: sse-cluster/1\r\n\r\n";
        assert_eq!(stream_answer(&[&head[..], b"\0\0"].concat()), Ok(Some(head.len())));
        assert_eq!(stream_answer(b"HTTP/1.1 101 Switching"), Ok(None));
        assert!(stream_answer(b"HTTP/1.1 401 Unauthorized\r\n\r\n").unwrap_err().contains("401"));
    }

    #[test]
    fn an_answer_must_have_one_result_per_event() {
        let mut a = Vec::new();
        BatchAnswer::write(&[Some(3), None], &mut a);
        assert_eq!(BatchAnswer::read(&a, 2).unwrap(), vec![TopicResult::Delivered(3), TopicResult::Dropped]);
        assert!(BatchAnswer::read(&a, 1).is_err());
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
