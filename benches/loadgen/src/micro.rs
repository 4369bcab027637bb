//! `sse-loadgen micro --criterion <target/criterion> --out <run>/micro.json [--since <unix s>]`:
//! collects criterion's estimates of the core micro-benchmarks into the run directory.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "new") && p.join("estimates.json").exists() && p.join("benchmark.json").exists() {
                out.push(p);
            } else {
                walk(&p, out);
            }
        }
    }
}

fn time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.1} ns", ns)
    }
}

fn per_second(n: f64, unit: &str) -> String {
    if n >= 1e9 {
        format!("{:.2} G{unit}/s", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2} M{unit}/s", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k{unit}/s", n / 1e3)
    } else {
        format!("{:.0} {unit}/s", n)
    }
}

pub fn main(args: &util::Args) -> i32 {
    let dir = PathBuf::from(args.get("criterion").unwrap_or("target/criterion"));
    let Some(out) = args.get("out") else {
        eprintln!("micro: --out <file> is required");
        return 2;
    };
    let since: u64 = args.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut dirs = Vec::new();
    walk(&dir, &mut dirs);
    let mut list = Vec::new();
    for d in dirs {
        let fresh = std::fs::metadata(d.join("estimates.json"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .is_some_and(|t| t.as_secs() >= since);
        if !fresh {
            continue;
        }
        let (Some(est), Some(bench)) = (
            std::fs::read_to_string(d.join("estimates.json")).ok().and_then(|s| serde_json::from_str::<Value>(&s).ok()),
            std::fs::read_to_string(d.join("benchmark.json")).ok().and_then(|s| serde_json::from_str::<Value>(&s).ok()),
        ) else {
            continue;
        };
        let mean = est["mean"]["point_estimate"].as_f64().unwrap_or(0.0);
        let id = bench["full_id"].as_str().unwrap_or("?").to_string();
        let tp = &bench["throughput"];
        let throughput = if let Some(n) = tp["Elements"].as_f64() {
            per_second(n * 1e9 / mean.max(1e-9), "elem")
        } else if let Some(n) = tp["Bytes"].as_f64() {
            per_second(n * 1e9 / mean.max(1e-9), "B")
        } else {
            String::new()
        };
        list.push(json!({"id": id, "mean_ns": util::round(mean, 1), "time": time(mean), "throughput": throughput}));
    }
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let n = list.len();
    let v = json!({"source": dir.display().to_string(), "benchmarks": list});
    if let Err(e) = std::fs::write(out, serde_json::to_string_pretty(&v).expect("json") + "\n") {
        eprintln!("micro: {out}: {e}");
        return 1;
    }
    println!("micro: {n} benchmarks -> {out}");
    if n == 0 {
        1
    } else {
        0
    }
}
