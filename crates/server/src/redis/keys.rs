//! Every Redis key the adapter uses, in one place. `{p}` is `REDIS_KEY_PREFIX` (default `sse:`).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}node:{id}` | string, expires | a live node's identity `{id, addr, started_at}` |
//! | `{p}nodes` | set | node ids that may have state (purged when their identity expired) |
//! | `{p}place:{topic}` | hash | node → its subscribers of the topic (only nodes with some) |
//! | `{p}tails:{topic}` | hash | node → its admin tails of the topic |
//! | `{p}topics` | sorted set, score 0 | topics with subscribers somewhere (paged with ZRANGEBYLEX) |
//! | `{p}node-topics:{id}` | set | topics a node has in `place:` / `tails:` |
//! | `{p}conns` | sorted set, score 0 | every connection id (paged with ZRANGEBYLEX) |
//! | `{p}topic-conns:{topic}` | sorted set, score 0 | the connection ids of one topic |
//! | `{p}conn:{id}` | string | a connection's record (JSON `ConnRecord`, with its node) |
//! | `{p}node-conns:{id}` | set | a node's connection ids |
//! | `{p}rt:{topic}` | stream | a retained topic's recent events (`RETENTION`): fields `seq`, `id`, `event`, `data`, `ts` |
//! | `{p}rt-seq:{topic}` | string | the last per-topic sequence given to a retained event |
//!
//! The Lua scripts in `lua/` build the same names from the prefix.

#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_string() }
    }

    pub fn node(&self, id: &str) -> String {
        format!("{}node:{id}", self.prefix)
    }
    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }
    pub fn place(&self, topic: &str) -> String {
        format!("{}place:{topic}", self.prefix)
    }
    pub fn tails(&self, topic: &str) -> String {
        format!("{}tails:{topic}", self.prefix)
    }
    pub fn topics(&self) -> String {
        format!("{}topics", self.prefix)
    }
    pub fn node_topics(&self, id: &str) -> String {
        format!("{}node-topics:{id}", self.prefix)
    }
    pub fn conns(&self) -> String {
        format!("{}conns", self.prefix)
    }
    pub fn topic_conns(&self, topic: &str) -> String {
        format!("{}topic-conns:{topic}", self.prefix)
    }
    pub fn conn(&self, id: &str) -> String {
        format!("{}conn:{id}", self.prefix)
    }
    pub fn node_conns(&self, id: &str) -> String {
        format!("{}node-conns:{id}", self.prefix)
    }
}
