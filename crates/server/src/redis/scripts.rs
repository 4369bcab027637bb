//! The adapter's Lua scripts (atomic on the Redis server; loaded once, then called by hash).
//! Each is given the keys it touches (all of one hash-tag slot), so a Redis Cluster routes it.

use std::sync::LazyLock;

use redis::Script;

pub static PURGE_NODE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/purge_node.lua")));
pub static TOPIC_INDEX: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/topic_index.lua")));
pub static LIST_CONNS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/list_conns.lua")));
pub static LIST_TOPICS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/list_topics.lua")));
pub static RETAIN_APPEND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/retain_append.lua")));
pub static RETAIN_READ: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/retain_read.lua")));
