//! Node identity and liveness: `{p}{n:ID}:ident` holds `{id, addr, started_at}` and expires
//! after `NODE_TTL_MS` unless refreshed (every `NODE_REFRESH_MS`). A node whose identity is gone
//! is dead: routing and listings ignore it at once, and the first live node to notice purges its
//! state.

use futures_util::future::join_all;
use redis::{AsyncCommands, Value};
use serde::{Deserialize, Serialize};

use super::conn::Conn;
use super::keys::{Keys, GEN};
use super::scripts;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub id: String,
    pub addr: String,
    pub started_at: u64,
}

/// A node as the cluster's registry shows it: its identity (`None`: expired, dead) and the
/// `gen` of its last placement write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: String,
    pub identity: Option<Identity>,
    pub gen: u64,
}

/// This node's registration.
#[derive(Clone)]
pub struct Node {
    pub identity: Identity,
    pub keys: Keys,
    pub ttl_ms: u64,
}

impl Node {
    fn json(&self) -> String {
        serde_json::to_string(&self.identity).expect("identity serialises")
    }

    /// Starts afresh: whatever an earlier run with the same id left is removed, then the
    /// identity is written.
    pub async fn register(&self, conn: &mut Conn) -> redis::RedisResult<()> {
        purge(conn, &self.keys, &self.identity.id, false).await?;
        self.write(conn).await
    }

    /// Writes the identity with its TTL, then lists the node in the node set. In that order: a
    /// listed node without an identity counts as dead and is purged by the next live node that
    /// looks ([`Node::purge_dead`]), so listing it first would let a purge running meanwhile
    /// take a node that has just started out of the node set.
    async fn write(&self, conn: &mut Conn) -> redis::RedisResult<()> {
        let k = &self.keys;
        let _: () = redis::cmd("SET").arg(k.ident(&self.identity.id)).arg(self.json()).arg("PX").arg(self.ttl_ms).query_async(conn).await?;
        let _: () = conn.sadd(k.nodes(), &self.identity.id).await?;
        Ok(())
    }

    /// Extends the identity's life. `Ok(false)` when it had already expired (or Redis lost its
    /// data): it is written again and the caller must re-assert this node's state.
    pub async fn refresh(&self, conn: &mut Conn) -> redis::RedisResult<bool> {
        let kept: Option<String> = redis::cmd("SET")
            .arg(self.keys.ident(&self.identity.id))
            .arg(self.json())
            .arg("XX")
            .arg("PX")
            .arg(self.ttl_ms)
            .query_async(conn)
            .await?;
        if kept.is_some() {
            return Ok(true);
        }
        self.write(conn).await?;
        Ok(false)
    }

    /// Purges every node whose identity has expired. Returns their ids.
    pub async fn purge_dead(&self, conn: &mut Conn) -> redis::RedisResult<Vec<String>> {
        let nodes: Vec<String> = conn.smembers(self.keys.nodes()).await?;
        let mut purged = Vec::new();
        for n in nodes.into_iter().filter(|n| *n != self.identity.id) {
            if purge(conn, &self.keys, &n, true).await? {
                purged.push(n);
            }
        }
        Ok(purged)
    }

    /// Leaves the cluster: the identity and everything this node recorded go.
    pub async fn deregister(&self, conn: &mut Conn) -> redis::RedisResult<()> {
        purge(conn, &self.keys, &self.identity.id, false).await?;
        let _: () = conn.del(self.keys.ident(&self.identity.id)).await?;
        Ok(())
    }
}

/// Removes what node `id` recorded (only if its identity expired, with `only_dead`): its own
/// keys, its entries in the topic index, its place in the node set. Whether it was purged.
pub async fn purge(conn: &mut Conn, keys: &Keys, id: &str, only_dead: bool) -> redis::RedisResult<bool> {
    let out: Vec<Value> = scripts::PURGE_NODE.key(keys.place(id)).arg(u8::from(only_dead)).invoke_async(conn).await?;
    if !matches!(out.first(), Some(Value::Int(1))) {
        return Ok(false);
    }
    let topics: Vec<String> = out[1..].iter().map(text).collect();
    for chunk in topics.chunks(500) {
        let _: () = scripts::TOPIC_INDEX.key(keys.topics()).arg(id).arg("del").arg(chunk).invoke_async(conn).await?;
    }
    let _: () = conn.srem(keys.nodes(), id).await?;
    if only_dead {
        // The node may have come back (written its identity, then listed itself) since the
        // script found it dead: the node set and its identity live in different slots of a Redis
        // Cluster, so the check and the removal cannot be one step. Listed again if so (its
        // topics return to the index at its next placement heartbeat).
        let back: bool = conn.exists(keys.ident(id)).await?;
        if back {
            let _: () = conn.sadd(keys.nodes(), id).await?;
        }
    }
    Ok(true)
}

/// Every node in the node set with its identity and placement `gen` (one request per node, all
/// at once: on a Redis Cluster each node's keys may live on another shard).
pub async fn seen(conn: &Conn, keys: &Keys) -> redis::RedisResult<Vec<Seen>> {
    let ids: Vec<String> = conn.clone().smembers(keys.nodes()).await?;
    let reads = ids.into_iter().map(|id| {
        let mut conn = conn.clone();
        let keys = keys.clone();
        async move {
            let (ident, gen): (Option<String>, Option<u64>) =
                redis::pipe().get(keys.ident(&id)).hget(keys.place(&id), GEN).query_async(&mut conn).await?;
            let identity = ident.and_then(|s| serde_json::from_str::<Identity>(&s).ok());
            Ok::<_, redis::RedisError>(Seen { id, identity, gen: gen.unwrap_or(0) })
        }
    });
    join_all(reads).await.into_iter().collect()
}

pub fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    }
}
