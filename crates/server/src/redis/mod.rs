//! The Redis adapter (in progress).

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::{ClusterConfig, ServerConfig};
use crate::gateway::StartError;
use crate::hub::{Change, Hub};
use crate::memory::MemoryNamespace;

pub struct RedisNamespace;

impl RedisNamespace {
    pub async fn connect(hub: Arc<Hub>, changes: mpsc::UnboundedReceiver<Change>, cfg: &ServerConfig, _c: &ClusterConfig) -> Result<MemoryNamespace, StartError> {
        Ok(MemoryNamespace::new(hub, changes, cfg.core.heartbeat_ms))
    }
}
