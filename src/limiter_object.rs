//! `LimiterObject`: the per-API-key publish rate limit on Cloudflare. One object per key index
//! (`key-<n>`, never the key text) holds the core's token bucket in memory, so the limit is the
//! same whichever isolate or colo the publish reaches. The Worker calls it only when
//! `PUBLISH_RATE_PER_KEY` > 0: with the default (0) a publish costs nothing extra.
//!
//! If the object is evicted from memory its bucket starts full again: the limit errs on the
//! side of letting publishes through, never of refusing them.

use std::cell::RefCell;

use sse_core::limits::TokenBucket;
use sse_core::request::Query;
use sse_core::GatewayError;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::http;

#[durable_object]
pub struct LimiterObject {
    #[allow(dead_code)]
    state: State,
    #[allow(dead_code)]
    env: Env,
    bucket: RefCell<Option<TokenBucket>>,
}

impl DurableObject for LimiterObject {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, bucket: RefCell::new(None) }
    }

    /// `GET /take?rate=R&burst=B`: 200, or 429 `rate_limited` with `retry-after`.
    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        let q = Query::parse(url.query().unwrap_or("")).unwrap_or_default();
        let num = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let (rate, burst) = (num("rate"), num("burst"));
        let now = http::now_ms();
        let mut slot = self.bucket.borrow_mut();
        // A configuration change (new rate or burst) starts a new bucket.
        let fresh = TokenBucket::new(rate, burst, now);
        let bucket = match slot.as_mut() {
            Some(b) if b.rate() == fresh.rate() && b.burst() == fresh.burst() => b,
            _ => slot.insert(fresh),
        };
        Ok(match bucket.take(now) {
            Ok(()) => http::json(200, "{}".into()),
            Err(retry_after_ms) => http::error(&GatewayError::RateLimited { retry_after_ms }),
        })
    }
}
