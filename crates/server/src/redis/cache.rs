//! The placement cache: where every other live node holds subscribers (and admin tails), in
//! memory, so a publish is routed without asking Redis.
//!
//! Kept current two ways (docs/architecture.md, "Routing a publish from memory"):
//! - **Notices.** A node's placement writer sends every other live node a
//!   [`PlacementNotice`] when a topic gains or loses its first subscriber or tail there, and
//!   tells its new subscribers they are connected only once those nodes answered. So a
//!   subscriber that has received `connected` is in every live node's cache.
//! - **Sync.** Every [`TICK`] this node reads the node set from Redis: each node's identity (a
//!   node whose identity expired leaves routing at once) and the `gen` of its last placement
//!   write; a node whose `gen` is newer than what the cache saw is read again whole. A notice
//!   that could not be delivered is thereby made good within a tick.
//!
//! The tick also tells whether Redis answers: while it does not (no answer for [`STALE`]),
//! publishes are answered 503 `unavailable`, as before, since new subscribers elsewhere could
//! not be recorded. A node that has just started routes through Redis (one read per holder)
//! until the other nodes have certainly seen it ([`WARM_TICKS`]), then from memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::join_all;
use sse_core::protocol::cluster::{PlacementNotice, Presence};
use tokio::time::Instant;

use super::conn::Conn;
use super::keys::{Keys, GEN};
use super::node::{self, Seen};
use crate::objects::Peer;

/// How often the node set is read.
pub const TICK: Duration = Duration::from_millis(250);
/// Redis counts as unreachable when no tick succeeded for this long, or one has waited this long.
pub const STALE: Duration = Duration::from_millis(600);
/// Ticks after its start before a node routes from memory.
const WARM_TICKS: u32 = 4;

/// Another node's topics, as far as this node knows.
#[derive(Debug, Default)]
struct PeerEntry {
    /// Its id and address, shared with the holders handed out (no copy per publish).
    id: Arc<str>,
    addr: Arc<str>,
    started_at: u64,
    gen: u64,
    topics: HashMap<String, Presence>,
    /// When a notice last changed it (a sync that began before must not undo it).
    noticed_at: Option<Instant>,
    /// Since when the node set no longer lists it (gone after the node TTL).
    unlisted_since: Option<Instant>,
}

impl PeerEntry {
    /// Records the node's id and address, keeping the shared ones while they stay the same.
    fn named(&mut self, id: &str, addr: String) {
        if *self.id != *id {
            self.id = id.into();
        }
        if *self.addr != *addr {
            self.addr = addr.into();
        }
    }
}

/// A node that holds a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub peer: Peer,
    pub tails: bool,
}

pub struct Placement {
    me: String,
    keys: Keys,
    ttl: Duration,
    peers: RwLock<HashMap<String, PeerEntry>>,
    base: Instant,
    /// Ms after `base` of the last tick that succeeded, and of the one waiting (0: none).
    ok_at: AtomicU64,
    waiting_since: AtomicU64,
    warm: AtomicBool,
}

impl Placement {
    pub fn new(me: &str, keys: Keys, ttl_ms: u64) -> Arc<Placement> {
        Arc::new(Placement {
            me: me.to_string(),
            keys,
            ttl: Duration::from_millis(ttl_ms),
            peers: RwLock::new(HashMap::new()),
            base: Instant::now(),
            ok_at: AtomicU64::new(0),
            waiting_since: AtomicU64::new(0),
            warm: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64 + 1
    }

    /// Whether Redis answers (see the module doc).
    pub fn available(&self) -> bool {
        let now = self.now_ms();
        let stale = STALE.as_millis() as u64;
        let ok = self.ok_at.load(Ordering::Acquire);
        let waiting = self.waiting_since.load(Ordering::Acquire);
        ok != 0 && now.saturating_sub(ok) < stale + TICK.as_millis() as u64 && (waiting == 0 || now.saturating_sub(waiting) < stale)
    }

    /// Whether publishes are routed from memory (otherwise through Redis, just after start).
    pub fn is_warm(&self) -> bool {
        self.warm.load(Ordering::Acquire)
    }

    /// The other nodes holding `topic`, from memory.
    pub fn holders(&self, topic: &str) -> Vec<Holder> {
        let peers = self.peers.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for e in peers.values() {
            if let Some(p) = e.topics.get(topic) {
                if !p.is_empty() {
                    out.push(Holder {
                        peer: Peer { node: e.id.clone(), addr: e.addr.clone(), subscribers: usize::from(p.subscribers) },
                        tails: p.tails,
                    });
                }
            }
        }
        out
    }

    /// The other live nodes: id and address.
    pub fn peers(&self) -> Vec<(String, String)> {
        let peers = self.peers.read().unwrap_or_else(|p| p.into_inner());
        peers.iter().filter(|(_, e)| !e.addr.is_empty()).map(|(id, e)| (id.clone(), e.addr.to_string())).collect()
    }

    /// Applies another node's notice; whether it was newer than what this node knew.
    pub fn apply_notice(&self, n: PlacementNotice) -> bool {
        if n.node == self.me {
            return false;
        }
        let mut peers = self.peers.write().unwrap_or_else(|p| p.into_inner());
        let e = peers.entry(n.node.clone()).or_default();
        if e.started_at != n.started_at {
            if e.started_at > n.started_at {
                return false;
            }
            *e = PeerEntry {
                id: std::mem::take(&mut e.id),
                addr: std::mem::take(&mut e.addr),
                started_at: n.started_at,
                ..Default::default()
            };
        }
        if n.gen <= e.gen {
            return false;
        }
        e.gen = n.gen;
        e.named(&n.node, n.addr);
        e.noticed_at = Some(Instant::now());
        for (t, p) in n.topics {
            if p.is_empty() {
                e.topics.remove(&t);
            } else {
                e.topics.insert(t, p);
            }
        }
        true
    }

    /// Takes a read of the node set (begun at `began`); returns the nodes to read whole.
    fn update(&self, seen: Vec<Seen>, began: Instant) -> Vec<(String, u64)> {
        let mut peers = self.peers.write().unwrap_or_else(|p| p.into_inner());
        let mut listed = std::collections::HashSet::new();
        let mut stale = Vec::new();
        for s in seen {
            if s.id == self.me {
                continue;
            }
            listed.insert(s.id.clone());
            match s.identity {
                None => {
                    // Dead: its identity expired (unless a notice came after this read began).
                    if peers.get(&s.id).is_some_and(|e| e.noticed_at.is_none_or(|t| t < began)) {
                        peers.remove(&s.id);
                    }
                }
                Some(ident) => {
                    let e = peers.entry(s.id.clone()).or_default();
                    if e.started_at < ident.started_at {
                        *e = PeerEntry { started_at: ident.started_at, ..Default::default() };
                    }
                    if e.started_at == ident.started_at {
                        e.named(&s.id, ident.addr);
                        e.unlisted_since = None;
                        if s.gen > e.gen {
                            stale.push((s.id, ident.started_at));
                        }
                    }
                }
            }
        }
        let ttl = self.ttl;
        peers.retain(|id, e| {
            if listed.contains(id) || e.noticed_at.is_some_and(|t| t >= began) {
                return true;
            }
            // Not in the node set (it left, or Redis restarted empty): kept for a node TTL, in
            // which a live node registers again.
            let since = *e.unlisted_since.get_or_insert(began);
            since.elapsed() < ttl
        });
        stale
    }

    /// A node's placement read whole (`HGETALL`), if it is newer than what this node knows.
    fn apply_snapshot(&self, id: &str, started_at: u64, fields: HashMap<String, String>) {
        let gen = fields.get(GEN).and_then(|g| g.parse().ok()).unwrap_or(0);
        let mut peers = self.peers.write().unwrap_or_else(|p| p.into_inner());
        let Some(e) = peers.get_mut(id) else { return };
        if e.started_at != started_at || gen <= e.gen {
            return;
        }
        e.gen = gen;
        e.topics = fields
            .into_iter()
            .filter(|(t, _)| t != GEN)
            .filter_map(|(t, v)| Presence::parse_record(&v).map(|(s, tl)| (t, Presence::of(s, tl))))
            .filter(|(_, p)| !p.is_empty())
            .collect();
    }

    /// One tick: reads the node set and whatever changed. Whether Redis answered.
    pub async fn sync(&self, conn: &Conn) -> bool {
        let began = Instant::now();
        self.waiting_since.store(self.now_ms(), Ordering::Release);
        let work = async {
            let seen = node::seen(conn, &self.keys).await?;
            let stale = self.update(seen, began);
            let reads = stale.into_iter().map(|(id, started_at)| {
                let mut conn = conn.clone();
                let key = self.keys.place(&id);
                async move {
                    let fields: HashMap<String, String> = redis::cmd("HGETALL").arg(key).query_async(&mut conn).await?;
                    Ok::<_, redis::RedisError>((id, started_at, fields))
                }
            });
            for r in join_all(reads).await {
                let (id, started_at, fields) = r?;
                self.apply_snapshot(&id, started_at, fields);
            }
            Ok::<_, redis::RedisError>(())
        };
        let ok = matches!(tokio::time::timeout(STALE, work).await, Ok(Ok(())));
        if ok {
            self.ok_at.store(self.now_ms(), Ordering::Release);
        }
        self.waiting_since.store(0, Ordering::Release);
        ok
    }

    /// Reads `topic`'s holders from Redis (a node that has just started, before it is warm).
    pub async fn holders_from_redis(&self, conn: &Conn, topic: &str) -> redis::RedisResult<Vec<Holder>> {
        let peers = self.peers();
        let reads = peers.into_iter().map(|(id, addr)| {
            let mut conn = conn.clone();
            let key = self.keys.place(&id);
            async move {
                let v: Option<String> = redis::cmd("HGET").arg(key).arg(topic).query_async(&mut conn).await?;
                Ok::<_, redis::RedisError>(
                    v.and_then(|v| Presence::parse_record(&v))
                        .map(|(s, t)| Holder { peer: Peer { node: id.into(), addr: addr.into(), subscribers: s }, tails: t > 0 }),
                )
            }
        });
        let mut out = Vec::new();
        for r in join_all(reads).await {
            out.extend(r?);
        }
        Ok(out)
    }

    /// Runs the ticks until aborted; the node routes from memory after [`WARM_TICKS`] ticks that
    /// succeeded.
    pub async fn run(self: Arc<Self>, conn: Conn) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut good = 0;
        loop {
            tick.tick().await;
            if self.sync(&conn).await && !self.is_warm() {
                good += 1;
                if good >= WARM_TICKS {
                    self.warm.store(true, Ordering::Release);
                    tracing::debug!(node = %self.me, "routing publishes from the placement cache");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::node::Identity;

    fn seen(id: &str, started_at: u64, gen: u64) -> Seen {
        Seen { id: id.into(), identity: Some(Identity { id: id.into(), addr: format!("{id}:80"), started_at }), gen }
    }

    fn notice(node: &str, started_at: u64, gen: u64, topics: &[(&str, Presence)]) -> PlacementNotice {
        PlacementNotice {
            node: node.into(),
            addr: format!("{node}:80"),
            started_at,
            gen,
            topics: topics.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
        }
    }

    const SUB: Presence = Presence { subscribers: true, tails: false };
    const NONE: Presence = Presence { subscribers: false, tails: false };

    #[tokio::test]
    async fn notices_and_snapshots_keep_the_newest_gen() {
        let p = Placement::new("me", Keys::new("sse:"), 10_000);
        let t0 = Instant::now();
        assert_eq!(p.update(vec![seen("a", 1, 0), seen("me", 1, 0)], t0), vec![]);
        assert!(p.apply_notice(notice("a", 1, 2, &[("t", SUB)])));
        assert_eq!(p.holders("t").len(), 1);
        assert_eq!(&*p.holders("t")[0].peer.addr, "a:80");
        // An older notice or snapshot does not undo it.
        assert!(!p.apply_notice(notice("a", 1, 1, &[("t", NONE)])));
        p.apply_snapshot("a", 1, HashMap::from([(GEN.to_string(), "1".to_string())]));
        assert_eq!(p.holders("t").len(), 1);
        // A newer snapshot replaces it.
        p.apply_snapshot("a", 1, HashMap::from([(GEN.to_string(), "3".to_string()), ("u".to_string(), "2 0".to_string())]));
        assert!(p.holders("t").is_empty());
        assert_eq!(p.holders("u")[0].peer.subscribers, 1);
        // A later run of the same node starts afresh.
        assert!(p.apply_notice(notice("a", 2, 1, &[("v", SUB)])));
        assert!(p.holders("u").is_empty());
        assert_eq!(p.holders("v").len(), 1);
    }

    #[tokio::test]
    async fn a_dead_node_leaves_unless_a_notice_came_after_the_read_began() {
        let p = Placement::new("me", Keys::new("sse:"), 10_000);
        p.update(vec![seen("a", 1, 0), seen("b", 1, 0)], Instant::now());
        p.apply_notice(notice("a", 1, 1, &[("t", SUB)]));
        let began = Instant::now() - Duration::from_millis(5);
        p.apply_notice(notice("b", 1, 1, &[("t", SUB)]));
        let dead = |id: &str| Seen { id: id.into(), identity: None, gen: 0 };
        // "a" is dead; "b" was read as dead by a read that began before its notice.
        let began_a = Instant::now();
        p.update(vec![dead("a")], began_a);
        assert_eq!(p.holders("t").iter().map(|h| &*h.peer.node).collect::<Vec<_>>(), vec!["b"]);
        p.update(vec![dead("b")], began);
        assert_eq!(p.holders("t").len(), 1);
    }

    #[tokio::test]
    async fn an_unlisted_node_is_kept_for_a_ttl() {
        let p = Placement::new("me", Keys::new("sse:"), 50);
        p.update(vec![seen("a", 1, 0)], Instant::now());
        p.apply_notice(notice("a", 1, 1, &[("t", SUB)]));
        p.update(vec![], Instant::now());
        assert_eq!(p.holders("t").len(), 1, "kept: Redis may have restarted empty");
        tokio::time::sleep(Duration::from_millis(80)).await;
        p.update(vec![], Instant::now());
        assert!(p.holders("t").is_empty());
    }

    #[tokio::test]
    async fn a_stale_gen_asks_for_a_snapshot() {
        let p = Placement::new("me", Keys::new("sse:"), 10_000);
        assert_eq!(p.update(vec![seen("a", 1, 4)], Instant::now()), vec![("a".to_string(), 1)]);
        p.apply_notice(notice("a", 1, 5, &[]));
        assert_eq!(p.update(vec![seen("a", 1, 5)], Instant::now()), vec![]);
    }
}
