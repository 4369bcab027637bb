//! Reading a publish body: at most `max` bytes (413 as soon as more arrive), within a time
//! limit (408), UTF-8 (415).

use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use sse_core::{request, GatewayError};

pub async fn read_text(body: Body, max: usize, timeout_ms: u64) -> Result<String, GatewayError> {
    let read = async move {
        let mut body = body;
        let mut out: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| GatewayError::InvalidRequest(format!("body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                request::check_body_len((out.len() + data.len()) as u64, max)?;
                out.extend_from_slice(&data);
            }
        }
        request::body_text(out)
    };
    match tokio::time::timeout(Duration::from_millis(timeout_ms), read).await {
        Ok(result) => result,
        Err(_) => Err(GatewayError::BodyTimeout { ms: timeout_ms }),
    }
}

/// Whether the request says a body follows (`content-length` > 0 or chunked) and the client is
/// already sending it (not waiting for `100 Continue`, which is then never sent).
pub fn declared(h: &axum::http::HeaderMap) -> bool {
    if h.get("expect").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")) {
        return false;
    }
    let length = h.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    length.is_some_and(|n| n > 0) || h.contains_key("transfer-encoding")
}

/// How long an unread body may take to arrive before the connection is closed instead.
const DISCARD_WITHIN: Duration = Duration::from_secs(2);

/// Reads and throws away an unread body (at most a few times `max` bytes, within a short time)
/// so that the client, which may still be sending it, gets its answer and keeps the connection.
/// Past either limit the body is dropped and the connection closed.
pub fn discard_in_background(body: Body, max: usize) {
    let budget = (max as u64).saturating_mul(4).max(1 << 20);
    tokio::spawn(async move {
        let mut body = body;
        let mut seen = 0u64;
        let _ = tokio::time::timeout(DISCARD_WITHIN, async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    seen += data.len() as u64;
                    if seen > budget {
                        break;
                    }
                }
            }
        })
        .await;
    });
}
