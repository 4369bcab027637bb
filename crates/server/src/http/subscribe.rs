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
use crate::connection::Connection;
use crate::gateway::Inner;
use crate::sink::concat;

/// Most frames taken from the queue for one write.
const BATCH: usize = 512;

pub async fn sse(gw: &Arc<Inner>, h: &HeaderMap, q: &Query) -> Result<Response, GatewayError> {
    let (open, conn) = open(gw, h, q).await?;
    Ok(respond::sse(body(open, conn)))
}

/// Opens a subscriber connection: its opening block (with the replay of a resuming subscriber)
/// and the connection whose queue follows it.
pub async fn open(gw: &Arc<Inner>, h: &HeaderMap, q: &Query) -> Result<(Bytes, Connection), GatewayError> {
    let sub = Subscribe::parse(Transport::Sse, header(h, "x-sse-topic"), header(h, "last-event-id"), q, &gw.cfg.core)?;
    let mut conn = gw.open_resume(&sub.topics, sub.format, sub.last_event_id.as_deref()).await?;
    let mut open = frame::encode_open(gw.cfg.core.retry_ms, &conn.id, &sub.topics).into_bytes();
    // The replay goes out with the opening block, before anything queued.
    for f in conn.replay.drain(..) {
        open.extend_from_slice(&f);
    }
    conn.replay = Vec::new();
    Ok((Bytes::from(open), conn))
}

/// `GET /admin/api/topics/{topic}/tail`: an SSE stream of what happens on the topic.
pub async fn tail(gw: &Arc<Inner>, topic: String) -> Result<Response, GatewayError> {
    let topics = [topic];
    let conn = gw.open(&topics, Format::Tail).await?;
    let open = frame::encode_open(gw.cfg.core.retry_ms, &conn.id, &topics);
    Ok(respond::sse(body(open, conn)))
}

struct State {
    open: Option<Bytes>,
    conn: Connection,
    batch: Vec<Bytes>,
    done: bool,
}

/// The response body: the opening block, then the queue, until the client goes (the body is
/// dropped, and with it the guard that detaches the connection), the queue overflows (closed at
/// once), or the node shuts down (queued frames, then `event: reconnect`).
fn body(open: impl Into<Bytes>, conn: Connection) -> Body {
    let state = State { open: Some(open.into()), conn, batch: Vec::with_capacity(16), done: false };
    let frames = stream::unfold(state, |mut st| async move {
        if let Some(open) = st.open.take() {
            return Some((Ok::<Bytes, Infallible>(open), st));
        }
        if st.done {
            return None;
        }
        tokio::select! {
            biased;
            reason = st.conn.closer.closed() => {
                st.done = true;
                // Evicted: closed at once. Otherwise what is queued, then `event: reconnect`.
                let why = reason.reconnect_reason()?;
                while let Ok(f) = st.conn.rx.try_recv() {
                    st.batch.push(f);
                }
                st.batch.push(Bytes::from(frame::encode_reconnect(why)));
                let out = concat(&mut st.batch);
                st.conn.written();
                Some((Ok(out), st))
            }
            n = st.conn.rx.recv_many(&mut st.batch, BATCH) => {
                if n == 0 {
                    return None;
                }
                let out = concat(&mut st.batch);
                st.conn.written();
                Some((Ok(out), st))
            }
        }
    });
    Body::from_stream(frames)
}
