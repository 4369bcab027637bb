//! `GET /sse` and the admin tail: attach a connection, then stream its queue. Every frame
//! already queued goes out in one write.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream;
use sse_core::frame::{self, Format};
use sse_core::request::{Query, Subscribe};
use sse_core::topic::Transport;
use sse_core::GatewayError;

use super::{header, respond};
use crate::sink::concat;
use crate::state::GatewayState;
use crate::subscriber::{Connection, SseWrite};

pub async fn sse(gw: &Arc<GatewayState>, h: &HeaderMap, q: &Query) -> Result<Response, GatewayError> {
    let (open, conn) = open(gw, h, q).await?;
    Ok(respond::sse(body(open, conn)))
}

/// Opens a subscriber connection: its opening block (with the replay of a resuming subscriber)
/// and the connection whose queue follows it.
pub async fn open(gw: &Arc<GatewayState>, h: &HeaderMap, q: &Query) -> Result<(Bytes, Connection), GatewayError> {
    let mut sub = Subscribe::parse(Transport::Sse, header(h, "x-sse-topic"), header(h, "last-event-id"), q, &gw.cfg.core)?;
    super::authorize(gw, &mut sub, h, q)?;
    let mut conn = gw.open(&sub.topics, sub.format, sub.last_event_id.as_deref(), sub.grant.as_ref()).await?;
    conn.close_at(sub.closes_at_ms(&gw.cfg.core));
    let mut open = frame::encode_open(gw.cfg.core.retry_ms, &conn.id, &sub.topics).into_bytes();
    // The replay goes out with the opening block, before anything queued.
    for f in conn.replay.drain(..) {
        open.extend_from_slice(&f);
    }
    conn.replay = Vec::new();
    Ok((Bytes::from(open), conn))
}

/// `GET /admin/api/topics/{topic}/tail`: an SSE stream of what happens on the topic.
pub async fn tail(gw: &Arc<GatewayState>, topic: String) -> Result<Response, GatewayError> {
    let topics = [topic];
    let conn = gw.open(&topics, Format::Tail, None, None).await?;
    let open = frame::encode_open(gw.cfg.core.retry_ms, &conn.id, &topics);
    Ok(respond::sse(body(open, conn)))
}

struct Stream {
    open: Option<Bytes>,
    conn: Connection,
    done: bool,
}

/// The response body: the opening block, then the queue, until the client goes (the body is
/// dropped, and with it the guard that detaches the connection), the queue overflows (closed at
/// once), or the node shuts down (queued frames, then `event: reconnect`).
fn body(open: impl Into<Bytes>, conn: Connection) -> Body {
    let stream = Stream { open: Some(open.into()), conn, done: false };
    let frames = stream::unfold(stream, |mut st| async move {
        if let Some(open) = st.open.take() {
            return Some((Ok::<Bytes, Infallible>(open), st));
        }
        if st.done {
            return None;
        }
        let mut batch = Vec::new();
        match st.conn.next_sse_write(|f| batch.push(f)).await {
            SseWrite::End => return None,
            SseWrite::Last => st.done = true,
            SseWrite::Frames => {}
        }
        let out = concat(&mut batch);
        st.conn.written();
        Some((Ok(out), st))
    });
    Body::from_stream(frames)
}
