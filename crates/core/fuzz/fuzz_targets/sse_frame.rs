//! SSE framing, checked by an independent reference parser written here from the WHATWG HTML
//! "event stream" interpretation rules (not the core's `SseParser`):
//!
//! - `Frame`: for any id and event type from the name alphabet and any UTF-8 data,
//!   `encode_sse` parsed by the reference parser is exactly one event with that id, that event
//!   type and that data with its line breaks turned into LF; the core parser, fed the frame in
//!   arbitrary chunks, says the same. The JSON-envelope frames carry the event unchanged.
//! - `Stream`: any bytes (decoded as UTF-8 with replacement, as the stream's decoder does), fed
//!   to the core `SseParser` in arbitrary chunks, give what the reference parser gives, as a
//!   client sees it: the same events (last event id, type, data, reconnection time) and comments.
//!
//! Input: byte 0 = mode (bit 0: `Stream`, else `Frame`; in `Frame`, bit 1: an id, bit 2: an
//! event type); byte 1 = how the core parser's input is cut into chunks (0: one chunk, else the
//! seed of chunk sizes 1..=8). `Stream`: the rest is the stream. `Frame`: the rest is id, event
//! type and data, separated by 0xFF (id and event bytes are mapped onto the name alphabet).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::{after, byte, name_from, Fields};
use libfuzzer_sys::fuzz_target;
use sse_core::frame::{encode, encode_sse, Event, Format, SseItem, SseParser};
use sse_core::names;

enum Input {
    Frame {
        id: Option<Vec<u8>>,
        event: Option<Vec<u8>>,
        data: String,
        cuts: u8,
    },
    Stream {
        bytes: Vec<u8>,
        cuts: u8,
    },
}

impl Input {
    fn new(data: &[u8]) -> Self {
        let (mode, cuts) = (byte(data, 0), byte(data, 1));
        let rest = after(data, 2);
        if mode & 1 != 0 {
            return Input::Stream {
                bytes: rest.to_vec(),
                cuts,
            };
        }
        let f = Fields::split(rest);
        let field =
            |bit: u8, i: usize| (mode & bit != 0).then(|| f.bytes(i).unwrap_or_default().to_vec());
        Input::Frame {
            id: field(2, 0),
            event: field(4, 1),
            data: f.text(2).into_owned(),
            cuts,
        }
    }
}

// --- the reference parser ------------------------------------------------------------------

/// What a client sees of one dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RefEvent {
    /// The last event ID buffer at dispatch ("" if never set).
    last_event_id: String,
    /// The event type buffer ("" means the default type, `message`).
    event_type: String,
    data: String,
    /// The stream's reconnection time at dispatch, if a `retry` field ever set it.
    reconnection_time: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RefItem {
    Event(RefEvent),
    /// A line starting with `:` (the spec ignores it; the core reports it, so it is compared
    /// too): the text after the colon, less one leading space.
    Comment(String),
}

/// The spec's lines: each ends at CRLF, a lone CR or a lone LF. Text after the last line end is
/// an incomplete line and is never processed (the spec discards it at end of stream).
fn lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['\r', '\n']) {
        out.push(&rest[..i]);
        let end = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[i + end..];
    }
    out
}

fn strip_one_space(v: &str) -> &str {
    v.strip_prefix(' ').unwrap_or(v)
}

/// The spec, step by step (html.spec.whatwg.org, "Interpreting an event stream").
fn reference_parse(text: &str) -> Vec<RefItem> {
    let mut out = Vec::new();
    let mut data = String::new();
    let mut event_type = String::new();
    let mut last_event_id = String::new();
    let mut reconnection_time: Option<u64> = None;
    for line in lines(text) {
        if line.is_empty() {
            // Dispatch the event.
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            out.push(RefItem::Event(RefEvent {
                last_event_id: last_event_id.clone(),
                event_type: std::mem::take(&mut event_type),
                data: std::mem::take(&mut data),
                reconnection_time,
            }));
            continue;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(RefItem::Comment(strip_one_space(comment).to_string()));
            continue;
        }
        // Field name up to the first colon; the value after it, less one leading space. No
        // colon: the whole line is the name and the value is empty.
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, strip_one_space(v)),
            None => (line, ""),
        };
        match name {
            "event" => event_type = value.to_string(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            // An id holding NUL is ignored.
            "id" if !value.contains('\0') => last_event_id = value.to_string(),
            // Only ASCII digits; a number too big to hold is ignored too.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    reconnection_time = Some(ms);
                }
            }
            _ => {} // Any other field, or one ignored above.
        }
    }
    out
}

// --- the core, as a client sees it ----------------------------------------------------------

/// Splits `text` into chunks of 1..=8 characters, sizes drawn from a generator seeded with
/// `cuts`; `cuts` 0 is one chunk.
fn chunks(text: &str, cuts: u8) -> Vec<&str> {
    if cuts == 0 {
        return vec![text];
    }
    let mut state = u32::from(cuts);
    let mut next_size = move || {
        // xorshift32
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 8) as usize + 1
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut n = 0;
    let mut want = next_size();
    for (i, _) in text.char_indices() {
        if n == want {
            out.push(&text[start..i]);
            start = i;
            n = 0;
            want = next_size();
        }
        n += 1;
    }
    out.push(&text[start..]);
    out
}

fn core_parse(text: &str, cuts: u8) -> Vec<SseItem> {
    let mut p = SseParser::new();
    let mut items = Vec::new();
    for c in chunks(text, cuts) {
        items.extend(p.push(c));
    }
    items
}

/// The core's items as a client sees them: an event's `id` sets the last event id, which holds
/// until the next one; a `retry` sets the reconnection time, which holds likewise.
fn client_view(items: Vec<SseItem>) -> Vec<RefItem> {
    let mut last_event_id = String::new();
    let mut reconnection_time = None;
    items
        .into_iter()
        .map(|item| match item {
            SseItem::Event(e) => {
                if let Some(id) = e.id {
                    last_event_id = id;
                }
                if e.retry.is_some() {
                    reconnection_time = e.retry;
                }
                RefItem::Event(RefEvent {
                    last_event_id: last_event_id.clone(),
                    event_type: e.event.unwrap_or_default(),
                    data: e.data,
                    reconnection_time,
                })
            }
            SseItem::Comment(c) => RefItem::Comment(c),
        })
        .collect()
}

fn normalise(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

fuzz_target!(|data: &[u8]| match Input::new(data) {
    Input::Frame {
        id,
        event,
        data,
        cuts,
    } => {
        let id = id.map(|b| name_from(&b));
        let event = event.map(|b| name_from(&b));
        for n in id.iter().chain(event.iter()) {
            assert!(
                names::check_id(n).is_ok() && names::check_event(n).is_ok(),
                "{n:?}"
            );
        }
        let frame = encode_sse(id.as_deref(), event.as_deref(), &data);
        let expected = RefEvent {
            last_event_id: id.clone().unwrap_or_default(),
            event_type: event.clone().unwrap_or_default(),
            data: normalise(&data),
            reconnection_time: None,
        };
        assert_eq!(
            reference_parse(&frame),
            vec![RefItem::Event(expected)],
            "frame {frame:?}"
        );
        // The core parser agrees, field for field, however the frame is cut.
        let core = core_parse(&frame, cuts);
        assert_eq!(core.len(), 1, "{core:?}");
        let SseItem::Event(e) = &core[0] else {
            panic!("{core:?}")
        };
        assert_eq!(
            (&e.id, &e.event, &e.data, e.retry),
            (&id, &event, &normalise(&data), None)
        );

        // The envelope formats: one event whose data is the JSON of the event, unchanged.
        let ev = Event {
            topic: "t".into(),
            id: id.unwrap_or_else(|| "1".into()),
            event,
            data,
            ts: 7,
        };
        for format in [Format::SseEnvelope, Format::Tail] {
            let items = reference_parse(&encode(&ev, format));
            let [RefItem::Event(got)] = items.as_slice() else {
                panic!("{format:?}: {items:?}")
            };
            assert_eq!(got.last_event_id, ev.id);
            let v: serde_json::Value = serde_json::from_str(&got.data).expect("envelope is JSON");
            assert_eq!(v["data"].as_str(), Some(ev.data.as_str()), "{format:?}");
            assert_eq!(v["id"].as_str(), Some(ev.id.as_str()));
        }
        let v: serde_json::Value =
            serde_json::from_str(&encode(&ev, Format::Ws)).expect("ws message is JSON");
        assert_eq!(v["data"].as_str(), Some(ev.data.as_str()));
    }
    Input::Stream { bytes, cuts } => {
        let text = String::from_utf8_lossy(&bytes);
        let want = reference_parse(&text);
        let got = client_view(core_parse(&text, cuts));
        assert_eq!(got, want, "stream {text:?}");
    }
});
