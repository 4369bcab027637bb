//! The Cloudflare runtime: a Worker that validates and routes every request with the core crate,
//! one `TopicObject` Durable Object per topic that owns the topic's subscribers, and a
//! `RegistryObject` that serves the admin API's listings, and (only when `PUBLISH_RATE_PER_KEY`
//! is set) a `LimiterObject` per API key that holds its publish token bucket.

mod body;
mod holder;
mod http;
mod limiter_object;
mod registry_object;
mod router;
mod stubs;
mod topic_object;

pub use limiter_object::LimiterObject;
pub use registry_object::RegistryObject;
pub use topic_object::TopicObject;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    Ok(router::handle(req, env).await)
}
