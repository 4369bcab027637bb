//! `socket`: the WebSockets a hibernating topic owner holds (Cloudflare topic objects). Every
//! connection of a topic object is a WebSocket it accepted; what it must know of it after being
//! evicted from memory travels with the socket as its attachment ([`SocketAttachment`]), and
//! how a socket ends is said with a close code ([`Close`]).
//!
//! Two kinds of socket reach an object:
//! - the subscriber's own WebSocket, for a WebSocket client of one topic: the Worker forwards
//!   the upgrade and the object writes envelopes straight to the client;
//! - an internal WebSocket from the Worker, which holds the client's stream (every SSE client,
//!   an admin tail, a WebSocket client of several topics, a WebSocket client whose token the
//!   gateway closes it for at expiry): the object sends each frame already
//!   encoded in the connection's format and the Worker writes it to the client as it is.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{GatewayError, Result};
use crate::frame::Format;
use crate::protocol::Attach;
use crate::request::Subscribe;
use crate::topic::{ConnInfo, SendResult, Transport};

/// Who holds the client's stream at the other end of a socket a topic object accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// The socket is the subscriber's own WebSocket.
    Client,
    /// The socket is internal: the Worker holds the client's stream.
    Worker,
}

impl Holder {
    /// Who holds the stream of a connection attaching as `a`: the object holds a WebSocket
    /// client of one topic that was handed to it whole (it sends that client's opening itself,
    /// `hello`: [`Holder::hands_over`]); every other connection is held by the Worker.
    pub fn of(a: &Attach) -> Holder {
        if a.transport == Transport::Ws && a.topics.len() == 1 && a.hello {
            Holder::Client
        } else {
            Holder::Worker
        }
    }

    /// Whether the Worker hands a subscriber's own socket to the topic object: a WebSocket
    /// client of one topic, unless its token expires while it is open and the gateway must
    /// close it then (`SUBSCRIBER_TOKEN_EXPIRY=close`): a hibernating object keeps no timer, the
    /// Worker does.
    pub fn hands_over(sub: &Subscribe, cfg: &Config) -> bool {
        sub.transport == Transport::Ws && sub.topics.len() == 1 && sub.closes_at_ms(cfg).is_none()
    }

    /// Whether the object sends this socket's frames as binary messages: an internal socket
    /// whose holder writes them to an SSE stream as they are. A subscriber's own WebSocket, and
    /// the internal socket of a multi-topic WebSocket (its holder relays text), get text.
    pub fn sends_binary(self, format: Format) -> bool {
        self == Holder::Worker && format != Format::Ws
    }

    /// The tag the object accepts the socket with (`get_websockets_with_tag`).
    pub fn tag(self) -> &'static str {
        match self {
            Holder::Client => "client",
            Holder::Worker => "worker",
        }
    }
}

/// What a topic object keeps with each socket (at most 2,048 bytes on Cloudflare): enough to
/// rebuild the topic's connections when it wakes, without storage reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketAttachment {
    /// The topic of this object.
    pub topic: String,
    pub conn: ConnInfo,
    pub holder: Holder,
    /// Which of the topic's objects holds it (0: the topic's own; see [`crate::protocol::shards`]).
    #[serde(default)]
    pub shard: u32,
}

/// Cloudflare's limit on one socket's serialised attachment.
pub const MAX_ATTACHMENT_BYTES: usize = 2048;

impl SocketAttachment {
    /// The attachment of the connection `a`, connected at `now`.
    pub fn of(a: &Attach, now: u64) -> SocketAttachment {
        SocketAttachment { topic: a.topic.clone(), conn: a.conn_info(now), holder: Holder::of(a), shard: a.shard }
    }

    /// The attachment as stored with the socket. The connection's topic list is what makes it
    /// long: a list that would not fit keeps only this object's topic (the registry and the
    /// admin listing still get the whole list from the attach report). A token's `sub` too long
    /// to fit even then is left out the same way (the registry has it from the attach report).
    pub fn encode(&self) -> String {
        let full = serde_json::to_string(self).expect("an attachment serialises");
        if full.len() <= MAX_ATTACHMENT_BYTES {
            return full;
        }
        let mut short = self.clone();
        short.conn.topics = vec![self.topic.clone()];
        let text = serde_json::to_string(&short).expect("an attachment serialises");
        if text.len() <= MAX_ATTACHMENT_BYTES || short.conn.sub.is_none() {
            return text;
        }
        short.conn.sub = None;
        serde_json::to_string(&short).expect("an attachment serialises")
    }

    pub fn decode(text: &str) -> Result<SocketAttachment> {
        serde_json::from_str(text).map_err(|e| GatewayError::Internal(format!("socket attachment: {e}")))
    }
}

/// How a socket between a topic object and its holder ends (WebSocket close codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The client left, or the stream ended normally.
    Normal,
    /// The holder evicted a subscriber too slow to read its stream.
    SlowConsumer,
    /// The holder gave up on the connection for another reason (an upstream failed).
    Failed,
}

impl Close {
    pub fn code(self) -> u16 {
        match self {
            Close::Normal => 1000,
            Close::SlowConsumer => 4008,
            Close::Failed => 1011,
        }
    }

    /// The reason sent with the code.
    pub fn reason(self) -> &'static str {
        match self {
            Close::Normal => "closed",
            Close::SlowConsumer => "slow consumer",
            Close::Failed => "upstream failed",
        }
    }

    /// How a holder ends a connection after handing its client a frame: `None` while it is
    /// sent; a full stream is a slow consumer, a closed one a client that left.
    pub fn after_send(result: SendResult) -> Option<Close> {
        match result {
            SendResult::Sent => None,
            SendResult::Full => Some(Close::SlowConsumer),
            SendResult::Closed => Some(Close::Normal),
        }
    }

    /// The close of a socket that ended with `code` (anything unknown is a normal end: the
    /// client went away).
    pub fn from_code(code: u16) -> Close {
        match code {
            4008 => Close::SlowConsumer,
            1011 => Close::Failed,
            _ => Close::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach(transport: Transport, topics: &[&str]) -> Attach {
        Attach {
            topic: topics[0].to_string(),
            conn_id: "c1".into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            transport,
            format: if transport == Transport::Ws { Format::Ws } else { Format::Sse },
            node: "local".into(),
            hello: false,
            last_event_id: None,
            shard: 0,
            sub: None,
        }
    }

    #[test]
    fn only_a_websocket_of_one_topic_is_handed_to_the_object() {
        assert_eq!(Holder::of(&Attach { hello: true, ..attach(Transport::Ws, &["a"]) }), Holder::Client);
        assert_eq!(Holder::of(&attach(Transport::Ws, &["a"])), Holder::Worker, "joined by the Worker");
        assert_eq!(Holder::of(&attach(Transport::Ws, &["a", "b"])), Holder::Worker);
        assert_eq!(Holder::of(&attach(Transport::Sse, &["a"])), Holder::Worker);
        assert_ne!(Holder::Client.tag(), Holder::Worker.tag());
        assert!(Holder::Worker.sends_binary(Format::Sse) && Holder::Worker.sends_binary(Format::Tail));
        assert!(!Holder::Worker.sends_binary(Format::Ws) && !Holder::Client.sends_binary(Format::Ws));
    }

    #[test]
    fn a_websocket_closed_at_its_token_expiry_is_held_by_the_worker() {
        let cfg = |expiry: &str| {
            let expiry = expiry.to_string();
            Config::from_lookup(move |k| match k {
                "PRIVATE_TOPICS" => Some("p-*".into()),
                "SUBSCRIBER_TOKEN_SECRETS" => Some("0123456789abcdef0123456789abcdef".into()),
                "SUBSCRIBER_TOKEN_EXPIRY" => Some(expiry.clone()),
                _ => None,
            })
            .unwrap()
        };
        let (close, keep) = (cfg("close"), cfg("keep"));
        let sub = |transport: Transport, topics: &[&str], granted: bool| Subscribe {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            transport,
            format: if transport == Transport::Ws { Format::Ws } else { Format::Sse },
            last_event_id: None,
            grant: granted.then(|| crate::token::Grant { sub: None, topics: vec!["p-*".into()], exp: 2_000_000_000 }),
        };
        assert!(Holder::hands_over(&sub(Transport::Ws, &["a"], false), &close), "public: handed over");
        assert!(!Holder::hands_over(&sub(Transport::Ws, &["p-1"], true), &close), "closed at expiry: the Worker's timer");
        assert!(Holder::hands_over(&sub(Transport::Ws, &["p-1"], true), &keep), "kept: nothing to time");
        assert!(!Holder::hands_over(&sub(Transport::Ws, &["a", "b"], false), &close));
        assert!(!Holder::hands_over(&sub(Transport::Sse, &["a"], false), &close));
    }

    #[test]
    fn attachment_round_trips() {
        let a = SocketAttachment::of(&attach(Transport::Sse, &["a", "b"]), 42);
        let back = SocketAttachment::decode(&a.encode()).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.conn.connected_at, 42);
        assert_eq!(back.holder, Holder::Worker);
        assert!(SocketAttachment::decode("{").is_err());
    }

    #[test]
    fn a_long_topic_list_is_shortened_to_fit() {
        let topics: Vec<String> = (0..64).map(|i| format!("{i:0>100}")).collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        let a = SocketAttachment::of(&attach(Transport::Sse, &refs), 1);
        let text = a.encode();
        assert!(text.len() <= MAX_ATTACHMENT_BYTES, "{}", text.len());
        let back = SocketAttachment::decode(&text).unwrap();
        assert_eq!(back.conn.topics, vec![topics[0].clone()]);
        assert_eq!(back.conn.id, "c1");
    }

    #[test]
    fn the_attachment_keeps_the_tokens_sub() {
        let a = SocketAttachment::of(&Attach { sub: Some("alice".into()), ..attach(Transport::Ws, &["a"]) }, 1);
        assert_eq!(SocketAttachment::decode(&a.encode()).unwrap().conn.sub.as_deref(), Some("alice"));
        // An attachment stored before connections carried a sub reads as none.
        let plain = SocketAttachment::of(&attach(Transport::Ws, &["a"]), 1);
        assert!(!plain.encode().contains("sub"));
        assert_eq!(SocketAttachment::decode(&plain.encode()).unwrap(), plain);
        // A sub that cannot fit is left out rather than failing the connection.
        let huge = SocketAttachment::of(&Attach { sub: Some("x".repeat(3000)), ..attach(Transport::Ws, &["a"]) }, 1);
        let text = huge.encode();
        assert!(text.len() <= MAX_ATTACHMENT_BYTES, "{}", text.len());
        assert_eq!(SocketAttachment::decode(&text).unwrap().conn.sub, None);
    }

    #[test]
    fn a_holder_ends_a_full_stream_as_a_slow_consumer() {
        assert_eq!(Close::after_send(SendResult::Sent), None);
        assert_eq!(Close::after_send(SendResult::Full), Some(Close::SlowConsumer));
        assert_eq!(Close::after_send(SendResult::Closed), Some(Close::Normal));
    }

    #[test]
    fn close_codes_round_trip() {
        for c in [Close::Normal, Close::SlowConsumer, Close::Failed] {
            assert_eq!(Close::from_code(c.code()), c);
            assert!(!c.reason().is_empty());
        }
        assert_eq!(Close::from_code(1001), Close::Normal);
        assert_eq!(Close::from_code(1006), Close::Normal);
    }
}
