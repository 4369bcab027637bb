//! Every Redis key the adapter uses, in one place. `{p}` is `REDIS_KEY_PREFIX` (default `sse:`).
//!
//! Each key carries a hash tag (the part in braces), so that on a Redis Cluster every script and
//! pipeline touches one slot: a node's own state shares its node's tag (`{n:ID}`), so the
//! placement writer writes everything of one node in one pipeline; a retained topic's stream
//! shares its topic's tag (`{t:TOPIC}`); the cluster-wide topic index has a tag of its own
//! (`{g}`). Topic names and node ids cannot contain braces, and `REDIS_KEY_PREFIX` may not either.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}nodes` | set | node ids that may have state (purged when their identity expired) |
//! | `{p}{n:ID}:ident` | string, expires | a live node's identity `{id, addr, started_at}` |
//! | `{p}{n:ID}:place` | hash | topic → `"subscribers tails"` this node holds; field `#gen` counts its writes |
//! | `{p}{n:ID}:topics` | sorted set, score 0 | the node's topics with subscribers (paged with ZRANGEBYLEX) |
//! | `{p}{n:ID}:conns` | sorted set, score 0 | the node's connection ids |
//! | `{p}{n:ID}:recs` | hash | connection id → its record (JSON `ConnRecord`) |
//! | `{p}{n:ID}:tc:TOPIC` | sorted set, score 0 | the node's connection ids of one topic |
//! | `{p}{g}:topics` | sorted set, score 0 | topics with subscribers on some node (the topic listing) |
//! | `{p}{g}:tn:TOPIC` | set | the nodes holding subscribers of a topic |
//! | `{p}{t:TOPIC}:rt` | stream | a retained topic's recent events (`RETENTION`): fields `seq`, `id`, `event`, `data`, `ts` |
//! | `{p}{t:TOPIC}:rt-seq` | string | the last per-topic sequence given to a retained event |
//!
//! The Lua scripts in `lua/` build the names of the same tag from the key they are given.

/// The field of `{n:ID}:place` that counts the node's placement writes (a topic name cannot
/// contain `#`).
pub const GEN: &str = "#gen";

#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_string() }
    }

    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }
    /// The common start of a node's keys (the scripts append the rest).
    pub fn node_base(&self, id: &str) -> String {
        format!("{}{{n:{id}}}:", self.prefix)
    }
    pub fn ident(&self, id: &str) -> String {
        format!("{}ident", self.node_base(id))
    }
    pub fn place(&self, id: &str) -> String {
        format!("{}place", self.node_base(id))
    }
    pub fn node_topics(&self, id: &str) -> String {
        format!("{}topics", self.node_base(id))
    }
    pub fn conns(&self, id: &str) -> String {
        format!("{}conns", self.node_base(id))
    }
    pub fn recs(&self, id: &str) -> String {
        format!("{}recs", self.node_base(id))
    }
    pub fn topic_conns(&self, id: &str, topic: &str) -> String {
        format!("{}tc:{topic}", self.node_base(id))
    }
    /// The cluster-wide topic index's common start.
    pub fn global_base(&self) -> String {
        format!("{}{{g}}:", self.prefix)
    }
    pub fn topics(&self) -> String {
        format!("{}topics", self.global_base())
    }
    pub fn topic_nodes(&self, topic: &str) -> String {
        format!("{}tn:{topic}", self.global_base())
    }
    pub fn retained(&self, topic: &str) -> String {
        format!("{}{{t:{topic}}}:rt", self.prefix)
    }
    pub fn retained_seq(&self, topic: &str) -> String {
        format!("{}{{t:{topic}}}:rt-seq", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster hashes: the text between the first `{` and the next `}`.
    fn tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = key[open..].find('}').unwrap() + open;
        &key[open + 1..close]
    }

    #[test]
    fn each_family_shares_one_tag() {
        let k = Keys::new("sse:");
        let node = [k.ident("n1"), k.place("n1"), k.node_topics("n1"), k.conns("n1"), k.recs("n1"), k.topic_conns("n1", "a.b:c")];
        assert!(node.iter().all(|key| tag(key) == "n:n1"), "{node:?}");
        assert_eq!((tag(&k.topics()), tag(&k.topic_nodes("x"))), ("g", "g"));
        assert_eq!((tag(&k.retained("t-1")), tag(&k.retained_seq("t-1"))), ("t:t-1", "t:t-1"));
        assert_eq!(k.place("n1"), "sse:{n:n1}:place");
    }
}
