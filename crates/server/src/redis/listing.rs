//! The admin listings across the cluster, from Redis: the same cursors and page sizes as the
//! core's registry (cursor = last key returned, ZRANGEBYLEX from there). Only live nodes are
//! read (those whose identity is in Redis), so a dead node's records drop out the
//! moment its identity expires. Each read touches one slot (one node's keys, or the topic
//! index), so it works the same on a Redis Cluster.

use futures_util::future::join_all;
use redis::Value;
use sse_core::protocol::cluster::Presence;
use sse_core::registry::{self, ConnRecord, ConnectionView, Page, TopicView, CONN_CURSOR, TOPIC_CURSOR};
use sse_core::request::ListQuery;
use sse_core::GatewayError;

use super::conn::Conn;
use super::keys::Keys;
use super::node::text;
use super::scripts;

/// Redis did not answer a listing: 503 `unavailable`, `retry-after: 2` (like a publish).
pub fn unavailable(e: redis::RedisError) -> GatewayError {
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

/// A page of topics: the topic index, paged; each topic's count summed over the live nodes
/// that hold it (`nodes`: this node and its live peers).
pub async fn topics(conn: &Conn, keys: &Keys, nodes: &[String], q: &ListQuery) -> Result<Page<TopicView>, GatewayError> {
    let after = q.cursor.as_deref().map(|c| registry::decode_cursor(TOPIC_CURSOR, c)).transpose()?;
    let want = q.limit + 1;
    let mut from = after.unwrap_or_default();
    let mut items: Vec<TopicView> = Vec::new();
    let mut total;
    loop {
        let out: Vec<Value> =
            scripts::LIST_TOPICS.key(keys.topics()).arg(&from).arg(want).invoke_async(&mut conn.clone()).await.map_err(unavailable)?;
        total = out.first().map(int).unwrap_or(0);
        let page: Vec<(String, Vec<String>)> = out
            .get(1..)
            .unwrap_or(&[])
            .chunks_exact(2)
            .map(|p| {
                let holders = match &p[1] {
                    Value::Array(a) => a.iter().map(text).filter(|n| nodes.contains(n)).collect(),
                    _ => Vec::new(),
                };
                (text(&p[0]), holders)
            })
            .collect();
        let Some((last, _)) = page.last() else { break };
        from = last.clone();
        let full = page.len() >= want;
        let counts = counts(conn, keys, &page).await.map_err(unavailable)?;
        for ((topic, _), n) in page.into_iter().zip(counts) {
            if n > 0 && items.len() < want {
                items.push(TopicView::new(topic, n));
            }
        }
        if items.len() >= want || !full {
            break;
        }
    }
    Ok(registry::paginate(items.into_iter(), q.limit, total, |v| registry::encode_cursor(TOPIC_CURSOR, &v.topic)))
}

/// Each topic's subscribers summed over its holders (one read per node involved).
async fn counts(conn: &Conn, keys: &Keys, page: &[(String, Vec<String>)]) -> redis::RedisResult<Vec<usize>> {
    let mut by_node: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, (_, holders)) in page.iter().enumerate() {
        for n in holders {
            by_node.entry(n.as_str()).or_default().push(i);
        }
    }
    let reads = by_node.into_iter().map(|(node, idx)| {
        let mut conn = conn.clone();
        let key = keys.place(node);
        let fields: Vec<&str> = idx.iter().map(|&i| page[i].0.as_str()).collect();
        async move {
            let vals: Vec<Option<String>> = redis::cmd("HMGET").arg(key).arg(fields).query_async(&mut conn).await?;
            Ok::<_, redis::RedisError>(idx.into_iter().zip(vals).collect::<Vec<_>>())
        }
    });
    let mut counts = vec![0; page.len()];
    for r in join_all(reads).await {
        for (i, v) in r? {
            counts[i] += v.and_then(|v| Presence::parse_record(&v)).map_or(0, |(s, _)| s);
        }
    }
    Ok(counts)
}

/// A page of connections (of one topic with `q.topic`): each live node's page, merged by id.
pub async fn connections(conn: &Conn, keys: &Keys, nodes: &[String], q: &ListQuery) -> Result<Page<ConnectionView>, GatewayError> {
    let after = q.cursor.as_deref().map(|c| registry::decode_cursor(CONN_CURSOR, c)).transpose()?;
    let after = after.unwrap_or_default();
    let want = q.limit + 1;
    let reads = nodes.iter().map(|node| {
        let mut conn = conn.clone();
        let set = match &q.topic {
            Some(t) => keys.topic_conns(node, t),
            None => keys.conns(node),
        };
        let recs = keys.recs(node);
        let after = after.clone();
        async move { scripts::LIST_CONNS.key(set).key(recs).arg(after).arg(want).invoke_async::<Vec<Value>>(&mut conn).await }
    });
    let mut total = 0;
    let mut records: Vec<ConnRecord> = Vec::new();
    for out in join_all(reads).await {
        let out = out.map_err(unavailable)?;
        total += out.first().map(int).unwrap_or(0);
        records.extend(out.get(1..).unwrap_or(&[]).iter().filter_map(|v| match v {
            Value::BulkString(b) => serde_json::from_slice::<ConnRecord>(b).ok(),
            _ => None,
        }));
    }
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records.truncate(want);
    Ok(registry::paginate(records.into_iter().map(|r| r.view()), q.limit, total, |v| registry::encode_cursor(CONN_CURSOR, &v.id)))
}
