//! The adapter's Lua scripts (atomic on the Redis server; loaded once, then called by hash).

use std::sync::LazyLock;

use redis::Script;

pub static PURGE_NODE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/purge_node.lua")));
pub static PROBE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/probe.lua")));
pub static LIST_CONNS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/list_conns.lua")));
pub static LIST_TOPICS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/list_topics.lua")));

/// Sent as source with EVAL inside pipelines (where a missing script cannot be reloaded).
pub const LEAVE_TOPIC: &str = include_str!("lua/leave_topic.lua");
pub const PURGE_NODE_SRC: &str = include_str!("lua/purge_node.lua");
pub static RETAIN_APPEND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/retain_append.lua")));
pub static RETAIN_READ: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/retain_read.lua")));
