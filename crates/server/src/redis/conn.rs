//! One connection type for both deployments: a single Redis (through a `ConnectionManager`,
//! which reconnects by itself) or a Redis Cluster (`REDIS_CLUSTER_URLS`: the cluster client
//! routes each command, script and single-slot pipeline to the shard that owns its keys, and
//! follows `MOVED` / `ASK` while slots move). Every key the adapter writes carries a hash tag
//! ([`super::keys`]), so each pipeline and script touches one slot.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::config::ClusterConfig;

#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects once (the caller retries); `timeout` bounds connecting and every answer.
    pub async fn open(cfg: &ClusterConfig, timeout: Duration) -> RedisResult<Conn> {
        if cfg.redis_cluster_urls.is_empty() {
            let client = redis::Client::open(cfg.redis_url.as_str())?;
            let manager_cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(timeout)
                .set_response_timeout(timeout)
                .set_number_of_retries(2)
                .set_max_delay(1_000);
            return Ok(Conn::Single(ConnectionManager::new_with_config(client, manager_cfg).await?));
        }
        let client = ClusterClient::builder(cfg.redis_cluster_urls.clone())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(2)
            .build()?;
        Ok(Conn::Cluster(client.get_async_connection().await?))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, cmd: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
