//! `attach`: joins a connection to a topic's owner. The Worker sends it to a topic object as
//! the path and query of an internal request (`/attach?topic=…`); its decode validates every
//! field again, so an object never trusts what it did not check.

use crate::error::{GatewayError, Result};
use crate::frame::Format;
use crate::names;
use crate::request::Query;
use crate::topic::{ConnInfo, Transport};

/// One connection joining one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    /// The topic this message attaches to.
    pub topic: String,
    pub conn_id: String,
    /// Every topic of the connection (it may span several owners).
    pub topics: Vec<String>,
    pub transport: Transport,
    pub format: Format,
    /// Cloudflare colo, or the native node id.
    pub node: String,
    /// Whether the owner sends the opening block (`retry:` and `event: connected`) itself.
    pub hello: bool,
    /// Resume after this event id (`Last-Event-ID`).
    pub last_event_id: Option<String>,
    /// Which of the topic's objects: 0 = the topic's own, `i` = its shard `i`
    /// ([`crate::protocol::shards`]).
    pub shard: u32,
    /// The subscriber token's `sub`, when the connection opened with a token that names one
    /// (listed by the admin API). Absent from the query otherwise, as in attaches sent before
    /// it existed.
    pub sub: Option<String>,
}

impl Attach {
    pub const PATH: &'static str = "/attach";

    /// The path and query of the internal request.
    pub fn encode(&self) -> String {
        let mut out = format!(
            "{}?topic={}&id={}&topics={}&transport={}&format={}&node={}&hello={}",
            Self::PATH,
            escape(&self.topic),
            escape(&self.conn_id),
            escape(&self.topics.join(",")),
            self.transport.name(),
            self.format.name(),
            escape(&self.node),
            u8::from(self.hello)
        );
        if let Some(last) = &self.last_event_id {
            out.push_str("&last_event_id=");
            out.push_str(&escape(last));
        }
        if self.shard > 0 {
            out.push_str(&format!("&shard={}", self.shard));
        }
        if let Some(sub) = &self.sub {
            out.push_str("&sub=");
            out.push_str(&escape(sub));
        }
        out
    }

    /// Reads an attach from its query; `max_topics` bounds the connection's topic list.
    pub fn decode(q: &Query, max_topics: usize) -> Result<Attach> {
        let topic = field(q, "topic")?;
        names::check_topic(topic)?;
        let conn_id = field(q, "id")?;
        names::check_id(conn_id)?;
        let topics = names::parse_topic_list(field(q, "topics")?, max_topics)?;
        let transport = Transport::from_name(field(q, "transport")?).ok_or_else(|| invalid("transport"))?;
        let format = Format::from_name(field(q, "format")?).ok_or_else(|| invalid("format"))?;
        let last_event_id = q.get("last_event_id").map(str::to_string);
        if let Some(l) = &last_event_id {
            names::check_id(l)?;
        }
        // Any text a verified token held: never longer than the token itself.
        let sub = q.get("sub").map(str::to_string);
        if sub.as_ref().is_some_and(|s| s.len() > crate::token::MAX_TOKEN_BYTES) {
            return Err(invalid("sub"));
        }
        Ok(Attach {
            topic: topic.to_string(),
            conn_id: conn_id.to_string(),
            topics,
            transport,
            format,
            node: q.get("node").unwrap_or("local").to_string(),
            hello: q.get("hello") == Some("1"),
            last_event_id,
            shard: match q.get("shard") {
                None => 0,
                Some(v) => v.parse::<u32>().map_err(|_| invalid("shard"))?,
            },
            sub,
        })
    }

    /// What the owner records of the connection, connected at `now`.
    pub fn conn_info(&self, now: u64) -> ConnInfo {
        ConnInfo {
            id: self.conn_id.clone(),
            topics: self.topics.clone(),
            transport: self.transport,
            format: self.format,
            connected_at: now,
            node: self.node.clone(),
            sub: self.sub.clone(),
        }
    }
}

fn field<'a>(q: &'a Query, key: &str) -> Result<&'a str> {
    q.get(key).ok_or_else(|| GatewayError::InvalidRequest(format!("attach: missing {key}")))
}

fn invalid(key: &str) -> GatewayError {
    GatewayError::InvalidRequest(format!("attach: invalid {key}"))
}

/// Percent-encodes everything but the topic alphabet (what [`Query::parse`] decodes).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach() -> Attach {
        Attach {
            topic: "b".into(),
            conn_id: "c-1".into(),
            topics: vec!["a".into(), "b".into()],
            transport: Transport::Ws,
            format: Format::SseEnvelope,
            node: "local node/é".into(),
            hello: false,
            last_event_id: Some("e:9".into()),
            shard: 0,
            sub: None,
        }
    }

    fn round_trip(a: &Attach) -> Result<Attach> {
        let encoded = a.encode();
        let (path, query) = encoded.split_once('?').unwrap();
        assert_eq!(path, Attach::PATH);
        Attach::decode(&Query::parse(query)?, 64)
    }

    #[test]
    fn round_trips_every_field() {
        let a = attach();
        assert_eq!(round_trip(&a).unwrap(), a);
        let b = Attach { transport: Transport::Sse, format: Format::Tail, hello: true, last_event_id: None, node: "local".into(), ..a };
        assert_eq!(round_trip(&b).unwrap(), b);
        for f in Format::ALL {
            assert_eq!(round_trip(&Attach { format: f, ..attach() }).unwrap().format, f);
        }
        let sharded = Attach { shard: 3, ..attach() };
        assert_eq!(round_trip(&sharded).unwrap(), sharded);
    }

    #[test]
    fn the_tokens_sub_travels_with_the_attach() {
        for sub in ["alice", "", "user 42/é&x=1%2B+?\n\"quoted\"", "auth0|5f7c8ec7c33c6c004bbafe82"] {
            let a = Attach { sub: Some(sub.into()), ..attach() };
            assert!(!a.encode().contains('|') && !a.encode().contains(' '), "{}", a.encode());
            assert_eq!(round_trip(&a).unwrap(), a, "{sub:?}");
            assert_eq!(a.conn_info(1).sub.as_deref(), Some(sub));
        }
        // Without a sub nothing is added: an attach encoded before the field existed reads the same.
        assert!(!attach().encode().contains("sub="));
        let old = "topic=a&id=c&topics=a&transport=sse&format=sse&node=n&hello=0";
        assert_eq!(Attach::decode(&Query::parse(old).unwrap(), 64).unwrap().sub, None);
        let long = format!("{old}&sub={}", "a".repeat(crate::token::MAX_TOKEN_BYTES + 1));
        assert_eq!(Attach::decode(&Query::parse(&long).unwrap(), 64).unwrap_err().status(), 400);
    }

    #[test]
    fn decode_checks_what_it_reads() {
        let bad = |q: &str| Attach::decode(&Query::parse(q).unwrap(), 64).unwrap_err().status();
        let ok = "topic=a&id=c&topics=a&transport=sse&format=sse";
        assert!(Attach::decode(&Query::parse(ok).unwrap(), 64).is_ok());
        assert_eq!(bad("id=c&topics=a&transport=sse&format=sse"), 400);
        assert_eq!(bad("topic=a%0A&id=c&topics=a&transport=sse&format=sse"), 400);
        assert_eq!(bad("topic=a&id=c&topics=a&transport=tcp&format=sse"), 400);
        assert_eq!(bad("topic=a&id=c&topics=a&transport=sse&format=xml"), 400);
        assert_eq!(bad("topic=a&id=c&topics=a&transport=sse&format=sse&last_event_id=a%0Db"), 400);
        assert_eq!(bad("topic=a&id=c&topics=a,,b&transport=sse&format=sse"), 400);
        assert_eq!(bad("topic=a&id=c&topics=a&transport=sse&format=sse&shard=x"), 400);
    }

    #[test]
    fn the_conn_info_carries_the_attach() {
        let info = attach().conn_info(7);
        assert_eq!((info.id.as_str(), info.connected_at, info.transport, info.format), ("c-1", 7, Transport::Ws, Format::SseEnvelope));
    }
}
