//! Requests as the gateway understands them, independent of the HTTP library: the query
//! string, a subscription, a publish, and the response bodies they produce.

use crate::config::Config;
use crate::error::{GatewayError, Result};
use crate::frame::Format;
use crate::names;
use crate::token::{self, Grant};
use crate::topic::Transport;

/// Decoded query-string pairs, in order (`+` is a space, `%XX` is a byte, result must be UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.strip_prefix('?').unwrap_or(raw);
        let mut pairs = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Self(pairs))
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn decode(s: &str) -> Result<String> {
    let bad = || GatewayError::InvalidRequest("malformed query string".into());
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit())).ok_or_else(bad)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn header_str(value: Option<&[u8]>) -> Option<std::result::Result<&str, ()>> {
    value.map(|v| std::str::from_utf8(v).map_err(|_| ()))
}

/// Topics of a subscription: the `x-sse-topic` header wins over `?topic=`.
pub fn subscription_topics(header: Option<&[u8]>, query: &Query, max: usize) -> Result<Vec<String>> {
    match header_str(header) {
        Some(Ok(h)) => names::parse_topic_list(h, max),
        Some(Err(())) => Err(GatewayError::InvalidTopic("x-sse-topic is not UTF-8".into())),
        None => names::parse_topic_lists(query.all("topic"), max),
    }
}

/// A validated `GET /sse` or `GET /ws`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub topics: Vec<String>,
    pub transport: Transport,
    pub format: Format,
    /// From `Last-Event-ID` or `?last_event_id=` (kept for replay).
    pub last_event_id: Option<String>,
    /// What the subscriber token allows, when a requested topic is private ([`Self::authorize`]).
    pub grant: Option<Grant>,
}

/// A header value as text; one that is not UTF-8 counts as absent.
fn utf8(v: Option<&[u8]>) -> Option<&str> {
    v.and_then(|b| std::str::from_utf8(b).ok())
}

/// The headers that may carry a subscriber token, as bytes (they may not be UTF-8), and those
/// that decide whether the cookie may be used (`CREDENTIALED_ORIGINS`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub authorization: Option<&'a [u8]>,
    pub cookie: Option<&'a [u8]>,
    /// The `Origin` header.
    pub origin: Option<&'a [u8]>,
    /// The host the request was sent to (`Host`, or the URL's host and port).
    pub host: Option<&'a [u8]>,
}

impl Subscribe {
    /// The check of private topics (`PRIVATE_TOPICS`), before anything is attached: nothing to
    /// do when no requested topic is private; otherwise the token (`authorization: Bearer`,
    /// then `?token=`, then the cookie `SUBSCRIBER_TOKEN_COOKIE`) must be valid and grant every
    /// private topic requested (401 `token_required` / `invalid_token`, 403 `forbidden`).
    /// The cookie counts as absent when the request comes from a page of another site that is
    /// not listed in `CREDENTIALED_ORIGINS` ([`crate::cors::CredentialedOrigins::cookie_allowed`]).
    /// `now_s`: the time in seconds since the epoch.
    pub fn authorize(&mut self, cfg: &Config, creds: Credentials<'_>, query: &Query, now_s: u64) -> Result<()> {
        if cfg.private_topics.is_empty() {
            return Ok(());
        }
        let cookie = creds.cookie.filter(|_| cfg.credentialed_origins.cookie_allowed(creds.origin, creds.host));
        let presented = token::token_from(utf8(creds.authorization), query.get("token"), utf8(cookie), cfg.tokens.cookie());
        self.grant = token::check_subscribe(&cfg.private_topics, &cfg.tokens, &self.topics, presented, now_s)?;
        Ok(())
    }

    pub fn parse(
        transport: Transport,
        topic_header: Option<&[u8]>,
        last_event_id: Option<&[u8]>,
        query: &Query,
        cfg: &Config,
    ) -> Result<Self> {
        let topics = subscription_topics(topic_header, query, cfg.max_topics)?;
        let format = match (transport, query.get("envelope")) {
            (Transport::Ws, _) => Format::Ws,
            (Transport::Sse, None) => Format::Sse,
            (Transport::Sse, Some("json")) => Format::SseEnvelope,
            (Transport::Sse, Some(_)) => return Err(GatewayError::InvalidEnvelope),
        };
        let last_event_id = match header_str(last_event_id) {
            Some(Ok(v)) => Some(v.to_string()),
            Some(Err(())) => return Err(GatewayError::InvalidRequest("last-event-id is not UTF-8".into())),
            None => query.get("last_event_id").map(str::to_string),
        };
        if let Some(id) = &last_event_id {
            names::check_name(id).map_err(|m| GatewayError::InvalidRequest(format!("last-event-id {m}")))?;
        }
        Ok(Self { topics, transport, format, last_event_id, grant: None })
    }

    /// When the gateway closes this connection because its token expired (milliseconds since the
    /// epoch): only a connection that opened with a token, and only with
    /// `SUBSCRIBER_TOKEN_EXPIRY=close` (the default).
    pub fn closes_at_ms(&self, cfg: &Config) -> Option<u64> {
        self.grant.as_ref().and_then(|g| cfg.tokens.closes_at_s(g)).map(|s| s.saturating_mul(1_000))
    }
}

/// The validated headers of a `POST /publish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topics: Vec<String>,
    pub id: String,
    pub event: Option<String>,
    /// The declared body length, if any (already checked against the limit).
    pub content_length: Option<u64>,
}

/// Raw header values of a publish, as bytes (they may not be UTF-8).
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishHeaders<'a> {
    pub topic: Option<&'a [u8]>,
    pub id: Option<&'a [u8]>,
    pub event: Option<&'a [u8]>,
    pub content_length: Option<&'a [u8]>,
}

impl Publish {
    /// Validates everything that can be known before the body: topics, id, event, length.
    pub fn parse(h: PublishHeaders<'_>, cfg: &Config) -> Result<Self> {
        let topics = match header_str(h.topic) {
            None => return Err(GatewayError::MissingTopic),
            Some(Err(())) => return Err(GatewayError::InvalidTopic("x-sse-topic is not UTF-8".into())),
            Some(Ok(t)) => names::parse_topic_list(t, cfg.max_topics)?,
        };
        let id = match header_str(h.id) {
            None => return Err(GatewayError::MissingId),
            Some(Err(())) => return Err(GatewayError::InvalidId("is not UTF-8".into())),
            Some(Ok(id)) => {
                names::check_id(id)?;
                id.to_string()
            }
        };
        let event = match header_str(h.event) {
            None => None,
            Some(Err(())) => return Err(GatewayError::InvalidEvent("is not UTF-8".into())),
            Some(Ok(e)) => {
                names::check_event(e)?;
                Some(e.to_string())
            }
        };
        let content_length = match header_str(h.content_length) {
            None => None,
            Some(Ok(v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                let n: u64 = v.parse().unwrap_or(u64::MAX);
                check_body_len(n, cfg.max_body_bytes)?;
                Some(n)
            }
            Some(_) => return Err(GatewayError::InvalidRequest("content-length is not a number".into())),
        };
        Ok(Self { topics, id, event, content_length })
    }
}

/// 413 once `len` bytes exceed the limit.
pub fn check_body_len(len: u64, max: usize) -> Result<()> {
    if len > max as u64 {
        Err(GatewayError::PayloadTooLarge { max })
    } else {
        Ok(())
    }
}

/// The body as text: 415 if it is not UTF-8.
pub fn body_text(body: Vec<u8>) -> Result<String> {
    String::from_utf8(body).map_err(|_| GatewayError::UnsupportedBody)
}

/// The query of an admin listing: `limit` (1–500, default 100), `cursor` (empty = none) and,
/// for connections, `topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: usize,
    pub cursor: Option<String>,
    pub topic: Option<String>,
}

impl ListQuery {
    pub fn parse(q: &Query) -> Result<Self> {
        let limit = crate::registry::parse_limit(q.get("limit"))?;
        let cursor = q.get("cursor").filter(|c| !c.is_empty()).map(str::to_string);
        let topic = match q.get("topic") {
            Some(t) => {
                names::check_topic(t)?;
                Some(t.to_string())
            }
            None => None,
        };
        Ok(Self { limit, cursor, topic })
    }
}

/// The one log line for a request answered with an error, whatever the runtime: a client error
/// or a refusal (4xx, 503: limits, an unreachable dependency) is a `warn` "request rejected"; any
/// other server error is an `error` "request failed" with its message. The path is cut and
/// escaped: it is client input.
pub fn rejected_log_line(method: &str, path: &str, e: &GatewayError) -> String {
    let path: String = path.chars().take(200).collect();
    let (level, msg) = if e.status() < 500 || e.status() == 503 { ("warn", "request rejected") } else { ("error", "request failed") };
    let mut v = serde_json::json!({"level": level, "msg": msg, "method": method, "path": path, "status": e.status(), "code": e.code()});
    if level == "error" {
        v["error"] = e.to_string().into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::default()
    }

    const SECRET: &str = "a-subscriber-token-secret-of-32-bytes";

    /// An HS256 token for `claims`, signed with [`SECRET`].
    fn token(claims: &str) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        use hmac::{Mac, SimpleHmac};
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#), URL_SAFE_NO_PAD.encode(claims));
        let mut mac = SimpleHmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    fn cfg_value(k: &str) -> Option<String> {
        match k {
            "PRIVATE_TOPICS" => Some("user:*".into()),
            "SUBSCRIBER_TOKEN_SECRETS" => Some(SECRET.into()),
            _ => None,
        }
    }

    #[test]
    fn private_topics_need_a_token_that_grants_them() {
        let cfg = Config::from_lookup(cfg_value).unwrap();
        let now = 1_000;
        let good = token(r#"{"exp":2000,"sub":"u42","topics":["user:42","news"]}"#);
        let check = |topics: &str, creds: Credentials<'_>, query: &str| {
            let q = Query::parse(&format!("topic={topics}&{query}")).unwrap();
            let mut s = Subscribe::parse(Transport::Sse, None, None, &q, &cfg).unwrap();
            s.authorize(&cfg, creds, &q, now).map(|()| s.grant.map(|g| g.sub))
        };
        let none = Credentials::default();
        // Public topics: nothing asked, nothing granted.
        assert_eq!(check("news", none, ""), Ok(None));
        assert_eq!(check("user:42", none, "").unwrap_err().code(), "token_required");
        let bearer = format!("Bearer {good}");
        let header = Credentials { authorization: Some(bearer.as_bytes()), ..none };
        assert_eq!(check("user:42", header, ""), Ok(Some(Some("u42".into()))));
        assert_eq!(check("user:42", none, &format!("token={good}")), Ok(Some(Some("u42".into()))));
        let cookie = format!("theme=dark; sse_token={good}");
        assert_eq!(check("user:42", Credentials { cookie: Some(cookie.as_bytes()), ..none }, ""), Ok(Some(Some("u42".into()))));
        // Closed when the token is no longer accepted (exp + the 30 s leeway); public: never.
        let q = Query::parse(&format!("topic=user:42&token={good}")).unwrap();
        let mut s = Subscribe::parse(Transport::Sse, None, None, &q, &cfg).unwrap();
        assert_eq!(s.closes_at_ms(&cfg), None, "not authorized yet");
        s.authorize(&cfg, none, &q, now).unwrap();
        assert_eq!(s.closes_at_ms(&cfg), Some(2_030_000));
        let keep = Config::from_lookup(|k| match k {
            "SUBSCRIBER_TOKEN_EXPIRY" => Some("keep".into()),
            _ => cfg_value(k),
        })
        .unwrap();
        assert_eq!(s.closes_at_ms(&keep), None);
        let bad = Config::from_lookup(|k| if k == "SUBSCRIBER_TOKEN_EXPIRY" { Some("later".into()) } else { cfg_value(k) });
        assert_eq!(bad.unwrap_err().to_string(), "SUBSCRIBER_TOKEN_EXPIRY=\"later\" is neither close nor keep");
        // All or nothing: one topic not granted refuses the whole subscription.
        assert_eq!(check("user:42,user:43", header, "").unwrap_err().code(), "forbidden");
        assert_eq!(check("user:42", none, "token=not.a.token").unwrap_err().code(), "invalid_token");
        let expired = token(r#"{"exp":900,"topics":["user:42"]}"#);
        assert_eq!(check("user:42", none, &format!("token={expired}")).unwrap_err().code(), "invalid_token");
        // A header that is not UTF-8 counts as absent.
        assert_eq!(check("user:42", Credentials { authorization: Some(b"Bearer \xff"), ..none }, "").unwrap_err().code(), "token_required");
    }

    #[test]
    fn the_cookie_is_used_only_from_allowed_origins() {
        let cfg = Config::from_lookup(|k| match k {
            "CREDENTIALED_ORIGINS" => Some("https://app.example.com".into()),
            _ => cfg_value(k),
        })
        .unwrap();
        let good = token(r#"{"exp":2000,"topics":["user:42"]}"#);
        let cookie = format!("sse_token={good}");
        let check = |origin: Option<&str>, host: Option<&str>, query: &str| {
            let q = Query::parse(&format!("topic=user:42&{query}")).unwrap();
            let mut s = Subscribe::parse(Transport::Ws, None, None, &q, &cfg).unwrap();
            let creds = Credentials {
                authorization: None,
                cookie: Some(cookie.as_bytes()),
                origin: origin.map(str::as_bytes),
                host: host.map(str::as_bytes),
            };
            s.authorize(&cfg, creds, &q, 1_000).map_err(|e| e.code())
        };
        let host = Some("gw.example.com");
        assert_eq!(check(None, host, ""), Ok(()), "no Origin");
        assert_eq!(check(Some("https://app.example.com"), host, ""), Ok(()), "listed");
        assert_eq!(check(Some("https://APP.example.com"), host, ""), Ok(()), "listed, other case");
        assert_eq!(check(Some("https://gw.example.com"), host, ""), Ok(()), "same host");
        // Another site's page: the cookie counts as absent.
        assert_eq!(check(Some("https://evil.example.com"), host, ""), Err("token_required"));
        assert_eq!(check(Some("null"), host, ""), Err("token_required"));
        // A token it sends itself is still checked as usual.
        assert_eq!(check(Some("https://evil.example.com"), host, &format!("token={good}")), Ok(()));
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse("?topic=a%2Cb&topic=c&envelope=json&x=a+b&flag").unwrap();
        assert_eq!(q.all("topic").collect::<Vec<_>>(), vec!["a,b", "c"]);
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get("flag"), Some(""));
        // "%+1": found by fuzzing (crates/core/fuzz, target topic_list); from_str_radix took the sign.
        for bad in ["a=%", "a=%zz", "a=%ff", "a=%+1", "%+a=b", "a=%-1", "a=% 1"] {
            assert_eq!(Query::parse(bad).unwrap_err().code(), "invalid_request");
        }
    }

    #[test]
    fn subscribe_header_wins_over_query() {
        let q = Query::parse("topic=q1,q2&envelope=json").unwrap();
        let s = Subscribe::parse(Transport::Sse, Some(b"h"), None, &q, &cfg()).unwrap();
        assert_eq!(s.topics, vec!["h"]);
        assert_eq!(s.format, Format::SseEnvelope);
        let s = Subscribe::parse(Transport::Sse, None, None, &q, &cfg()).unwrap();
        assert_eq!(s.topics, vec!["q1", "q2"]);
        let q = Query::parse("topic=a&envelope=xml").unwrap();
        assert_eq!(Subscribe::parse(Transport::Sse, None, None, &q, &cfg()).unwrap_err().code(), "invalid_envelope");
        let ws = Subscribe::parse(Transport::Ws, None, Some(b"e1"), &Query::parse("topic=a").unwrap(), &cfg()).unwrap();
        assert_eq!((ws.format, ws.last_event_id.as_deref()), (Format::Ws, Some("e1")));
        assert_eq!(Subscribe::parse(Transport::Sse, None, None, &Query::default(), &cfg()).unwrap_err().code(), "missing_topic");
    }

    #[test]
    fn publish_validation_order() {
        let h = PublishHeaders { topic: Some(b"a,b"), id: Some(b"e1"), event: Some(b"x"), content_length: Some(b"5") };
        let p = Publish::parse(h, &cfg()).unwrap();
        assert_eq!((p.topics.len(), p.id.as_str(), p.event.as_deref(), p.content_length), (2, "e1", Some("x"), Some(5)));
        let code = |h: PublishHeaders| Publish::parse(h, &cfg()).unwrap_err().code();
        assert_eq!(code(PublishHeaders { topic: None, ..h }), "missing_topic");
        assert_eq!(code(PublishHeaders { topic: Some(b"a b"), ..h }), "invalid_topic");
        assert_eq!(code(PublishHeaders { topic: Some(b"\xff"), ..h }), "invalid_topic");
        assert_eq!(code(PublishHeaders { id: None, ..h }), "missing_id");
        assert_eq!(code(PublishHeaders { id: Some(b"a\r\nb"), ..h }), "invalid_id");
        assert_eq!(code(PublishHeaders { event: Some(b""), ..h }), "invalid_event");
        assert_eq!(code(PublishHeaders { content_length: Some(b"65537"), ..h }), "payload_too_large");
        assert_eq!(code(PublishHeaders { content_length: Some(b"99999999999999999999999"), ..h }), "payload_too_large");
        assert_eq!(code(PublishHeaders { content_length: Some(b"-1"), ..h }), "invalid_request");
    }

    #[test]
    fn body_checks() {
        assert_eq!(body_text(vec![0xff]).unwrap_err().code(), "unsupported_body");
        assert_eq!(body_text("é".into()).unwrap(), "é");
        assert!(check_body_len(10, 10).is_ok());
        assert_eq!(check_body_len(11, 10).unwrap_err().status(), 413);
    }

    #[test]
    fn list_query() {
        let q = ListQuery::parse(&Query::parse("limit=5&cursor=&topic=a").unwrap()).unwrap();
        assert_eq!(q, ListQuery { limit: 5, cursor: None, topic: Some("a".into()) });
        assert_eq!(ListQuery::parse(&Query::default()).unwrap().limit, 100);
        assert_eq!(ListQuery::parse(&Query::parse("limit=501").unwrap()).unwrap_err().code(), "invalid_limit");
        assert_eq!(ListQuery::parse(&Query::parse("topic=a%20b").unwrap()).unwrap_err().code(), "invalid_topic");
    }

    #[test]
    fn rejected_log_line_is_one_line() {
        let line = rejected_log_line("GET", "/x\n", &GatewayError::NotFound);
        assert!(!line.contains('\n') && line.contains("\"code\":\"not_found\""), "{line}");
        assert!(line.contains("\"level\":\"warn\""));
        let busy = rejected_log_line("GET", "/sse", &GatewayError::ConnectionLimit("full".into()));
        assert!(busy.contains("\"level\":\"warn\"") && busy.contains("\"status\":503"), "{busy}");
        let failed = rejected_log_line("POST", "/publish", &GatewayError::Internal("storage".into()));
        assert!(failed.contains("\"level\":\"error\"") && failed.contains("internal error: storage"), "{failed}");
    }
}
