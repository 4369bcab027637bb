//! `sse-loadgen suite`: starts each target in turn, runs the profile's scenarios against it with
//! the same generator and the same CPU pinning, stops it, and writes the results.
//!
//! Scenario flow (those with subscribers): start subscriber processes (at most 10,000
//! connections each, four 127.0.x.y source addresses each) → RSS after connecting (idle memory)
//! → a warm-up event per topic, until every subscriber has it → publish (fixed rate, or as fast
//! as the server answers) → wait until every expected delivery arrived or nothing moved for 3 s
//! → server CPU time over the publish window, latency percentiles, losses. The connect scenarios
//! (`connect-public`, `connect-token`) open and close subscriptions instead (crate::connect).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::publish::{self, Plan};
use crate::subs::Spec;
use crate::targets::{self, Env, Kind, Snap, Target};
use crate::util::{self, Args};

/// Connections per subscriber process (the open-file limit is 20,000 per process).
const PER_WORKER: usize = 10_000;
/// Source addresses per subscriber process.
const IPS_PER_WORKER: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScnKind {
    Idle,
    Fanout,
    Burst,
    Topics,
    Drop,
    Hold,
    ConnectPublic,
    ConnectToken,
}

impl ScnKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ScnKind::Idle => "idle",
            ScnKind::Fanout => "fanout",
            ScnKind::Burst => "burst",
            ScnKind::Topics => "topics",
            ScnKind::Drop => "drop",
            ScnKind::Hold => "hold",
            ScnKind::ConnectPublic | ScnKind::ConnectToken => "connect",
        }
    }

    pub(crate) fn is_connect(self) -> bool {
        matches!(self, ScnKind::ConnectPublic | ScnKind::ConnectToken)
    }
}

#[derive(Debug, Clone)]
pub struct Scn {
    pub id: String,
    pub kind: ScnKind,
    pub subs: usize,
    pub topics: usize,
    pub payload: usize,
    pub rate: f64,
    pub secs: f64,
    pub max_events: u64,
    pub pub_conns: usize,
    pub description: String,
}

// `is_multiple_of` needs Rust 1.87; the workspace allows 1.85.
#[allow(clippy::manual_is_multiple_of)]
fn fmt_n(n: usize) -> String {
    if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

#[allow(clippy::manual_is_multiple_of)]
fn size_name(b: usize) -> String {
    if b >= 1024 && b % 1024 == 0 {
        format!("{}KiB", b / 1024)
    } else {
        format!("{b}B")
    }
}

fn idle(n: usize) -> Scn {
    let topics = (n / 10).max(1);
    Scn {
        id: format!("idle-{}", fmt_n(n)),
        kind: ScnKind::Idle,
        subs: n,
        topics,
        payload: 64,
        rate: 0.0,
        secs: 0.0,
        max_events: 0,
        pub_conns: 4,
        description: format!("{n} idle SSE connections over {topics} topics: server RSS growth per connection"),
    }
}

fn fanout(n: usize, payload: usize, rate: f64, secs: f64) -> Scn {
    Scn {
        id: format!("fanout-{}-{}@{rate}/s", fmt_n(n), size_name(payload)),
        kind: ScnKind::Fanout,
        subs: n,
        topics: 1,
        payload,
        rate,
        secs,
        max_events: 0,
        pub_conns: 1,
        description: format!("one topic × {n} subscribers, {payload}-byte events at {rate}/s for {secs} s over one keep-alive connection"),
    }
}

fn burst(n: usize, payload: usize, events: u64) -> Scn {
    Scn {
        id: format!("fanout-{}-burst-{}", fmt_n(n), size_name(payload)),
        kind: ScnKind::Burst,
        subs: n,
        topics: 1,
        payload,
        rate: 0.0,
        secs: 60.0,
        max_events: events,
        pub_conns: 1,
        description: format!("one topic × {n} subscribers, {events} events of {payload} bytes published back to back (next POST as soon as the previous one is answered)"),
    }
}

fn many_topics(topics: usize, per: usize, secs: f64, conns: usize) -> Scn {
    Scn {
        id: format!("topics-{}x{per}", fmt_n(topics)),
        kind: ScnKind::Topics,
        subs: topics * per,
        topics,
        payload: 64,
        rate: 0.0,
        secs,
        max_events: 0,
        pub_conns: conns,
        description: format!("{topics} topics × {per} subscribers, 64-byte events as fast as {conns} keep-alive publishers go for {secs} s: total deliveries/s"),
    }
}

fn drop_path(secs: f64, conns: usize) -> Scn {
    Scn {
        id: "drop".into(),
        kind: ScnKind::Drop,
        subs: 0,
        topics: 10_000,
        payload: 64,
        rate: 0.0,
        secs,
        max_events: 0,
        pub_conns: conns,
        description: format!(
            "publishes of 64 bytes to 10,000 topics nobody subscribes, as fast as {conns} keep-alive publishers go for {secs} s"
        ),
    }
}

fn hold(n: usize, rate: f64, secs: f64) -> Scn {
    Scn {
        id: format!("hold-{}", fmt_n(n)),
        kind: ScnKind::Hold,
        subs: n,
        topics: 1,
        payload: 64,
        rate,
        secs,
        max_events: 0,
        pub_conns: 1,
        description: format!("{n} SSE subscribers of one topic spread over the three nodes, 64-byte events published to node 1 at {rate}/s for {secs} s: every event must reach every subscriber"),
    }
}

/// New SSE subscriptions, `inflight` at a time, each timed to its `event: connected` block and
/// closed: without a token (public topics) or with a fresh subscriber token each (private
/// topics). The pair runs back to back on every gateway target (crate::connect).
fn connect(n: usize, token: bool, inflight: usize) -> Scn {
    let (id, kind, what) = if token {
        (
            "connect-token",
            ScnKind::ConnectToken,
            format!(
                "to private topics ({}*), each with a fresh HS256 subscriber token in ?token= (minted before the first connection opens)",
                targets::PRIVATE_PREFIX
            ),
        )
    } else {
        ("connect-public", ScnKind::ConnectPublic, "to public topics, no token".to_string())
    };
    Scn {
        id: id.into(),
        kind,
        subs: n,
        topics: 10,
        payload: 0,
        rate: 0.0,
        secs: 0.0,
        max_events: 0,
        pub_conns: inflight,
        description: format!(
            "{n} new SSE subscriptions over 10 topics {what}, {inflight} in flight: each timed from the TCP connect to the end of its `event: connected` block, then closed"
        ),
    }
}

/// The scenarios of a profile for a target. wrangler dev is scaled to what local workerd holds
/// (about 2,000 connections); nchan also runs that scaled set, so every figure has a peer.
pub fn scenarios(profile: &str, kind: Kind) -> Vec<Scn> {
    let (standard, scaled) = match profile {
        "smoke" => (vec![fanout(200, 64, 50.0, 1.0), many_topics(20, 5, 1.0, 2), drop_path(0.5, 2)], vec![]),
        "quick" => (
            vec![idle(1000), fanout(1000, 64, 100.0, 1.5), fanout(1000, 4096, 100.0, 1.5), many_topics(100, 5, 1.5, 4), drop_path(1.5, 64)],
            vec![idle(500), fanout(1000, 64, 2.0, 2.5), many_topics(100, 5, 1.5, 4), drop_path(1.5, 64)],
        ),
        _ => (
            vec![
                idle(10_000),
                fanout(1000, 64, 100.0, 8.0),
                fanout(1000, 4096, 100.0, 8.0),
                fanout(10_000, 64, 10.0, 8.0),
                fanout(10_000, 4096, 5.0, 8.0),
                burst(10_000, 64, 200),
                many_topics(1000, 5, 8.0, 8),
                drop_path(8.0, 64),
            ],
            vec![idle(1500), fanout(1000, 64, 2.0, 10.0), fanout(1000, 4096, 2.0, 10.0), many_topics(100, 5, 8.0, 4), drop_path(8.0, 64)],
        ),
    };
    let drop_conns = std::env::var("BENCH_DROP_CONNS").ok().and_then(|v| v.parse().ok());
    let mut v = match kind {
        Kind::WranglerDev => scaled,
        Kind::Nchan => {
            let mut v = standard;
            for s in scaled {
                if !v.iter().any(|x| x.id == s.id) {
                    v.push(s);
                }
            }
            v
        }
        _ => standard,
    };
    if let Some(c) = drop_conns {
        for s in v.iter_mut().filter(|s| s.kind == ScnKind::Drop) {
            *s = drop_path(s.secs, c);
        }
    }
    if kind == Kind::Cluster {
        match profile {
            "full" => v.push(hold(50_000, 1.0, 10.0)),
            "quick" => v.push(hold(3000, 2.0, 1.5)),
            _ => {}
        }
    }
    // Last: under wrangler dev the closed streams linger in workerd until a later heartbeat.
    // nchan has no subscriber tokens: run_target skips the pair there.
    let n = match (profile, kind) {
        ("smoke", _) => 0,
        // wrangler dev's first connections pay for starting the isolate and the topics' objects:
        // a full run opens enough that the warm-up (a tenth) covers that.
        ("full", Kind::WranglerDev) => 1_000,
        (_, Kind::WranglerDev) => 300,
        ("full", _) => 30_000,
        _ => 10_000,
    };
    if n > 0 {
        v.push(connect(n, false, 50));
        v.push(connect(n, true, 50));
    }
    v
}

/// A subscriber process (`sse-loadgen subs`) and the pipes that drive it.
pub(crate) struct Worker {
    child: Child,
    pub(crate) pid: u32,
    stdin: ChildStdin,
    out: Lines<BufReader<ChildStdout>>,
    pub(crate) spec: Spec,
    ready: Option<Value>,
}

impl Worker {
    async fn next(&mut self, within: Duration) -> Result<Value, String> {
        let line = tokio::time::timeout(within, self.out.next_line())
            .await
            .map_err(|_| format!("subscriber process {} did not answer within {} s", self.pid, within.as_secs()))?
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("subscriber process {} exited", self.pid))?;
        serde_json::from_str(&line).map_err(|e| format!("bad line from subscriber process: {e}: {line}"))
    }

    pub(crate) async fn wait_ready(&mut self, within: Duration) -> Result<Value, String> {
        while self.ready.is_none() {
            let v = self.next(within).await?;
            if v["type"] == "ready" {
                self.ready = Some(v);
            }
        }
        Ok(self.ready.clone().expect("ready"))
    }

    pub(crate) async fn cmd(&mut self, c: &str) -> Result<Value, String> {
        self.stdin.write_all(format!("{c}\n").as_bytes()).await.map_err(|e| format!("subscriber process {}: {e}", self.pid))?;
        loop {
            let v = self.next(Duration::from_secs(30)).await?;
            if v["type"] == "ready" {
                self.ready = Some(v);
                continue;
            }
            return Ok(v);
        }
    }

    pub(crate) async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

pub(crate) fn src_ips(w: usize) -> Vec<IpAddr> {
    (1..=IPS_PER_WORKER).map(|j| IpAddr::V4(Ipv4Addr::new(127, 0, 10 + w as u8, j))).collect()
}

async fn spawn_workers(t: &Target, s: &Scn, prefix: &str, log: &Path, max_secs: u64) -> Result<Vec<Worker>, String> {
    let n = s.subs.div_ceil(PER_WORKER);
    let mut out = Vec::new();
    for w in 0..n {
        let first = w * PER_WORKER;
        let spec = Spec {
            targets: t.sub_addrs.clone(),
            path: t.sub_path().to_string(),
            topic_prefix: prefix.to_string(),
            topics: s.topics,
            topic_base: 0,
            first,
            count: PER_WORKER.min(s.subs - first),
            src_ips: src_ips(w),
            connect_concurrency: 64,
            max_secs,
        };
        out.push(spawn_subs(spec, log)?);
    }
    Ok(out)
}

/// Starts one subscriber process for `spec` (stderr appended to `log`).
pub(crate) fn spawn_subs(spec: Spec, log: &Path) -> Result<Worker, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let err = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&exe);
    cmd.arg("subs").arg("--spec").arg(serde_json::to_string(&spec).expect("spec"));
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::from(err)).kill_on_drop(true);
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start a subscriber process: {e}"))?;
    let pid = child.id().unwrap_or(0);
    let stdin = child.stdin.take().expect("piped");
    let out_lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    Ok(Worker { child, pid, stdin, out: out_lines, spec, ready: None })
}

pub(crate) async fn all(ws: &mut [Worker], c: &str) -> Result<Vec<Value>, String> {
    let mut v = Vec::new();
    for w in ws.iter_mut() {
        v.push(w.cmd(c).await?);
    }
    Ok(v)
}

pub(crate) fn sum(vs: &[Value], k: &str) -> u64 {
    vs.iter().map(|v| v[k].as_u64().unwrap_or(0)).sum()
}

/// CPU time (user, system), share and RSS of each server process between two snapshots.
pub(crate) fn per_process(a: &Snap, b: &Snap) -> Value {
    let total: f64 = b.cpu_ms() - a.cpu_ms();
    Value::Array(
        a.per
            .iter()
            .zip(&b.per)
            .map(|(x, y)| {
                let cpu = (y.2 - x.2) / 1000.0;
                json!({
                    "role": x.0,
                    "pid": x.1,
                    "cpu_seconds": util::round(cpu, 3),
                    "user_cpu_seconds": util::round((y.4 - x.4) / 1000.0, 3),
                    "system_cpu_seconds": util::round((y.5 - x.5) / 1000.0, 3),
                    "cpu_share": if total > 0.0 { util::round(cpu * 1000.0 / total, 3) } else { 0.0 },
                    "rss_kib": y.3,
                })
            })
            .collect(),
    )
}

/// Whether a scenario's server CPU is also split into user space and kernel by `perf` samples:
/// the native node's 10k fan-out of 64-byte events (the issue-16 goal line). The split from the
/// processes' utime and stime counts whole scheduler ticks (250 a second here), and with events
/// every 100 ms exactly 25 ticks apart, each run's ticks land on the same phases of every
/// event's fan-out: the split moved between 2.7 % and 8.3 % user over runs of one build.
fn perf_sampled(t: &Target, s: &Scn) -> bool {
    t.name() == "native" && s.kind == ScnKind::Fanout && s.subs == 10_000 && s.payload == 64 && s.rate > 0.0
}

/// `perf record` of the target's processes for the scenario's publishing time, at 997 samples a
/// second (a prime: no fixed phase against the events); `None` if `perf` cannot be started.
fn perf_start(t: &Target, secs: f64, out: &Path) -> Option<std::process::Child> {
    let pids = t.procs.iter().map(|p| p.pid.to_string()).collect::<Vec<_>>().join(",");
    std::process::Command::new("perf")
        .args(["record", "-q", "-F", "997", "-o"])
        .arg(out)
        .args(["-p", &pids, "--", "sleep"])
        .arg(format!("{:.1}", secs.max(1.0)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()
}

/// User space's share (%) of the samples in `data`, and their number: every sample not in the
/// kernel counts as user space (the binary, the C library, the vDSO).
fn perf_user_share(data: &Path) -> Option<(f64, u64)> {
    let out = std::process::Command::new("perf")
        .args(["report", "--stdio", "-n", "--no-children", "--sort", "dso", "-g", "none", "-i"])
        .arg(data)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let (mut kernel, mut total) = (0u64, 0u64);
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut cols = line.split_whitespace();
        let (Some(_pct), Some(n), Some(dso)) = (cols.next(), cols.next(), cols.next()) else { continue };
        let Ok(n) = n.parse::<u64>() else { continue };
        total += n;
        if dso == "[kernel.kallsyms]" {
            kernel += n;
        }
    }
    (total > 0).then(|| (100.0 * (total - kernel) as f64 / total as f64, total))
}

struct Ctx {
    nonce: String,
    log_dir: PathBuf,
}

/// CPU ms of the generator: this process and its subscriber processes.
pub(crate) fn gen_cpu_ms(ws: &[Worker]) -> f64 {
    util::cpu_ms(std::process::id()).unwrap_or(0.0) + ws.iter().map(|w| util::cpu_ms(w.pid).unwrap_or(0.0)).sum::<f64>()
}

/// Counts subscribers per topic that connected (from the failures the workers report).
pub(crate) fn connected_per_topic(ws: &[Worker], topics: usize) -> Vec<u64> {
    let mut per = vec![0u64; topics];
    for w in ws {
        for i in w.spec.first..w.spec.first + w.spec.count {
            per[w.spec.topic_of(i)] += 1;
        }
        if let Some(r) = &w.ready {
            for i in r["failed_idx"].as_array().into_iter().flatten().filter_map(Value::as_u64) {
                let k = w.spec.topic_of(i as usize);
                per[k] = per[k].saturating_sub(1);
            }
        }
    }
    per
}

/// Polls the subscribers until `expected` deliveries (of `key`) arrived or nothing moved for
/// `idle`; returns the last counts.
pub(crate) async fn wait_for(ws: &mut [Worker], key: &str, expected: u64, idle: Duration, max: Duration) -> Result<Vec<Value>, String> {
    let start = Instant::now();
    let mut last = 0;
    let mut last_change = Instant::now();
    loop {
        let c = all(ws, "count").await?;
        let got = sum(&c, key);
        if got >= expected || start.elapsed() > max || (got == last && last_change.elapsed() > idle) {
            return Ok(c);
        }
        if got != last {
            last = got;
            last_change = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One scenario on one target; with `with_perf`, the server is also recorded by `perf` while
/// publishing ([`perf_sampled`]).
async fn run_one(t: &Target, s: &Scn, idx: usize, ctx: &Ctx, with_perf: bool) -> Result<Value, String> {
    let prefix = format!("r{}s{idx}-", ctx.nonce);
    if s.kind.is_connect() {
        return crate::connect::run(t, s, &prefix).await;
    }
    let mut r = json!({
        "id": s.id,
        "kind": s.kind.name(),
        "description": s.description,
        "params": {"subscribers": s.subs, "topics": s.topics, "payload_bytes": s.payload, "rate_per_second": s.rate, "seconds": s.secs, "max_events": s.max_events, "publisher_connections": s.pub_conns},
    });
    let fd_base = t.fds();
    let base = t.snapshot();
    let mut ws = Vec::new();
    let wlog = ctx.log_dir.join(format!("{}-subs.log", t.name()));
    if s.subs > 0 {
        let connect_limit = Duration::from_secs(30 + (s.subs / 500) as u64);
        let lifetime = connect_limit.as_secs() + s.secs as u64 + 300;
        let c0 = Instant::now();
        ws = spawn_workers(t, s, &prefix, &wlog, lifetime).await?;
        let mut readies = Vec::new();
        for w in ws.iter_mut() {
            readies.push(w.wait_ready(connect_limit).await?);
        }
        let connect_s = c0.elapsed().as_secs_f64();
        let connected = sum(&readies, "connected");
        let failed = sum(&readies, "failed");
        let first_error = readies.iter().find_map(|v| v["first_error"].as_str().map(str::to_string));
        r["subscribers"] = json!({
            "requested": s.subs, "connected": connected, "failed": failed, "first_error": first_error,
            "connect_seconds": util::round(connect_s, 2), "processes": ws.len(),
            "source_addresses": ws.iter().map(|w| w.spec.src_ips.iter().map(|i| i.to_string()).collect::<Vec<_>>()).collect::<Vec<_>>(),
        });
        println!(
            "[{}] {}: {connected}/{} subscribers connected in {connect_s:.1} s{}",
            t.name(),
            s.id,
            s.subs,
            first_error.as_ref().map(|e| format!(" (first error: {e})")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(if s.kind == ScnKind::Idle { 1500 } else { 500 })).await;
        t.all_alive()?;
        let after = t.snapshot();
        let grown = after.rss_kib() as f64 - base.rss_kib() as f64;
        r["idle"] = json!({
            "connections": connected,
            "rss_before_kib": base.rss_kib(),
            "rss_after_kib": after.rss_kib(),
            "kib_per_connection": if connected > 0 { util::round(grown / connected as f64, 2) } else { 0.0 },
            "per_process": per_process(&base, &after),
        });
        // Warm-up: one event per topic, until every subscriber has it.
        let w0 = Instant::now();
        let plan = Plan {
            topic_prefix: prefix.clone(),
            topics: s.topics,
            payload: 64,
            rate: 0.0,
            secs: 0.0,
            max_events: 0,
            conns: 8,
            warmup: true,
        };
        let wo = publish::run(t, &plan).await;
        let c = wait_for(&mut ws, "warm", connected, Duration::from_secs(5), Duration::from_secs(20 + s.topics as u64 / 50)).await?;
        let warm = sum(&c, "warm");
        r["warmup"] = json!({"publishes": wo.sent, "accepted": wo.accepted, "errors": wo.errors, "first_error": wo.first_error, "reached": warm, "expected": connected, "seconds": util::round(w0.elapsed().as_secs_f64(), 2)});
        if warm < connected {
            println!("[{}] {}: warm-up reached {warm} of {connected} subscribers", t.name(), s.id);
        }
        all(&mut ws, "reset").await?;
    }
    if s.kind != ScnKind::Idle {
        let cpu0 = t.snapshot();
        let g0 = gen_cpu_ms(&ws);
        let m0 = util::cpu_ticks();
        let plan = Plan {
            topic_prefix: if s.kind == ScnKind::Drop { format!("{prefix}nobody-") } else { prefix.clone() },
            topics: s.topics,
            payload: s.payload,
            rate: s.rate,
            secs: s.secs,
            max_events: s.max_events,
            conns: s.pub_conns,
            warmup: false,
        };
        // Sample RSS while publishing.
        let sampler_stop = std::rc::Rc::new(std::cell::Cell::new(false));
        let samples = std::rc::Rc::new(std::cell::RefCell::new(Vec::<(u64, u64, f64, f64, f64)>::new()));
        let sampler = {
            let (stop, samples, procs) = (sampler_stop.clone(), samples.clone(), t.procs.clone());
            let t0 = Instant::now();
            async move {
                while !stop.get() {
                    let rss: u64 = procs.iter().filter_map(|p| util::rss_kib(p.pid)).sum();
                    let (user, sys) =
                        procs.iter().filter_map(|p| util::cpu_split_ms(p.pid)).fold((0.0, 0.0), |a, c| (a.0 + c.0, a.1 + c.1));
                    samples.borrow_mut().push((t0.elapsed().as_millis() as u64, rss, user + sys, user, sys));
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
        let sampler_handle = tokio::task::spawn_local(sampler);
        let perf_data = ctx.log_dir.join(format!("{}-{}.perf.data", t.name(), idx));
        let perf = if with_perf { perf_start(t, s.secs, &perf_data) } else { None };
        let out = publish::run(t, &plan).await;
        let expected: u64 = if s.subs > 0 {
            let per = connected_per_topic(&ws, s.topics);
            per.iter().zip(&out.accepted_per_topic).map(|(a, b)| a * b).sum()
        } else {
            0
        };
        let final_counts = if s.subs > 0 {
            let max = Duration::from_secs(30 + expected / 200_000);
            Some(wait_for(&mut ws, "received", expected, Duration::from_secs(3), max).await?)
        } else {
            None
        };
        let cpu1 = t.snapshot();
        let g1 = gen_cpu_ms(&ws);
        let m1 = util::cpu_ticks();
        sampler_stop.set(true);
        let _ = sampler_handle.await;
        let perf_split = perf.and_then(|mut child| {
            let _ = child.wait();
            let split = perf_user_share(&perf_data);
            let _ = std::fs::remove_file(&perf_data);
            split
        });
        let server_cpu_s = (cpu1.cpu_ms() - cpu0.cpu_ms()) / 1000.0;
        let server_user_s = (cpu1.user_ms() - cpu0.user_ms()) / 1000.0;
        let server_sys_s = (cpu1.sys_ms() - cpu0.sys_ms()) / 1000.0;
        let wall = (cpu1.at - cpu0.at).as_secs_f64();
        r["publish"] = out.to_json();
        let mut srv = json!({
            "cpu_seconds": util::round(server_cpu_s, 3),
            "user_cpu_seconds": util::round(server_user_s, 3),
            "system_cpu_seconds": util::round(server_sys_s, 3),
            "wall_seconds": util::round(wall, 3),
            "cpu_percent_of_one_core": util::round(server_cpu_s * 100.0 / wall.max(1e-9), 1),
            "rss_end_kib": cpu1.rss_kib(),
            "rss_peak_kib": samples.borrow().iter().map(|x| x.1).max().unwrap_or(cpu1.rss_kib()),
            "per_process": per_process(&cpu0, &cpu1),
        });
        if let Some((share, samples)) = perf_split {
            srv["perf_user_share_percent"] = json!(util::round(share, 2));
            srv["perf_samples"] = json!(samples);
        }
        r["generator"] = json!({"cpu_seconds": util::round((g1 - g0) / 1000.0, 3), "cpu_percent_of_one_core": util::round((g1 - g0) / 10.0 / wall.max(1e-9), 1)});
        // Everything else the machine ran meanwhile (others' builds and tests on a shared box).
        let tck = util::clk_tck() as f64;
        let busy: Vec<f64> = m0.iter().zip(&m1).map(|(a, b)| (b.0 - a.0) as f64 * 100.0 / ((b.1 - a.1) as f64).max(1.0)).collect();
        let busy_s: f64 = m0.iter().zip(&m1).map(|(a, b)| (b.0 - a.0) as f64 / tck).sum();
        let ours_s = server_cpu_s + (g1 - g0) / 1000.0;
        r["machine"] = json!({
            "cpu_busy_percent": busy.iter().map(|b| util::round(*b, 1)).collect::<Vec<_>>(),
            "other_processes_cpu_seconds": util::round((busy_s - ours_s).max(0.0), 2),
            "load_average_1m": util::loadavg(),
        });
        // [ms since the start, RSS KiB, CPU ms (user + system), user ms, system ms], summed
        // over the server processes.
        r["samples"] = Value::Array(
            samples
                .borrow()
                .iter()
                .map(|(ms, rss, cpu, u, sy)| json!([ms, rss, util::round(*cpu, 0), util::round(*u, 0), util::round(*sy, 0)]))
                .collect(),
        );
        if s.kind == ScnKind::Drop {
            let secs = out.elapsed.as_secs_f64().max(1e-9);
            srv["publishes_per_cpu_second"] = json!(util::round(out.accepted as f64 / server_cpu_s.max(1e-9), 0));
            if out.accepted > 0 {
                let per_m = 1e6 / out.accepted as f64;
                srv["user_cpu_seconds_per_million_publishes"] = json!(util::round(server_user_s * per_m, 2));
                srv["system_cpu_seconds_per_million_publishes"] = json!(util::round(server_sys_s * per_m, 2));
            }
            r["drop"] = json!({
                "publishes_per_second": util::round(out.accepted as f64 / secs, 0),
                "dropped_responses": out.dropped_responses,
                "all_dropped": out.dropped_responses == out.accepted && out.errors == 0,
            });
        } else if let Some(fc) = final_counts {
            let stats = all(&mut ws, "stats").await?;
            let mut h: Histogram<u64> = util::new_hist();
            for st in &stats {
                util::hist_add_json(&mut h, &st["hist"]);
            }
            let received = sum(&stats, "received").max(sum(&fc, "received"));
            let last_us = stats.iter().map(|v| v["last_us"].as_u64().unwrap_or(0)).max().unwrap_or(0);
            let window = if last_us > out.started_us { (last_us - out.started_us) as f64 / 1e6 } else { out.elapsed.as_secs_f64() };
            r["delivery"] = json!({
                "expected": expected,
                "received": received,
                "lost": expected.saturating_sub(received),
                "extra": received.saturating_sub(expected),
                "out_of_order": sum(&stats, "out_of_order"),
                "wrong_topic": sum(&stats, "wrong_topic"),
                "closed_connections": sum(&stats, "closed"),
                "window_seconds": util::round(window, 3),
                "per_second": util::round(received as f64 / window.max(1e-9), 0),
                "latency_ms": util::hist_summary_ms(&h),
            });
            srv["deliveries_per_cpu_second"] = json!(util::round(received as f64 / server_cpu_s.max(1e-9), 0));
            if received > 0 {
                let per_m = 1e6 / received as f64;
                srv["user_cpu_seconds_per_million_deliveries"] = json!(util::round(server_user_s * per_m, 2));
                srv["system_cpu_seconds_per_million_deliveries"] = json!(util::round(server_sys_s * per_m, 2));
            }
        }
        r["server"] = srv;
    }
    for w in ws {
        w.quit().await;
    }
    // Let the server see the connections go before the next scenario measures anything.
    // (workerd lets go of SSE streams only at a later heartbeat: do not wait long for it.)
    let wait = if t.kind == Kind::WranglerDev { 2 } else { 20 };
    let deadline = Instant::now() + Duration::from_secs(wait);
    while t.fds() > fd_base + 64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    r["server_fds_after"] = json!({"baseline": fd_base, "now": t.fds()});
    t.all_alive()?;
    Ok(r)
}

fn one_line(r: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(i) = r.get("idle") {
        parts.push(format!("{} KiB/conn", i["kib_per_connection"]));
    }
    if let Some(d) = r.get("delivery") {
        parts.push(format!(
            "{}/{} delivered ({} lost), {} /s, p50 {} ms, p99 {} ms",
            d["received"], d["expected"], d["lost"], d["per_second"], d["latency_ms"]["p50"], d["latency_ms"]["p99"]
        ));
    }
    if let Some(d) = r.get("drop") {
        parts.push(format!("{} publishes/s (all dropped: {})", d["publishes_per_second"], d["all_dropped"]));
    }
    if let Some(c) = r.get("connect") {
        parts.push(format!(
            "{}/{} connected ({} failed{}), {} connects/s, p50 {} ms, p99 {} ms to `connected`",
            c["connected"],
            c["requested"],
            c["failed"],
            c["first_error"].as_str().map(|e| format!(": {e}")).unwrap_or_default(),
            c["per_second"],
            c["time_to_connected_ms"]["p50"],
            c["time_to_connected_ms"]["p99"]
        ));
    }
    if let Some(s) = r.get("server") {
        parts.push(format!("server CPU {} s ({} %)", s["cpu_seconds"], s["cpu_percent_of_one_core"]));
        if let Some(e) = s.get("deliveries_per_cpu_second") {
            parts.push(format!("{e} deliveries/CPU-s"));
        }
        if let Some(e) = s.get("cpu_us_per_connect") {
            parts.push(format!("{e} µs server CPU per connect"));
        }
    }
    if let Some(v) = r.get("token_vs_public") {
        parts.push(format!(
            "token ÷ public: connects/s {}×, p50 {}×, p99 {}×, CPU per connect {}×",
            v["connects_per_second"], v["p50_time_to_connected"], v["p99_time_to_connected"], v["server_cpu_per_connect"]
        ));
    }
    if let Some(g) = r.get("generator") {
        parts.push(format!("generator {} %", g["cpu_percent_of_one_core"]));
    }
    if let Some(m) = r.get("machine") {
        parts.push(format!("others {} CPU-s", m["other_processes_cpu_seconds"]));
    }
    parts.join("; ")
}

async fn run_target(kind: Kind, env: &Env, profile: &str, only: &[String], ctx: &Ctx) -> Value {
    let t0 = Instant::now();
    println!("[{}] starting", kind.name());
    let mut target = match targets::start(kind, env).await {
        Ok(t) => t,
        Err(e) => {
            println!("[{}] could not start: {e}", kind.name());
            return json!({"target": kind.name(), "error": format!("could not start: {e}"), "scenarios": []});
        }
    };
    println!(
        "[{}] up ({} processes: {})",
        kind.name(),
        target.procs.len(),
        target.procs.iter().map(|p| format!("{} pid {}", p.role, p.pid)).collect::<Vec<_>>().join(", ")
    );
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let mut used = false;
    for (i, s) in scenarios(profile, kind).into_iter().enumerate() {
        if !only.is_empty() && !only.iter().any(|o| s.id.starts_with(o.as_str())) {
            continue;
        }
        if kind == Kind::Nchan && s.kind.is_connect() {
            let why = "nchan has no subscriber tokens (nothing equivalent to compare)";
            println!("[{}] {}: skipped: {why}", kind.name(), s.id);
            skipped.push(json!({"id": s.id, "why": why}));
            continue;
        }
        // Idle memory is only meaningful on a fresh process: memory freed by earlier
        // scenarios stays in the allocator and would be reused (growth ~0).
        if s.kind == ScnKind::Idle && used {
            println!("[{}] restarting it for {} (idle memory needs a fresh process)", kind.name(), s.id);
            drop(target);
            target = match targets::start(kind, env).await {
                Ok(t) => t,
                Err(e) => {
                    println!("[{}] could not restart: {e}", kind.name());
                    results.push(json!({"id": s.id, "kind": s.kind.name(), "error": format!("could not restart the target: {e}")}));
                    return json!({"target": kind.name(), "scenarios": results, "seconds": util::round(t0.elapsed().as_secs_f64(), 1)});
                }
            };
        }
        used = true;
        let budget = Duration::from_secs(120 + (s.subs / 250) as u64 + s.secs as u64 * 2);
        let st = Instant::now();
        println!("[{}] {}: {}", kind.name(), s.id, s.description);
        let mut r = match tokio::time::timeout(budget, run_one(&target, &s, i, ctx, false)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => json!({"id": s.id, "kind": s.kind.name(), "description": s.description, "error": e}),
            Err(_) => {
                json!({"id": s.id, "kind": s.kind.name(), "description": s.description, "error": format!("did not finish within {} s", budget.as_secs())})
            }
        };
        // The user-space share by `perf` comes from a second run of the same scenario, so that
        // the sampling costs nothing in the figures of the first (its own efficiency and p99 are
        // kept beside the share).
        if perf_sampled(&target, &s) && r.get("error").is_none() {
            if let Ok(Ok(p)) = tokio::time::timeout(budget, run_one(&target, &s, i + 1000, ctx, true)).await {
                let sv = &p["server"];
                if let Some(share) = sv.get("perf_user_share_percent") {
                    r["server"]["perf_user_share_percent"] = share.clone();
                    r["server"]["perf_samples"] = sv["perf_samples"].clone();
                    r["perf_run"] = json!({
                        "deliveries_per_cpu_second": sv["deliveries_per_cpu_second"],
                        "user_cpu_seconds_per_million_deliveries": sv["user_cpu_seconds_per_million_deliveries"],
                        "system_cpu_seconds_per_million_deliveries": sv["system_cpu_seconds_per_million_deliveries"],
                        "p99_ms": p["delivery"]["latency_ms"]["p99"],
                        "lost": p["delivery"]["lost"],
                    });
                }
            }
        }
        // The token's cost: this run's connect-token against connect-public on the same target.
        if s.kind == ScnKind::ConnectToken && r.get("error").is_none() {
            if let Some(p) = results.iter().find(|x: &&Value| x["id"] == "connect-public" && x.get("error").is_none()) {
                r["token_vs_public"] = crate::connect::compare(p, &r);
            }
        }
        match r.get("error") {
            Some(e) => println!("[{}] {}: ERROR {e}", kind.name(), s.id),
            None => println!("[{}] {}: {} ({:.0} s)", kind.name(), s.id, one_line(&r), st.elapsed().as_secs_f64()),
        }
        r["seconds"] = json!(util::round(st.elapsed().as_secs_f64(), 1));
        results.push(r);
        if let Err(e) = target.all_alive() {
            println!("[{}] {e}; skipping its remaining scenarios", kind.name());
            results.push(json!({"id": "target", "error": e}));
            break;
        }
    }
    let info = target.info.clone();
    drop(target);
    println!("[{}] stopped ({:.0} s)", kind.name(), t0.elapsed().as_secs_f64());
    let mut out = json!({"target": kind.name(), "info": info, "scenarios": results, "seconds": util::round(t0.elapsed().as_secs_f64(), 1)});
    if !skipped.is_empty() {
        out["skipped"] = Value::Array(skipped);
    }
    out
}

pub(crate) fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()));
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = mem
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let online = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    json!({
        "cpu_model": model,
        "cpus": online.max(cpus),
        "memory_gib": util::round(mem_kib as f64 / 1048576.0, 1),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "open_file_limit": util::nofile_limit(),
        "ephemeral_ports": std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default().split_whitespace().collect::<Vec<_>>().join("-"),
    })
}

pub(crate) fn git(root: &Path, args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn timestamp() -> String {
    let secs = util::now_us() / 1_000_000;
    let (d, s) = (secs / 86400, secs % 86400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = d as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!("{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}Z", s / 3600, s % 3600 / 60, s % 60)
}

/// Entry point of `sse-loadgen suite`.
pub fn main(args: &Args) -> i32 {
    let profile = args.get("profile").unwrap_or("quick").to_string();
    if !matches!(profile.as_str(), "quick" | "full" | "smoke") {
        eprintln!("suite: --profile must be quick, full or smoke");
        return 2;
    }
    let root = PathBuf::from(args.get("root").unwrap_or("."));
    let root = root.canonicalize().unwrap_or(root);
    let default_targets = if profile == "smoke" { "native" } else { "native,cluster,nchan,wrangler-dev" };
    let kinds: Vec<Kind> =
        match args.get("targets").unwrap_or(default_targets).split(',').map(|s| Kind::parse(s.trim()).ok_or(s.to_string())).collect() {
            Ok(k) => k,
            Err(bad) => {
                eprintln!("suite: unknown target {bad:?} (native, cluster, nchan, wrangler-dev)");
                return 2;
            }
        };
    let only: Vec<String> =
        args.get("scenarios").map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()).unwrap_or_default();
    let stamp = args.get("stamp").map(str::to_string).unwrap_or_else(timestamp);
    let results_root = root.join(args.get("results").unwrap_or("benchmark-results"));
    let out = args.get("out").map(PathBuf::from).unwrap_or_else(|| results_root.join(&stamp));
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let server_cpus = args.get("server-cpus").map(str::to_string).unwrap_or_else(|| "0".into());
    let client_cpus = args.get("client-cpus").map(str::to_string).unwrap_or_else(|| if ncpu > 1 { "1".into() } else { "0".into() });
    if let Err(e) = util::pin_self(&util::parse_cpus(&client_cpus)) {
        eprintln!("suite: cannot pin the generator to CPUs {client_cpus}: {e}");
        return 1;
    }
    util::raise_nofile();
    let run_dir = root.join(".run/bench").join(&stamp);
    if let Err(e) =
        std::fs::create_dir_all(&run_dir).and_then(|_| std::fs::create_dir_all(&out)).and_then(|_| std::fs::create_dir_all(&results_root))
    {
        eprintln!("suite: {e}");
        return 1;
    }
    let env = Env {
        root: root.clone(),
        run_dir: run_dir.clone(),
        server_bin: args.get("server-bin").map(PathBuf::from).unwrap_or_else(|| root.join("target/release/sse-gateway")),
        worker_build: args.get("worker-build").map(PathBuf::from).unwrap_or_else(|| root.join("build")),
        server_cpus: server_cpus.clone(),
        wrangler_port: Env::wrangler_ports(args).0,
        inspector_port: Env::wrangler_ports(args).1,
        wrangler_vars: Vec::new(),
        wrangler_toml: args.get("wrangler-toml").map(PathBuf::from),
    };
    let max_secs: u64 = args.get("max-seconds").and_then(|s| s.parse().ok()).unwrap_or(match profile.as_str() {
        "full" => 2400,
        "quick" => 600,
        _ => 120,
    });
    let ctx = Ctx { nonce: format!("{:x}", util::now_us() % 0xfffff), log_dir: run_dir.clone() };
    println!(
        "suite: profile {profile}, targets {}, server on CPU {server_cpus}, generator on CPU {client_cpus}; results in {}; logs in {}",
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "),
        out.display(),
        run_dir.display()
    );
    let started = Instant::now();
    let load_at_start = util::loadavg();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    let mut target_results: Vec<Value> = Vec::new();
    let interrupted = local.block_on(&rt, async {
        let work = async {
            for k in &kinds {
                let r = run_target(*k, &env, &profile, &only, &ctx).await;
                let path = out.join(format!("{}.json", k.name()));
                let _ = std::fs::write(&path, serde_json::to_string_pretty(&r).expect("json") + "\n");
                target_results.push(r);
            }
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
        tokio::select! {
            _ = work => None,
            _ = tokio::signal::ctrl_c() => Some("interrupted (SIGINT)".to_string()),
            _ = term.recv() => Some("terminated (SIGTERM)".to_string()),
            _ = tokio::time::sleep(Duration::from_secs(max_secs)) => Some(format!("stopped after --max-seconds {max_secs}")),
        }
    });
    // Dropping the work future above stopped every server it had started.
    let secs = started.elapsed().as_secs_f64();
    let meta = json!({
        "timestamp": stamp,
        "profile": profile,
        "targets": kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "seconds": util::round(secs, 1),
        "machine": machine(),
        "load_average_1m": {"start": load_at_start, "end": util::loadavg()},
        "pinning": {"server_cpus": server_cpus, "generator_cpus": client_cpus, "generator_affinity": util::own_affinity(), "how": "taskset -c <server cpus> for every server process; the generator (coordinator, publisher, subscriber processes) pins itself with sched_setaffinity"},
        "git": {"commit": git(&root, &["rev-parse", "--short", "HEAD"]), "dirty": !git(&root, &["status", "--porcelain", "--untracked-files=no"]).is_empty()},
        "interrupted": interrupted,
        "logs": run_dir.display().to_string(),
    });
    let _ = std::fs::write(out.join("run.json"), serde_json::to_string_pretty(&meta).expect("json") + "\n");
    if let Some(why) = &interrupted {
        eprintln!("suite: {why}; servers stopped");
    }
    println!("suite: done in {secs:.0} s");
    if profile == "smoke" {
        return smoke_check(&target_results, interrupted.as_deref());
    }
    match crate::report::write(&results_root, &out) {
        Ok(p) => println!("suite: wrote {} and {}", out.join("summary.json").display(), p.display()),
        Err(e) => {
            eprintln!("suite: report: {e}");
            return 1;
        }
    }
    if interrupted.is_some() {
        130
    } else {
        0
    }
}

/// The `make test` smoke: everything connected, delivered, in order, and the drop path dropped.
/// Prints one line per check and a last `N passed, N failed` line.
fn smoke_check(results: &[Value], interrupted: Option<&str>) -> i32 {
    let mut checks: Vec<(String, Result<(), String>)> = Vec::new();
    let mut check = |name: String, ok: bool, detail: String| checks.push((name, if ok { Ok(()) } else { Err(detail) }));
    check("run completed".into(), interrupted.is_none(), interrupted.unwrap_or("").to_string());
    for t in results {
        let tn = t["target"].as_str().unwrap_or("?");
        check(format!("{tn}: started"), t.get("error").is_none(), t["error"].to_string());
        for s in t["scenarios"].as_array().into_iter().flatten() {
            let id = format!("{tn} {}", s["id"].as_str().unwrap_or("?"));
            if let Some(e) = s.get("error") {
                check(format!("{id}: ran"), false, e.to_string());
                continue;
            }
            if let Some(sub) = s.get("subscribers") {
                check(
                    format!("{id}: every subscriber connected"),
                    sub["connected"] == sub["requested"],
                    format!("{} of {}", sub["connected"], sub["requested"]),
                );
            }
            if let Some(d) = s.get("delivery") {
                let measured = d["expected"].as_u64().unwrap_or(0) > 0 && d["latency_ms"]["p99"].as_f64().is_some();
                check(format!("{id}: events published and latency measured"), measured, d.to_string());
                let clean = ["lost", "out_of_order", "wrong_topic", "extra"].iter().all(|k| d[*k].as_u64() == Some(0));
                check(
                    format!("{id}: every event delivered once, in order, to its topic"),
                    clean,
                    format!(
                        "lost {}, out of order {}, wrong topic {}, extra {}",
                        d["lost"], d["out_of_order"], d["wrong_topic"], d["extra"]
                    ),
                );
            }
            if let Some(d) = s.get("drop") {
                let ok = d["all_dropped"] == true && d["publishes_per_second"].as_f64().unwrap_or(0.0) > 0.0;
                check(format!("{id}: publishes to topics nobody subscribes are dropped"), ok, d.to_string());
            }
        }
    }
    let failed = checks.iter().filter(|c| c.1.is_err()).count();
    for (name, r) in &checks {
        match r {
            Ok(()) => println!("ok   {name}"),
            Err(d) => println!("FAIL {name}: {d}"),
        }
    }
    println!("{} passed, {failed} failed", checks.len() - failed);
    if failed == 0 {
        0
    } else {
        1
    }
}
