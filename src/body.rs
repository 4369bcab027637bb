//! Reading a request body with a size limit, without buffering past the limit.

use futures_util::StreamExt;
use sse_core::{request, GatewayError};
use worker::Request;

/// Reads at most `max` bytes; 413 as soon as more arrive, 415 if the result is not UTF-8.
pub async fn read_text(req: &mut Request, max: usize) -> Result<String, GatewayError> {
    let mut out: Vec<u8> = Vec::new();
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| GatewayError::InvalidRequest(format!("body: {e}")))?;
            request::check_body_len((out.len() + chunk.len()) as u64, max)?;
            out.extend_from_slice(&chunk);
        }
    }
    request::body_text(out)
}
