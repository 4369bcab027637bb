//! The admin listings across the cluster, from Redis: the same cursors and page sizes as the
//! core's registry (cursor = last key returned, ZRANGEBYLEX from there), records of dead nodes
//! skipped from the moment their identity expires.

use redis::aio::ConnectionManager;
use redis::Value;
use sse_core::registry::{self, ConnRecord, ConnectionView, Page, TopicView, CONN_CURSOR, TOPIC_CURSOR};
use sse_core::request::ListQuery;
use sse_core::GatewayError;

use super::keys::Keys;
use super::scripts;

/// Redis did not answer a listing: 503 `unavailable`, `retry-after: 2` (like a publish).
fn unavailable(e: redis::RedisError) -> GatewayError {
    tracing::warn!(error = %e, "redis unreachable: admin listing answered 503");
    GatewayError::Unavailable { what: "the cluster's registry (redis)".into(), retry_after_s: crate::objects::UNAVAILABLE_RETRY_AFTER_S }
}

fn int(v: &Value) -> usize {
    match v {
        Value::Int(n) => (*n).max(0) as usize,
        Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        _ => 0,
    }
}

fn bytes(v: &Value) -> &[u8] {
    match v {
        Value::BulkString(b) => b,
        _ => &[],
    }
}

pub async fn topics(conn: &mut ConnectionManager, keys: &Keys, q: &ListQuery) -> Result<Page<TopicView>, GatewayError> {
    let after = q.cursor.as_deref().map(|c| registry::decode_cursor(TOPIC_CURSOR, c)).transpose()?;
    let out: Vec<Value> = scripts::LIST_TOPICS
        .arg(&keys.prefix)
        .arg(after.unwrap_or_default())
        .arg(q.limit + 1)
        .invoke_async(conn)
        .await
        .map_err(unavailable)?;
    let total = out.first().map(int).unwrap_or(0);
    let items = out
        .get(1..)
        .unwrap_or(&[])
        .chunks_exact(2)
        .map(|pair| TopicView::new(String::from_utf8_lossy(bytes(&pair[0])).into_owned(), int(&pair[1])));
    Ok(registry::paginate(items, q.limit, total, |v| registry::encode_cursor(TOPIC_CURSOR, &v.topic)))
}

pub async fn connections(conn: &mut ConnectionManager, keys: &Keys, q: &ListQuery) -> Result<Page<ConnectionView>, GatewayError> {
    let after = q.cursor.as_deref().map(|c| registry::decode_cursor(CONN_CURSOR, c)).transpose()?;
    let out: Vec<Value> = scripts::LIST_CONNS
        .arg(&keys.prefix)
        .arg(after.unwrap_or_default())
        .arg(q.limit + 1)
        .arg(q.topic.as_deref().unwrap_or(""))
        .invoke_async(conn)
        .await
        .map_err(unavailable)?;
    let total = out.first().map(int).unwrap_or(0);
    let items = out.get(1..).unwrap_or(&[]).iter().filter_map(|v| serde_json::from_slice::<ConnRecord>(bytes(v)).ok()).map(|r| r.view());
    Ok(registry::paginate(items, q.limit, total, |v| registry::encode_cursor(CONN_CURSOR, &v.id)))
}
