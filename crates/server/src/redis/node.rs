//! Node identity and liveness: `{p}node:{id}` holds `{id, addr, started_at}` and expires after
//! `NODE_TTL_MS` unless refreshed (every `NODE_REFRESH_MS`). A node whose key is gone is dead:
//! probes and listings ignore it at once, and the first live node to notice purges its state.

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::keys::Keys;
use super::scripts;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub id: String,
    pub addr: String,
    pub started_at: u64,
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
    pub async fn register(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let k = &self.keys;
        let _: i64 = scripts::PURGE_NODE.arg(&k.prefix).arg(&self.identity.id).arg(0).invoke_async(conn).await?;
        self.write(conn).await
    }

    /// Writes the identity with its TTL and lists the node in the node set.
    async fn write(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let k = &self.keys;
        let _: () = redis::pipe()
            .sadd(k.nodes(), &self.identity.id)
            .ignore()
            .cmd("SET")
            .arg(k.node(&self.identity.id))
            .arg(self.json())
            .arg("PX")
            .arg(self.ttl_ms)
            .ignore()
            .query_async(conn)
            .await?;
        Ok(())
    }

    /// Extends the identity's life. `Ok(false)` when it had already expired (or Redis lost its
    /// data): it is written again and the caller must re-assert this node's state.
    pub async fn refresh(&self, conn: &mut ConnectionManager) -> redis::RedisResult<bool> {
        let k = &self.keys;
        let kept: Option<String> = redis::cmd("SET")
            .arg(k.node(&self.identity.id))
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
    pub async fn purge_dead(&self, conn: &mut ConnectionManager) -> redis::RedisResult<Vec<String>> {
        let nodes: Vec<String> = conn.smembers(self.keys.nodes()).await?;
        let mut purged = Vec::new();
        for n in nodes.into_iter().filter(|n| *n != self.identity.id) {
            let done: i64 = scripts::PURGE_NODE.arg(&self.keys.prefix).arg(&n).arg(1).invoke_async(conn).await?;
            if done == 1 {
                purged.push(n);
            }
        }
        Ok(purged)
    }

    /// Leaves the cluster: the identity and everything this node recorded go.
    pub async fn deregister(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let _: i64 = scripts::PURGE_NODE.arg(&self.keys.prefix).arg(&self.identity.id).arg(0).invoke_async(conn).await?;
        let _: () = conn.del(self.keys.node(&self.identity.id)).await?;
        Ok(())
    }
}
