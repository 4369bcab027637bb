//! `GET /ws`: a WebSocket subscriber. Attached before the upgrade (so a 503 is an HTTP answer),
//! then each queued frame (the JSON envelope) is one text message. The server pings every
//! heartbeat and closes a client that left two pings unanswered. Client messages are ignored;
//! one over `WS_MAX_MESSAGE_BYTES` closes the connection with 1009.

use std::sync::Arc;

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use sse_core::frame::{self, Format};
use sse_core::request::{Query, Subscribe};
use sse_core::topic::Transport;
use sse_core::GatewayError;

use super::header;
use crate::sink::CloseReason;
use crate::state::GatewayState;
use crate::subscriber::Connection;

/// Most queued frames fed to the socket before one flush.
const WS_BATCH: usize = 64;

pub async fn subscribe(gw: &Arc<GatewayState>, parts: &mut Parts, q: &Query) -> Result<Response, GatewayError> {
    let h = &parts.headers;
    let upgrade = header(h, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case(b"websocket"));
    if !upgrade {
        return Err(GatewayError::UpgradeRequired);
    }
    let mut sub = Subscribe::parse(Transport::Ws, header(h, "x-sse-topic"), header(h, "last-event-id"), q, &gw.cfg.core)?;
    super::authorize(gw, &mut sub, h, q)?;
    let ws = WebSocketUpgrade::from_request_parts(parts, &())
        .await
        .map_err(|e| GatewayError::InvalidRequest(format!("websocket upgrade: {e}")))?;
    let mut conn = gw.open(&sub.topics, Format::Ws, sub.last_event_id.as_deref(), sub.grant.as_ref()).await?;
    conn.close_at(sub.closes_at_ms(&gw.cfg.core));
    let hello = frame::encode_ws_open(&conn.id, &sub.topics);
    let heartbeat = std::time::Duration::from_millis(gw.cfg.core.heartbeat_ms);
    let max = gw.cfg.ws_max_message_bytes;
    Ok(ws.max_message_size(max).max_frame_size(max).on_upgrade(move |socket| session(socket, conn, hello, heartbeat)))
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))
}

async fn session(socket: WebSocket, mut conn: Connection, hello: String, heartbeat: std::time::Duration) {
    let (mut tx, mut rx) = socket.split();
    if tx.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    // The replay (retained events after the client's last id, or `replay_gap` messages), before
    // anything queued.
    for f in std::mem::take(&mut conn.replay) {
        let Ok(text) = Utf8Bytes::try_from(f) else { continue };
        if tx.feed(Message::Text(text)).await.is_err() {
            return;
        }
    }
    if tx.flush().await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval(heartbeat);
    ping.tick().await;
    let mut unanswered = 0u32;
    let mut batch: Vec<Bytes> = Vec::with_capacity(WS_BATCH);
    let goodbye = loop {
        tokio::select! {
            biased;
            reason = conn.closer.closed() => break Some(match reason {
                CloseReason::Shutdown => close(close_code::RESTART, "server restarting: reconnect"),
                CloseReason::Isolated => close(close_code::AGAIN, "node cut off from the cluster: reconnect"),
                CloseReason::Evicted => close(close_code::POLICY, "too slow: queue full"),
                CloseReason::TokenExpired => {
                    // The message first, so that a client reading messages (not close codes)
                    // knows to come back with a fresh token.
                    let reconnect = frame::encode_ws_reconnect(sse_core::token::EXPIRED_REASON);
                    if tx.send(Message::Text(reconnect.into())).await.is_err() {
                        break None;
                    }
                    let (code, reason) = sse_core::token::EXPIRED_CLOSE;
                    close(code, reason)
                }
            }),
            n = conn.rx.recv_many(&mut batch, WS_BATCH) => {
                if n == 0 {
                    break Some(close(close_code::NORMAL, "closed"));
                }
                let mut failed = false;
                for f in batch.drain(..) {
                    let text = match Utf8Bytes::try_from(f) {
                        Ok(t) => t,
                        Err(_) => continue,
                    };
                    if tx.feed(Message::Text(text)).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || tx.flush().await.is_err() {
                    break None;
                }
                conn.written();
            }
            _ = ping.tick() => {
                if unanswered >= 2 {
                    break Some(close(close_code::AWAY, "no pong for two heartbeats"));
                }
                unanswered += 1;
                if tx.send(Message::Ping(Bytes::new())).await.is_err() {
                    break None;
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Pong(_))) => unanswered = 0,
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let text = e.to_string().to_ascii_lowercase();
                    let too_big = text.contains("too long") || text.contains("space limit");
                    break too_big.then(|| close(close_code::SIZE, "message too big"));
                }
            },
        }
    };
    if let Some(msg) = goodbye {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            let _ = tx.send(msg).await;
            let _ = tx.close().await;
        })
        .await;
    }
    drop(conn);
}
