//! Topic lists, from headers and query strings: `names::parse_topic_lists`, `Query::parse`,
//! `subscription_topics`, `Subscribe::parse` and `ListQuery::parse` against a model of the
//! documented rules. Arbitrary input never panics; what is accepted obeys the rules (alphabet,
//! length, at most `max` topics, no duplicates) and equals the model's answer; what is refused
//! gets the model's error code and a message with no control character.
//!
//! Input: byte 0 = the topic limit (0..=255); byte 1 = flags (1: WebSocket, 2: an x-sse-topic
//! header is present, 4: a Last-Event-ID header is present); then, separated by 0xFF: the query
//! string, the x-sse-topic header, the Last-Event-ID header, and any number of topic lists.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::{after, byte, check_error, check_topics, is_name, model_topic_lists, same, Fields};
use libfuzzer_sys::fuzz_target;
use sse_core::frame::Format;
use sse_core::names;
use sse_core::request::{self, ListQuery, Query, Subscribe};
use sse_core::topic::Transport;
use sse_core::Config;

struct Input {
    lists: Vec<String>,
    max: u16,
    query: String,
    header: Option<Vec<u8>>,
    last_event_id: Option<Vec<u8>>,
    ws: bool,
}

impl Input {
    fn new(data: &[u8]) -> Self {
        let flags = byte(data, 1);
        let f = Fields::split(after(data, 2));
        let field = |i| f.bytes(i).unwrap_or_default().to_vec();
        Input {
            max: u16::from(byte(data, 0)),
            ws: flags & 1 != 0,
            query: f.text(0).into_owned(),
            header: (flags & 2 != 0).then(|| field(1)),
            last_event_id: (flags & 4 != 0).then(|| field(2)),
            lists: (3..f.len()).map(|i| f.text(i).into_owned()).collect(),
        }
    }
}

/// `application/x-www-form-urlencoded` as the gateway documents it: `+` is a space, `%XX` (two
/// hex digits) is a byte, anything else stands for itself, the result must be UTF-8; a `%`
/// without two hex digits after it makes the query malformed.
fn model_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = (*b.get(i + 1)? as char).to_digit(16)?;
                let lo = (*b.get(i + 2)? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The query's pairs by the model: `?` dropped once, split at `&`, empty parts skipped, key and
/// value split at the first `=`.
fn model_query(raw: &str) -> Option<Vec<(String, String)>> {
    let raw = raw.strip_prefix('?').unwrap_or(raw);
    let mut pairs = Vec::new();
    for part in raw.split('&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.find('=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, ""),
        };
        pairs.push((model_decode(k)?, model_decode(v)?));
    }
    Some(pairs)
}

fn utf8(v: &Option<Vec<u8>>) -> Option<Result<&str, ()>> {
    v.as_deref().map(|b| std::str::from_utf8(b).map_err(|_| ()))
}

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let max = usize::from(input.max);

    // 1. Lists as given.
    let lists: Vec<&str> = input.lists.iter().map(String::as_str).collect();
    let core = names::parse_topic_lists(lists.iter().copied(), max);
    if let Ok(t) = &core {
        check_topics(t, max);
    }
    same(&core, &model_topic_lists(&lists, max), "parse_topic_lists");
    if let Some(first) = lists.first() {
        same(
            &names::parse_topic_list(first, max),
            &model_topic_lists(&[first], max),
            "parse_topic_list",
        );
    }

    // 2. The query string.
    let q = match Query::parse(&input.query) {
        Err(e) => {
            check_error(&e);
            assert_eq!(e.code(), "invalid_request");
            assert!(
                model_query(&input.query).is_none(),
                "core refused a query the model accepts: {:?}",
                input.query
            );
            return;
        }
        Ok(q) => q,
    };
    let pairs = model_query(&input.query)
        .unwrap_or_else(|| panic!("core accepted a query the model refuses: {:?}", input.query));
    for (k, _) in &pairs {
        let want: Vec<&str> = pairs
            .iter()
            .filter(|(k2, _)| k2 == k)
            .map(|(_, v)| v.as_str())
            .collect();
        let got: Vec<&str> = q.all(k).collect();
        assert_eq!(got, want, "values of {k:?}");
        assert_eq!(q.get(k), want.first().copied());
    }
    let query_topics: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "topic")
        .map(|(_, v)| v.as_str())
        .collect();

    // 3. Subscription topics: the header wins over ?topic=.
    let model_topics = match utf8(&input.header) {
        Some(Ok(h)) => model_topic_lists(&[h], max),
        Some(Err(())) => Err("invalid_topic"),
        None => model_topic_lists(&query_topics, max),
    };
    let core = request::subscription_topics(input.header.as_deref(), &q, max);
    if let Ok(t) = &core {
        check_topics(t, max);
    }
    same(&core, &model_topics, "subscription_topics");

    // 4. A whole subscription, with the configured topic limit (1..=1024).
    let cfg = Config {
        max_topics: max.clamp(1, 1024),
        ..Config::default()
    };
    let transport = if input.ws {
        Transport::Ws
    } else {
        Transport::Sse
    };
    let model = (|| {
        let topics = match utf8(&input.header) {
            Some(Ok(h)) => model_topic_lists(&[h], cfg.max_topics)?,
            Some(Err(())) => return Err("invalid_topic"),
            None => model_topic_lists(&query_topics, cfg.max_topics)?,
        };
        let envelope = pairs
            .iter()
            .find(|(k, _)| k == "envelope")
            .map(|(_, v)| v.as_str());
        let format = match (input.ws, envelope) {
            (true, _) => Format::Ws,
            (false, None) => Format::Sse,
            (false, Some("json")) => Format::SseEnvelope,
            (false, Some(_)) => return Err("invalid_envelope"),
        };
        let last = match utf8(&input.last_event_id) {
            Some(Ok(v)) => Some(v.to_string()),
            Some(Err(())) => return Err("invalid_request"),
            None => pairs
                .iter()
                .find(|(k, _)| k == "last_event_id")
                .map(|(_, v)| v.clone()),
        };
        if matches!(&last, Some(l) if !is_name(l)) {
            return Err("invalid_request");
        }
        Ok((topics, format, last))
    })();
    let core = Subscribe::parse(
        transport,
        input.header.as_deref(),
        input.last_event_id.as_deref(),
        &q,
        &cfg,
    )
    .map(|s| {
        assert_eq!(s.transport, transport);
        check_topics(&s.topics, cfg.max_topics);
        (s.topics, s.format, s.last_event_id)
    });
    same(&core, &model, "Subscribe::parse");

    // 5. An admin listing's query.
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let model = (|| {
        let limit = match get("limit") {
            None => 100,
            Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                let digits = s.trim_start_matches('0');
                if digits.len() > 3 {
                    return Err("invalid_limit");
                }
                let n: usize = if digits.is_empty() {
                    0
                } else {
                    digits.parse().unwrap()
                };
                if !(1..=500).contains(&n) {
                    return Err("invalid_limit");
                }
                n
            }
            Some(_) => return Err("invalid_limit"),
        };
        let cursor = get("cursor").filter(|c| !c.is_empty()).map(str::to_string);
        let topic = match get("topic") {
            Some(t) if is_name(t) => Some(t.to_string()),
            Some(_) => return Err("invalid_topic"),
            None => None,
        };
        Ok(ListQuery {
            limit,
            cursor,
            topic,
        })
    })();
    same(&ListQuery::parse(&q), &model, "ListQuery::parse");
});
