//! `Publish::parse`: the headers of a publish, as arbitrary bytes, against a model of the
//! documented rules and their order (topic, then id, then event, then content-length). Arbitrary
//! input never panics; an accepted publish has valid topics (alphabet, length, at most the
//! configured number, no duplicates), a valid id and event, and a length within the limit.
//!
//! Input: byte 0 = MAX_TOPICS_PER_REQUEST - 1; bytes 1-2 = (MAX_BODY_BYTES - 1) / 16, big-endian;
//! byte 3 = which headers are present (1: x-sse-topic, 2: x-sse-id, 4: x-sse-event,
//! 8: content-length); then their values in that order, separated by 0xFF.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::{after, byte, check_topics, is_name, model_topic_lists, same, Fields};
use libfuzzer_sys::fuzz_target;
use sse_core::request::{check_body_len, Publish, PublishHeaders};
use sse_core::Config;

struct Input {
    topic: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
    event: Option<Vec<u8>>,
    content_length: Option<Vec<u8>>,
    max_topics: u16,
    max_body: u32,
}

impl Input {
    fn new(data: &[u8]) -> Self {
        let present = byte(data, 3);
        let f = Fields::split(after(data, 4));
        let field = |bit: u8, i: usize| {
            (present & bit != 0).then(|| f.bytes(i).unwrap_or_default().to_vec())
        };
        Input {
            max_topics: u16::from(byte(data, 0)),
            max_body: u32::from(u16::from_be_bytes([byte(data, 1), byte(data, 2)])) * 16,
            topic: field(1, 0),
            id: field(2, 1),
            event: field(4, 2),
            content_length: field(8, 3),
        }
    }
}

fn utf8(v: &Option<Vec<u8>>) -> Option<Option<&str>> {
    v.as_deref().map(|b| std::str::from_utf8(b).ok())
}

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    // Within the configured ranges: MAX_TOPICS_PER_REQUEST 1..=1024, MAX_BODY_BYTES 1..=1048576.
    let cfg = Config {
        max_topics: usize::from(input.max_topics) + 1,
        max_body_bytes: input.max_body as usize + 1,
        ..Config::default()
    };

    let h = PublishHeaders {
        topic: input.topic.as_deref(),
        id: input.id.as_deref(),
        event: input.event.as_deref(),
        content_length: input.content_length.as_deref(),
    };
    let core = Publish::parse(h, &cfg).map(|p| {
        check_topics(&p.topics, cfg.max_topics);
        assert!(is_name(&p.id), "accepted id {:?}", p.id);
        if let Some(e) = &p.event {
            assert!(is_name(e), "accepted event {e:?}");
        }
        if let Some(n) = p.content_length {
            assert!(n <= cfg.max_body_bytes as u64);
            assert!(check_body_len(n, cfg.max_body_bytes).is_ok());
        }
        (p.topics, p.id, p.event, p.content_length)
    });

    let model = (|| {
        let topics = match utf8(&input.topic) {
            None => return Err("missing_topic"),
            Some(None) => return Err("invalid_topic"),
            Some(Some(t)) => model_topic_lists(&[t], cfg.max_topics)?,
        };
        let id = match utf8(&input.id) {
            None => return Err("missing_id"),
            Some(Some(id)) if is_name(id) => id.to_string(),
            Some(_) => return Err("invalid_id"),
        };
        let event = match utf8(&input.event) {
            None => None,
            Some(Some(e)) if is_name(e) => Some(e.to_string()),
            Some(_) => return Err("invalid_event"),
        };
        let content_length = match utf8(&input.content_length) {
            None => None,
            Some(Some(v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                // Saturating decimal: any number too big for u64 is over every limit.
                let n = v.bytes().fold(0u64, |n, d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                if n > cfg.max_body_bytes as u64 {
                    return Err("payload_too_large");
                }
                Some(n)
            }
            Some(_) => return Err("invalid_request"),
        };
        Ok((topics, id, event, content_length))
    })();
    same(&core, &model, "Publish::parse");
});
