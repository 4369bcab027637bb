//! The state of one topic: its connections, what a publish does (deliver to N, or drop because
//! nobody is there), what a disconnect does, and when the topic disappears. The runtime supplies
//! the sinks (a bounded queue per connection); this module decides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::GatewayError;
use crate::frame::{self, Event, Format};

/// How a subscriber is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Sse,
    Ws,
}

impl Transport {
    /// The name on the wire of internal messages (as serde writes it).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }

    /// The transport named `name` ([`Transport::name`]).
    pub fn from_name(name: &str) -> Option<Transport> {
        [Transport::Sse, Transport::Ws].into_iter().find(|t| t.name() == name)
    }
}

/// What the runtime knows of a connection when it attaches it to a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    pub id: String,
    /// Every topic of the connection (it may span several topic objects).
    pub topics: Vec<String>,
    pub transport: Transport,
    pub format: Format,
    pub connected_at: u64,
    /// Cloudflare colo, or the native node id.
    pub node: String,
    /// The subscriber token's `sub`, when the connection opened with a token that names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

/// Result of handing one frame to a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendResult {
    Sent,
    /// The connection's queue is full: a slow consumer, evicted.
    Full,
    /// The client is gone.
    Closed,
}

/// A per-connection outlet supplied by the runtime: usually the sending half of a bounded queue.
pub trait Sink {
    /// The runtime's shareable frame (e.g. `bytes::Bytes`); built once per publish per format.
    type Frame: From<String>;
    /// Hands over a frame without waiting.
    fn try_send(&mut self, frame: &Self::Frame) -> SendResult;
    /// A hint that [`Sink::try_send`] comes soon: a runtime may bring in what it will touch
    /// (a publish to thousands of connections otherwise waits on memory for each).
    fn prefetch(&self) {}
}

/// A publish walks its connections this many at a time, hinting each group ahead
/// ([`Sink::prefetch`]).
const PREFETCH_GROUP: usize = 8;

/// A connection attached to a topic.
#[derive(Debug)]
pub struct Conn<S> {
    pub info: ConnInfo,
    pub sink: S,
    /// Events delivered to this connection by this topic.
    pub events_sent: u64,
}

/// Why a connection was removed during a publish or a keepalive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub id: String,
    pub reason: SendResult,
}

/// What a publish did on one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        count: usize,
        removed: Vec<Removed>,
    },
    /// Nobody is subscribed: the event was dropped.
    Dropped,
}

/// One topic's connections. Tails (admin observers) receive what happens on the topic but do
/// not count as subscribers: they never keep a topic alive and never prevent a drop.
#[derive(Debug)]
pub struct TopicState<S: Sink> {
    topic: String,
    /// The connections, densely: a publish walks them as a slice (a large fan-out spends less
    /// time finding the next connection than walking a tree would).
    conns: Vec<Conn<S>>,
    /// Each connection's place in `conns`, by id (in id order: the listings' order).
    places: BTreeMap<String, usize>,
    per_format: [usize; 4],
    max_connections: usize,
    /// Connections resuming after a `Last-Event-ID` where the attachment and the retained
    /// snapshot cannot be one step (native cluster: the snapshot is read from Redis after the
    /// attachment is recorded). See [`TopicState::attach_resuming`].
    resuming: BTreeMap<String, Resuming<S::Frame>>,
}

/// A resuming connection: first its live events are held (with their per-topic sequence), then,
/// once the retained snapshot is known, only events after the snapshot's last sequence reach it.
#[derive(Debug)]
struct Resuming<F> {
    held: Option<Vec<(Option<u64>, F)>>,
    floor: u64,
}

impl<S: Sink> TopicState<S> {
    pub fn new(topic: impl Into<String>, max_connections: usize) -> Self {
        Self {
            topic: topic.into(),
            conns: Vec::new(),
            places: BTreeMap::new(),
            per_format: [0; 4],
            max_connections,
            resuming: BTreeMap::new(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Subscribers, tails excluded.
    pub fn subscriber_count(&self) -> usize {
        self.conns.len() - self.per_format[Format::Tail.index()]
    }

    /// Whether a publish would be delivered (someone other than a tail is connected).
    pub fn is_live(&self) -> bool {
        self.subscriber_count() > 0
    }

    /// Whether the topic holds nothing at all and can be forgotten.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Attaches a connection. Fails with 503 when the topic is full.
    pub fn attach(&mut self, info: ConnInfo, sink: S) -> Result<(), GatewayError> {
        if info.format != Format::Tail && self.subscriber_count() >= self.max_connections {
            return Err(GatewayError::ConnectionLimit(format!("topic {} already has {} connections", self.topic, self.max_connections)));
        }
        self.per_format[info.format.index()] += 1;
        let conn = Conn { info, sink, events_sent: 0 };
        match self.places.get(&conn.info.id) {
            Some(&i) => {
                let old = std::mem::replace(&mut self.conns[i], conn);
                self.per_format[old.info.format.index()] -= 1;
            }
            None => {
                self.places.insert(conn.info.id.clone(), self.conns.len());
                self.conns.push(conn);
            }
        }
        Ok(())
    }

    /// Attaches a connection that resumes after a snapshot read later (see
    /// [`crate::replay::deliver_live`]): until [`TopicState::finish_resume`] its live events are
    /// held here (each with its sequence), not sent; it counts as a subscriber meanwhile.
    pub fn attach_resuming(&mut self, info: ConnInfo, sink: S) -> Result<(), GatewayError> {
        let id = info.id.clone();
        self.attach(info, sink)?;
        self.resuming.insert(id, Resuming { held: Some(Vec::new()), floor: 0 });
        Ok(())
    }

    /// Ends the hold of a connection attached with [`TopicState::attach_resuming`]: returns the
    /// held frames whose sequence is after `snapshot_last` (in the order they arrived), and from
    /// now on skips live events with a sequence ≤ `snapshot_last` (late copies of replayed
    /// events). `snapshot_last` 0 = deliver everything held (e.g. after a `replay-gap`).
    pub fn finish_resume(&mut self, id: &str, snapshot_last: u64) -> Vec<S::Frame> {
        let Some(r) = self.resuming.get_mut(id) else { return Vec::new() };
        let held = r.held.take().unwrap_or_default();
        r.floor = snapshot_last;
        if snapshot_last == 0 {
            self.resuming.remove(id);
        }
        held.into_iter().filter(|(seq, _)| crate::replay::deliver_live(*seq, snapshot_last)).map(|(_, f)| f).collect()
    }

    /// Detaches a connection; returns it if it was attached.
    pub fn detach(&mut self, id: &str) -> Option<Conn<S>> {
        self.resuming.remove(id);
        let i = self.places.remove(id)?;
        let conn = self.conns.swap_remove(i);
        if let Some(moved) = self.conns.get(i) {
            self.places.insert(moved.info.id.clone(), i);
        }
        self.per_format[conn.info.format.index()] -= 1;
        Some(conn)
    }

    pub fn get(&self, id: &str) -> Option<&Conn<S>> {
        self.places.get(id).map(|&i| &self.conns[i])
    }

    /// Tails (admin observers) attached to the topic.
    pub fn tail_count(&self) -> usize {
        self.per_format[Format::Tail.index()]
    }

    /// Every connection, tails included, in id order.
    pub fn connections(&self) -> impl Iterator<Item = &Conn<S>> {
        self.places.values().map(|&i| &self.conns[i])
    }

    /// Subscribers (tails excluded), in id order.
    pub fn subscribers(&self) -> impl Iterator<Item = &Conn<S>> {
        self.connections().filter(|c| c.info.format != Format::Tail)
    }

    /// Publishes `ev`: encodes it once per wire format in use, hands the shared frame to every
    /// connection, and removes those whose queue is full or whose client is gone.
    pub fn publish(&mut self, ev: &Event) -> Outcome {
        self.publish_seq(ev, None)
    }

    /// [`TopicState::publish`] of an event with its per-topic retention sequence (if retained):
    /// connections still resuming hold it, resumed ones skip it if it was in their replay.
    pub fn publish_seq(&mut self, ev: &Event, seq: Option<u64>) -> Outcome {
        self.publish_framed(ev, seq, S::Frame::from)
    }

    /// [`TopicState::publish_seq`] building each of its frames with `make` (from the encoded
    /// text): a runtime's frame may carry more than the text, e.g. when the publish was handed
    /// over, for a publish→write latency measure. Keepalives and tail notices are not built
    /// with it.
    pub fn publish_framed(&mut self, ev: &Event, seq: Option<u64>, make: impl Fn(String) -> S::Frame) -> Outcome {
        if !self.is_live() {
            self.notify_dropped(&ev.id, ev.ts);
            return Outcome::Dropped;
        }
        let frames: [Option<S::Frame>; 4] = Format::ALL.map(|f| (self.per_format[f.index()] > 0).then(|| make(frame::encode(ev, f))));
        let mut count = 0;
        let mut removed = Vec::new();
        let mut conns = self.conns.iter_mut();
        loop {
            let mut group: [Option<&mut Conn<S>>; PREFETCH_GROUP] = Default::default();
            for slot in &mut group {
                let Some(conn) = conns.next() else { break };
                conn.sink.prefetch();
                *slot = Some(conn);
            }
            if group[0].is_none() {
                break;
            }
            for conn in group.into_iter().flatten() {
                if let Some(r) = self.resuming.get_mut(&conn.info.id) {
                    if let Some(held) = &mut r.held {
                        held.push((seq, make(frame::encode(ev, conn.info.format))));
                        conn.events_sent += 1;
                        count += 1;
                        continue;
                    }
                    if !crate::replay::deliver_live(seq, r.floor) {
                        continue;
                    }
                }
                let frame = frames[conn.info.format.index()].as_ref().expect("encoded for formats in use");
                match conn.sink.try_send(frame) {
                    SendResult::Sent => {
                        if conn.info.format != Format::Tail {
                            conn.events_sent += 1;
                            count += 1;
                        }
                    }
                    reason => removed.push(Removed { id: conn.info.id.clone(), reason }),
                }
            }
        }
        for r in &removed {
            self.detach(&r.id);
        }
        Outcome::Delivered { count, removed }
    }

    /// Tells the tails that an event was dropped on this topic.
    pub fn notify_dropped(&mut self, id: &str, ts: u64) {
        if self.per_format[Format::Tail.index()] == 0 {
            return;
        }
        let frame = S::Frame::from(frame::encode_tail_dropped(&self.topic, id, ts));
        self.send_where(|f| f == Format::Tail, &frame);
    }

    /// Tells the tails that `ev` was published, without delivering it to this state's
    /// subscribers: for a runtime whose topic spans several states (a native cluster node that
    /// holds only tails of a topic whose subscribers are on other nodes).
    pub fn notify_published(&mut self, ev: &Event) {
        if self.per_format[Format::Tail.index()] == 0 {
            return;
        }
        let frame = S::Frame::from(frame::encode(ev, Format::Tail));
        self.send_where(|f| f == Format::Tail, &frame);
    }

    /// Sends the keepalive comment to every SSE connection (tails included) and removes those
    /// that are gone. WebSocket connections are kept alive by their runtime's own ping.
    pub fn keepalive(&mut self) -> Vec<Removed> {
        let frame = S::Frame::from(frame::KEEPALIVE.to_string());
        self.send_where(|f| f != Format::Ws, &frame)
    }

    fn send_where(&mut self, select: impl Fn(Format) -> bool, frame: &S::Frame) -> Vec<Removed> {
        let mut removed = Vec::new();
        for conn in self.conns.iter_mut().filter(|c| select(c.info.format)) {
            match conn.sink.try_send(frame) {
                SendResult::Sent => {}
                reason => removed.push(Removed { id: conn.info.id.clone(), reason }),
            }
        }
        for r in &removed {
            self.detach(&r.id);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A sink that records frames, with a capacity, that can be closed.
    #[derive(Clone, Default)]
    struct TestSink {
        frames: Rc<RefCell<Vec<Rc<str>>>>,
        capacity: usize,
        closed: Rc<RefCell<bool>>,
    }

    impl Sink for TestSink {
        type Frame = Rc<str>;
        fn try_send(&mut self, frame: &Rc<str>) -> SendResult {
            if *self.closed.borrow() {
                return SendResult::Closed;
            }
            let mut f = self.frames.borrow_mut();
            if f.len() >= self.capacity {
                return SendResult::Full;
            }
            f.push(frame.clone());
            SendResult::Sent
        }
    }

    fn info(id: &str, format: Format) -> ConnInfo {
        ConnInfo {
            id: id.into(),
            topics: vec!["t".into()],
            transport: if format == Format::Ws { Transport::Ws } else { Transport::Sse },
            format,
            connected_at: 1,
            node: "local".into(),
            sub: None,
        }
    }

    #[test]
    fn conn_info_keeps_its_sub_and_reads_records_without_one() {
        let plain = info("c", Format::Sse);
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("\"sub\""), "absent, not null: {json}");
        assert_eq!(serde_json::from_str::<ConnInfo>(&json).unwrap(), plain);
        let named = ConnInfo { sub: Some("user 42/é".into()), ..plain };
        let json = serde_json::to_string(&named).unwrap();
        assert!(json.contains(r#""sub":"user 42/é""#), "{json}");
        assert_eq!(serde_json::from_str::<ConnInfo>(&json).unwrap(), named);
    }

    fn sink(capacity: usize) -> TestSink {
        TestSink { capacity, ..Default::default() }
    }

    fn event(id: &str) -> Event {
        Event { topic: "t".into(), id: id.into(), event: None, data: "d".into(), ts: 1 }
    }

    /// A sink that logs its hints and sends in one log shared by all of them.
    struct HintedSink {
        id: usize,
        log: Rc<RefCell<Vec<(usize, bool)>>>,
        full: bool,
    }

    impl Sink for HintedSink {
        type Frame = Rc<str>;
        fn try_send(&mut self, _: &Rc<str>) -> SendResult {
            self.log.borrow_mut().push((self.id, true));
            if self.full {
                SendResult::Full
            } else {
                SendResult::Sent
            }
        }
        fn prefetch(&self) {
            self.log.borrow_mut().push((self.id, false));
        }
    }

    #[test]
    fn a_publish_hints_each_connection_once_just_ahead_of_sending_to_it() {
        let n = 2 * PREFETCH_GROUP + 3;
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut t = TopicState::new("t", 100);
        for id in 0..n {
            // One connection in the middle is too slow and goes.
            t.attach(info(&format!("c{id:02}"), Format::Sse), HintedSink { id, log: log.clone(), full: id == 9 }).unwrap();
        }
        let Outcome::Delivered { count, removed } = t.publish(&event("e1")) else { panic!("delivered") };
        assert_eq!(count, n - 1);
        assert_eq!(removed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["c09"]);
        let log = log.borrow();
        let sent: Vec<usize> = log.iter().filter(|(_, s)| *s).map(|(id, _)| *id).collect();
        assert_eq!(sent, (0..n).collect::<Vec<_>>(), "each once, in the topic's order");
        for id in 0..n {
            let hint = log.iter().position(|&e| e == (id, false)).expect("hinted");
            let send = log.iter().position(|&e| e == (id, true)).expect("sent");
            assert!(hint < send, "connection {id}: hinted before it is sent to");
            let between = log[hint..send].iter().filter(|(_, s)| !*s).count();
            assert!(between <= PREFETCH_GROUP, "connection {id}: hinted at most a group ahead");
        }
        assert_eq!(log.len(), 2 * n, "one hint and one send each");
        assert_eq!(t.subscriber_count(), n - 1, "the slow one left");
    }

    #[test]
    fn a_framed_publish_builds_its_frames_and_nothing_else() {
        let (s, tail) = (sink(100), sink(100));
        let mut t = TopicState::new("t", 10);
        for (id, format, sink) in [("s", Format::Sse, &s), ("tl", Format::Tail, &tail)] {
            t.attach(info(id, format), sink.clone()).unwrap();
        }
        let built = RefCell::new(0);
        let make = |text: String| {
            *built.borrow_mut() += 1;
            Rc::<str>::from(format!("#{text}"))
        };
        assert!(matches!(t.publish_framed(&event("e1"), None, make), Outcome::Delivered { count: 1, .. }));
        assert_eq!(*built.borrow(), 2, "once per format in use");
        assert!(s.frames.borrow()[0].starts_with("#id: e1"));
        assert!(tail.frames.borrow()[0].starts_with('#'));
        t.keepalive();
        assert!(!s.frames.borrow()[1].starts_with('#'), "a keepalive is not built by it");
    }

    #[test]
    fn a_resuming_connection_holds_live_events_then_skips_replayed_ones() {
        let mut t = TopicState::new("t", 10);
        let (other, held) = (sink(100), sink(100));
        t.attach(info("o", Format::Sse), other.clone()).unwrap();
        t.attach_resuming(info("r", Format::Sse), held.clone()).unwrap();
        assert!(t.is_live());
        for (id, seq) in [("e5", 5), ("e6", 6)] {
            assert!(matches!(t.publish_seq(&event(id), Some(seq)), Outcome::Delivered { count: 2, .. }));
        }
        assert!(held.frames.borrow().is_empty(), "held, not sent");
        assert_eq!(other.frames.borrow().len(), 2);
        // The snapshot held everything up to seq 5: only e6 is left to send.
        let rest = t.finish_resume("r", 5);
        assert_eq!(rest.len(), 1);
        assert!(rest[0].starts_with("id: e6"));
        // A late copy of e5 is skipped; e7 and events without a sequence go through.
        t.publish_seq(&event("e5"), Some(5));
        t.publish_seq(&event("e7"), Some(7));
        t.publish(&event("x"));
        let got: Vec<String> = held.frames.borrow().iter().map(|f| f.lines().next().unwrap().to_string()).collect();
        assert_eq!(got, ["id: e7", "id: x"]);
        assert_eq!(other.frames.borrow().len(), 5, "others get everything");
        // After a gap (floor 0) everything held is delivered.
        t.attach_resuming(info("g", Format::Sse), sink(10)).unwrap();
        t.publish_seq(&event("e8"), Some(8));
        assert_eq!(t.finish_resume("g", 0).len(), 1);
    }

    #[test]
    fn drop_when_nobody_is_there() {
        let mut t: TopicState<TestSink> = TopicState::new("t", 10);
        assert_eq!(t.publish(&event("1")), Outcome::Dropped);
    }

    #[test]
    fn deliver_to_every_subscriber_sharing_one_frame_per_format() {
        let mut t = TopicState::new("t", 10);
        let (a, b, c) = (sink(10), sink(10), sink(10));
        t.attach(info("a", Format::Sse), a.clone()).unwrap();
        t.attach(info("b", Format::Sse), b.clone()).unwrap();
        t.attach(info("c", Format::Ws), c.clone()).unwrap();
        assert_eq!(t.publish(&event("1")), Outcome::Delivered { count: 3, removed: vec![] });
        // a and b got the very same allocation.
        assert!(Rc::ptr_eq(&a.frames.borrow()[0], &b.frames.borrow()[0]));
        assert_eq!(&*a.frames.borrow()[0], "id: 1\ndata: d\n\n");
        assert!(c.frames.borrow()[0].starts_with("{\"topic\":\"t\""));
        assert_eq!(t.get("a").unwrap().events_sent, 1);
    }

    #[test]
    fn detaching_from_the_middle_keeps_every_other_connection_reachable_and_listed_in_id_order() {
        let mut t = TopicState::new("t", 10);
        let sinks: Vec<TestSink> = (0..5).map(|_| sink(10)).collect();
        for (id, s) in ["e", "a", "d", "b", "c"].iter().zip(&sinks) {
            t.attach(info(id, Format::Sse), s.clone()).unwrap();
        }
        assert!(t.detach("a").is_some());
        assert!(t.detach("a").is_none());
        assert!(t.detach("d").is_some());
        let ids = |t: &TopicState<TestSink>| t.connections().map(|c| c.info.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&t), ["b", "c", "e"]);
        // Attaching an id again replaces that connection (counted once).
        let again = sink(10);
        t.attach(info("c", Format::Ws), again.clone()).unwrap();
        assert_eq!(ids(&t), ["b", "c", "e"]);
        assert_eq!(t.subscriber_count(), 3);
        assert_eq!(t.publish(&event("1")), Outcome::Delivered { count: 3, removed: vec![] });
        for id in ["b", "c", "e"] {
            assert_eq!(t.get(id).unwrap().events_sent, 1, "{id}");
        }
        assert!(again.frames.borrow()[0].starts_with("{\"topic\":\"t\""));
        assert!(sinks[1].frames.borrow().is_empty(), "a detached connection gets nothing");
        assert!(sinks[4].frames.borrow().is_empty(), "c's replaced sink gets nothing");
        assert_eq!(sinks[0].frames.borrow().len(), 1, "e, moved into a's place, still gets it");
    }

    #[test]
    fn slow_and_gone_connections_are_removed_others_keep_going() {
        let mut t = TopicState::new("t", 10);
        let slow = sink(1);
        let gone = sink(10);
        let ok = sink(10);
        t.attach(info("slow", Format::Sse), slow.clone()).unwrap();
        t.attach(info("gone", Format::Sse), gone.clone()).unwrap();
        t.attach(info("ok", Format::Sse), ok.clone()).unwrap();
        t.publish(&event("1"));
        *gone.closed.borrow_mut() = true;
        let out = t.publish(&event("2"));
        assert_eq!(
            out,
            Outcome::Delivered {
                count: 1,
                // In the order the connections were attached.
                removed: vec![
                    Removed { id: "slow".into(), reason: SendResult::Full },
                    Removed { id: "gone".into(), reason: SendResult::Closed },
                ]
            }
        );
        assert_eq!(ok.frames.borrow().len(), 2);
        assert_eq!(t.subscriber_count(), 1);
    }

    #[test]
    fn last_detach_empties_the_topic() {
        let mut t = TopicState::new("t", 10);
        t.attach(info("a", Format::Sse), sink(1)).unwrap();
        t.attach(info("b", Format::Ws), sink(1)).unwrap();
        assert!(t.detach("a").is_some());
        assert!(!t.is_empty());
        assert!(t.detach("b").is_some());
        assert!(t.is_empty());
        assert!(t.detach("b").is_none());
    }

    #[test]
    fn tails_do_not_keep_a_topic_live_but_see_drops_and_publishes() {
        let mut t = TopicState::new("t", 10);
        let tail = sink(10);
        t.attach(info("tail", Format::Tail), tail.clone()).unwrap();
        assert!(!t.is_live());
        assert_eq!((t.tail_count(), t.subscriber_count(), t.connections().count()), (1, 0, 1));
        assert_eq!(t.publish(&event("1")), Outcome::Dropped);
        assert!(tail.frames.borrow()[0].starts_with("id: 1\nevent: dropped\n"));
        t.attach(info("s", Format::Sse), sink(10)).unwrap();
        assert_eq!(t.publish(&event("2")), Outcome::Delivered { count: 1, removed: vec![] });
        assert!(tail.frames.borrow()[1].starts_with("id: 2\nevent: published\n"));
    }

    #[test]
    fn tails_can_be_told_of_a_publish_delivered_elsewhere() {
        let mut t = TopicState::new("t", 10);
        let (tail, sub) = (sink(10), sink(10));
        t.attach(info("tail", Format::Tail), tail.clone()).unwrap();
        t.notify_published(&event("1"));
        assert!(tail.frames.borrow()[0].starts_with("id: 1\nevent: published\n"));
        t.attach(info("s", Format::Sse), sub.clone()).unwrap();
        t.notify_published(&event("2"));
        assert!(sub.frames.borrow().is_empty(), "subscribers are not delivered to");
        assert_eq!(t.get("s").unwrap().events_sent, 0);
    }

    #[test]
    fn connection_limit_is_503_and_ignores_tails() {
        let mut t = TopicState::new("t", 1);
        t.attach(info("a", Format::Sse), sink(1)).unwrap();
        let e = t.attach(info("b", Format::Sse), sink(1)).unwrap_err();
        assert_eq!(e.status(), 503);
        t.attach(info("tail", Format::Tail), sink(1)).unwrap();
    }

    #[test]
    fn keepalive_reaches_sse_and_removes_the_gone() {
        let mut t = TopicState::new("t", 10);
        let (a, w, gone) = (sink(10), sink(10), sink(10));
        t.attach(info("a", Format::Sse), a.clone()).unwrap();
        t.attach(info("w", Format::Ws), w.clone()).unwrap();
        t.attach(info("gone", Format::SseEnvelope), gone.clone()).unwrap();
        *gone.closed.borrow_mut() = true;
        let removed = t.keepalive();
        assert_eq!(removed, vec![Removed { id: "gone".into(), reason: SendResult::Closed }]);
        assert_eq!(&*a.frames.borrow()[0], ": keepalive\n\n");
        assert!(w.frames.borrow().is_empty());
    }
}
