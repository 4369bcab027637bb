//! Publish N events to several topics and print the per-topic outcome as JSON lines.
//!
//! ```sh
//! SSE_API_KEY=dev-key-change-me cargo run -p sse-gateway-examples --bin publisher -- \
//!     --url http://127.0.0.1:8787 --topics orders,user:42 [--count N] [--prefix ID_PREFIX]
//! ```

use std::collections::HashMap;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

const USAGE: &str = "usage: SSE_API_KEY=... publisher --url URL --topics a,b [--count N] [--prefix P]";

/// Event `i` of the shared sample set (see examples/README.md): the event type and a body,
/// multi-line or unicode in turn.
fn sample_event(i: u64) -> (Option<&'static str>, String) {
    match (i - 1) % 5 {
        0 => (Some("note"), format!("plain text #{i}")),
        1 => (Some("multi-line"), format!("line 1 of #{i}\nline 2\nline 3")),
        2 => (Some("multi-line"), format!("crlf #{i}\r\nsecond line\r\n")),
        3 => (Some("unicode"), format!("unicode #{i}: 你好，世界 🚀 café ✓")),
        _ => (None, format!(r#"{{"n":{i},"ok":true}}"#)),
    }
}

/// The 202 answer: per topic, `{"delivered": n}` or `{"dropped": "no_subscribers"}`.
#[derive(Deserialize)]
struct PublishResult {
    topics: HashMap<String, TopicResult>,
}

#[derive(Deserialize)]
struct TopicResult {
    #[serde(default)]
    delivered: u64,
    dropped: Option<String>,
}

#[derive(Serialize)]
struct Outcome {
    topic: String,
    published: u64,
    delivered: u64,
    dropped: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = match parse_args(&["url", "topics", "count", "prefix"]) {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let (Some(topics), Ok(api_key)) = (args.remove("topics"), std::env::var("SSE_API_KEY")) else {
        return usage("--topics and SSE_API_KEY are required");
    };
    let Ok(count) = args.get("count").map_or(Ok(10), |c| c.parse::<u64>()) else {
        return usage("--count takes a whole number");
    };
    let url = args.get("url").map_or("http://127.0.0.1:8787", String::as_str).trim_end_matches('/');
    let prefix = args.get("prefix").map_or("evt", String::as_str);

    let mut outcomes: Vec<Outcome> =
        topics.split(',').map(|t| Outcome { topic: t.trim().to_string(), published: 0, delivered: 0, dropped: 0 }).collect();
    let client = reqwest::Client::new();
    for i in 1..=count {
        let id = format!("{prefix}-{i}");
        let (event, data) = sample_event(i);
        let mut req = client
            .post(format!("{url}/publish"))
            .bearer_auth(&api_key)
            .header("content-type", "text/plain; charset=utf-8")
            .header("x-sse-topic", &topics) // one POST reaches every topic in the list
            .header("x-sse-id", &id)
            .body(data);
        if let Some(event) = event {
            req = req.header("x-sse-event", event);
        }
        let result = match req.send().await {
            Ok(res) if res.status() == 202 => res
                .bytes()
                .await
                .map_err(|e| error_chain(&e))
                .and_then(|body| serde_json::from_slice::<PublishResult>(&body).map_err(|e| format!("bad answer: {e}"))),
            Ok(res) => Err(format!("HTTP {}: {}", res.status(), res.text().await.unwrap_or_default())),
            Err(e) => Err(error_chain(&e)),
        };
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                eprintln!("publisher: {id}: {e}");
                return ExitCode::FAILURE;
            }
        };
        for o in &mut outcomes {
            if let Some(r) = result.topics.get(&o.topic) {
                o.published += 1;
                o.delivered += r.delivered;
                o.dropped += u64::from(r.dropped.is_some());
            }
        }
    }

    for o in &outcomes {
        println!("{}", serde_json::to_string(o).expect("outcome serializes"));
    }
    ExitCode::SUCCESS
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

fn usage(problem: &str) -> ExitCode {
    eprintln!("publisher: {problem}\n{USAGE}");
    ExitCode::from(2)
}
