//! Server-Sent Events framing and the JSON envelope. Everything here builds the bytes that go on
//! the wire; it is called once per publish per wire format, never once per subscriber.

use serde::Serialize;

/// One published event as it travels through a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub topic: String,
    pub id: String,
    pub event: Option<String>,
    pub data: String,
    /// Publish time, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// The wire formats a connection can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Plain SSE: `id`, `event`, the body as `data:` lines.
    Sse,
    /// SSE whose `data:` is the JSON envelope (`?envelope=json`).
    SseEnvelope,
    /// One WebSocket text message holding the JSON envelope.
    Ws,
    /// The admin tail stream: SSE `event: published` with the envelope.
    Tail,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Sse, Format::SseEnvelope, Format::Ws, Format::Tail];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The name on the wire of internal messages (as serde writes it).
    pub fn name(self) -> &'static str {
        match self {
            Format::Sse => "sse",
            Format::SseEnvelope => "sse_envelope",
            Format::Ws => "ws",
            Format::Tail => "tail",
        }
    }

    /// The format named `name` ([`Format::name`]).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Splits `data` at every `\r\n`, `\r` or `\n`, as an SSE parser does.
pub fn data_lines(data: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(s)
            }
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
        }
    })
}

fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push('\n');
}

fn push_data(out: &mut String, data: &str) {
    for line in data_lines(data) {
        push_field(out, "data", line);
    }
}

/// `id`, `event` and `data` of one SSE frame. `id` and `event` must already be validated names
/// (they cannot hold CR or LF); `data` may hold anything and is split into `data:` lines.
pub fn encode_sse(id: Option<&str>, event: Option<&str>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 64);
    if let Some(id) = id {
        push_field(&mut out, "id", id);
    }
    if let Some(event) = event {
        push_field(&mut out, "event", event);
    }
    push_data(&mut out, data);
    out.push('\n');
    out
}

/// The JSON envelope `{"topic","id","event","data","ts"}`.
pub fn envelope_json(ev: &Event) -> String {
    serde_json::to_string(ev).expect("an event always serialises")
}

/// The frame of `ev` in `format`.
pub fn encode(ev: &Event, format: Format) -> String {
    match format {
        Format::Sse => encode_sse(Some(&ev.id), ev.event.as_deref(), &ev.data),
        Format::SseEnvelope => encode_sse(Some(&ev.id), ev.event.as_deref(), &envelope_json(ev)),
        Format::Ws => envelope_json(ev),
        Format::Tail => encode_sse(Some(&ev.id), Some("published"), &envelope_json(ev)),
    }
}

/// The tail frame for an event dropped because its topic had no subscriber.
pub fn encode_tail_dropped(topic: &str, id: &str, ts: u64) -> String {
    let data = serde_json::json!({"topic": topic, "id": id, "reason": "no_subscribers", "ts": ts});
    encode_sse(Some(id), Some("dropped"), &data.to_string())
}

/// An SSE comment. Line breaks in `text` are replaced so it stays one comment.
pub fn encode_comment(text: &str) -> String {
    let clean: String = text.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
    format!(": {clean}\n\n")
}

/// The keepalive comment.
pub const KEEPALIVE: &str = ": keepalive\n\n";

/// The last frame of a stream whose node is shutting down: `event: reconnect` (no `id:`, so the
/// client's last event id is kept) telling the client to reconnect, which `EventSource` does by
/// itself after `retry` ms once the stream ends.
pub fn encode_reconnect(reason: &str) -> String {
    encode_sse(None, Some("reconnect"), &serde_json::json!({"reason": reason}).to_string())
}

/// The block that opens every SSE stream: the reconnect delay and the `connected` event. It has
/// no `id:` line, so it does not change the client's last event id.
pub fn encode_open(retry_ms: u64, connection_id: &str, topics: &[String]) -> String {
    let data = serde_json::json!({"connection_id": connection_id, "topics": topics});
    format!("retry: {retry_ms}\nevent: connected\ndata: {data}\n\n")
}

/// The last message of a WebSocket the gateway closes for the client to come back (the
/// WebSocket form of [`encode_reconnect`]).
pub fn encode_ws_reconnect(reason: &str) -> String {
    serde_json::json!({"type": "reconnect", "reason": reason}).to_string()
}

/// The first WebSocket message.
pub fn encode_ws_open(connection_id: &str, topics: &[String]) -> String {
    serde_json::json!({"type": "connected", "connection_id": connection_id, "topics": topics}).to_string()
}

/// An event as an SSE client sees it after parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

/// What [`SseParser`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event(ParsedEvent),
    Comment(String),
}

/// An incremental parser following the HTML Living Standard's event-stream rules: fields `id`,
/// `event`, `data`, `retry`; comments; `\r\n`, `\r` or `\n` line ends; an event is dispatched at
/// a blank line unless its data buffer is empty. Used by tests, by the runtimes when they merge
/// streams, and by clients.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: String,
    current: ParsedEvent,
    has_data: bool,
    last_was_cr: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns every item completed by it.
    pub fn push(&mut self, chunk: &str) -> Vec<SseItem> {
        let mut out = Vec::new();
        for c in chunk.chars() {
            if self.last_was_cr {
                self.last_was_cr = false;
                if c == '\n' {
                    continue;
                }
            }
            match c {
                '\r' => {
                    self.last_was_cr = true;
                    self.line(&mut out);
                }
                '\n' => self.line(&mut out),
                _ => self.pending.push(c),
            }
        }
        out
    }

    fn line(&mut self, out: &mut Vec<SseItem>) {
        let line = std::mem::take(&mut self.pending);
        if line.is_empty() {
            if self.has_data {
                let mut ev = std::mem::take(&mut self.current);
                if ev.data.ends_with('\n') {
                    ev.data.pop();
                }
                out.push(SseItem::Event(ev));
            } else {
                // A block with no data is not dispatched, but retry/id still apply: they are
                // carried to the next event (the event type is not).
                let (id, retry) = (self.current.id.take(), self.current.retry);
                self.current = ParsedEvent { id, retry, ..Default::default() };
            }
            self.has_data = false;
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(SseItem::Comment(comment.strip_prefix(' ').unwrap_or(comment).to_string()));
            return;
        }
        let (name, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line.as_str(), ""),
        };
        match name {
            "data" => {
                self.current.data.push_str(value);
                self.current.data.push('\n');
                self.has_data = true;
            }
            "event" => self.current.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.current.id = Some(value.to_string()),
            // ASCII digits only: `parse` alone would also take a leading `+`.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    self.current.retry = Some(ms);
                }
            }
            _ => {}
        }
    }
}

/// Parses a complete stream; convenient in tests.
pub fn parse_all(stream: &str) -> Vec<SseItem> {
    SseParser::new().push(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(data: &str, event: Option<&str>) -> Event {
        Event { topic: "t".into(), id: "1".into(), event: event.map(Into::into), data: data.into(), ts: 5 }
    }

    #[test]
    fn plain_frame() {
        assert_eq!(encode(&ev("hi", None), Format::Sse), "id: 1\ndata: hi\n\n");
        assert_eq!(encode(&ev("hi", Some("x")), Format::Sse), "id: 1\nevent: x\ndata: hi\n\n");
    }

    #[test]
    fn every_line_break_splits_data() {
        assert_eq!(encode_sse(None, None, "a\r\nb\rc\nd"), "data: a\ndata: b\ndata: c\ndata: d\n\n");
        assert_eq!(encode_sse(None, None, "a\n"), "data: a\ndata: \n\n");
        assert_eq!(encode_sse(None, None, ""), "data: \n\n");
        assert_eq!(encode_sse(None, None, "\r\n\r\n"), "data: \ndata: \ndata: \n\n");
    }

    #[test]
    fn empty_body_is_still_dispatched() {
        let items = parse_all(&encode_sse(Some("1"), None, ""));
        assert_eq!(items, vec![SseItem::Event(ParsedEvent { id: Some("1".into()), data: String::new(), ..Default::default() })]);
    }

    #[test]
    fn envelope_fields() {
        let v: serde_json::Value = serde_json::from_str(&encode(&ev("a\nb", None), Format::Ws)).unwrap();
        assert_eq!(v, serde_json::json!({"topic":"t","id":"1","event":null,"data":"a\nb","ts":5}));
        let frame = encode(&ev("a\nb", Some("e")), Format::SseEnvelope);
        assert!(frame.starts_with("id: 1\nevent: e\ndata: {"), "{frame}");
        assert_eq!(frame.matches('\n').count(), 4, "the envelope is one data line");
    }

    #[test]
    fn open_block_has_no_id() {
        let s = encode_open(3000, "c1", &["a".into(), "b".into()]);
        assert_eq!(s, "retry: 3000\nevent: connected\ndata: {\"connection_id\":\"c1\",\"topics\":[\"a\",\"b\"]}\n\n");
        match &parse_all(&s)[0] {
            SseItem::Event(e) => {
                assert_eq!(e.id, None);
                assert_eq!(e.retry, Some(3000));
                assert_eq!(e.event.as_deref(), Some("connected"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reconnect_frame_has_no_id() {
        let s = encode_reconnect("shutdown");
        assert_eq!(s, "event: reconnect\ndata: {\"reason\":\"shutdown\"}\n\n");
        assert_eq!(encode_ws_reconnect("token_expired"), r#"{"reason":"token_expired","type":"reconnect"}"#);
        assert!(matches!(&parse_all(&s)[0], SseItem::Event(e) if e.id.is_none()));
    }

    #[test]
    fn comments_stay_one_line() {
        assert_eq!(encode_comment("a\r\nb"), ": a  b\n\n");
        assert_eq!(parse_all(KEEPALIVE), vec![SseItem::Comment("keepalive".into())]);
    }

    #[test]
    fn parser_handles_split_crlf() {
        let mut p = SseParser::new();
        let mut items = p.push("data: a\r");
        items.extend(p.push("\ndata: b\r"));
        items.extend(p.push("\n\r\n"));
        assert_eq!(items, vec![SseItem::Event(ParsedEvent { data: "a\nb".into(), ..Default::default() })]);
    }

    // Found by fuzzing (crates/core/fuzz, target sse_frame, against a reference parser).
    #[test]
    fn id_and_retry_of_a_block_without_data_carry_to_the_next_event() {
        let items = parse_all("id: 7\nretry: 50\nevent: lost\n\ndata: x\n\n");
        let want = ParsedEvent { id: Some("7".into()), event: None, data: "x".into(), retry: Some(50) };
        assert_eq!(items, vec![SseItem::Event(want)]);
    }

    #[test]
    fn retry_must_be_only_digits() {
        for bad in ["+5", "-5", "  5", "5 ", "5ms", "", "99999999999999999999999"] {
            let items = parse_all(&format!("retry:{bad}\ndata: x\n\n"));
            assert_eq!(items, vec![SseItem::Event(ParsedEvent { data: "x".into(), ..Default::default() })], "{bad:?}");
        }
        let items = parse_all("retry: 0015\ndata: x\n\n");
        assert!(matches!(&items[0], SseItem::Event(e) if e.retry == Some(15)));
    }

    fn normalise(s: &str) -> String {
        s.replace("\r\n", "\n").replace('\r', "\n")
    }

    proptest! {
        // frame → parse → same event (line breaks come back as \n).
        #[test]
        fn frame_then_parse_is_identity(
            id in "[A-Za-z0-9_.:-]{1,40}",
            event in proptest::option::of("[A-Za-z0-9_.:-]{1,40}"),
            data in "(\\PC|\r|\n|\r\n){0,80}",
            chunk in 1usize..16,
        ) {
            let frame = encode_sse(Some(&id), event.as_deref(), &data);
            // Feed in arbitrary chunks to exercise the incremental parser.
            let mut p = SseParser::new();
            let mut items = Vec::new();
            let chars: Vec<char> = frame.chars().collect();
            for part in chars.chunks(chunk) {
                items.extend(p.push(&part.iter().collect::<String>()));
            }
            prop_assert_eq!(items, vec![SseItem::Event(ParsedEvent { id: Some(id), event, data: normalise(&data), retry: None })]);
        }

        #[test]
        fn envelope_roundtrips_any_data(data in "\\PC{0,80}|[\\x00-\\x1f\"\\\\]{0,20}") {
            let e = ev(&data, Some("x"));
            let items = parse_all(&encode(&e, Format::SseEnvelope));
            let SseItem::Event(p) = &items[0] else { panic!() };
            let v: serde_json::Value = serde_json::from_str(&p.data).unwrap();
            prop_assert_eq!(v["data"].as_str().unwrap(), data.as_str());
        }

        #[test]
        fn no_data_can_forge_a_field(data in "(\\PC|\r|\n){0,80}") {
            // Whatever the body, the frame is: one id line, then only data lines, then a blank.
            let frame = encode_sse(Some("1"), None, &data);
            let body = frame.strip_suffix("\n\n").unwrap();
            let mut lines = body.split('\n');
            prop_assert_eq!(lines.next(), Some("id: 1"));
            for l in lines { prop_assert!(l.starts_with("data: "), "{:?}", l); prop_assert!(!l.contains('\r')); }
        }
    }
}
