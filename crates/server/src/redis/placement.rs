//! The placement writer: the one task that writes this node's state to Redis and tells the
//! other nodes where it holds topics. It consumes the hub's changes in order, keeps a model of
//! what Redis should hold for this node (topics with their subscriber and tail counts,
//! connection records), and writes each batch of changes as one transaction in this node's
//! slot (`{n:ID}`), then the cluster-wide topic index. When a topic gained or lost its first
//! subscriber or tail here, it sends every other live node a placement notice and waits for
//! their answers before the new subscribers are told they are connected (`cache.rs`). Every
//! heartbeat it re-asserts this node's placement (absolute counts), and on request (its
//! identity had expired, or Redis restarted empty, or a write failed) it rewrites everything,
//! so Redis converges without manual steps.

use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use sse_core::frame::Format;
use sse_core::protocol::cluster::{PlacementNotice, Presence};
use sse_core::registry::ConnRecord;
use tokio::sync::{mpsc, oneshot};

use super::cache::Placement;
use super::conn::Conn;
use super::forward::Forwarder;
use super::keys::{Keys, GEN};
use super::node::{self, Identity};
use super::scripts;
use crate::hub::Change;

/// Requests to the writer from outside the hub's change feed.
#[derive(Debug)]
pub enum Control {
    /// Rewrite everything this node holds (Redis lost it, or our identity expired).
    Rewrite,
    /// Stop writing (the node is leaving); answered once in effect.
    Stop(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
struct TopicModel {
    subs: HashSet<String>,
    tails: HashSet<String>,
}

impl TopicModel {
    fn presence(&self) -> Presence {
        Presence::of(self.subs.len(), self.tails.len())
    }
}

#[derive(Debug)]
struct ConnModel {
    record: ConnRecord,
    /// Topics the connection is attached to now.
    attached: usize,
}

pub struct Writer {
    conn: Conn,
    keys: Keys,
    node: String,
    identity: Identity,
    /// Counts this node's placement writes (never goes back, whatever Redis loses).
    gen: u64,
    placement: Arc<Placement>,
    forwarder: Forwarder,
    topics: HashMap<String, TopicModel>,
    conns: HashMap<String, ConnModel>,
    /// Events sent per connection, summed over the heartbeat's snapshots so far.
    snapshot_events: HashMap<String, u64>,
    rewrite_needed: bool,
    stopped: bool,
}

const BATCH: usize = 2048;

impl Writer {
    pub fn new(conn: Conn, keys: Keys, identity: Identity, placement: Arc<Placement>, forwarder: Forwarder) -> Self {
        Self {
            conn,
            keys,
            node: identity.id.clone(),
            identity,
            gen: 0,
            placement,
            forwarder,
            topics: HashMap::new(),
            conns: HashMap::new(),
            snapshot_events: HashMap::new(),
            rewrite_needed: false,
            stopped: false,
        }
    }

    /// Runs until the hub's feed closes.
    pub async fn run(mut self, mut changes: mpsc::UnboundedReceiver<Change>, mut control: mpsc::UnboundedReceiver<Control>) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                biased;
                c = control.recv() => match c {
                    Some(Control::Rewrite) => {
                        self.rewrite_needed = true;
                        self.rewrite().await;
                    }
                    Some(Control::Stop(done)) => {
                        self.leave().await;
                        self.stopped = true;
                        let _ = done.send(());
                    }
                    None => {}
                },
                n = changes.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    self.apply(&mut batch).await;
                }
            }
        }
    }

    async fn apply(&mut self, batch: &mut Vec<Change>) {
        let k = self.keys.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        // Each changed topic's presence before the batch.
        let mut dirty: HashMap<String, Presence> = HashMap::new();
        let mut acks = Vec::new();
        let mut heartbeat_done = false;
        for change in batch.drain(..) {
            match change {
                Change::Attached { topic, info, ack } => {
                    acks.extend(ack);
                    let tm = self.topics.entry(topic.clone()).or_default();
                    let before = tm.presence();
                    if info.format == Format::Tail {
                        tm.tails.insert(info.id);
                        dirty.entry(topic).or_insert(before);
                        continue;
                    }
                    if !tm.subs.insert(info.id.clone()) {
                        continue;
                    }
                    pipe.zadd(k.topic_conns(&self.node, &topic), &info.id, 0).ignore();
                    dirty.entry(topic).or_insert(before);
                    let cm = self.conns.entry(info.id.clone()).or_insert_with(|| ConnModel {
                        record: ConnRecord {
                            id: info.id.clone(),
                            topics: info.topics.clone(),
                            transport: info.transport,
                            connected_at: info.connected_at,
                            node: info.node.clone(),
                            events_sent: 0,
                            sub: info.sub.clone(),
                        },
                        attached: 0,
                    });
                    if cm.attached == 0 {
                        pipe.hset(k.recs(&self.node), &info.id, json(&cm.record)).ignore();
                        pipe.zadd(k.conns(&self.node), &info.id, 0).ignore();
                    }
                    cm.attached += 1;
                }
                Change::Detached { topic, id } => {
                    let Some(tm) = self.topics.get_mut(&topic) else { continue };
                    let before = tm.presence();
                    if tm.tails.remove(&id) {
                        dirty.entry(topic).or_insert(before);
                    } else if tm.subs.remove(&id) {
                        pipe.zrem(k.topic_conns(&self.node, &topic), &id).ignore();
                        dirty.entry(topic).or_insert(before);
                        if let Some(cm) = self.conns.get_mut(&id) {
                            cm.attached = cm.attached.saturating_sub(1);
                            if cm.attached == 0 {
                                self.conns.remove(&id);
                                pipe.hdel(k.recs(&self.node), &id).ignore();
                                pipe.zrem(k.conns(&self.node), &id).ignore();
                            }
                        }
                    }
                }
                Change::Snapshot(t) => {
                    for c in t.conns {
                        *self.snapshot_events.entry(c.id).or_default() += c.events_sent;
                    }
                }
                Change::SnapshotDone => heartbeat_done = true,
            }
        }
        let mut changed = Vec::new();
        let (mut gained, mut lost) = (Vec::new(), Vec::new());
        for (topic, before) in dirty {
            let now = self.write_topic(&mut pipe, &topic);
            if now != before {
                if now.subscribers != before.subscribers {
                    if now.subscribers { &mut gained } else { &mut lost }.push(topic.clone());
                }
                changed.push((topic, now));
            }
        }
        if heartbeat_done {
            self.heartbeat(&mut pipe);
        }
        // `#gen` moves only with presence (what routing reads), so the other nodes' syncs re-read
        // this node's placement only when that changed.
        if !changed.is_empty() {
            self.stamp(&mut pipe);
        }
        self.execute(pipe).await;
        if heartbeat_done {
            // Every topic held here, again (the index is idempotent): heals what Redis lost.
            gained = self.topics.iter().filter(|(_, t)| !t.subs.is_empty()).map(|(t, _)| t.clone()).collect();
            let _ = self.execute(redis::pipe().sadd(k.nodes(), &self.node).ignore().to_owned()).await;
        }
        self.index("add", &gained).await;
        self.index("del", &lost).await;
        if !changed.is_empty() {
            self.announce(changed).await;
        }
        if heartbeat_done && self.rewrite_needed {
            self.rewrite().await;
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }

    /// The next `gen`, written last in the transaction.
    fn stamp(&mut self, pipe: &mut redis::Pipeline) {
        self.gen += 1;
        pipe.hset(self.keys.place(&self.node), GEN, self.gen).ignore();
    }

    /// Tells every other live node where this node's presence changed, and waits for them.
    async fn announce(&self, topics: Vec<(String, Presence)>) {
        if self.stopped {
            return;
        }
        let notice = PlacementNotice {
            node: self.node.clone(),
            addr: self.identity.addr.clone(),
            started_at: self.identity.started_at,
            gen: self.gen,
            topics,
        };
        self.forwarder.announce(&self.placement.peers(), &notice).await;
    }

    /// Adds this node to (or removes it from) the topic index's entries of `topics`.
    async fn index(&mut self, op: &str, topics: &[String]) {
        if self.stopped {
            return;
        }
        for chunk in topics.chunks(500) {
            let r: redis::RedisResult<()> =
                scripts::TOPIC_INDEX.key(self.keys.topics()).arg(&self.node).arg(op).arg(chunk).invoke_async(&mut self.conn).await;
            if let Err(e) = r {
                self.failed(&e);
                return;
            }
        }
    }

    /// A topic's record in this node's placement after changes; its presence now.
    fn write_topic(&mut self, pipe: &mut redis::Pipeline, topic: &str) -> Presence {
        let k = &self.keys;
        let (subs, tails) = self.topics.get(topic).map_or((0, 0), |t| (t.subs.len(), t.tails.len()));
        if subs + tails > 0 {
            pipe.hset(k.place(&self.node), topic, Presence::record(subs, tails)).ignore();
        } else {
            pipe.hdel(k.place(&self.node), topic).ignore();
            self.topics.remove(topic);
        }
        if subs > 0 {
            pipe.zadd(k.node_topics(&self.node), topic, 0).ignore();
        } else {
            pipe.zrem(k.node_topics(&self.node), topic).ignore();
        }
        Presence::of(subs, tails)
    }

    /// Every heartbeat: records whose `events_sent` changed, and the placement of every topic
    /// (absolute counts, so entries lost by Redis come back).
    fn heartbeat(&mut self, pipe: &mut redis::Pipeline) {
        let k = &self.keys;
        for (id, n) in self.snapshot_events.drain() {
            if let Some(cm) = self.conns.get_mut(&id) {
                if cm.record.events_sent != n {
                    cm.record.events_sent = n;
                    pipe.hset(k.recs(&self.node), &id, json(&cm.record)).ignore();
                }
            }
        }
        for (topic, tm) in &self.topics {
            pipe.hset(k.place(&self.node), topic, Presence::record(tm.subs.len(), tm.tails.len())).ignore();
            if !tm.subs.is_empty() {
                pipe.zadd(k.node_topics(&self.node), topic, 0).ignore();
            }
        }
    }

    /// Replaces whatever Redis holds for this node with the model.
    async fn rewrite(&mut self) {
        if self.stopped {
            return;
        }
        let k = self.keys.clone();
        if let Err(e) = node::purge(&mut self.conn, &k, &self.node, false).await {
            self.failed(&e);
            return;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (id, cm) in &self.conns {
            pipe.hset(k.recs(&self.node), id, json(&cm.record)).ignore();
            pipe.zadd(k.conns(&self.node), id, 0).ignore();
        }
        for (topic, tm) in &self.topics {
            for id in &tm.subs {
                pipe.zadd(k.topic_conns(&self.node, topic), id, 0).ignore();
            }
        }
        self.heartbeat(&mut pipe);
        self.stamp(&mut pipe);
        self.rewrite_needed = false;
        let mut ok = self.execute(pipe).await;
        ok &= self.execute(redis::pipe().sadd(k.nodes(), &self.node).ignore().to_owned()).await;
        let held: Vec<String> = self.topics.iter().filter(|(_, t)| !t.subs.is_empty()).map(|(t, _)| t.clone()).collect();
        self.index("add", &held).await;
        if ok && !self.rewrite_needed {
            tracing::info!(node = %self.node, topics = self.topics.len(), connections = self.conns.len(), "re-asserted this node's placement and records in redis");
        }
    }

    /// Runs a pipeline; a failure is logged and schedules a full rewrite.
    async fn execute(&mut self, pipe: redis::Pipeline) -> bool {
        if self.stopped || pipe.cmd_iter().next().is_none() {
            return true;
        }
        match pipe.query_async::<()>(&mut self.conn).await {
            Ok(()) => true,
            Err(e) => {
                self.failed(&e);
                false
            }
        }
    }

    fn failed(&mut self, e: &redis::RedisError) {
        if !self.rewrite_needed {
            tracing::warn!(error = %e, "redis write failed; this node's state will be rewritten when redis answers");
        }
        self.rewrite_needed = true;
    }

    /// The node is leaving: every other node forgets where it held topics.
    async fn leave(&mut self) {
        let topics: Vec<(String, Presence)> = self.topics.keys().map(|t| (t.clone(), Presence::default())).collect();
        self.gen += 1;
        if !topics.is_empty() {
            self.announce(topics).await;
        }
    }
}

fn json(r: &ConnRecord) -> String {
    serde_json::to_string(r).expect("a record serialises")
}
