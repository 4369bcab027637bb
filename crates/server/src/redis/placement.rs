//! The placement writer: the one task that writes this node's state to Redis. It consumes the
//! hub's changes in order, keeps a model of what Redis should hold for this node (topics with
//! their subscriber and tail counts, connection records), and writes each batch of changes as
//! one pipeline. Every heartbeat it re-asserts this node's placement (absolute counts), and on
//! request (its identity had expired, or Redis restarted empty, or a write failed) it rewrites
//! everything atomically, so Redis converges without manual steps.

use std::collections::{HashMap, HashSet};

use redis::aio::ConnectionManager;
use sse_core::frame::Format;
use sse_core::registry::ConnRecord;
use tokio::sync::{mpsc, oneshot};

use super::keys::Keys;
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

#[derive(Debug)]
struct ConnModel {
    record: ConnRecord,
    /// Topics the connection is attached to now.
    attached: usize,
}

pub struct Writer {
    conn: ConnectionManager,
    keys: Keys,
    node: String,
    topics: HashMap<String, TopicModel>,
    conns: HashMap<String, ConnModel>,
    /// Events sent per connection, summed over the heartbeat's snapshots so far.
    snapshot_events: HashMap<String, u64>,
    rewrite_needed: bool,
    stopped: bool,
}

const BATCH: usize = 2048;

impl Writer {
    pub fn new(conn: ConnectionManager, keys: Keys, node: String) -> Self {
        Self {
            conn,
            keys,
            node,
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
        let mut dirty: HashSet<String> = HashSet::new();
        let mut acks = Vec::new();
        let mut heartbeat_done = false;
        for change in batch.drain(..) {
            match change {
                Change::Attached { topic, info, ack } => {
                    acks.extend(ack);
                    let tm = self.topics.entry(topic.clone()).or_default();
                    if info.format == Format::Tail {
                        tm.tails.insert(info.id);
                        dirty.insert(topic);
                        continue;
                    }
                    if !tm.subs.insert(info.id.clone()) {
                        continue;
                    }
                    pipe.zadd(k.topic_conns(&topic), &info.id, 0).ignore();
                    dirty.insert(topic);
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
                        pipe.set(k.conn(&info.id), json(&cm.record)).ignore();
                        pipe.zadd(k.conns(), &info.id, 0).ignore();
                        pipe.sadd(k.node_conns(&self.node), &info.id).ignore();
                    }
                    cm.attached += 1;
                }
                Change::Detached { topic, id } => {
                    let Some(tm) = self.topics.get_mut(&topic) else { continue };
                    if tm.tails.remove(&id) {
                        dirty.insert(topic);
                    } else if tm.subs.remove(&id) {
                        pipe.zrem(k.topic_conns(&topic), &id).ignore();
                        dirty.insert(topic);
                        if let Some(cm) = self.conns.get_mut(&id) {
                            cm.attached = cm.attached.saturating_sub(1);
                            if cm.attached == 0 {
                                self.conns.remove(&id);
                                pipe.del(k.conn(&id)).ignore();
                                pipe.zrem(k.conns(), &id).ignore();
                                pipe.srem(k.node_conns(&self.node), &id).ignore();
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
        for topic in &dirty {
            self.write_topic(&mut pipe, topic);
        }
        if heartbeat_done {
            self.heartbeat(&mut pipe);
        }
        self.execute(pipe).await;
        if heartbeat_done && self.rewrite_needed {
            self.rewrite().await;
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }

    /// A topic's placement and tail count for this node, after changes.
    fn write_topic(&mut self, pipe: &mut redis::Pipeline, topic: &str) {
        let k = &self.keys;
        let (subs, tails) = self.topics.get(topic).map_or((0, 0), |t| (t.subs.len(), t.tails.len()));
        if subs > 0 {
            pipe.hset(k.place(topic), &self.node, subs).ignore();
            pipe.zadd(k.topics(), topic, 0).ignore();
        } else {
            pipe.cmd("EVAL").arg(scripts::LEAVE_TOPIC).arg(0).arg(&k.prefix).arg(topic).arg(&self.node).ignore();
        }
        if tails > 0 {
            pipe.hset(k.tails(topic), &self.node, tails).ignore();
        } else {
            pipe.hdel(k.tails(topic), &self.node).ignore();
        }
        if subs + tails > 0 {
            pipe.sadd(k.node_topics(&self.node), topic).ignore();
        } else {
            pipe.srem(k.node_topics(&self.node), topic).ignore();
            self.topics.remove(topic);
        }
    }

    /// Every heartbeat: records whose `events_sent` changed, and the placement of every topic
    /// (absolute counts, so entries lost by Redis come back).
    fn heartbeat(&mut self, pipe: &mut redis::Pipeline) {
        let k = &self.keys;
        for (id, n) in self.snapshot_events.drain() {
            if let Some(cm) = self.conns.get_mut(&id) {
                if cm.record.events_sent != n {
                    cm.record.events_sent = n;
                    pipe.set(k.conn(&id), json(&cm.record)).ignore();
                }
            }
        }
        pipe.sadd(k.nodes(), &self.node).ignore();
        for (topic, tm) in &self.topics {
            if !tm.subs.is_empty() {
                pipe.hset(k.place(topic), &self.node, tm.subs.len()).ignore();
                pipe.zadd(k.topics(), topic, 0).ignore();
            }
            if !tm.tails.is_empty() {
                pipe.hset(k.tails(topic), &self.node, tm.tails.len()).ignore();
            }
            pipe.sadd(k.node_topics(&self.node), topic).ignore();
        }
    }

    /// Replaces whatever Redis holds for this node with the model, in one transaction.
    async fn rewrite(&mut self) {
        if self.stopped {
            return;
        }
        let k = self.keys.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("EVAL").arg(scripts::PURGE_NODE_SRC).arg(0).arg(&k.prefix).arg(&self.node).arg(0).ignore();
        pipe.sadd(k.nodes(), &self.node).ignore();
        for (id, cm) in &self.conns {
            pipe.set(k.conn(id), json(&cm.record)).ignore();
            pipe.zadd(k.conns(), id, 0).ignore();
            pipe.sadd(k.node_conns(&self.node), id).ignore();
        }
        for (topic, tm) in &self.topics {
            for id in &tm.subs {
                pipe.zadd(k.topic_conns(topic), id, 0).ignore();
            }
        }
        self.heartbeat(&mut pipe);
        self.rewrite_needed = false;
        if self.execute(pipe).await {
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
                if !self.rewrite_needed {
                    tracing::warn!(error = %e, "redis write failed; this node's state will be rewritten when redis answers");
                }
                self.rewrite_needed = true;
                false
            }
        }
    }
}

fn json(r: &ConnRecord) -> String {
    serde_json::to_string(r).expect("a record serialises")
}
