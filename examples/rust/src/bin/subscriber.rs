//! Subscribe to several topics over SSE and print each event as one JSON line.
//!
//! ```sh
//! cargo run -p sse-gateway-examples --bin subscriber -- \
//!     --url http://127.0.0.1:8787 --topics orders,user:42 [--max N] [--timeout S] \
//!     [--token TOKEN] [--token-command CMD]
//! ```
//!
//! reqwest streams the response body; eventsource-stream parses it into events. Private topics
//! need a subscriber token (`--token` or SSE_TOKEN); `--token-command` (or SSE_TOKEN_COMMAND) is
//! a shell command that prints a fresh one, run when the gateway says the token expired.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

const USAGE: &str = "usage: subscriber --url URL --topics a,b [--max N] [--timeout S] [--token T] [--token-command CMD]";

/// What `?envelope=json` puts in each event's data (its `ts` is not printed). `event` is
/// `None` (printed as `null`) when the publisher sent none.
#[derive(Deserialize, Serialize)]
struct Envelope {
    topic: String,
    id: String,
    event: Option<String>,
    data: String,
}

/// The data of an `event: reconnect` frame.
#[derive(Deserialize, Default)]
struct Reconnect {
    /// `shutdown` (the node is going away), `token_expired` (ours no longer holds), ...
    #[serde(default)]
    reason: String,
}

/// The subscriber token, and how to get a fresh one.
struct Auth {
    token: Option<String>,
    command: Option<String>,
}

impl Auth {
    /// Runs the token command (through `sh -c`): its output, trimmed, is the new token.
    async fn refresh(&mut self) -> Result<(), String> {
        let Some(command) = &self.command else {
            return Err("token expired (set --token-command or SSE_TOKEN_COMMAND to get fresh ones)".into());
        };
        let out = tokio::process::Command::new("sh")
            .args(["-c", command])
            .stderr(std::process::Stdio::inherit())
            .output()
            .await
            .map_err(|e| format!("token command: {e}"))?;
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || token.is_empty() {
            return Err(format!("token command failed ({}) or printed nothing", out.status));
        }
        self.token = Some(token);
        Ok(())
    }
}

/// Why a subscription stopped.
enum Stop {
    /// `--max` events were printed.
    Done,
    /// A 4xx answer or a broken envelope: retrying will not help.
    Fatal(String),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(&["url", "topics", "max", "timeout", "token", "token-command"]) {
        Ok(a) if a.contains_key("topics") => a,
        Ok(_) => return usage("--topics is required"),
        Err(e) => return usage(&e),
    };
    let url = args.get("url").map_or("http://127.0.0.1:8787", String::as_str).trim_end_matches('/');
    let (max, timeout) = match (number(&args, "max"), number(&args, "timeout")) {
        (Ok(m), Ok(t)) => (m.map(|m| m as u64), t.map(Duration::from_secs_f64)),
        _ => return usage("--max and --timeout take numbers"),
    };

    // A flag wins over its environment variable; empty counts as unset.
    let setting = |flag: &str, var: &str| args.get(flag).cloned().or_else(|| std::env::var(var).ok()).filter(|v| !v.is_empty());
    let auth = Auth { token: setting("token", "SSE_TOKEN"), command: setting("token-command", "SSE_TOKEN_COMMAND") };

    let mut received = 0u64;
    let run = subscribe(url, &args["topics"], max, auth, &mut received);
    // Stop on --timeout (if any) or Ctrl-C, whichever comes first.
    let timeout = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        stop = run => match stop {
            Stop::Done => ExitCode::SUCCESS,
            Stop::Fatal(e) => {
                eprintln!("subscriber: {e}");
                ExitCode::FAILURE
            }
        },
        _ = timeout => {
            if let Some(max) = max {
                eprintln!("subscriber: timed out before {max} events");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}

/// Prints events until `max` (or forever), reconnecting with exponential backoff.
async fn subscribe(url: &str, topics: &str, max: Option<u64>, mut auth: Auth, received: &mut u64) -> Stop {
    // No overall timeout on a stream, but a read that waits a minute (four missed keepalives)
    // means the link is dead.
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build()
        .expect("a default reqwest client");
    let mut last_event_id = String::new();
    let mut retry = Duration::from_secs(3); // until the server's `retry:` says otherwise
    let mut attempt = 0u32; // failed connections since the last successful one
    if auth.token.is_none() && auth.command.is_some() {
        if let Err(e) = auth.refresh().await {
            return Stop::Fatal(e);
        }
    }

    loop {
        let mut req = client.get(format!("{url}/sse?envelope=json")).header("accept", "text/event-stream").header("x-sse-topic", topics);
        if !last_event_id.is_empty() {
            // Resume after the last event we printed (a gateway with replay fills the gap).
            req = req.header("last-event-id", &last_event_id);
        }
        if let Some(token) = &auth.token {
            req = req.bearer_auth(token);
        }
        let mut wait = Duration::ZERO; // at least this long before the next attempt
        let mut at_once = false; // the server asked us to reconnect now

        match req.send().await {
            Err(e) => eprintln!("connection failed: {}", error_chain(&e)),
            Ok(res) if res.status().is_client_error() && res.status() != 429 => {
                let status = res.status();
                return Stop::Fatal(format!("HTTP {status}: {}", res.text().await.unwrap_or_default()));
            }
            Ok(res) if res.status() != 200 => {
                let secs = res.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
                wait = Duration::from_secs(secs.unwrap_or(0));
                eprintln!("connection failed: HTTP {}", res.status());
            }
            Ok(res) => {
                let mut events = res.bytes_stream().eventsource();
                loop {
                    let event = match events.next().await {
                        Some(Ok(ev)) => ev,
                        Some(Err(e)) => {
                            eprintln!("stream broke: {}", error_chain(&e));
                            break;
                        }
                        None => {
                            eprintln!("stream ended");
                            break;
                        }
                    };
                    if let Some(r) = event.retry {
                        retry = r;
                    }
                    match event.event.as_str() {
                        "connected" => {
                            attempt = 0;
                            eprintln!("connected {}", event.data);
                        }
                        "reconnect" => {
                            // Reconnect now: the node is shutting down, or our token expired
                            // (then with a fresh one, or not at all).
                            let reconnect: Reconnect = serde_json::from_str(&event.data).unwrap_or_default();
                            if reconnect.reason == "token_expired" {
                                if let Err(e) = auth.refresh().await {
                                    return Stop::Fatal(e);
                                }
                                eprintln!("token expired: reconnecting with a fresh one");
                            } else {
                                eprintln!("server asked to reconnect");
                            }
                            at_once = true;
                            break;
                        }
                        _ => {
                            let envelope: Envelope = match serde_json::from_str(&event.data) {
                                Ok(e) => e,
                                Err(e) => return Stop::Fatal(format!("bad envelope {:?}: {e}", event.data)),
                            };
                            last_event_id = event.id;
                            println!("{}", serde_json::to_string(&envelope).expect("strings serialize"));
                            *received += 1;
                            if Some(*received) == max {
                                return Stop::Done;
                            }
                        }
                    }
                }
            }
        }
        if at_once {
            continue;
        }

        // Exponential backoff from the server's retry, capped at 30 s, with jitter (50-100 %).
        let base = retry.saturating_mul(1 << attempt.min(8)).min(Duration::from_secs(30));
        let jitter = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_nanos() % 500;
        let delay = (base / 1000 * (500 + jitter)).max(wait);
        attempt += 1;
        eprintln!("reconnecting in {:.1} s", delay.as_secs_f64());
        tokio::time::sleep(delay).await;
    }
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

/// `--name value` pairs; only the names in `known`.
fn parse_args(known: &[&str]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let name = arg.strip_prefix("--").filter(|n| known.contains(n)).ok_or(format!("unknown argument {arg}"))?;
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

fn number(args: &HashMap<String, String>, name: &str) -> Result<Option<f64>, ()> {
    match args.get(name).map(|v| v.parse::<f64>()) {
        None => Ok(None),
        Some(Ok(n)) if n > 0.0 => Ok(Some(n)),
        Some(_) => Err(()),
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("subscriber: {problem}\n{USAGE}");
    ExitCode::from(2)
}
