//! `sse-loadgen cost`: what an idle-heavy SSE workload costs on Cloudflare, measured under
//! `wrangler dev` for one Worker build, and turned into a monthly bill with a dated price list
//! (docs/benchmarks.md, "Cloudflare bill: hibernation").
//!
//!   sse-loadgen cost --design before|after [--worker-build build] [--commit <id>] [--minutes 5]
//!                    [--topics 500] [--big 500] [--heartbeat-ms 15000] [--out <file>]
//!                    [--baseline <file> --report-dir <dir>] [--prices benches/prices/cloudflare.json]
//!                    [--fanout <suite result wrangler-dev.json>,...] [--run-dir <dir>]
//!                    [--wrangler-port 18787] [--inspector-port 19229] [--server-cpus 0] [--client-cpus 1]
//!   sse-loadgen cost-report --baseline <file> --current <file> [--prices ...] --report-dir <dir>
//!
//! Workload: `--topics` topics with one SSE subscriber each and one topic with `--big`
//! subscribers, one event per topic per minute for `--minutes`. Measured: what the generator did
//! (subscribes, publishes, what arrived), the CPU time of the workerd processes (an upper bound
//! of the Worker CPU Cloudflare bills: it also holds the objects, the dev proxy and the runtime),
//! and for the hibernating design how often each topic's object woke (`wakes` in the admin topic
//! listing, read after connecting and after publishing) and, before the run, how long an idle
//! object stays in memory on this machine (the eviction delay). Durable Object requests, WebSocket
//! messages and SQLite rows are counted by design from those, as `usage()` says; the measurement
//! file keeps the raw figures so that a later price list re-prices a kept baseline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::{parse_head, Client};
use crate::publish::{self, Plan};
use crate::subs::Spec;
use crate::suite::{self, Worker};
use crate::targets::{self, Env, Kind, Snap, Target, API_KEY};
use crate::util::{self, Args};

/// Gaps (s) between two attaches to an idle topic object in the eviction probe.
const EVICTION_GAPS: [u64; 15] = [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 25, 30];
/// Trials per gap.
const EVICTION_ROUNDS: usize = 2;
/// Durable Object duration is charged for 128 MB per object (the price page's examples: s x 128 MB / 1 GB).
const GB_PER_OBJECT: f64 = 0.128;
/// A month as Cloudflare's pricing examples count it (30 days).
const MONTH_SECONDS_DEFAULT: f64 = 2_592_000.0;

struct Opts {
    root: PathBuf,
    design: String,
    commit: String,
    worker_build: PathBuf,
    minutes: f64,
    topics: usize,
    big: usize,
    heartbeat_ms: u64,
    out: Option<PathBuf>,
    baseline: Option<PathBuf>,
    report_dir: Option<PathBuf>,
    prices: PathBuf,
    fanout: Vec<PathBuf>,
    run_dir: PathBuf,
    server_cpus: String,
    client_cpus: String,
    wrangler_port: u16,
    inspector_port: u16,
    wrangler_toml: Option<PathBuf>,
}

fn opts(args: &Args) -> Result<Opts, String> {
    let root = PathBuf::from(args.get("root").unwrap_or("."));
    let root = root.canonicalize().unwrap_or(root);
    let design = args.get("design").unwrap_or("after").to_string();
    if !matches!(design.as_str(), "before" | "after") {
        return Err("--design must be before (the design that holds SSE streams in topic objects) or after (hibernating)".into());
    }
    let num = |k: &str, d: f64| -> Result<f64, String> {
        args.get(k).map(|v| v.parse::<f64>().map_err(|_| format!("--{k}: not a number: {v}"))).unwrap_or(Ok(d))
    };
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (wrangler_port, inspector_port) = Env::wrangler_ports(args);
    let worker_build = args.get("worker-build").map(PathBuf::from).unwrap_or_else(|| root.join("build"));
    // A build of another revision (a worktree's build/) runs with that revision's wrangler.toml.
    let wrangler_toml = args.get("wrangler-toml").map(PathBuf::from).or_else(|| {
        let t = worker_build.canonicalize().ok()?.parent()?.join("wrangler.toml");
        t.exists().then_some(t)
    });
    let commit = match args.get("commit") {
        Some(c) => c.to_string(),
        None => suite::git(&root, &["rev-parse", "--short", "HEAD"]),
    };
    Ok(Opts {
        design,
        commit,
        worker_build,
        minutes: num("minutes", 5.0)?,
        topics: num("topics", 500.0)? as usize,
        big: num("big", 500.0)? as usize,
        heartbeat_ms: num("heartbeat-ms", 15000.0)? as u64,
        out: args.get("out").map(PathBuf::from),
        baseline: args.get("baseline").map(PathBuf::from),
        report_dir: args.get("report-dir").map(PathBuf::from),
        prices: args.get("prices").map(PathBuf::from).unwrap_or_else(|| root.join("benches/prices/cloudflare.json")),
        fanout: args.get("fanout").map(|s| s.split(',').filter(|x| !x.is_empty()).map(PathBuf::from).collect()).unwrap_or_default(),
        run_dir: args
            .get("run-dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".run/bench").join(format!("cost-{}", suite::timestamp()))),
        server_cpus: args.get("server-cpus").unwrap_or("0").to_string(),
        client_cpus: args.get("client-cpus").map(str::to_string).unwrap_or_else(|| if ncpu > 1 { "1".into() } else { "0".into() }),
        wrangler_port,
        inspector_port,
        wrangler_toml,
        root,
    })
}

/// Entry point of `sse-loadgen cost`.
pub fn main(args: &Args) -> i32 {
    let o = match opts(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cost: {e}");
            return 2;
        }
    };
    if o.minutes <= 0.0 || o.topics == 0 || o.big == 0 {
        eprintln!("cost: --minutes, --topics and --big must be positive");
        return 2;
    }
    if let Err(e) = util::pin_self(&util::parse_cpus(&o.client_cpus)) {
        eprintln!("cost: cannot pin the generator to CPUs {}: {e}", o.client_cpus);
        return 1;
    }
    util::raise_nofile();
    if let Err(e) = std::fs::create_dir_all(&o.run_dir) {
        eprintln!("cost: {}: {e}", o.run_dir.display());
        return 1;
    }
    println!(
        "cost: design {} ({}), {} topics x 1 subscriber + 1 topic x {} subscribers, 1 event per topic per minute for {} min; wrangler dev on 127.0.0.1:{}; logs in {}",
        o.design,
        o.commit,
        o.topics,
        o.big,
        o.minutes,
        o.wrangler_port,
        o.run_dir.display()
    );
    // Bounded: connecting, the eviction probe, the publish schedule, settling and teardown.
    let limit = Duration::from_secs_f64(o.minutes * 60.0 + 600.0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&rt, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
        tokio::select! {
            r = measure(&o) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted (SIGINT)".to_string()),
            _ = term.recv() => Err("terminated (SIGTERM)".to_string()),
            _ = tokio::time::sleep(limit) => Err(format!("did not finish within {} s", limit.as_secs())),
        }
    });
    // Leaving the select above dropped the target: wrangler dev is stopped.
    let m = match result {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cost: {e}");
            return 1;
        }
    };
    let m = with_fanout(m, &o.fanout);
    let text = serde_json::to_string_pretty(&m).expect("json") + "\n";
    let out = o.out.clone().unwrap_or_else(|| o.run_dir.join(format!("cloudflare-cost-{}.json", o.design)));
    if let Err(e) = std::fs::write(&out, &text) {
        eprintln!("cost: {}: {e}", out.display());
        return 1;
    }
    println!("cost: measurement written to {}", out.display());
    if let (Some(b), Some(dir)) = (&o.baseline, &o.report_dir) {
        return report_files(b, &out, &o.prices, dir);
    }
    0
}

/// Entry point of `sse-loadgen cost-report`: the report from a kept baseline and a measurement.
pub fn report_main(args: &Args) -> i32 {
    let root = PathBuf::from(args.get("root").unwrap_or("."));
    let (Some(b), Some(c), Some(dir)) = (args.get("baseline"), args.get("current"), args.get("report-dir")) else {
        eprintln!("cost-report: --baseline <file> --current <file> --report-dir <dir> are required");
        return 2;
    };
    let prices = args.get("prices").map(PathBuf::from).unwrap_or_else(|| root.join("benches/prices/cloudflare.json"));
    report_files(Path::new(b), Path::new(c), &prices, Path::new(dir))
}

fn load(p: &Path) -> Result<Value, String> {
    let s = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&s).map_err(|e| format!("{}: {e}", p.display()))
}

fn report_files(baseline: &Path, current: &Path, prices: &Path, dir: &Path) -> i32 {
    let r = (|| -> Result<(PathBuf, PathBuf, Value), String> {
        let (b, c, p) = (load(baseline)?, load(current)?, load(prices)?);
        let rep = report(&b, &c, &p)?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let (jp, mp) = (dir.join("cloudflare-cost.json"), dir.join("cloudflare-cost.md"));
        std::fs::write(&jp, serde_json::to_string_pretty(&rep).expect("json") + "\n").map_err(|e| e.to_string())?;
        std::fs::write(&mp, markdown(&rep)).map_err(|e| e.to_string())?;
        Ok((jp, mp, rep))
    })();
    match r {
        Ok((jp, mp, rep)) => {
            println!("cost: report written to {} and {}", jp.display(), mp.display());
            for line in headline(&rep) {
                println!("cost: {line}");
            }
            0
        }
        Err(e) => {
            eprintln!("cost: report: {e}");
            1
        }
    }
}

// --- measuring ---------------------------------------------------------------------------------

/// An SSE subscription held open (the response head read, the stream never read again).
async fn hold_sse(addr: SocketAddr, topic: &str) -> Result<TcpStream, String> {
    let go = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        let req = format!("GET /sse?topic={topic} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(1024);
        loop {
            if let Some(h) = parse_head(&buf) {
                let h = h?;
                return if h.status == 200 { Ok(s) } else { Err(format!("/sse?topic={topic}: status {}", h.status)) };
            }
            if s.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                return Err(format!("/sse?topic={topic}: closed before the response head"));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), go).await.map_err(|_| format!("/sse?topic={topic}: no response head within 20 s"))?
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A listed topic: connections, and (hibernating design) its object's wakes.
#[derive(Debug, Clone, Copy, Default)]
struct Listed {
    connections: u64,
    wakes: Option<u64>,
}

/// The admin topic listing (every page), only topics starting with `prefix`.
async fn topic_listing(addr: SocketAddr, prefix: &str) -> Result<BTreeMap<String, Listed>, String> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut c = Client::new(addr);
    for _ in 0..1000 {
        let q = match &cursor {
            Some(cur) => format!("limit=500&cursor={}", enc(cur)),
            None => "limit=500".to_string(),
        };
        let req = format!("GET /admin/api/topics?{q} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {API_KEY}\r\n\r\n");
        let r = c.request(req.as_bytes(), Duration::from_secs(20)).await.map_err(|e| format!("topic listing: {e}"))?;
        if r.status != 200 {
            return Err(format!("topic listing: status {}: {}", r.status, String::from_utf8_lossy(&r.body)));
        }
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("topic listing: {e}"))?;
        for t in v["topics"].as_array().into_iter().flatten() {
            let name = t["topic"].as_str().unwrap_or_default();
            if name.starts_with(prefix) {
                out.insert(name.to_string(), Listed { connections: t["connections"].as_u64().unwrap_or(0), wakes: t["wakes"].as_u64() });
            }
        }
        cursor = v["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            return Ok(out);
        }
    }
    Err("topic listing: more than 1000 pages".into())
}

/// Reads each topic object's wake counter (`object_meta.wakes`, written by the object itself at
/// every start) from the SQLite files `wrangler dev` keeps under `--persist-to`, with Python's
/// standard sqlite3 module. Unlike the admin listing this does not depend on the objects'
/// reports reaching the registry. Objects without the counter (the design before) are left out.
fn stored_wakes(state: &Path) -> Result<BTreeMap<String, u64>, String> {
    const SCRIPT: &str = r#"
import glob, json, os, sqlite3, sys
out = {}
for d in glob.glob(os.path.join(sys.argv[1], 'v3', 'do', '*-TopicObject')):
    for f in glob.glob(os.path.join(d, '*.sqlite')):
        if os.path.basename(f) == 'metadata.sqlite':
            continue
        try:
            c = sqlite3.connect(f, timeout=5)
            name = c.execute('SELECT * FROM __miniflare_do_name').fetchone()
            wakes = c.execute("SELECT v FROM object_meta WHERE k = 'wakes'").fetchone()
            c.close()
        except sqlite3.Error:
            continue
        if name and wakes:
            out[name[-1]] = wakes[0]
print(json.dumps(out))
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(state)
        .output()
        .map_err(|e| format!("python3 (reads the objects' SQLite files): {e}"))?;
    if !o.status.success() {
        return Err(format!("reading the objects' wake counters: {}", String::from_utf8_lossy(&o.stderr)));
    }
    serde_json::from_slice(&o.stdout).map_err(|e| format!("reading the objects' wake counters: {e}"))
}

async fn admin_get(addr: SocketAddr, path: &str) -> Value {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {API_KEY}\r\n\r\n");
    match Client::new(addr).request(req.as_bytes(), Duration::from_secs(20)).await {
        Ok(r) if r.status == 200 => serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        Ok(r) => json!({"status": r.status}),
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// How long an idle topic object stays in memory: for each gap, a topic gets one SSE subscriber
/// (the attach starts its object: wake 1), then after the gap a second one; if the object was
/// evicted in between, the second attach starts it again (wake 2). Needs the hibernating design
/// (`wakes` in the listing).
async fn probe_eviction(addr: SocketAddr, nonce: &str, state: &Path, heartbeat_ms: u64) -> Result<Value, String> {
    let prefix = format!("ev{nonce}-");
    // Whether a start caused by the one-shot count alarm alone is counted as a wake: a topic gets
    // a subscriber, 20 s later (evicted by then) a publish (a start), and a heartbeat later the
    // alarm (another start, if the object was evicted again meanwhile).
    let mut alarm_handles = Vec::new();
    for r in 0..EVICTION_ROUNDS {
        let topic = format!("{prefix}alarm-r{r}");
        alarm_handles.push(tokio::task::spawn_local(async move {
            let a = hold_sse(addr, &topic).await?;
            tokio::time::sleep(Duration::from_secs(20)).await;
            let req = format!(
                "POST /publish HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {API_KEY}\r\nx-sse-topic: {topic}\r\nx-sse-id: p1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
            );
            let r = Client::new(addr).request(req.as_bytes(), Duration::from_secs(20)).await.map_err(|e| format!("probe publish: {e}"))?;
            if r.status != 202 {
                return Err(format!("probe publish: status {}", r.status));
            }
            tokio::time::sleep(Duration::from_millis(heartbeat_ms + 5000)).await;
            Ok::<_, String>((topic, a))
        }));
    }
    let mut handles = Vec::new();
    for r in 0..EVICTION_ROUNDS {
        for &g in &EVICTION_GAPS {
            let topic = format!("{prefix}g{g}-r{r}");
            handles.push(tokio::task::spawn_local(async move {
                let a = hold_sse(addr, &topic).await?;
                tokio::time::sleep(Duration::from_secs(g)).await;
                let b = hold_sse(addr, &topic).await?;
                Ok::<_, String>((topic, g, [a, b]))
            }));
        }
    }
    let mut held = Vec::new();
    for h in handles {
        held.push(h.await.map_err(|e| e.to_string())??);
    }
    let mut alarm_held = Vec::new();
    for h in alarm_handles {
        alarm_held.push(h.await.map_err(|e| e.to_string())??);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored = stored_wakes(state)?;
    let alarm_trials: Vec<Option<u64>> = alarm_held.iter().map(|(t, _)| stored.get(t).copied()).collect();
    drop(alarm_held);
    let listed = topic_listing(addr, &prefix).await?;
    let mut trials = Vec::new();
    for (topic, g, _) in &held {
        let wakes = stored.get(topic).copied().or_else(|| listed.get(topic).and_then(|l| l.wakes));
        trials.push((*g, wakes, listed.get(topic).and_then(|l| l.wakes)));
    }
    drop(held);
    let known: Vec<(u64, bool)> = trials.iter().filter_map(|(g, w, _)| w.map(|w| (*g, w >= 2))).collect();
    if known.is_empty() {
        return Err("eviction probe: the topic listing shows no wakes (a build of the hibernating design is needed)".into());
    }
    // Lower bound: the largest gap up to which no trial was evicted; upper bound: the smallest
    // gap from which every trial was.
    let lower = EVICTION_GAPS.iter().copied().filter(|&g| known.iter().all(|&(x, ev)| x > g || !ev)).max();
    let upper = EVICTION_GAPS.iter().copied().filter(|&g| known.iter().all(|&(x, ev)| x < g || ev)).min();
    let used = upper.unwrap_or(*EVICTION_GAPS.last().expect("gaps"));
    // Attach, publish and alarm each start the object when it is evicted in between (every
    // probed delay below 20 s and the heartbeat): 3 counted wakes, or 2 if alarm-only starts are
    // not counted.
    let alarm_start_counted = match upper {
        Some(e) if e < 20 && e * 1000 < heartbeat_ms && alarm_trials.iter().all(Option::is_some) => {
            let w: Vec<u64> = alarm_trials.iter().flatten().copied().collect();
            if w.iter().all(|&x| x >= 3) {
                Some(true)
            } else if w.iter().all(|&x| x == 2) {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(json!({
        "alarm_probe": {
            "how": "a subscriber attaches (start 1), 20 s later a publish (start 2), a heartbeat later the count alarm (start 3: the object was evicted in between); the object's counter shows 3 if a start by the alarm alone counts as a wake",
            "counted_wakes": alarm_trials,
        },
        "alarm_start_counted": alarm_start_counted,
        "how": "per gap g (s) and round: one SSE subscriber attaches to a fresh topic (its object starts: wake 1); g s later a second one attaches; the object's wake counter (its SQLite storage) is 2 if it was evicted in between",
        "trials": trials.iter().map(|(g, w, l)| json!({"gap_s": g, "wakes": w, "wakes_listed": l, "evicted": w.map(|w| w >= 2)})).collect::<Vec<_>>(),
        "stayed_up_to_s": lower,
        "evicted_from_s": upper,
        "eviction_delay_s": used,
        "note": if upper.is_none() { "no gap evicted every trial: the delay used is the longest gap probed" } else { "the delay used is the smallest gap from which every trial was evicted (an upper bound)" },
    }))
}

fn workerd_cpu_ms(s: &Snap) -> f64 {
    s.per.iter().filter(|p| p.0.starts_with("workerd")).map(|p| p.2).sum()
}

fn wake_stats(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, big: &str) -> Value {
    let mut deltas = Vec::new();
    let (mut sum_before, mut sum_after, mut missing) = (0u64, 0u64, 0u64);
    for (t, &wa) in after {
        let Some(&wb) = before.get(t) else {
            missing += 1;
            continue;
        };
        sum_before += wb;
        sum_after += wa;
        deltas.push((t.clone(), wa.saturating_sub(wb)));
    }
    let n = deltas.len().max(1) as f64;
    let total: u64 = deltas.iter().map(|d| d.1).sum();
    json!({
        "topics_with_wakes": deltas.len(),
        "topics_without": missing,
        "before_total": sum_before,
        "after_total": sum_after,
        "delta_total": total,
        "delta_per_topic_mean": util::round(total as f64 / n, 3),
        "delta_per_topic_min": deltas.iter().map(|d| d.1).min(),
        "delta_per_topic_max": deltas.iter().map(|d| d.1).max(),
        "delta_big_topic": deltas.iter().find(|d| d.0 == big).map(|d| d.1),
    })
}

fn only(m: &BTreeMap<String, u64>, prefix: &str) -> BTreeMap<String, u64> {
    m.iter().filter(|(t, _)| t.starts_with(prefix)).map(|(t, w)| (t.clone(), *w)).collect()
}

fn listed_wakes(l: &BTreeMap<String, Listed>) -> BTreeMap<String, u64> {
    l.iter().filter_map(|(t, x)| x.wakes.map(|w| (t.clone(), w))).collect()
}

async fn measure(o: &Opts) -> Result<Value, String> {
    let env = Env {
        root: o.root.clone(),
        run_dir: o.run_dir.clone(),
        server_bin: o.root.join("target/release/sse-gateway"),
        worker_build: o.worker_build.clone(),
        server_cpus: o.server_cpus.clone(),
        wrangler_port: o.wrangler_port,
        inspector_port: o.inspector_port,
        wrangler_vars: vec![("HEARTBEAT_INTERVAL_MS".into(), o.heartbeat_ms.to_string())],
        wrangler_toml: o.wrangler_toml.clone(),
    };
    let started_at = suite::timestamp();
    let t = targets::start(Kind::WranglerDev, &env).await?;
    let addr = t.pub_addr;
    println!("cost: wrangler dev up ({})", t.procs.iter().map(|p| format!("{} pid {}", p.role, p.pid)).collect::<Vec<_>>().join(", "));
    let nonce = format!("{:x}", util::now_us() % 0xfffff);
    let eviction = if o.design == "after" {
        println!("cost: eviction probe ({} gaps x {EVICTION_ROUNDS}, ~{} s)", EVICTION_GAPS.len(), 27 + o.heartbeat_ms / 1000);
        let e = probe_eviction(addr, &nonce, &o.run_dir.join("wrangler/state"), o.heartbeat_ms).await?;
        println!(
            "cost: idle objects stayed up to {} s and were evicted from {} s on; a start by the count alarm alone counted as a wake: {}",
            e["stayed_up_to_s"], e["evicted_from_s"], e["alarm_start_counted"]
        );
        Some(e)
    } else {
        None
    };
    let r = run_workload(o, &t, &nonce).await?;
    let info = t.info.clone();
    drop(t);
    Ok(json!({
        "kind": "cloudflare-cost-measurement",
        "design": o.design,
        "design_is": if o.design == "before" { "topic objects hold each subscriber's SSE response and a keepalive alarm runs every heartbeat (never inactive)" } else { "the Worker holds SSE streams and joins topic objects over hibernatable internal WebSockets; a one-shot alarm reports counts" },
        "commit": o.commit,
        "worker_build": o.worker_build.display().to_string(),
        "started_at": started_at,
        "finished_at": suite::timestamp(),
        "params": {
            "single_subscriber_topics": o.topics,
            "big_topic_subscribers": o.big,
            "events_per_topic_per_minute": 1,
            "minutes": o.minutes,
            "payload_bytes": 64,
            "heartbeat_ms": o.heartbeat_ms,
        },
        "machine": suite::machine(),
        "target": info,
        "eviction": eviction,
        "run": r,
    }))
}

async fn run_workload(o: &Opts, t: &Target, nonce: &str) -> Result<Value, String> {
    let prefix = format!("cost{nonce}-");
    let topics = o.topics + 1;
    let big_topic = format!("{prefix}{}", o.topics);
    let lifetime = (o.minutes * 60.0) as u64 + 600;
    let spec = |first_topic: usize, n_topics: usize, count: usize, w: usize| Spec {
        targets: t.sub_addrs.clone(),
        path: t.sub_path().to_string(),
        topic_prefix: prefix.clone(),
        topics: n_topics,
        topic_base: first_topic,
        first: 0,
        count,
        src_ips: suite::src_ips(w),
        connect_concurrency: 32,
        max_secs: lifetime,
    };
    let log = o.run_dir.join("cost-subs.log");
    let s0 = t.snapshot();
    let t0 = Instant::now();
    let mut ws: Vec<Worker> =
        vec![suite::spawn_subs(spec(0, o.topics, o.topics, 0), &log)?, suite::spawn_subs(spec(o.topics, 1, o.big, 1), &log)?];
    let mut readies = Vec::new();
    for w in ws.iter_mut() {
        readies.push(w.wait_ready(Duration::from_secs(180)).await?);
    }
    let connected = suite::sum(&readies, "connected");
    let failed = suite::sum(&readies, "failed");
    let connect_s = t0.elapsed().as_secs_f64();
    println!("cost: {connected}/{} subscribers connected in {connect_s:.1} s", o.topics + o.big);
    // The attach reports reach the registry.
    tokio::time::sleep(Duration::from_secs(3)).await;
    t.all_alive()?;
    let s1 = t.snapshot();
    let m1 = util::cpu_ticks();
    let g1 = suite::gen_cpu_ms(&ws);
    let state = o.run_dir.join("wrangler/state");
    let stored_before = stored_wakes(&state)?;
    let before = topic_listing(t.pub_addr, &prefix).await?;
    suite::all(&mut ws, "reset").await?;
    let plan = Plan {
        topic_prefix: prefix.clone(),
        topics,
        payload: 64,
        rate: topics as f64 / 60.0,
        secs: o.minutes * 60.0,
        max_events: 0,
        conns: 4,
        warmup: false,
    };
    println!("cost: publishing {:.2} events/s (1 per topic per minute) for {} s", plan.rate, plan.secs);
    let pub_out = publish::run(t, &plan).await;
    let pub_end = Instant::now();
    let per_topic = suite::connected_per_topic(&ws, topics);
    let expected: u64 = per_topic.iter().zip(&pub_out.accepted_per_topic).map(|(a, b)| a * b).sum();
    let fc = suite::wait_for(&mut ws, "received", expected, Duration::from_secs(5), Duration::from_secs(60)).await?;
    // Every count alarm (one heartbeat after a topic's publish) fires and reports.
    let settle_until = pub_end + Duration::from_millis(o.heartbeat_ms + 5000);
    tokio::time::sleep_until(settle_until.into()).await;
    t.all_alive()?;
    let s2 = t.snapshot();
    let m2 = util::cpu_ticks();
    let g2 = suite::gen_cpu_ms(&ws);
    let stored_after = stored_wakes(&state)?;
    let after = topic_listing(t.pub_addr, &prefix).await?;
    let stats = suite::all(&mut ws, "stats").await?;
    let mut h: Histogram<u64> = util::new_hist();
    for st in &stats {
        util::hist_add_json(&mut h, &st["hist"]);
    }
    let received = suite::sum(&stats, "received").max(suite::sum(&fc, "received"));
    let registry_stats = admin_get(t.pub_addr, "/admin/api/stats").await;
    let held_s = s2.at.duration_since(s1.at).as_secs_f64() + (s1.at - t0).as_secs_f64();
    // Teardown: the subscribers leave; the objects notice (the old design at its next heartbeat).
    let q0 = Instant::now();
    for w in ws {
        w.quit().await;
    }
    tokio::time::sleep(Duration::from_millis(o.heartbeat_ms + 5000)).await;
    let s3 = t.snapshot();
    let left = topic_listing(t.pub_addr, &prefix).await.map(|l| l.len()).unwrap_or(usize::MAX);
    let teardown_s = q0.elapsed().as_secs_f64();
    let cpu = |a: &Snap, b: &Snap| util::round((workerd_cpu_ms(b) - workerd_cpu_ms(a)) / 1000.0, 3);
    let steady_wall = s2.at.duration_since(s1.at).as_secs_f64();
    // Everything else the machine ran meanwhile (it is shared): busy CPU time minus ours.
    let busy_s: f64 = m1.iter().zip(&m2).map(|(a, b)| (b.0 - a.0) as f64 / util::clk_tck() as f64).sum();
    let ours_s = (s2.cpu_ms() - s1.cpu_ms() + g2 - g1) / 1000.0;
    println!(
        "cost: {received}/{expected} deliveries, p99 {} ms; workerd CPU {} s over {steady_wall:.0} s of publishing",
        util::hist_summary_ms(&h)["p99"],
        cpu(&s1, &s2)
    );
    Ok(json!({
        "topic_prefix": prefix,
        "big_topic": big_topic,
        "subscribers": {"requested": o.topics + o.big, "connected": connected, "failed": failed, "connect_seconds": util::round(connect_s, 2)},
        "publish": pub_out.to_json(),
        "publish_schedule_seconds": plan.secs,
        "publishes_per_topic": {"min": pub_out.accepted_per_topic.iter().min(), "max": pub_out.accepted_per_topic.iter().max()},
        "delivery": {
            "expected": expected,
            "received": received,
            "lost": expected.saturating_sub(received),
            "out_of_order": suite::sum(&stats, "out_of_order"),
            "wrong_topic": suite::sum(&stats, "wrong_topic"),
            "closed_connections": suite::sum(&stats, "closed"),
            "latency_ms": util::hist_summary_ms(&h),
        },
        // From the objects' own counters (storage); the listing's view of them beside it.
        "wakes": wake_stats(&only(&stored_before, &prefix), &only(&stored_after, &prefix), &big_topic),
        "wakes_listed": wake_stats(&listed_wakes(&before), &listed_wakes(&after), &big_topic),
        "listed_topics": {
            "after_connect": before.len(),
            "connections_after_connect": before.values().map(|l| l.connections).sum::<u64>(),
            "after_publish": after.len(),
            "connections_after_publish": after.values().map(|l| l.connections).sum::<u64>(),
            "after_teardown": left,
        },
        "seconds": {
            "connect": util::round((s1.at - t0).as_secs_f64(), 2),
            "steady": util::round(steady_wall, 2),
            "teardown": util::round(teardown_s, 2),
            "subscribers_held": util::round(held_s, 2),
        },
        "workerd_cpu_seconds": {"connect": cpu(&s0, &s1), "steady": cpu(&s1, &s2), "teardown": cpu(&s2, &s3)},
        "server_processes_steady": suite::per_process(&s1, &s2),
        "generator_cpu_seconds_steady": util::round((g2 - g1) / 1000.0, 3),
        "other_processes_cpu_seconds_steady": util::round((busy_s - ours_s).max(0.0), 2),
        "registry_stats_after_publish": registry_stats,
    }))
}

// --- the bill ----------------------------------------------------------------------------------

/// One billed quantity: a steady rate (per second of the workload) and a one-off part (setting
/// up and tearing down every connection once).
#[derive(Debug, Clone)]
struct Item {
    key: &'static str,
    what: String,
    per_second: f64,
    setup: f64,
}

fn g(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or(0.0)
}

/// The figures of one design that the bill is made of, counted by design from what the
/// generator did and saw; `eviction_s` is the measured delay after which an idle hibernatable
/// object is evicted, `handler_s` the time one event keeps an object busy (the mean publish
/// request time, an upper bound).
fn usage(m: &Value, eviction_s: f64) -> Result<(Vec<Item>, Value), String> {
    let r = &m["run"];
    let design = m["design"].as_str().unwrap_or("");
    let w = g(r, &["publish_schedule_seconds"]);
    if w <= 0.0 {
        return Err(format!("{design}: no publish schedule in the measurement"));
    }
    let hb = g(&m["params"], &["heartbeat_ms"]) / 1000.0;
    let objects = g(&m["params"], &["single_subscriber_topics"]) + 1.0;
    let subs = g(r, &["subscribers", "connected"]) + g(r, &["subscribers", "failed"]);
    let conns = g(r, &["subscribers", "connected"]);
    let publishes = g(r, &["publish", "sent"]);
    let handler_s = g(r, &["publish", "request_latency_ms", "mean"]) / 1000.0;
    let cpu_steady = g(r, &["workerd_cpu_seconds", "steady"]);
    let steady_wall = g(r, &["seconds", "steady"]).max(1e-9);
    let cpu_setup = g(r, &["workerd_cpu_seconds", "connect"]) + g(r, &["workerd_cpu_seconds", "teardown"]);
    // Alarms: before, one per object per heartbeat while it holds connections; after, a one-shot
    // alarm per burst of publishes to a topic (a publish sets it unless one is pending), i.e.
    // one per publish when a topic's publishes are a heartbeat or more apart (here 60 s).
    let spacing = 60.0;
    let per_s = |x: f64| x / w;
    let mut items = vec![
        Item {
            key: "worker_requests",
            what: "Worker requests: publishes (steady); subscribes (once per connection)".into(),
            per_second: per_s(publishes),
            setup: subs,
        },
        Item {
            key: "worker_cpu_ms",
            what: "Worker CPU ms: CPU time of the workerd processes (upper bound: includes the objects, the dev proxy and the runtime)"
                .into(),
            per_second: cpu_steady * 1000.0 / steady_wall,
            setup: cpu_setup * 1000.0,
        },
    ];
    let mut model = if design == "before" {
        let alarms = objects * w / hb;
        let registry_reqs = alarms; // every alarm sends the heartbeat snapshot (+ counts)
        let registry_setup = 2.0 * subs; // an attach and a detach report per connection
        items.push(Item {
            key: "do_requests",
            what: "Durable Object requests: publishes + a keepalive alarm per object per heartbeat + the registry snapshot each alarm sends (steady); attach + registry attach and detach reports (once)".into(),
            per_second: per_s(publishes + alarms + registry_reqs),
            setup: subs + registry_setup,
        });
        items.push(Item {
            key: "do_websocket_messages_in",
            what: "WebSocket messages received by objects".into(),
            per_second: 0.0,
            setup: 0.0,
        });
        // Every object holds streams for the whole run: active all the time, as is the registry,
        // which gets a snapshot from every object each heartbeat.
        let reg_active = (registry_reqs / w * (eviction_s + handler_s)).min(1.0);
        items.push(Item {
            key: "do_duration_gb_s",
            what: "Durable Object duration (s x 0.128 GB): every topic object active all the time (open SSE responses, alarm every heartbeat) + the registry".into(),
            per_second: (objects + reg_active) * GB_PER_OBJECT,
            setup: 0.0,
        });
        items.push(Item {
            key: "do_duration_gb_s_handlers_only",
            what: "the same if idle hibernatable objects are not billed (the current price page): topic objects hold responses, so still all the time; the registry only while handling".into(),
            per_second: (objects + (registry_reqs / w * handler_s).min(1.0)) * GB_PER_OBJECT,
            setup: 0.0,
        });
        items.push(Item {
            key: "sqlite_rows_written",
            what: "SQLite rows written: one per setAlarm (the keepalive alarm, re-armed every heartbeat); the registry keeps its state in memory".into(),
            per_second: per_s(alarms),
            setup: objects,
        });
        items.push(Item { key: "sqlite_rows_read", what: "SQLite rows read".into(), per_second: 0.0, setup: 0.0 });
        json!({"alarms": alarms, "registry_requests": registry_reqs, "objects": objects, "object_active_seconds": objects * w})
    } else {
        let wk = &r["wakes"];
        // The count alarm fires min(heartbeat, 1 s) after a burst (`Config::counts_report_ms`,
        // since 3c81de1; a whole heartbeat before, which builds measured at da111a5 show).
        let report_s = if m["commit"].as_str().is_some_and(|c| c.starts_with("da111a5")) { hb } else { hb.min(1.0) };
        let alarms = if spacing >= report_s { publishes } else { (publishes * spacing / report_s).ceil() };
        // Starts by the count alarm alone, which some builds do not count as wakes: each alarm
        // finds its object evicted when it fires later than the eviction delay.
        let uncounted = if m["eviction"]["alarm_start_counted"] == false && report_s > eviction_s { alarms } else { 0.0 };
        let wakes_steady = g(wk, &["delta_total"]) + uncounted;
        let wakes_setup = g(wk, &["before_total"]) + objects; // attach wakes + one at teardown
        let registry_reqs = alarms; // each alarm reports counts (+ the wake, piggybacked)
        let registry_setup = 2.0 * subs;
        let closes = conns; // the internal sockets close at teardown
        let wake_s = eviction_s + handler_s;
        items.push(Item {
            key: "do_requests",
            what: "Durable Object requests: publishes + one-shot count alarms + the registry report each sends (steady); the internal WebSocket upgrade + registry attach and detach reports (once)".into(),
            per_second: per_s(publishes + alarms + registry_reqs),
            setup: subs + registry_setup,
        });
        items.push(Item {
            key: "do_websocket_messages_in",
            what: "WebSocket messages received by objects (billed 20:1): the Worker sends nothing on its internal sockets; their close at teardown is counted as one each".into(),
            per_second: 0.0,
            setup: closes,
        });
        let reg_active = (registry_reqs / w * wake_s).min(1.0);
        items.push(Item {
            key: "do_duration_gb_s",
            what: format!(
                "Durable Object duration (s x 0.128 GB): per wake of a topic object the eviction delay ({eviction_s} s) + the handling time ({:.1} ms) + the registry",
                handler_s * 1000.0
            ),
            per_second: (per_s(wakes_steady) * wake_s + reg_active) * GB_PER_OBJECT,
            setup: wakes_setup * wake_s * GB_PER_OBJECT,
        });
        let events = publishes + alarms;
        items.push(Item {
            key: "do_duration_gb_s_handlers_only",
            what: "the same if idle hibernatable objects are not billed (the current price page): handling time per event only".into(),
            per_second: (per_s(events) * handler_s + (registry_reqs / w * handler_s).min(1.0)) * GB_PER_OBJECT,
            setup: (subs + closes + 2.0 * subs) * handler_s * GB_PER_OBJECT,
        });
        // Rows: a counted wake writes object_meta rows (2 at da111a5, 1 since 3c81de1) and reads
        // its counter back, and at most one registry row when its start reports it; a start the
        // build does not count writes none.
        let counted = g(wk, &["delta_total"]);
        let wake_rows = if m["commit"].as_str().is_some_and(|c| c.starts_with("da111a5")) { 3.0 } else { 2.0 };
        items.push(Item {
            key: "sqlite_rows_written",
            what: "SQLite rows written: per counted wake the object's wake counter (1; 2 at da111a5) + at most 1 (the registry's topic row), 1 per setAlarm, 2 per counts report (the registry's topic and totals rows) (steady); the same per wake at attach and teardown, 2 per attach and 2 per detach report (once)".into(),
            per_second: per_s(wake_rows * counted + alarms + 2.0 * registry_reqs),
            setup: wake_rows * wakes_setup + 2.0 * registry_setup,
        });
        items.push(Item {
            key: "sqlite_rows_read",
            what: "SQLite rows read: 1 per counted wake (the wake counter read back)".into(),
            per_second: per_s(counted),
            setup: wakes_setup,
        });
        json!({
            "alarms": alarms,
            "registry_requests": registry_reqs,
            "objects": objects,
            "wakes_steady": wakes_steady,
            "wakes_counted": counted,
            "alarm_starts_not_counted_by_the_build": uncounted,
            "wakes_setup": wakes_setup,
            "seconds_per_wake": wake_s,
            "object_active_seconds": wakes_steady * wake_s,
        })
    };
    model["schedule_seconds"] = json!(w);
    model["handler_seconds"] = json!(util::round(handler_s, 4));
    model["eviction_delay_seconds"] = json!(eviction_s);
    model["connections"] = json!(conns);
    Ok((items, model))
}

struct Price {
    included: f64,
    usd_per_million: f64,
}

fn price(p: &Value, path: &[&str]) -> Result<Price, String> {
    let mut cur = p;
    for k in path {
        cur = &cur[*k];
    }
    match (cur["included_per_month"].as_f64(), cur["usd_per_million"].as_f64()) {
        (Some(included), Some(usd_per_million)) => Ok(Price { included, usd_per_million }),
        _ => Err(format!("price list: {} needs included_per_month and usd_per_million", path.join("."))),
    }
}

/// A month of the workload: every connection held all month (set up once), the steady part
/// running all month. Gross = at the listed rates, no allowance; bill = with the plan's monthly
/// allowances and minimum, for this workload alone on an account.
fn bill(items: &[Item], prices: &Value, connections: f64, duration_key: &str) -> Result<Value, String> {
    let month_s = prices["month_seconds"].as_f64().unwrap_or(MONTH_SECONDS_DEFAULT);
    let ws_ratio = prices["durable_objects"]["requests"]["websocket_incoming_messages_per_request"].as_f64().unwrap_or(20.0);
    let month = |key: &str| items.iter().find(|i| i.key == key).map(|i| i.per_second * month_s + i.setup).unwrap_or(0.0);
    let lines = [
        ("worker_requests", month("worker_requests"), price(prices, &["workers", "requests"])?),
        ("worker_cpu_ms", month("worker_cpu_ms"), price(prices, &["workers", "cpu_ms"])?),
        (
            "do_requests",
            month("do_requests") + month("do_websocket_messages_in") / ws_ratio,
            price(prices, &["durable_objects", "requests"])?,
        ),
        ("do_duration_gb_s", month(duration_key), price(prices, &["durable_objects", "duration_gb_s"])?),
        ("sqlite_rows_written", month("sqlite_rows_written"), price(prices, &["sqlite", "rows_written"])?),
        ("sqlite_rows_read", month("sqlite_rows_read"), price(prices, &["sqlite", "rows_read"])?),
    ];
    let minimum = prices["workers_paid"]["monthly_minimum_usd"].as_f64().unwrap_or(5.0);
    let mut out = serde_json::Map::new();
    let (mut gross, mut net) = (0.0, 0.0);
    for (k, qty, p) in &lines {
        let g = qty * p.usd_per_million / 1e6;
        let n = (qty - p.included).max(0.0) * p.usd_per_million / 1e6;
        gross += g;
        net += n;
        out.insert(
            k.to_string(),
            json!({"per_month": util::round(*qty, 0), "included": p.included, "usd_per_million": p.usd_per_million, "gross_usd": util::round(g, 4), "over_allowance_usd": util::round(n, 4)}),
        );
    }
    let conn_hours = connections * month_s / 3600.0;
    Ok(json!({
        "lines": out,
        "month_seconds": month_s,
        "connection_hours_per_month": util::round(conn_hours, 0),
        "gross_usd_per_month": util::round(gross, 4),
        "bill_usd_per_month": util::round(minimum + net, 4),
        "usd_per_million_connection_hours": util::round(gross / conn_hours.max(1e-9) * 1e6, 3),
    }))
}

fn fanout_of(paths: &[PathBuf]) -> Vec<Value> {
    let mut out = Vec::new();
    for p in paths {
        let Ok(v) = load(p) else { continue };
        for s in v["scenarios"].as_array().into_iter().flatten() {
            let id = s["id"].as_str().unwrap_or("");
            if !id.starts_with("fanout-1k-64B") || s.get("error").is_some() {
                continue;
            }
            out.push(json!({
                "source": p.display().to_string(),
                "scenario": id,
                "p50_ms": s["delivery"]["latency_ms"]["p50"],
                "p99_ms": s["delivery"]["latency_ms"]["p99"],
                "deliveries_per_cpu_second": s["server"]["deliveries_per_cpu_second"],
                "lost": s["delivery"]["lost"],
                "others_cpu_seconds": s["machine"]["other_processes_cpu_seconds"],
            }));
        }
    }
    out
}

fn mean_of(v: &[Value], k: &str) -> Option<f64> {
    let xs: Vec<f64> = v.iter().filter_map(|x| x[k].as_f64()).collect();
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn report(baseline: &Value, current: &Value, prices: &Value) -> Result<Value, String> {
    if baseline["design"] != "before" || current["design"] != "after" {
        return Err("the baseline must be a measurement of the design before (--design before), the current one of the design after".into());
    }
    let ev = &current["eviction"];
    let eviction_s = ev["eviction_delay_s"].as_f64().ok_or("the current measurement has no eviction delay")?;
    let mut designs = serde_json::Map::new();
    let mut durations = BTreeMap::new();
    let mut per_mch = BTreeMap::new();
    for (name, m) in [("before", baseline), ("after", current)] {
        let (items, model) = usage(m, eviction_s)?;
        let conns = model["connections"].as_f64().unwrap_or(0.0);
        let b = bill(&items, prices, conns, "do_duration_gb_s")?;
        let b2 = bill(&items, prices, conns, "do_duration_gb_s_handlers_only")?;
        let find = |k: &str| items.iter().find(|i| i.key == k).map(|i| i.per_second).unwrap_or(0.0);
        durations.insert(name, (find("do_duration_gb_s"), find("do_duration_gb_s_handlers_only")));
        per_mch.insert(
            name,
            (b["usd_per_million_connection_hours"].as_f64().unwrap_or(0.0), b2["usd_per_million_connection_hours"].as_f64().unwrap_or(0.0)),
        );
        let r = &m["run"];
        designs.insert(
            name.to_string(),
            json!({
                "commit": m["commit"],
                "measured_at": m["started_at"],
                "design_is": m["design_is"],
                "minutes": m["params"]["minutes"],
                "subscribers": r["subscribers"],
                "publishes": r["publish"]["sent"],
                "publish_errors": r["publish"]["errors"],
                "delivery": r["delivery"],
                "wakes": r["wakes"],
                "workerd_cpu_seconds": r["workerd_cpu_seconds"],
                "seconds": r["seconds"],
                "model": model,
                "usage": items.iter().map(|i| json!({"key": i.key, "what": i.what, "per_second": util::round(i.per_second, 6), "once": util::round(i.setup, 3)})).collect::<Vec<_>>(),
                "month": b,
                "month_if_idle_hibernatable_objects_are_free": b2,
            }),
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { util::round(a / b, 2) } else { 0.0 };
    let (db, da) = (durations["before"], durations["after"]);
    let duration_ratio = ratio(db.0, da.0);
    let fanout_before = baseline["fanout_1k"].as_array().cloned().unwrap_or_default();
    let fanout_after = current["fanout_1k"].as_array().cloned().unwrap_or_default();
    let fan = |v: &[Value]| json!({"runs": v, "mean_p50_ms": mean_of(v, "p50_ms").map(|x| util::round(x, 1)), "mean_p99_ms": mean_of(v, "p99_ms").map(|x| util::round(x, 1)), "mean_deliveries_per_cpu_second": mean_of(v, "deliveries_per_cpu_second").map(|x| util::round(x, 0))});
    let short = current["params"]["minutes"].as_f64().unwrap_or(0.0) < 5.0 || baseline["params"]["minutes"].as_f64().unwrap_or(0.0) < 5.0;
    Ok(json!({
        "kind": "cloudflare-cost-report",
        "generated_at": suite::timestamp(),
        "smoke": short,
        "workload": {
            "single_subscriber_topics": current["params"]["single_subscriber_topics"],
            "big_topic_subscribers": current["params"]["big_topic_subscribers"],
            "events_per_topic_per_minute": 1,
            "minutes": {"before": baseline["params"]["minutes"], "after": current["params"]["minutes"]},
            "heartbeat_ms": current["params"]["heartbeat_ms"],
            "month": "every connection held all month (set up and torn down once), the steady part of the measured run all month",
        },
        "prices": {"source": prices["sources"], "read_on": prices["read_on"], "date_note": prices["date_note"]},
        "eviction": ev,
        "designs": designs,
        "object_duration": {
            "gb_s_per_second_before": util::round(db.0, 4),
            "gb_s_per_second_after": util::round(da.0, 4),
            "ratio_before_to_after": duration_ratio,
            "target_ratio": 50,
            "target_met": duration_ratio >= 50.0,
            "if_idle_hibernatable_objects_are_free": {"gb_s_per_second_before": util::round(db.1, 4), "gb_s_per_second_after": util::round(da.1, 4), "ratio_before_to_after": ratio(db.1, da.1)},
        },
        "usd_per_million_connection_hours": {
            "before": per_mch["before"].0,
            "after": per_mch["after"].0,
            "ratio_before_to_after": ratio(per_mch["before"].0, per_mch["after"].0),
            "if_idle_hibernatable_objects_are_free": {"before": per_mch["before"].1, "after": per_mch["after"].1, "ratio_before_to_after": ratio(per_mch["before"].1, per_mch["after"].1)},
        },
        "fanout_1k": {"before": fan(&fanout_before), "after": fan(&fanout_after)},
    }))
}

fn headline(rep: &Value) -> Vec<String> {
    let d = &rep["object_duration"];
    let b = &rep["usd_per_million_connection_hours"];
    vec![
        format!("bill per million connection-hours: before ${}, after ${} ({}x less)", b["before"], b["after"], b["ratio_before_to_after"]),
        format!(
            "object duration: {} vs {} GB-s per second of the workload, {}x less (target 50x: {})",
            d["gb_s_per_second_before"],
            d["gb_s_per_second_after"],
            d["ratio_before_to_after"],
            if d["target_met"] == true { "met" } else { "missed" }
        ),
        format!(
            "if idle hibernatable objects are not billed: {}x less duration, ${} vs ${} per million connection-hours",
            d["if_idle_hibernatable_objects_are_free"]["ratio_before_to_after"],
            b["if_idle_hibernatable_objects_are_free"]["before"],
            b["if_idle_hibernatable_objects_are_free"]["after"]
        ),
    ]
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.abs() >= 1000.0 => {
            let s = format!("{:.0}", x);
            let (sign, digits) = if let Some(d) = s.strip_prefix('-') { ("-", d) } else { ("", s.as_str()) };
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            format!("{sign}{out}")
        }
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) if x.abs() >= 0.01 || x == 0.0 => format!("{x:.3}").trim_end_matches('0').trim_end_matches('.').to_string(),
        Some(x) => format!("{x:.2e}"),
        None => v.to_string(),
    }
}

fn markdown(rep: &Value) -> String {
    let mut s = String::new();
    let d = &rep["designs"];
    let (b, a) = (&d["before"], &d["after"]);
    let _ = writeln!(s, "# Cloudflare bill: hibernation\n");
    if rep["smoke"] == true {
        let _ = writeln!(s, "**Smoke run (shorter than 5 minutes): not the published figures.**\n");
    }
    let _ = writeln!(
        s,
        "Generated {} by `sse-loadgen cost` (docs/benchmarks.md, \"Cloudflare bill: hibernation\"). Workload: {} topics with one SSE subscriber each + one topic with {} subscribers, one event per topic per minute, under `wrangler dev`. Before: `{}` (kept baseline, measured {}); after: `{}` (measured {}).\n",
        rep["generated_at"].as_str().unwrap_or(""),
        rep["workload"]["single_subscriber_topics"],
        rep["workload"]["big_topic_subscribers"],
        b["commit"].as_str().unwrap_or(""),
        b["measured_at"].as_str().unwrap_or(""),
        a["commit"].as_str().unwrap_or(""),
        a["measured_at"].as_str().unwrap_or(""),
    );
    let od = &rep["object_duration"];
    let pm = &rep["usd_per_million_connection_hours"];
    let _ = writeln!(s, "| | before | after | before ÷ after |\n|---|---:|---:|---:|");
    let _ = writeln!(
        s,
        "| **USD per million connection-hours** | {} | {} | {}× |",
        num(&pm["before"]),
        num(&pm["after"]),
        num(&pm["ratio_before_to_after"])
    );
    let _ = writeln!(
        s,
        "| object duration, GB-s per second of the workload | {} | {} | **{}×** (target ≥ 50×: {}) |",
        num(&od["gb_s_per_second_before"]),
        num(&od["gb_s_per_second_after"]),
        num(&od["ratio_before_to_after"]),
        if od["target_met"] == true { "met" } else { "missed" }
    );
    let alt = &od["if_idle_hibernatable_objects_are_free"];
    let palt = &pm["if_idle_hibernatable_objects_are_free"];
    let _ = writeln!(
        s,
        "| the same if idle hibernatable objects are not billed: USD per M conn-h / duration | {} / {} | {} / {} | {}× / {}× |",
        num(&palt["before"]),
        num(&alt["gb_s_per_second_before"]),
        num(&palt["after"]),
        num(&alt["gb_s_per_second_after"]),
        num(&palt["ratio_before_to_after"]),
        num(&alt["ratio_before_to_after"])
    );
    let _ = writeln!(
        s,
        "| bill for a month of this workload alone (with allowances and the $5 minimum) | {} | {} | |",
        num(&b["month"]["bill_usd_per_month"]),
        num(&a["month"]["bill_usd_per_month"])
    );
    let _ = writeln!(s, "\nPer month (every connection held all month), gross USD at the listed rates:\n");
    let _ = writeln!(s, "| line | before: quantity | before: USD | after: quantity | after: USD |\n|---|---:|---:|---:|---:|");
    for k in ["worker_requests", "worker_cpu_ms", "do_requests", "do_duration_gb_s", "sqlite_rows_written", "sqlite_rows_read"] {
        let (lb, la) = (&b["month"]["lines"][k], &a["month"]["lines"][k]);
        let _ = writeln!(
            s,
            "| {k} | {} | {} | {} | {} |",
            num(&lb["per_month"]),
            num(&lb["gross_usd"]),
            num(&la["per_month"]),
            num(&la["gross_usd"])
        );
    }
    let ev = &rep["eviction"];
    let am = &a["model"];
    let _ = writeln!(
        s,
        "\nEviction delay measured on this machine: idle topic objects stayed in memory up to {} s and were evicted from {} s on; {} s per wake is used. Object starts over the publishing (after): {} counted by the objects' wake counters (per topic: mean {}, big topic {}) + {} by the count alarm alone, which this build does not count (alarm probe: counted wakes {}); each start is charged the eviction delay + {} ms of handling (the mean publish request time). Worker CPU is the workerd processes' CPU time, an upper bound.",
        ev["stayed_up_to_s"],
        ev["evicted_from_s"],
        ev["eviction_delay_s"],
        num(&am["wakes_counted"]),
        a["wakes"]["delta_per_topic_mean"],
        a["wakes"]["delta_big_topic"],
        num(&am["alarm_starts_not_counted_by_the_build"]),
        ev["alarm_probe"]["counted_wakes"],
        num(&json!(am["handler_seconds"].as_f64().unwrap_or(0.0) * 1000.0)),
    );
    let fb = &rep["fanout_1k"]["before"];
    let fa = &rep["fanout_1k"]["after"];
    if fb["runs"].as_array().is_some_and(|r| !r.is_empty()) || fa["runs"].as_array().is_some_and(|r| !r.is_empty()) {
        let _ = writeln!(s, "\nfanout-1k-64B on wrangler dev (mean over runs):\n\n| | runs | p50 ms | p99 ms | deliveries per CPU-s |\n|---|---:|---:|---:|---:|");
        for (n, f) in [("before", fb), ("after", fa)] {
            let _ = writeln!(
                s,
                "| {n} | {} | {} | {} | {} |",
                f["runs"].as_array().map_or(0, Vec::len),
                num(&f["mean_p50_ms"]),
                num(&f["mean_p99_ms"]),
                num(&f["mean_deliveries_per_cpu_second"])
            );
        }
    }
    let _ = writeln!(
        s,
        "\nLost deliveries: before {}, after {}. Prices: {} (no date on the pages; read {}).",
        b["delivery"]["lost"],
        a["delivery"]["lost"],
        rep["prices"]["source"]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x["url"].as_str()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        rep["prices"]["read_on"].as_str().unwrap_or("?")
    );
    s
}

/// Adds the fanout-1k figures of suite result files (`wrangler-dev.json`) to a measurement.
pub fn with_fanout(mut m: Value, paths: &[PathBuf]) -> Value {
    let f = fanout_of(paths);
    if !f.is_empty() {
        m["fanout_1k"] = Value::Array(f);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(design: &str, wakes_delta: u64) -> Value {
        json!({
            "design": design,
            "params": {"single_subscriber_topics": 500, "big_topic_subscribers": 500, "minutes": 5, "heartbeat_ms": 15000},
            "run": {
                "publish_schedule_seconds": 300.0,
                "subscribers": {"connected": 1000, "failed": 0},
                "publish": {"sent": 2505, "request_latency_ms": {"mean": 10.0}},
                "workerd_cpu_seconds": {"connect": 1.0, "steady": 10.0, "teardown": 1.0},
                "seconds": {"steady": 320.0},
                "wakes": {"delta_total": wakes_delta, "before_total": 501},
            },
        })
    }

    #[test]
    fn usage_counts_by_design() {
        let (items, model) = usage(&measurement("before", 0), 13.0).unwrap();
        let get = |k: &str| items.iter().find(|i| i.key == k).unwrap().clone();
        // 501 objects x 300 s / 15 s alarms, and a registry snapshot per alarm.
        assert_eq!(model["alarms"], 10020.0);
        assert!((get("do_requests").per_second * 300.0 - (2505.0 + 2.0 * 10020.0)).abs() < 1e-6);
        // Every object and the registry active all the time.
        assert!((get("do_duration_gb_s").per_second - 502.0 * 0.128).abs() < 1e-9);
        let (items, model) = usage(&measurement("after", 5010), 13.0).unwrap();
        let get = |k: &str| items.iter().find(|i| i.key == k).unwrap().clone();
        assert_eq!(model["alarms"], 2505.0);
        // 5010 wakes of 13.01 s over 300 s, plus the registry (busy: reports every ~0.1 s).
        let want = (5010.0 * 13.01 / 300.0 + 1.0) * 0.128;
        assert!((get("do_duration_gb_s").per_second - want).abs() < 1e-9);
        assert_eq!(get("do_websocket_messages_in").setup, 1000.0);
    }

    #[test]
    fn bill_and_report() {
        let prices = json!({
            "month_seconds": 2_592_000.0,
            "workers_paid": {"monthly_minimum_usd": 5.0},
            "workers": {"requests": {"included_per_month": 1e7, "usd_per_million": 0.30}, "cpu_ms": {"included_per_month": 3e7, "usd_per_million": 0.02}},
            "durable_objects": {"requests": {"included_per_month": 1e6, "usd_per_million": 0.15, "websocket_incoming_messages_per_request": 20}, "duration_gb_s": {"included_per_month": 400000.0, "usd_per_million": 12.5}},
            "sqlite": {"rows_read": {"included_per_month": 2.5e10, "usd_per_million": 0.001}, "rows_written": {"included_per_month": 5e7, "usd_per_million": 1.0}},
        });
        let mut cur = measurement("after", 1002);
        cur["eviction"] = json!({"eviction_delay_s": 13});
        let rep = report(&measurement("before", 0), &cur, &prices).unwrap();
        let before = rep["designs"]["before"]["month"]["lines"]["do_duration_gb_s"]["per_month"].as_f64().unwrap();
        assert!((before - (502.0 * 0.128 * 2_592_000.0)).abs() < 1.0);
        assert!(rep["object_duration"]["ratio_before_to_after"].as_f64().unwrap() > 1.0);
        assert!(
            rep["usd_per_million_connection_hours"]["before"].as_f64().unwrap()
                > rep["usd_per_million_connection_hours"]["after"].as_f64().unwrap()
        );
        let md = markdown(&rep);
        assert!(md.contains("USD per million connection-hours"));
    }

    #[test]
    fn numbers() {
        assert_eq!(num(&json!(1234567.8)), "1,234,568");
        assert_eq!(num(&json!(12.345)), "12.3");
        assert_eq!(num(&json!(0.5)), "0.5");
        assert_eq!(enc("t1.61.0000abcd"), "t1.61.0000abcd");
        assert_eq!(enc("a b"), "a%20b");
    }
}
