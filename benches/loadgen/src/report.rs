//! From a run directory (`benchmark-results/<timestamp>/`): `summary.json` (every key figure as
//! one flat, diffable row) and `benchmark-results/latest.md` (the tables, the ratio to nchan,
//! the goals, and the change against the previous run of the same profile).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util;

const TARGET_ORDER: [&str; 4] = ["native", "cluster", "wrangler-dev", "nchan"];

#[derive(Debug, Clone)]
struct Fig {
    target: String,
    scenario: String,
    metric: &'static str,
    value: f64,
    /// "higher", "lower" or "info".
    better: &'static str,
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn figures_of(target: &str, s: &Value) -> Vec<Fig> {
    let id = s["id"].as_str().unwrap_or("?").to_string();
    let mut out = Vec::new();
    let mut push = |metric: &'static str, v: Option<f64>, better: &'static str| {
        if let Some(value) = v {
            out.push(Fig { target: target.to_string(), scenario: id.clone(), metric, value, better });
        }
    };
    if s.get("error").is_some() {
        return out;
    }
    let kind = s["kind"].as_str().unwrap_or("");
    if matches!(kind, "idle" | "hold") {
        push("KiB RSS per connection", f(&s["idle"]["kib_per_connection"]), "lower");
        push("connections held", f(&s["subscribers"]["connected"]), "info");
    }
    if let Some(d) = s.get("delivery") {
        push("deliveries/s", f(&d["per_second"]), "higher");
        push("deliveries per server CPU-second", f(&s["server"]["deliveries_per_cpu_second"]), "higher");
        push("server user CPU-s per 1M deliveries", f(&s["server"]["user_cpu_seconds_per_million_deliveries"]), "lower");
        push("server system CPU-s per 1M deliveries", f(&s["server"]["system_cpu_seconds_per_million_deliveries"]), "lower");
        push("server user space % of perf samples", f(&s["server"]["perf_user_share_percent"]), "lower");
        push("p50 latency ms", f(&d["latency_ms"]["p50"]), "lower");
        push("p90 latency ms", f(&d["latency_ms"]["p90"]), "lower");
        push("p99 latency ms", f(&d["latency_ms"]["p99"]), "lower");
        push("p99.9 latency ms", f(&d["latency_ms"]["p99_9"]), "lower");
        push("max latency ms", f(&d["latency_ms"]["max"]), "lower");
        push("deliveries expected", f(&d["expected"]), "info");
        push("lost", f(&d["lost"]), "lower");
        push("out of order", f(&d["out_of_order"]), "lower");
    }
    if let Some(d) = s.get("drop") {
        push("publishes/s", f(&d["publishes_per_second"]), "higher");
        push("publishes per server CPU-second", f(&s["server"]["publishes_per_cpu_second"]), "higher");
        push("server user CPU-s per 1M publishes", f(&s["server"]["user_cpu_seconds_per_million_publishes"]), "lower");
        push("server system CPU-s per 1M publishes", f(&s["server"]["system_cpu_seconds_per_million_publishes"]), "lower");
    }
    if let Some(c) = s.get("connect") {
        push("connects/s", f(&c["per_second"]), "higher");
        push("p50 time to connected ms", f(&c["time_to_connected_ms"]["p50"]), "lower");
        push("p99 time to connected ms", f(&c["time_to_connected_ms"]["p99"]), "lower");
        push("server CPU µs per connect", f(&s["server"]["cpu_us_per_connect"]), "lower");
        push("server user CPU µs per connect", f(&s["server"]["user_cpu_us_per_connect"]), "lower");
        push("server system CPU µs per connect", f(&s["server"]["system_cpu_us_per_connect"]), "lower");
        push("connections opened", f(&c["connected"]), "info");
        push("connect failures", f(&c["failed"]), "lower");
    }
    if s.get("server").is_some() {
        push("server CPU % of one core", f(&s["server"]["cpu_percent_of_one_core"]), "info");
        push("server peak RSS MiB", f(&s["server"]["rss_peak_kib"]).map(|k| util::round(k / 1024.0, 1)), "info");
        push("generator CPU % of one core", f(&s["generator"]["cpu_percent_of_one_core"]), "info");
        push("other processes' CPU-seconds meanwhile", f(&s["machine"]["other_processes_cpu_seconds"]), "info");
    }
    out
}

fn load(p: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

/// A run directory's target files, in the usual order.
fn targets_of(run: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for t in TARGET_ORDER {
        if let Some(v) = load(&run.join(format!("{t}.json"))) {
            out.push(v);
        }
    }
    out
}

fn fmt(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        // Whole numbers with thousands separators.
        let s = format!("{:.0}", a);
        let mut o = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                o.push(',');
            }
            o.push(ch);
        }
        if v < 0.0 {
            format!("-{o}")
        } else {
            o
        }
    } else if a >= 100.0 {
        format!("{:.0}", v)
    } else if a >= 10.0 {
        format!("{:.1}", v)
    } else if a >= 1.0 {
        format!("{:.2}", v)
    } else {
        format!("{:.3}", v)
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        if a == 0.0 {
            "=".into()
        } else {
            "–".into()
        }
    } else {
        let r = a / b;
        if r != 0.0 && r.abs() < 0.1 {
            format!("{:.1e}×", r).replace("e-", "e−")
        } else {
            format!("{:.2}×", r)
        }
    }
}

struct Goal {
    name: &'static str,
    measured: String,
    status: &'static str,
}

fn find<'a>(figs: &'a [Fig], target: &str, scenario: &str, metric: &str) -> Option<&'a Fig> {
    figs.iter().find(|x| x.target == target && x.scenario == scenario && x.metric == metric)
}

fn first_scenario(figs: &[Fig], target: &str, prefix: &str) -> Option<String> {
    figs.iter().find(|x| x.target == target && x.scenario.starts_with(prefix)).map(|x| x.scenario.clone())
}

fn goals(figs: &[Fig]) -> Vec<Goal> {
    let mut g = Vec::new();
    let v = |t: &str, s: &str, m: &str| find(figs, t, s, m).map(|x| x.value);
    // 1. 10k fan-out, 64 B: efficiency and p99 against nchan.
    let s = first_scenario(figs, "native", "fanout-10k-64B@").unwrap_or_default();
    let s = s.as_str();
    match (
        v("native", s, "deliveries per server CPU-second"),
        v("nchan", s, "deliveries per server CPU-second"),
        v("native", s, "p99 latency ms"),
        v("nchan", s, "p99 latency ms"),
    ) {
        (Some(ne), Some(ce), Some(np), Some(cp)) => {
            let ok = ne >= 5.0 * ce && np <= 0.5 * cp;
            let burst = "fanout-10k-burst-64B";
            let extra =
                match (v("native", burst, "deliveries per server CPU-second"), v("nchan", burst, "deliveries per server CPU-second")) {
                    (Some(a), Some(b)) => format!("; back-to-back burst: {} vs {} ({})", fmt(a), fmt(b), ratio(a, b)),
                    _ => String::new(),
                };
            g.push(Goal {
                name: "10k-subscriber fan-out, 64 B (native vs nchan): ≥ 5× deliveries per server CPU-second, p99 ≤ ½ nchan's",
                measured: format!(
                    "{s}: {} vs {} deliveries/CPU-s ({}); p99 {} ms vs {} ms ({}){extra}",
                    fmt(ne),
                    fmt(ce),
                    ratio(ne, ce),
                    fmt(np),
                    fmt(cp),
                    ratio(np, cp)
                ),
                status: if ok { "met" } else { "missed" },
            });
        }
        _ => g.push(Goal {
            name: "10k-subscriber fan-out, 64 B (native vs nchan): ≥ 5× deliveries per server CPU-second, p99 ≤ ½ nchan's",
            measured: "not measured in this run".into(),
            status: "n/a",
        }),
    }
    // 1b. What bounds goal 1 while each event is written to each subscriber with its own
    // system call: even with no user-space time at all, our CPU per delivery cannot fall below
    // the kernel's share of it, so the ratio to nchan is at most nchan's total CPU per delivery
    // over that kernel time (nchan's own, and ours as measured).
    let s = first_scenario(figs, "nchan", "fanout-10k-64B@").unwrap_or_default();
    let s = s.as_str();
    let (nu, ns) = (v("nchan", s, "server user CPU-s per 1M deliveries"), v("nchan", s, "server system CPU-s per 1M deliveries"));
    let (ou, os) = (v("native", s, "server user CPU-s per 1M deliveries"), v("native", s, "server system CPU-s per 1M deliveries"));
    const BOUND: &str = "bound on the 10k goal's ratio while every event is one write per subscriber: nchan's CPU per delivery ÷ the kernel's share (our user time taken as zero)";
    match (nu, ns) {
        (Some(nu), Some(ns)) if ns > 0.0 => {
            let bound = (nu + ns) / ns;
            let ours = match (ou, os) {
                (Some(ou), Some(os)) if os > 0.0 => {
                    format!("; with our own system time ({} µs of our {} µs): ≤ {}", fmt(os), fmt(ou + os), ratio(nu + ns, os))
                }
                _ => String::new(),
            };
            g.push(Goal {
                name: BOUND,
                measured: format!(
                    "{s}: nchan {} µs per delivery, {} µs of it system (user {} µs) → ≤ {} nchan's deliveries per CPU-second{ours}",
                    fmt(nu + ns),
                    fmt(ns),
                    fmt(nu),
                    ratio(nu + ns, ns)
                ),
                status: if bound < 5.0 { "5× out of reach" } else { "5× within reach" },
            });
        }
        _ => g.push(Goal { name: BOUND, measured: "not measured in this run".into(), status: "n/a" }),
    }
    // 1b. How close the native node is to that kernel-bound ceiling: its user-space share of
    // its own CPU per delivery (the rest is the kernel's, which no server can cut).
    const CEILING: &str = "10k fan-out at the kernel's limit (native): user space ≤ 5 % of our CPU per delivery, p99 ≤ nchan's";
    match (ou, os) {
        (Some(ou), Some(os)) if ou + os > 0.0 => {
            let ticks_share = ou / (ou + os) * 100.0;
            let p99 = (v("native", s, "p99 latency ms"), v("nchan", s, "p99 latency ms"));
            let p99_text = match p99 {
                (Some(o), Some(n)) => format!("; p99 {} vs nchan {} ms", fmt(o), fmt(n)),
                _ => String::new(),
            };
            let p99_ok = matches!(p99, (Some(o), Some(n)) if o <= n);
            // `perf` samples when the run has them (the steadier measure, see suite.rs
            // `perf_sampled`); the split of whole scheduler ticks otherwise.
            let (user_share, how) = match v("native", s, "server user space % of perf samples") {
                Some(p) => (p, format!("{p:.1} % of `perf` samples in user space (the tick-based split: {ticks_share:.1} %)")),
                None => (ticks_share, format!("{ticks_share:.1} % (tick-based split; `perf` samples not taken)")),
            };
            g.push(Goal {
                name: CEILING,
                measured: format!(
                    "{s}: user {} µs of {} µs per delivery; {how}; the kernel's share {:.1} % of the ceiling{p99_text}",
                    fmt(ou),
                    fmt(ou + os),
                    100.0 - user_share
                ),
                status: if user_share <= 5.0 && p99_ok { "met" } else { "missed" },
            });
        }
        _ => g.push(Goal { name: CEILING, measured: "not measured in this run".into(), status: "n/a" }),
    }
    // 1c. The cluster on many small topics (issue 16): a publish costs about what a single
    // node's does, Redis and the forwards included; the cross-node p99 overhead beside it.
    const CLUSTER: &str =
        "cluster on 1,000 topics × 5: ≥ 0.9× a single node's deliveries per server CPU-second (three nodes and Redis counted)";
    let t = "topics-1kx5";
    match (v("cluster", t, "deliveries per server CPU-second"), v("native", t, "deliveries per server CPU-second")) {
        (Some(c), Some(n)) => {
            let p99 = match (v("cluster", t, "p99 latency ms"), v("native", t, "p99 latency ms")) {
                (Some(a), Some(b)) => format!("; p99 {} vs {} ms (cross-node overhead {:+.2} ms)", fmt(a), fmt(b), a - b),
                _ => String::new(),
            };
            g.push(Goal {
                name: CLUSTER,
                measured: format!("{t}: {} vs {} deliveries/CPU-s ({}){p99}", fmt(c), fmt(n), ratio(c, n)),
                status: if c >= 0.9 * n { "met" } else { "missed" },
            });
        }
        _ => g.push(Goal { name: CLUSTER, measured: "not measured in this run".into(), status: "n/a" }),
    }
    // 2. Idle memory.
    let idle = first_scenario(figs, "native", "idle-");
    match idle.as_deref().and_then(|s| v("native", s, "KiB RSS per connection")) {
        Some(k) => {
            let peer = idle.as_deref().and_then(|s| v("nchan", s, "KiB RSS per connection"));
            g.push(Goal {
                name: "idle memory: ≤ 4 KiB of server RSS per SSE connection (native)",
                measured: format!(
                    "{} KiB per connection ({}){}",
                    fmt(k),
                    idle.clone().unwrap_or_default(),
                    peer.map(|p| format!("; nchan {} KiB", fmt(p))).unwrap_or_default()
                ),
                status: if k <= 4.0 { "met" } else { "missed" },
            });
        }
        None => g.push(Goal {
            name: "idle memory: ≤ 4 KiB of server RSS per SSE connection (native)",
            measured: "not measured in this run".into(),
            status: "n/a",
        }),
    }
    // 3. Drop path: judged on publishes per server CPU-second (the server's capacity on one
    // core), since others may take part of that core on a shared machine; both are shown.
    match (v("native", "drop", "publishes/s"), v("native", "drop", "publishes per server CPU-second")) {
        (Some(p), Some(cap)) => {
            let cpu = v("native", "drop", "server CPU % of one core");
            let gen = v("native", "drop", "generator CPU % of one core");
            g.push(Goal {
                name: "drop path: ≥ 50,000 publishes/s on one core (native; judged per server CPU-second)",
                measured: format!(
                    "{} publishes per server CPU-second; measured {} publishes/s with the server on {} % of its core (generator {} % of its core)",
                    fmt(cap), fmt(p), cpu.map(fmt).unwrap_or("?".into()), gen.map(fmt).unwrap_or("?".into())
                ),
                status: if cap >= 50_000.0 { "met" } else { "missed" },
            });
        }
        _ => g.push(Goal {
            name: "drop path: ≥ 50,000 publishes/s on one core (native; judged per server CPU-second)",
            measured: "not measured in this run".into(),
            status: "n/a",
        }),
    }
    // 4. Cluster holds 50,000.
    match (v("cluster", "hold-50k", "connections held"), v("cluster", "hold-50k", "lost"), v("cluster", "hold-50k", "deliveries expected"))
    {
        (Some(c), Some(l), Some(e)) => g.push(Goal {
            name: "three-node cluster holds 50,000 SSE connections, every event delivered",
            measured: format!("{} connections held; {} of {} deliveries lost", fmt(c), fmt(l), fmt(e)),
            status: if c >= 50_000.0 && l == 0.0 && e > 0.0 { "met" } else { "missed" },
        }),
        _ => g.push(Goal {
            name: "three-node cluster holds 50,000 SSE connections, every event delivered",
            measured: "not measured in this run (full profile only)".into(),
            status: "n/a",
        }),
    }
    // 5. wrangler dev, 1,000 subscribers.
    let ws = first_scenario(figs, "wrangler-dev", "fanout-1k-64B");
    match ws.as_deref().and_then(|s| Some((v("wrangler-dev", s, "p99 latency ms")?, v("wrangler-dev", s, "lost")?))) {
        Some((p, l)) => g.push(Goal {
            name: "wrangler dev: 1,000 SSE subscribers of one topic, p99 < 50 ms, every event delivered",
            measured: format!("p99 {} ms, {} lost ({})", fmt(p), fmt(l), ws.unwrap_or_default()),
            status: if p < 50.0 && l == 0.0 { "met" } else { "missed" },
        }),
        None => g.push(Goal {
            name: "wrangler dev: 1,000 SSE subscribers of one topic, p99 < 50 ms, every event delivered",
            measured: "not measured in this run".into(),
            status: "n/a",
        }),
    }
    g
}

/// The newest earlier run of the same profile that has a summary.
fn previous(results_root: &Path, run: &Path, profile: &str) -> Option<(PathBuf, Value)> {
    let name = run.file_name()?.to_string_lossy().to_string();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results_root)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().as_ref() < name.as_str()))
        .collect();
    dirs.sort();
    for d in dirs.into_iter().rev() {
        if let Some(s) = load(&d.join("summary.json")) {
            if s["profile"] == profile {
                return Some((d, s));
            }
        }
    }
    None
}

/// Writes `<run>/summary.json` and `<results_root>/latest.md`; returns the latter's path.
pub fn write(results_root: &Path, run: &Path) -> Result<PathBuf, String> {
    let meta = load(&run.join("run.json")).ok_or_else(|| format!("{}/run.json missing", run.display()))?;
    let targets = targets_of(run);
    let mut figs = Vec::new();
    let mut errors = Vec::new();
    let mut descriptions: BTreeMap<String, String> = BTreeMap::new();
    let mut scenario_order: Vec<String> = Vec::new();
    for t in &targets {
        let name = t["target"].as_str().unwrap_or("?");
        if let Some(e) = t.get("error") {
            errors.push(format!("{name}: {}", e.as_str().unwrap_or("")));
        }
        for s in t["scenarios"].as_array().into_iter().flatten() {
            let id = s["id"].as_str().unwrap_or("?").to_string();
            if let Some(e) = s.get("error") {
                errors.push(format!("{name} / {id}: {}", e.as_str().unwrap_or("")));
            }
            if !scenario_order.contains(&id) {
                scenario_order.push(id.clone());
            }
            if let Some(d) = s["description"].as_str() {
                descriptions.entry(id.clone()).or_insert_with(|| d.to_string());
            }
            figs.extend(figures_of(name, s));
        }
    }
    let profile = meta["profile"].as_str().unwrap_or("?").to_string();
    let goals = goals(&figs);
    let summary = json!({
        "timestamp": meta["timestamp"],
        "profile": profile,
        "figures": figs.iter().map(|x| json!({"target": x.target, "scenario": x.scenario, "metric": x.metric, "value": x.value, "better": x.better})).collect::<Vec<_>>(),
        "goals": goals.iter().map(|g| json!({"goal": g.name, "measured": g.measured, "status": g.status})).collect::<Vec<_>>(),
        "errors": errors,
    });
    std::fs::write(run.join("summary.json"), serde_json::to_string_pretty(&summary).expect("json") + "\n").map_err(|e| e.to_string())?;

    let present: Vec<&str> = TARGET_ORDER.iter().copied().filter(|t| figs.iter().any(|x| x.target == *t)).collect();
    let rel = run.strip_prefix(results_root.parent().unwrap_or(results_root)).unwrap_or(run).display().to_string();
    let mut md = String::new();
    let m = &meta["machine"];
    let _ = writeln!(md, "# Benchmark results — latest run\n");
    let _ = writeln!(
        md,
        "Profile **{profile}** (`make bench{}`), {} UTC, commit `{}`{}; took {} s. Files: `{rel}/`.",
        if profile == "quick" { "-quick" } else { "" },
        meta["timestamp"].as_str().unwrap_or("?"),
        meta["git"]["commit"].as_str().unwrap_or("?"),
        if meta["git"]["dirty"] == true { " (with uncommitted changes)" } else { "" },
        meta["seconds"]
    );
    let _ = writeln!(
        md,
        "\nMachine: {} CPUs ({}), {} GiB, Linux {}, open-file limit {} per process. Every server process pinned to CPU {}, the whole generator to CPU {}; loopback only.",
        m["cpus"], m["cpu_model"].as_str().unwrap_or("?"), m["memory_gib"], m["kernel"].as_str().unwrap_or("?"), m["open_file_limit"],
        meta["pinning"]["server_cpus"].as_str().unwrap_or("?"), meta["pinning"]["generator_cpus"].as_str().unwrap_or("?")
    );
    if let Some(i) = meta["interrupted"].as_str() {
        let _ = writeln!(md, "\n**The run was cut short: {i}.**");
    }
    let _ = writeln!(md, "\nRatios are ours ÷ nchan in the same run: above 1 is better for ↑ metrics, below 1 is better for ↓ metrics. Latency is publish→receive: stamped by the publisher just before its POST, read by the subscriber processes.\n");
    let _ = writeln!(md, "## Goals\n\n| goal | measured | status |\n|---|---|---|");
    for g in &goals {
        let _ = writeln!(md, "| {} | {} | **{}** |", g.name, g.measured, g.status);
    }
    if !errors.is_empty() {
        let _ = writeln!(md, "\n## Errors\n");
        for e in &errors {
            let _ = writeln!(md, "- {}", e.replace('\n', " "));
        }
    }
    let _ = writeln!(md, "\n## Figures");
    for id in &scenario_order {
        let rows: Vec<&'static str> = {
            let mut r: Vec<&'static str> = Vec::new();
            for x in figs.iter().filter(|x| &x.scenario == id) {
                if !r.contains(&x.metric) {
                    r.push(x.metric);
                }
            }
            r
        };
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(md, "\n### {id}\n\n{}\n", descriptions.get(id).cloned().unwrap_or_default());
        let ours: Vec<&str> =
            present.iter().copied().filter(|t| *t != "nchan" && figs.iter().any(|x| x.target == *t && &x.scenario == id)).collect();
        let has_nchan = figs.iter().any(|x| x.target == "nchan" && &x.scenario == id);
        let mut head = String::from("| metric |");
        let mut sep = String::from("|---|");
        for t in present.iter().filter(|t| figs.iter().any(|x| x.target == **t && &x.scenario == id)) {
            let _ = write!(head, " {t} |");
            sep.push_str("---:|");
        }
        if has_nchan {
            for t in &ours {
                let _ = write!(head, " {t} ÷ nchan |");
                sep.push_str("---:|");
            }
        }
        let _ = writeln!(md, "{head}\n{sep}");
        for metric in rows {
            let better = figs.iter().find(|x| x.metric == metric).map(|x| x.better).unwrap_or("info");
            let arrow = match better {
                "higher" => " ↑",
                "lower" => " ↓",
                _ => "",
            };
            let mut line = format!("| {metric}{arrow} |");
            for t in present.iter().filter(|t| figs.iter().any(|x| x.target == **t && &x.scenario == id)) {
                let _ = write!(line, " {} |", find(&figs, t, id, metric).map(|x| fmt(x.value)).unwrap_or_else(|| "–".into()));
            }
            if has_nchan {
                let peer = find(&figs, "nchan", id, metric).map(|x| x.value);
                for t in &ours {
                    let cell = match (find(&figs, t, id, metric).map(|x| x.value), peer) {
                        (Some(a), Some(b)) if better != "info" => ratio(a, b),
                        _ => "".into(),
                    };
                    let _ = write!(line, " {cell} |");
                }
            }
            let _ = writeln!(md, "{line}");
        }
    }
    // What a subscriber token adds to opening a subscription: connect-token ÷ connect-public,
    // per target, from the same run.
    let connect_targets: Vec<&str> = present
        .iter()
        .copied()
        .filter(|t| find(&figs, t, "connect-public", "connects/s").is_some() && find(&figs, t, "connect-token", "connects/s").is_some())
        .collect();
    if !connect_targets.is_empty() {
        let _ = writeln!(
            md,
            "\n## Connect rate: with a subscriber token ÷ without\n\n`connect-token` (private topics, a fresh HS256 token per connection) against `connect-public` (public topics, no token), run back to back on the same target.\n\n| target | metric | public | token | token ÷ public |\n|---|---|---:|---:|---:|"
        );
        for t in &connect_targets {
            for m in ["connects/s", "p50 time to connected ms", "p99 time to connected ms", "server CPU µs per connect"] {
                if let (Some(a), Some(b)) = (find(&figs, t, "connect-public", m), find(&figs, t, "connect-token", m)) {
                    let _ = writeln!(md, "| {t} | {m} | {} | {} | {} |", fmt(a.value), fmt(b.value), ratio(b.value, a.value));
                }
            }
        }
        if targets.iter().any(|t| t["target"] == "nchan") {
            let _ = writeln!(md, "\nnchan: not run (it has no subscriber tokens, so there is nothing equivalent to compare).");
        }
    }
    // Where the CPU went under wrangler dev.
    if let Some(w) = targets.iter().find(|t| t["target"] == "wrangler-dev") {
        let mut lines = Vec::new();
        for s in w["scenarios"].as_array().into_iter().flatten() {
            if let Some(pp) = s["server"]["per_process"].as_array() {
                let parts: Vec<String> = pp
                    .iter()
                    .map(|p| format!("{} {} %", p["role"].as_str().unwrap_or("?"), fmt(p["cpu_share"].as_f64().unwrap_or(0.0) * 100.0)))
                    .collect();
                lines.push(format!(
                    "| {} | {} | {} |",
                    s["id"].as_str().unwrap_or("?"),
                    fmt(s["server"]["cpu_seconds"].as_f64().unwrap_or(0.0)),
                    parts.join("; ")
                ));
            }
        }
        if !lines.is_empty() {
            let _ =
                writeln!(md, "\n## wrangler dev: share of the server CPU time per process\n\n| scenario | CPU s | share |\n|---|---:|---|");
            for l in lines {
                let _ = writeln!(md, "{l}");
            }
        }
    }
    // Micro-benchmarks.
    if let Some(micro) = load(&run.join("micro.json")) {
        if let Some(list) = micro["benchmarks"].as_array() {
            let _ = writeln!(md, "\n## Core micro-benchmarks (criterion, `cargo bench -p sse-core`)\n\n| benchmark | time per iteration | throughput |\n|---|---:|---:|");
            for b in list {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    b["id"].as_str().unwrap_or("?"),
                    b["time"].as_str().unwrap_or("?"),
                    b["throughput"].as_str().unwrap_or("")
                );
            }
        }
    }
    // Against the previous run of the same profile.
    let _ = writeln!(md, "\n## Change against the previous {profile} run\n");
    match previous(results_root, run, &profile) {
        None => {
            let _ = writeln!(md, "No earlier {profile} run in `benchmark-results/`.");
        }
        Some((dir, prev)) => {
            let pfigs: Vec<Fig> = prev["figures"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    Some(Fig {
                        target: v["target"].as_str()?.to_string(),
                        scenario: v["scenario"].as_str()?.to_string(),
                        metric: leak(v["metric"].as_str()?),
                        value: v["value"].as_f64()?,
                        better: leak(v["better"].as_str()?),
                    })
                })
                .collect();
            let _ = writeln!(
                md,
                "Previous: `{}`. Changes of 10 % or more in the headline figures (others in `summary.json`).\n",
                dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
            );
            let headline = [
                "deliveries/s",
                "deliveries per server CPU-second",
                "p99 latency ms",
                "KiB RSS per connection",
                "publishes/s",
                "publishes per server CPU-second",
                "lost",
                "connects/s",
                "server CPU µs per connect",
            ];
            let mut rows = Vec::new();
            let mut compared = 0;
            for x in figs.iter().filter(|x| headline.contains(&x.metric)) {
                if let Some(p) = pfigs.iter().find(|p| p.target == x.target && p.scenario == x.scenario && p.metric == x.metric) {
                    compared += 1;
                    let change = if p.value != 0.0 {
                        (x.value - p.value) / p.value.abs() * 100.0
                    } else if x.value == 0.0 {
                        0.0
                    } else {
                        f64::INFINITY
                    };
                    if change.is_infinite() {
                        rows.push(format!("| {} | {} | {} | 0 | {} | was 0 |", x.target, x.scenario, x.metric, fmt(x.value)));
                    } else if change.abs() >= 10.0 {
                        let verdict = match (x.better, change > 0.0) {
                            ("higher", true) | ("lower", false) => "better",
                            ("higher", false) | ("lower", true) => "worse",
                            _ => "",
                        };
                        rows.push(format!(
                            "| {} | {} | {} | {} | {} | {:+.0} % {verdict} |",
                            x.target,
                            x.scenario,
                            x.metric,
                            fmt(p.value),
                            fmt(x.value),
                            change
                        ));
                    }
                }
            }
            if rows.is_empty() {
                let _ = writeln!(md, "No headline figure moved by 10 % or more ({compared} compared).");
            } else {
                let _ = writeln!(md, "| target | scenario | metric | previous | now | change |\n|---|---|---|---:|---:|---|");
                for r in rows {
                    let _ = writeln!(md, "{r}");
                }
                let _ = writeln!(md, "\n({compared} headline figures compared.)");
            }
        }
    }
    let path = results_root.join("latest.md");
    std::fs::write(&path, md).map_err(|e| e.to_string())?;
    Ok(path)
}

fn leak(s: &str) -> &'static str {
    // A handful of short metric names per report run.
    Box::leak(s.to_string().into_boxed_str())
}

/// `sse-loadgen report [--results benchmark-results] [--run <dir>]`: rewrites the summary and
/// latest.md of a run (default: the newest).
pub fn main(args: &util::Args) -> i32 {
    let root = PathBuf::from(args.get("results").unwrap_or("benchmark-results"));
    let run = match args.get("run") {
        Some(r) => PathBuf::from(r),
        None => {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("run.json").exists())
                .collect();
            dirs.sort();
            match dirs.pop() {
                Some(d) => d,
                None => {
                    eprintln!("report: no run directory under {}", root.display());
                    return 1;
                }
            }
        }
    };
    match write(&root, &run) {
        Ok(p) => {
            println!("report: wrote {} and {}", run.join("summary.json").display(), p.display());
            0
        }
        Err(e) => {
            eprintln!("report: {e}");
            1
        }
    }
}
