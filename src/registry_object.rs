//! `RegistryObject`: the Durable Object behind the admin listings. Topic objects report attaches
//! and detaches as they happen and a snapshot every heartbeat; memberships not refreshed within
//! three heartbeats expire, so the registry converges even after missed updates or an eviction.

use std::cell::RefCell;

use sse_core::metrics::Stats;
use sse_core::registry::{Registry, RegistryUpdate};
use sse_core::request::{ListQuery, Query};
use sse_core::GatewayError;
use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use crate::http;

#[durable_object]
pub struct RegistryObject {
    #[allow(dead_code)]
    state: State,
    env: Env,
    registry: RefCell<Registry>,
    /// When this object's counters started (they live in memory: an evicted registry object
    /// starts again from zero).
    started: u64,
}

impl DurableObject for RegistryObject {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, registry: RefCell::new(Registry::new()), started: http::now_ms() }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        Ok(self.route(req).await.unwrap_or_else(|e| http::error(&e)))
    }
}

impl RegistryObject {
    async fn route(&self, mut req: Request) -> std::result::Result<Response, GatewayError> {
        let cfg = http::config(&self.env)?;
        let url = req.url().map_err(|_| GatewayError::InvalidRequest("bad url".into()))?;
        let q = Query::parse(url.query().unwrap_or(""))?;
        let now = http::now_ms();
        match (req.method(), url.path()) {
            (Method::Post, "/update") => {
                let updates: Vec<RegistryUpdate> =
                    req.json().await.map_err(|e| GatewayError::InvalidRequest(format!("registry update: {e}")))?;
                let mut reg = self.registry.borrow_mut();
                for u in updates {
                    reg.apply(u, now);
                }
                Ok(http::json(200, "{}".into()))
            }
            (Method::Get, "/stats") => {
                let mut reg = self.registry.borrow_mut();
                reg.expire(now, cfg.registry_lease_ms());
                let (sse, ws) = reg.connections_by_transport();
                let stats = Stats {
                    scope: "deployment",
                    runtime: "cloudflare",
                    node: None,
                    connections_sse: sse as u64,
                    connections_ws: ws as u64,
                    tails: 0,
                    topics: reg.topic_count() as u64,
                    counts: reg.counts(),
                    rejected: Default::default(),
                    latency: None,
                    uptime_ms: now.saturating_sub(self.started),
                };
                Ok(http::json(200, stats.json().to_string()))
            }
            (Method::Get, path @ ("/topics" | "/connections")) => {
                let q = ListQuery::parse(&q)?;
                let mut reg = self.registry.borrow_mut();
                reg.expire(now, cfg.registry_lease_ms());
                let body = if path == "/topics" {
                    reg.topics(q.limit, q.cursor.as_deref())?.body("topics")
                } else {
                    reg.connections(q.limit, q.cursor.as_deref(), q.topic.as_deref())?.body("connections")
                };
                Ok(http::json(200, body))
            }
            _ => Err(GatewayError::NotFound),
        }
    }
}
