//! `sse-loadgen`: the SSE gateway's load generator and benchmark suite.
//!
//!   sse-loadgen suite [--profile quick|full|smoke] [--targets native,cluster,nchan,wrangler-dev]
//!                     [--scenarios <id prefixes>] [--root .] [--out <dir>] [--results benchmark-results]
//!                     [--server-cpus 0] [--client-cpus 1] [--server-bin target/release/sse-gateway]
//!                     [--worker-build build] [--max-seconds N] [--stamp <run name>]
//!                     [--wrangler-port 18787] [--inspector-port 19229] [--wrangler-toml wrangler.toml]
//!   sse-loadgen report [--results benchmark-results] [--run <dir>]
//!   sse-loadgen micro --criterion target/criterion --out <file> [--since <unix s>]
//!   sse-loadgen cost --design before|after [--worker-build build] [--minutes 5] [--baseline <file>
//!                    --report-dir benchmark-results] [--out <file>] [--fanout <wrangler-dev.json>]
//!                    (the Cloudflare bill of an idle-heavy workload under wrangler dev; benches/cost.sh)
//!   sse-loadgen cost-report --baseline <file> --current <file> --report-dir <dir> [--prices <file>]
//!   sse-loadgen subs --spec <json>          (a subscriber process; started by `suite`)
//!
//! See docs/benchmarks.md.

mod connect;
mod cost;
mod http;
mod micro;
mod publish;
mod report;
mod sse;
mod subs;
mod suite;
mod targets;
mod util;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let Some(cmd) = argv.get(1) else {
        eprintln!("usage: sse-loadgen suite|report|micro|cost|cost-report|subs [options] (see docs/benchmarks.md)");
        std::process::exit(2);
    };
    let args = match util::Args::parse(&argv[2..]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sse-loadgen: {e}");
            std::process::exit(2);
        }
    };
    let code = match cmd.as_str() {
        "suite" => suite::main(&args),
        "report" => report::main(&args),
        "micro" => micro::main(&args),
        "cost" => cost::main(&args),
        "cost-report" => cost::report_main(&args),
        "subs" => subs::main(&args),
        "-h" | "--help" | "help" => {
            println!(
                "{}",
                include_str!("main.rs")
                    .lines()
                    .take_while(|l| l.starts_with("//!"))
                    .map(|l| l.trim_start_matches("//!").strip_prefix(' ').unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            0
        }
        other => {
            eprintln!("sse-loadgen: unknown command {other:?} (suite, report, micro, cost, cost-report, subs)");
            2
        }
    };
    std::process::exit(code);
}
