//! Just enough hand-written HTTP/1.1 for a load generator: response heads, a chunked-body
//! decoder, and a keep-alive connection that sends one request at a time.

use std::net::SocketAddr;
use std::time::Duration;

use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The parts of a response head the generator needs.
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub status: u16,
    /// Bytes up to and including the blank line.
    pub len: usize,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub close: bool,
}

/// Parses a response head at the start of `buf`: `None` while incomplete.
pub fn parse_head(buf: &[u8]) -> Option<Result<Head, String>> {
    let end = memmem::find(buf, b"\r\n\r\n")?;
    let text = match std::str::from_utf8(&buf[..end]) {
        Ok(t) => t,
        Err(_) => return Some(Err("response head is not UTF-8".into())),
    };
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = match status_line.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()) {
        Some(s) if status_line.starts_with("HTTP/1.") => s,
        _ => return Some(Err(format!("bad status line {status_line:?}"))),
    };
    let mut head = Head { status, len: end + 4, ..Default::default() };
    for l in lines {
        let Some((k, v)) = l.split_once(':') else { continue };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            head.content_length = v.parse().ok();
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            head.close = v.eq_ignore_ascii_case("close");
        }
    }
    Some(Ok(head))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { n: u64, digits: bool, ext: bool },
    Data(u64),
    DataEnd,
    Trailer { blank: bool },
    Done,
}

/// Incremental decoder of a `transfer-encoding: chunked` body.
#[derive(Debug, Clone)]
pub struct ChunkDecoder {
    st: Chunk,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self { st: Chunk::Size { n: 0, digits: false, ext: false } }
    }
}

impl ChunkDecoder {
    /// Appends the decoded bytes of `input` to `out`. `Ok(true)` once the last chunk was seen.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<bool, &'static str> {
        while !input.is_empty() {
            match self.st {
                Chunk::Data(r) => {
                    let take = (r as usize).min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    let left = r - take as u64;
                    self.st = if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) };
                }
                Chunk::Size { n, digits, ext } => {
                    let b = input[0];
                    input = &input[1..];
                    self.st = match b {
                        b'\n' if digits => {
                            if n == 0 {
                                Chunk::Trailer { blank: true }
                            } else {
                                Chunk::Data(n)
                            }
                        }
                        b'\n' => return Err("empty chunk size"),
                        b'\r' => Chunk::Size { n, digits, ext },
                        _ if ext => Chunk::Size { n, digits, ext },
                        b';' => Chunk::Size { n, digits, ext: true },
                        b' ' | b'\t' => Chunk::Size { n, digits, ext },
                        _ => {
                            let d = (b as char).to_digit(16).ok_or("bad chunk size")? as u64;
                            if n > (u64::MAX >> 8) {
                                return Err("chunk size too large");
                            }
                            Chunk::Size { n: n * 16 + d, digits: true, ext }
                        }
                    };
                }
                Chunk::DataEnd => {
                    let b = input[0];
                    input = &input[1..];
                    match b {
                        b'\r' => {}
                        b'\n' => self.st = Chunk::Size { n: 0, digits: false, ext: false },
                        _ => return Err("chunk data not followed by CRLF"),
                    }
                }
                Chunk::Trailer { blank } => {
                    let b = input[0];
                    input = &input[1..];
                    match b {
                        b'\r' => {}
                        b'\n' if blank => self.st = Chunk::Done,
                        b'\n' => self.st = Chunk::Trailer { blank: true },
                        _ => self.st = Chunk::Trailer { blank: false },
                    }
                }
                Chunk::Done => return Ok(true),
            }
        }
        Ok(self.st == Chunk::Done)
    }
}

/// A response as the publisher sees it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One keep-alive client connection: one request at a time, reconnects after a close.
pub struct Client {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    pub connects: u64,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None, buf: Vec::with_capacity(4096), connects: 0 }
    }

    async fn connect(&mut self) -> std::io::Result<()> {
        let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(self.addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        s.set_nodelay(true)?;
        self.stream = Some(s);
        self.buf.clear();
        self.connects += 1;
        Ok(())
    }

    /// Sends `req` (a whole request) and reads the response. Never retries: a publish that may
    /// have reached the server is not sent twice. On an error the connection is dropped and
    /// the next request opens a new one.
    pub async fn request(&mut self, req: &[u8], timeout: Duration) -> std::io::Result<Response> {
        match tokio::time::timeout(timeout, self.request_inner(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out"))
            }
        }
    }

    async fn request_inner(&mut self, req: &[u8]) -> std::io::Result<Response> {
        if self.stream.is_none() {
            self.connect().await?;
        }
        let s = self.stream.as_mut().expect("connected");
        s.write_all(req).await?;
        let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
        loop {
            if let Some(h) = parse_head(&self.buf) {
                let head = h.map_err(bad)?;
                let s = self.stream.as_mut().expect("connected");
                let body = if let Some(n) = head.content_length {
                    while self.buf.len() < head.len + n {
                        read_more(s, &mut self.buf).await?;
                    }
                    let body = self.buf[head.len..head.len + n].to_vec();
                    self.buf.drain(..head.len + n);
                    body
                } else if head.chunked {
                    let mut dec = ChunkDecoder::default();
                    let mut body = Vec::new();
                    let mut pos = head.len;
                    loop {
                        // Feed byte ranges; the decoder stops at the end of the body.
                        let done = feed_until_done(&mut dec, &self.buf[pos..], &mut body).map_err(|e| bad(e.to_string()))?;
                        if let Some(used) = done {
                            pos += used;
                            break;
                        }
                        pos = self.buf.len();
                        read_more(s, &mut self.buf).await?;
                    }
                    self.buf.drain(..pos);
                    body
                } else {
                    // No length: the body ends when the server closes.
                    loop {
                        match s.read_buf(&mut self.buf).await? {
                            0 => break,
                            _ => continue,
                        }
                    }
                    let body = self.buf[head.len..].to_vec();
                    self.stream = None;
                    return Ok(Response { status: head.status, body });
                };
                if head.close {
                    self.stream = None;
                }
                return Ok(Response { status: head.status, body });
            }
            let s = self.stream.as_mut().expect("connected");
            read_more(s, &mut self.buf).await?;
        }
    }
}

/// Feeds `input` one byte range at a time and reports how many bytes the body used once done.
fn feed_until_done(dec: &mut ChunkDecoder, input: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, &'static str> {
    // Byte by byte near the end is fine: publish responses are small.
    for (i, b) in input.iter().enumerate() {
        if dec.feed(std::slice::from_ref(b), out)? {
            return Ok(Some(i + 1));
        }
    }
    Ok(None)
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.reserve(4096);
    match s.read_buf(buf).await? {
        0 => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed by the server")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head() {
        let h = parse_head(b"HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello").unwrap().unwrap();
        assert_eq!((h.status, h.content_length, h.close, h.chunked), (202, Some(5), true, false));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").is_none());
        let h = parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").unwrap().unwrap();
        assert!(h.chunked);
    }

    #[test]
    fn chunked_in_pieces() {
        let mut wire = b"5D\r\n".to_vec();
        wire.extend(std::iter::repeat_n(b'x', 0x5d));
        wire.extend_from_slice(b"\r\n3;ext=1\r\nabc\r\n0\r\n\r\n");
        for split in 1..wire.len() {
            let mut d = ChunkDecoder::default();
            let mut out = Vec::new();
            let a = d.feed(&wire[..split], &mut out).unwrap();
            let b = d.feed(&wire[split..], &mut out).unwrap();
            assert!(!a || split == wire.len());
            assert!(b);
            assert_eq!(out.len(), 0x5d + 3);
            assert_eq!(&out[0x5d..], b"abc");
        }
    }
}
