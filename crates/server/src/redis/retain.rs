//! Retention on a native cluster: each retained topic's recent events in a Redis Stream
//! `{p}{t:TOPIC}:rt` (fields `seq`, `id`, `event`, `data`, `ts`), with a per-topic sequence
//! `{p}{t:TOPIC}:rt-seq`. The publishing node appends (one script: sequence, XADD, trims) before it
//! looks up where the topic's subscribers are; a resuming subscriber's node reads the stream
//! after its attachment is recorded (docs/replay.md, "Native cluster").

use redis::{RedisResult, Value};
use sse_core::frame::Event;
use sse_core::replay::{Retained, Window};

use super::conn::Conn;
use super::keys::Keys;
use super::scripts;
use crate::hub::Snapshot;

/// Appends `ev` to its topic's stream, trimmed to `window`; returns its sequence.
pub async fn append(conn: &mut Conn, keys: &Keys, window: Window, ev: &Event) -> RedisResult<u64> {
    scripts::RETAIN_APPEND
        .key(keys.retained(&ev.topic))
        .key(keys.retained_seq(&ev.topic))
        .arg("")
        .arg("")
        .arg(window.max_count)
        .arg(window.max_age_ms.unwrap_or(0))
        .arg(&ev.id)
        .arg(ev.event.as_deref().unwrap_or(""))
        .arg(&ev.data)
        .arg(ev.ts)
        .invoke_async(conn)
        .await
}

/// The topic's retained events now (after an age trim).
pub async fn snapshot(conn: &mut Conn, keys: &Keys, topic: &str, window: Window) -> RedisResult<Snapshot> {
    let out: Vec<Value> = scripts::RETAIN_READ
        .key(keys.retained(topic))
        .key(keys.retained_seq(topic))
        .arg(window.max_age_ms.unwrap_or(0))
        .invoke_async(conn)
        .await?;
    let last_seq = match out.first() {
        Some(Value::Int(n)) => (*n).max(0) as u64,
        _ => 0,
    };
    let mut entries = Vec::new();
    if let Some(Value::Array(items)) = out.get(1) {
        for item in items {
            if let Some(r) = entry(item) {
                entries.push(r);
            }
        }
    }
    // Trimmed: the oldest kept is not the first ever given out (or none is kept).
    let trimmed = match entries.first() {
        Some(first) => first.seq > 1,
        None => last_seq > 0,
    };
    Ok(Snapshot { entries, trimmed, last_seq })
}

fn entry(item: &Value) -> Option<Retained> {
    let Value::Array(pair) = item else { return None };
    let Some(Value::Array(fields)) = pair.get(1) else { return None };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let (mut seq, mut id, mut event, mut data, mut ts) = (None, None, None, None, 0);
    for kv in fields.chunks_exact(2) {
        let (Some(k), Some(v)) = (text(&kv[0]), text(&kv[1])) else { continue };
        match k.as_str() {
            "seq" => seq = v.parse().ok(),
            "id" => id = Some(v),
            "event" => event = Some(v),
            "data" => data = Some(v),
            "ts" => ts = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    Some(Retained { seq: seq?, id: id?, event, data: data?, ts })
}
