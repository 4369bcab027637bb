//! The listener of [`Gateway::serve`](crate::Gateway::serve): one accept loop that serves most
//! requests with hyper (HTTP/1.1, HTTP/2, WebSocket upgrades) through the gateway's axum app,
//! and holds SSE subscribers on the bare socket.
//!
//! An SSE subscriber is almost all of a gateway's connections, and nearly all of them idle. A
//! hyper connection keeps a read buffer and a write buffer (tens of KiB) for its whole life; a
//! subscriber needs neither. So the first request head of each connection is read here: when it
//! is a plain `GET /sse` over HTTP/1.1 with no body, the stream is written straight to the
//! socket (chunked, one write per batch of frames) and the connection keeps only its queue.
//! Anything else — another path, HTTP/2, a body, a head that does not parse, more bytes after
//! the head — goes to hyper with the bytes already read put back in front of the socket, so it
//! is answered exactly as before.

use std::borrow::Cow;
use std::future::{poll_fn, Future};
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use axum::Router;
use bytes::{Buf, Bytes};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use sse_core::cors::CredentialedOrigins;
use sse_core::routes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::http::{self, respond};
use crate::sink::writer::{push_chunk, Writer};
use crate::sink::CloseReason;
use crate::state::GatewayState;
use crate::subscriber::{Connection, SseWrite};

/// A first head longer than this is left to hyper (which enforces the header limits).
const MAX_SNIFF: usize = 8 * 1024;
/// Most headers parsed here; a request with more goes to hyper.
const MAX_HEADERS: usize = 48;

/// Serves `app` on `listener` until `signal` completes, then closes every subscriber with
/// `event: reconnect` and waits (at most `grace`) for the hyper connections to finish.
pub(crate) async fn serve(
    inner: Arc<GatewayState>,
    app: Router,
    listener: TcpListener,
    signal: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> io::Result<()> {
    let hyper = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let graceful = GracefulShutdown::new();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(inner.clone(), app.clone(), hyper.clone(), graceful.watcher(), stream));
                }
                Err(e) => {
                    // Out of file descriptors, or the peer gave up before the accept: keep going.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut signal => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: telling subscribers to reconnect elsewhere");
    inner.hub.close_all(CloseReason::Shutdown);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace elapsed with connections still open");
    }
    Ok(())
}

/// One accepted connection: its first head decides who serves it.
async fn connection(inner: Arc<GatewayState>, app: Router, hyper: Arc<auto::Builder<TokioExecutor>>, watcher: Watcher, stream: TcpStream) {
    let mut head = Vec::with_capacity(1024);
    let limit = Duration::from_millis(inner.cfg.request_head_timeout_ms);
    let deadline = tokio::time::Instant::now() + limit;
    let direct = loop {
        match tokio::time::timeout_at(deadline, stream_read(&stream, &mut head)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!("no request head within {limit:?} (REQUEST_HEAD_TIMEOUT_MS): connection closed");
                return;
            }
            Ok(Ok(_)) => {}
        }
        match sniff(&head) {
            Sniff::Sse(req) => break Some(req),
            Sniff::Other => break None,
            Sniff::Partial if head.len() >= MAX_SNIFF => break None,
            Sniff::Partial => {}
        }
    };
    match direct {
        Some(req) => {
            drop((head, app, hyper, watcher));
            sse(&inner, stream, req).await;
        }
        None => serve_hyper(app, hyper, watcher, Rewind { prefix: Bytes::from(head), inner: stream }).await,
    }
}

async fn serve_hyper(app: Router, hyper: Arc<auto::Builder<TokioExecutor>>, watcher: Watcher, io: Rewind) {
    let conn = hyper.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(app)).into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Reads what is available onto `buf` (grows it by at most 1 KiB at a time).
async fn stream_read(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        let start = buf.len();
        buf.resize(start + 1024, 0);
        match stream.try_read(&mut buf[start..]) {
            Ok(n) => {
                buf.truncate(start + n);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => buf.truncate(start),
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
}

/// A `GET /sse` head this module serves itself.
#[derive(Debug)]
struct SseRequest {
    headers: HeaderMap,
    query: String,
}

#[derive(Debug)]
enum Sniff {
    Sse(SseRequest),
    /// Not for this module: hyper answers it.
    Other,
    /// The head is not complete yet.
    Partial,
}

/// Whether `buf` starts with a complete head of a plain HTTP/1.1 `GET /sse` with no body and
/// nothing after it.
fn sniff(buf: &[u8]) -> Sniff {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Sniff::Partial,
        Err(_) => return Sniff::Other,
    };
    let (Some("GET"), Some(target), Some(1)) = (req.method, req.path, req.version) else { return Sniff::Other };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if len != buf.len() || !matches!(routes::route("GET", path), Ok(routes::Route::Sse)) {
        return Sniff::Other;
    }
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_bytes(h.value)) else {
            return Sniff::Other;
        };
        headers.append(name, value);
    }
    let bodyless = |name: &str| headers.get(name).is_none_or(|v| name == "content-length" && v == "0");
    if !bodyless("content-length") || !bodyless("transfer-encoding") || headers.contains_key("upgrade") {
        return Sniff::Other;
    }
    Sniff::Sse(SseRequest { headers, query: query.to_string() })
}

/// Serves a subscriber on the bare socket: the response head and opening block, then its queue
/// as chunks until the client goes, the queue overflows, or the gateway closes it.
async fn sse(inner: &Arc<GatewayState>, stream: TcpStream, req: SseRequest) {
    let opened = http::open_sse(inner, &req.headers, &req.query).await;
    let origins = &inner.cfg.core.credentialed_origins;
    let origin = req.headers.get("origin").cloned();
    drop(req);
    let (open, conn) = match opened {
        Ok(ok) => ok,
        Err(e) => {
            // Counted, logged and answered as the hyper path does.
            let answer = full_response(respond::cors(http::rejected(inner, "GET", "/sse", &e), origins, origin.as_ref())).await;
            let _ = write_all(&stream, None, &answer).await;
            return;
        }
    };
    let top = sse_head_for(origins, origin.as_ref());
    let mut head = Vec::with_capacity(top.len() + open.len() + 12);
    head.extend_from_slice(&top);
    push_chunk(&mut head, &open);
    if write_all(&stream, Some(&conn), &head).await.is_err() {
        return;
    }
    drop(head);
    conn.written();
    // The rest of the connection's life in a task of its own: this one (opening the
    // subscription, reading the head) is larger, and ends here.
    tokio::spawn(stream_queue(stream, conn, inner.hub.writers.assign()));
}

/// A write buffer up to this size is kept for the connection's next write (most events are
/// small); a larger one is given back, so that an idle connection holds at most this much.
const KEEP_WRITE_BUFFER: usize = 512;

/// What a subscriber's task does next.
enum Next {
    Write(SseWrite),
    /// The socket has something to read (or failed): the client may have gone.
    Readable(io::Result<()>),
}

async fn stream_queue(stream: TcpStream, mut conn: Connection, writer: Arc<Writer>) {
    // From here on the writer writes the connection's frames; this task writes only what the
    // writer leaves to it (what a socket did not take at once, the last frames of a close), and
    // watches the socket for the client going away.
    let stream = conn.rx.use_writer(writer, stream);
    conn.rx.hand_back();
    let mut out = Vec::new();
    loop {
        // Every frame queued goes out in the same write, each its own chunk, after what the
        // writer could not write. One poll watches the queue (and a close) first, then the
        // socket: no future is built per wake.
        out.clear();
        let next = poll_fn(|cx| {
            let unsent = conn.rx.take_unsent(&mut out);
            if let Poll::Ready(write) = conn.poll_sse_write(cx, |f| push_chunk(&mut out, &f)) {
                return Poll::Ready(Next::Write(write));
            }
            if unsent {
                return Poll::Ready(Next::Write(SseWrite::Frames));
            }
            stream.poll_read_ready(cx).map(Next::Readable)
        })
        .await;
        match next {
            Next::Readable(ready) => {
                if ready.is_err() || client_gone(&stream) {
                    return;
                }
            }
            Next::Write(SseWrite::End) => return,
            Next::Write(SseWrite::Frames) => {
                if write_all(&stream, Some(&conn), &out).await.is_err() {
                    return;
                }
                conn.written();
                conn.rx.hand_back();
            }
            Next::Write(SseWrite::Last) => {
                out.extend_from_slice(b"0\r\n\r\n");
                let _ = write_all(&stream, None, &out).await;
                conn.written();
                return;
            }
        }
        if out.capacity() > KEEP_WRITE_BUFFER {
            out = Vec::new();
        }
    }
}

/// After the head, a subscriber sends nothing: read and discard whatever comes; `true` once the
/// client has closed its side (or the socket failed).
fn client_gone(stream: &TcpStream) -> bool {
    let mut sink = [0u8; 256];
    loop {
        match stream.try_read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Writes all of `buf`. While a subscriber's write waits for a slow client, its eviction (queue
/// full) ends it at once.
async fn write_all(stream: &TcpStream, conn: Option<&Connection>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match stream.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match conn {
                Some(c) => {
                    tokio::select! {
                        biased;
                        reason = c.closer.closed() => {
                            if reason == CloseReason::Evicted {
                                return Err(io::ErrorKind::TimedOut.into());
                            }
                            // Shutdown or isolation: finish this write; the caller then ends
                            // the stream.
                            stream.writable().await?;
                        }
                        w = stream.writable() => w?,
                    }
                }
                None => stream.writable().await?,
            },
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The status line and headers of `resp` (built by `respond`, as on the hyper path), plus
/// `extra`, then the blank line.
fn response_head(resp: &Response, extra: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let status = resp.status();
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    for (k, v) in resp.headers() {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "{extra}\r\n\r\n");
    out
}

/// The head of every SSE response (`respond::sse`'s headers, chunked), rendered once.
fn sse_head() -> &'static [u8] {
    static HEAD: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    HEAD.get_or_init(|| response_head(&respond::sse(Body::empty()), "transfer-encoding: chunked"))
}

/// The SSE head for a request with `origin`: the one rendered once, unless
/// `CREDENTIALED_ORIGINS` is set (its CORS headers then depend on the `Origin`).
fn sse_head_for(origins: &CredentialedOrigins, origin: Option<&HeaderValue>) -> Cow<'static, [u8]> {
    if origins.is_empty() {
        return Cow::Borrowed(sse_head());
    }
    Cow::Owned(response_head(&respond::cors(respond::sse(Body::empty()), origins, origin), "transfer-encoding: chunked"))
}

/// A whole response (an error: small, in memory), after which the connection is closed.
async fn full_response(resp: Response) -> Vec<u8> {
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut out =
        response_head(&Response::from_parts(parts, Body::empty()), &format!("content-length: {}\r\nconnection: close", body.len()));
    out.extend_from_slice(&body);
    out
}

/// A socket with bytes already read from it put back in front.
struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse_req(s: &str) -> Option<SseRequest> {
        match sniff(s.as_bytes()) {
            Sniff::Sse(r) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn only_a_plain_complete_get_sse_is_served_here() {
        let r = sse_req("GET /sse?topic=a,b HTTP/1.1\r\nhost: x\r\nx-sse-topic: c\r\n\r\n").expect("served here");
        assert_eq!(r.query, "topic=a,b");
        assert_eq!(r.headers.get("x-sse-topic").unwrap(), "c");
        assert!(sse_req("GET /sse HTTP/1.1\r\ncontent-length: 0\r\n\r\n").is_some());
        assert!(matches!(sniff(b"GET /sse HTTP/1.1\r\nhost: x\r\n"), Sniff::Partial));
        for other in [
            "GET /sse HTTP/1.0\r\n\r\n",
            "POST /sse HTTP/1.1\r\n\r\n",
            "HEAD /sse HTTP/1.1\r\n\r\n",
            "GET /ws HTTP/1.1\r\n\r\n",
            "GET /sse/ HTTP/1.1\r\n\r\n",
            "GET /healthz HTTP/1.1\r\n\r\n",
            "GET /sse HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc",
            "GET /sse HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            "GET /sse HTTP/1.1\r\nupgrade: websocket\r\n\r\n",
            "GET /sse HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET /sse HTTP/1.1\r\nx-sse-topic: a\0b\r\n\r\n",
        ] {
            assert!(matches!(sniff(other.as_bytes()), Sniff::Other), "{other:?} goes to hyper");
        }
    }

    #[test]
    fn the_sse_head_follows_credentialed_origins() {
        let head = |origins: &str, origin: Option<&str>| {
            let origins = CredentialedOrigins::parse(origins).unwrap();
            String::from_utf8(sse_head_for(&origins, origin.map(HeaderValue::from_str).map(Result::unwrap).as_ref()).into_owned()).unwrap()
        };
        let plain = head("", Some("https://app.example.com"));
        assert!(plain.contains("access-control-allow-origin: *\r\n") && !plain.contains("credentials"), "{plain}");
        let listed = head("https://app.example.com", Some("https://app.example.com"));
        assert!(listed.starts_with("HTTP/1.1 200 OK\r\n") && listed.ends_with("transfer-encoding: chunked\r\n\r\n"), "{listed}");
        assert!(listed.contains("access-control-allow-origin: https://app.example.com\r\n"), "{listed}");
        assert!(listed.contains("access-control-allow-credentials: true\r\n") && listed.contains("vary: origin\r\n"), "{listed}");
        let other = head("https://app.example.com", Some("https://evil.example.com"));
        assert!(other.contains("access-control-allow-origin: *\r\n") && !other.contains("credentials"), "{other}");
        assert!(head("https://app.example.com", None).contains("access-control-allow-origin: *\r\n"));
    }

    #[tokio::test]
    async fn errors_are_json_with_their_headers() {
        let e = sse_core::GatewayError::Unavailable { what: "x".into(), retry_after_s: 2 };
        let text = String::from_utf8(full_response(respond::error(&e)).await).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{text}");
        assert!(text.contains("retry-after: 2\r\n") && text.contains("content-type: application/json\r\n"), "{text}");
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "unavailable");
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
    }
}
