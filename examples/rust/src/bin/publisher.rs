//! Publish N events to several topics and print the per-topic outcome as JSON lines; or mint a
//! subscriber token for private topics.
//!
//! ```sh
//! SSE_API_KEY=dev-key-change-me cargo run -p sse-gateway-examples --bin publisher -- \
//!     --url http://127.0.0.1:8787 --topics orders,user:42 [--count N] [--prefix ID_PREFIX]
//! SUBSCRIBER_TOKEN_SECRET=... cargo run -p sse-gateway-examples --bin publisher -- \
//!     mint-token --topics user:42,team:7:* [--sub user-42] [--ttl 3600]
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};

const USAGE: &str = "usage: SSE_API_KEY=... publisher --url URL --topics a,b [--count N] [--prefix P]
       SUBSCRIBER_TOKEN_SECRET=... publisher mint-token --topics a,b [--sub ID] [--ttl SECONDS]";

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

/// The claims of a subscriber token: who holds it, which topics (or patterns) it opens, until when.
#[derive(Serialize)]
struct TokenClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    topics: Vec<String>,
    iat: u64,
    exp: u64,
}

/// `publisher mint-token`: print a subscriber token (a JWT, HS256) signed with
/// SUBSCRIBER_TOKEN_SECRET, one of the gateway's SUBSCRIBER_TOKEN_SECRETS. Your backend does
/// this for a signed-in user and hands the token to the user's client.
fn mint_token(args: impl Iterator<Item = String>) -> ExitCode {
    let mut args = match parse_args(args, &["topics", "sub", "ttl"]) {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let (Some(topics), Ok(secret)) = (args.remove("topics"), std::env::var("SUBSCRIBER_TOKEN_SECRET")) else {
        return usage("mint-token needs --topics and SUBSCRIBER_TOKEN_SECRET");
    };
    let Ok(ttl) = args.get("ttl").map_or(Ok(3600), |t| t.parse::<u64>()) else {
        return usage("--ttl takes whole seconds");
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is past 1970").as_secs();
    let claims = TokenClaims {
        sub: args.remove("sub"),
        topics: topics.split(',').map(|t| t.trim().to_string()).collect(),
        iat: now,
        exp: now + ttl,
    };
    // Header::default() is {"alg":"HS256","typ":"JWT"}.
    match jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("publisher: mint-token: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1).peekable();
    if argv.next_if_eq("mint-token").is_some() {
        return mint_token(argv);
    }
    let mut args = match parse_args(argv, &["url", "topics", "count", "prefix"]) {
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
fn parse_args(mut args: impl Iterator<Item = String>, known: &[&str]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
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
