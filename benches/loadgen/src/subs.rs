//! `sse-loadgen subs`: one subscriber process. It opens its share of SSE connections (raw TCP,
//! one request each, from several 127.0.0.x source addresses), reads every stream, and records
//! for each stamped event the publish→receive latency. The coordinator drives it over
//! stdin/stdout, one JSON line per command:
//!
//!   (printed once)  {"type":"ready","connected":..,"failed":..,"failed_idx":[..],...}
//!   count           {"type":"count","connected":..,"closed":..,"warm":..,"received":..,...}
//!   stats           the same plus "hist": [[µs, n], ...] and "bytes"
//!   reset           clears the measured counts and the histogram (not the warm-up count)
//!   quit            exits (sockets close with a reset; SO_LINGER 0)
//!
//! It also exits by itself after `max_secs`, or when stdin closes (the coordinator is gone).

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::http::{parse_head, ChunkDecoder};
use crate::sse::{Frame, Scanner};
use crate::util;

/// What one subscriber process does (handed over as JSON in `--spec`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// Where subscribers connect; subscribers of one topic are spread over them.
    pub targets: Vec<SocketAddr>,
    /// Request path with `{topic}` in it, e.g. `/sse?topic={topic}` or `/sub/{topic}`.
    pub path: String,
    /// Topic `k` is named `{topic_prefix}{k}`.
    pub topic_prefix: String,
    pub topics: usize,
    /// Index of the first topic: connection `i` subscribes to topic `topic_base + i mod topics`
    /// (several processes can then hold disjoint groups of topics under one prefix).
    #[serde(default)]
    pub topic_base: usize,
    /// Global index of this process's first connection, and how many it opens.
    pub first: usize,
    pub count: usize,
    pub src_ips: Vec<IpAddr>,
    pub connect_concurrency: usize,
    pub max_secs: u64,
}

impl Spec {
    /// Topic index of global connection `i`.
    pub fn topic_of(&self, i: usize) -> usize {
        self.topic_base + i % self.topics.max(1)
    }

    /// Target of global connection `i`: the subscribers of one topic go round the targets.
    pub fn target_of(&self, i: usize) -> SocketAddr {
        self.targets[(i / self.topics.max(1)) % self.targets.len()]
    }

    fn src_of(&self, i: usize) -> Option<IpAddr> {
        (!self.src_ips.is_empty()).then(|| self.src_ips[i % self.src_ips.len()])
    }
}

#[derive(Default)]
struct Stats {
    connected: u64,
    failed: u64,
    failed_idx: Vec<usize>,
    first_error: Option<String>,
    closed: u64,
    warm: u64,
    received: u64,
    out_of_order: u64,
    wrong_topic: u64,
    bytes: u64,
    other_frames: u64,
    bad_streams: u64,
    /// Wall-clock µs of the first and the last measured event received.
    first_us: u64,
    last_us: u64,
}

struct Shared {
    spec: Spec,
    stats: RefCell<Stats>,
    hist: RefCell<Histogram<u64>>,
    scratch: RefCell<Vec<u8>>,
    settled: Cell<usize>,
    started: Instant,
    sem: Semaphore,
}

impl Shared {
    fn settle(&self) {
        self.settled.set(self.settled.get() + 1);
        if self.settled.get() == self.spec.count {
            let st = self.stats.borrow();
            let line = json!({
                "type": "ready",
                "connected": st.connected,
                "failed": st.failed,
                "failed_idx": st.failed_idx.iter().take(1000).collect::<Vec<_>>(),
                "first_error": st.first_error,
                "connect_ms": self.started.elapsed().as_millis() as u64,
            });
            println!("{line}");
        }
    }

    fn counts(&self, with_hist: bool) -> serde_json::Value {
        let st = self.stats.borrow();
        let mut v = json!({
            "type": if with_hist { "stats" } else { "count" },
            "connected": st.connected,
            "failed": st.failed,
            "closed": st.closed,
            "warm": st.warm,
            "received": st.received,
            "out_of_order": st.out_of_order,
            "wrong_topic": st.wrong_topic,
            "other_frames": st.other_frames,
            "bad_streams": st.bad_streams,
            "bytes": st.bytes,
            "first_us": st.first_us,
            "last_us": st.last_us,
        });
        if with_hist {
            v["hist"] = util::hist_to_json(&self.hist.borrow());
            v["cpu_ms"] = json!(util::cpu_ms(std::process::id()).unwrap_or(0.0));
        }
        v
    }
}

/// Connects, sends the request, and reads the response head. Returns the stream, the body bytes
/// that came with the head, and whether the body is chunked.
async fn open(i: usize, spec: &Spec) -> Result<(TcpStream, Vec<u8>, bool), String> {
    let target = spec.target_of(i);
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    let fd = sock.as_raw_fd();
    let _ = util::set_linger_zero(fd);
    if let Some(src) = spec.src_of(i) {
        util::set_bind_no_port(fd).map_err(|e| format!("IP_BIND_ADDRESS_NO_PORT: {e}"))?;
        sock.bind(SocketAddr::new(src, 0)).map_err(|e| format!("bind {src}: {e}"))?;
    }
    let mut s = tokio::time::timeout(Duration::from_secs(15), sock.connect(target))
        .await
        .map_err(|_| format!("connect {target}: timed out"))?
        .map_err(|e| format!("connect {target}: {e}"))?;
    let topic = format!("{}{}", spec.topic_prefix, spec.topic_of(i));
    let path = spec.path.replace("{topic}", &topic);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let read_head = async {
        loop {
            if let Some(h) = parse_head(&buf) {
                return h;
            }
            match tokio::io::AsyncReadExt::read_buf(&mut s, &mut buf).await {
                Ok(0) => return Err("closed before the response head".to_string()),
                Ok(_) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    };
    let head = tokio::time::timeout(Duration::from_secs(20), read_head).await.map_err(|_| "no response head within 20 s".to_string())??;
    if head.status != 200 {
        let body = String::from_utf8_lossy(&buf[head.len..]).chars().take(200).collect::<String>();
        return Err(format!("status {} {body}", head.status));
    }
    let rest = buf[head.len..].to_vec();
    Ok((s, rest, head.chunked))
}

struct Conn {
    scanner: Scanner,
    dechunk: Option<ChunkDecoder>,
    topic: u32,
    last_seq: u64,
}

impl Conn {
    /// Takes raw body bytes; false when the stream is malformed.
    fn input(&mut self, data: &[u8], sh: &Shared) -> bool {
        if let Some(d) = self.dechunk.as_mut() {
            match d.feed(data, self.scanner.buf()) {
                Ok(false) => {}
                Ok(true) => return false,
                Err(_) => return false,
            }
        } else {
            self.scanner.buf().extend_from_slice(data);
        }
        let now = util::now_us();
        let mut st = sh.stats.borrow_mut();
        let mut hist = sh.hist.borrow_mut();
        st.bytes += data.len() as u64;
        let (topic, last) = (self.topic, &mut self.last_seq);
        self.scanner.frames(|f| match f {
            Frame::Event(s) => {
                if s.k != topic {
                    st.wrong_topic += 1;
                }
                if s.seq == 0 {
                    st.warm += 1;
                    return;
                }
                st.received += 1;
                if st.first_us == 0 {
                    st.first_us = now;
                }
                st.last_us = now;
                if s.seq <= *last {
                    st.out_of_order += 1;
                }
                *last = (*last).max(s.seq);
                hist.saturating_record(now.saturating_sub(s.t_us).max(1));
            }
            Frame::Other => st.other_frames += 1,
        });
        true
    }
}

async fn conn_task(i: usize, sh: Rc<Shared>) {
    let permit = sh.sem.acquire().await;
    let opened = open(i, &sh.spec).await;
    drop(permit);
    let (stream, rest, chunked) = match opened {
        Ok(x) => x,
        Err(e) => {
            let mut st = sh.stats.borrow_mut();
            st.failed += 1;
            st.failed_idx.push(i);
            st.first_error.get_or_insert(e);
            drop(st);
            sh.settle();
            return;
        }
    };
    sh.stats.borrow_mut().connected += 1;
    sh.settle();
    let mut c =
        Conn { scanner: Scanner::default(), dechunk: chunked.then(ChunkDecoder::default), topic: sh.spec.topic_of(i) as u32, last_seq: 0 };
    let mut ok = c.input(&rest, &sh);
    while ok {
        if stream.readable().await.is_err() {
            break;
        }
        let mut scratch = sh.scratch.borrow_mut();
        match stream.try_read(&mut scratch[..]) {
            Ok(0) => break,
            Ok(n) => ok = c.input(&scratch[..n], &sh),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
    }
    let mut st = sh.stats.borrow_mut();
    st.closed += 1;
    if !ok {
        st.bad_streams += 1;
    }
}

/// Entry point of `sse-loadgen subs --spec <json>`.
pub fn main(args: &util::Args) -> i32 {
    let spec: Spec = match args.get("spec").map(serde_json::from_str) {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            eprintln!("subs: bad --spec: {e}");
            return 2;
        }
        None => {
            eprintln!("subs: --spec <json> is required");
            return 2;
        }
    };
    util::raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    let max = Duration::from_secs(spec.max_secs.max(1));
    let sh = Rc::new(Shared {
        sem: Semaphore::new(spec.connect_concurrency.max(1)),
        spec,
        stats: RefCell::new(Stats::default()),
        hist: RefCell::new(util::new_hist()),
        scratch: RefCell::new(vec![0u8; 256 * 1024]),
        settled: Cell::new(0),
        started: Instant::now(),
    });
    local.block_on(&rt, async move {
        if sh.spec.count == 0 {
            sh.settled.set(usize::MAX - 1);
            println!("{}", json!({"type": "ready", "connected": 0, "failed": 0, "failed_idx": [], "connect_ms": 0}));
        }
        for k in 0..sh.spec.count {
            tokio::task::spawn_local(conn_task(sh.spec.first + k, sh.clone()));
        }
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let deadline = tokio::time::sleep(max);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => {
                    eprintln!("subs: max lifetime of {} s reached; exiting", max.as_secs());
                    break;
                }
                line = lines.next_line() => {
                    let Ok(Some(line)) = line else { break };
                    match line.trim() {
                        "count" => println!("{}", sh.counts(false)),
                        "stats" => println!("{}", sh.counts(true)),
                        "reset" => {
                            let mut st = sh.stats.borrow_mut();
                            st.received = 0;
                            st.out_of_order = 0;
                            st.wrong_topic = 0;
                            st.bytes = 0;
                            st.other_frames = 0;
                            st.first_us = 0;
                            st.last_us = 0;
                            drop(st);
                            sh.hist.borrow_mut().reset();
                            println!("{}", json!({"type": "ok"}));
                        }
                        "quit" => break,
                        "" => {}
                        other => println!("{}", json!({"type": "error", "message": format!("unknown command {other:?}")})),
                    }
                }
            }
        }
    });
    // Exit without dropping tens of thousands of tasks one by one; the kernel closes the sockets.
    std::process::exit(0)
}
