//! `RegistryObject`: the Durable Object behind the admin listings. Topic objects report attaches,
//! detaches, counts and wakes as they happen (never a periodic snapshot: that would wake every
//! idle topic object each heartbeat). What it is told is kept in its SQLite storage as well as in
//! memory, so an evicted registry object comes back with the same listings; a topic object
//! retries a report that failed, so a lost update converges without waking anyone else.

use std::cell::{Cell, RefCell};

use serde::Deserialize;
use sse_core::metrics::{Counts, Stats};
use sse_core::registry::{ConnSummary, Registry, RegistryUpdate, TopicMeta};
use sse_core::request::{ListQuery, Query};
use sse_core::GatewayError;
use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, SqlStorage, SqlStorageValue, State};

use crate::http;

#[durable_object]
pub struct RegistryObject {
    state: State,
    registry: RefCell<Registry>,
    /// Whether `registry` holds what the storage holds (loaded on the first request).
    loaded: Cell<bool>,
    /// When this object started (its `uptime_ms`).
    started: u64,
}

impl DurableObject for RegistryObject {
    fn new(state: State, _env: Env) -> Self {
        Self { state, registry: RefCell::new(Registry::new()), loaded: Cell::new(false), started: http::now_ms() }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        Ok(self.route(req).await.unwrap_or_else(|e| http::error(&e)))
    }
}

#[derive(Deserialize)]
struct MemberRow {
    topic: String,
    conn: String,
    base: i64,
}

#[derive(Deserialize)]
struct TopicRow {
    topic: String,
    meta: String,
}

impl RegistryObject {
    async fn route(&self, mut req: Request) -> std::result::Result<Response, GatewayError> {
        let url = req.url().map_err(|_| GatewayError::InvalidRequest("bad url".into()))?;
        let q = Query::parse(url.query().unwrap_or(""))?;
        let now = http::now_ms();
        // Which shard this object is: every request says (`shard`, `shards`).
        let shard = |k: &str, default: usize| q.get(k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(default);
        self.load(shard("shard", 0), shard("shards", 1)).map_err(http::internal)?;
        match (req.method(), url.path()) {
            (Method::Post, "/update") => {
                let updates: Vec<RegistryUpdate> =
                    req.json().await.map_err(|e| GatewayError::InvalidRequest(format!("registry update: {e}")))?;
                self.apply(updates, now).map_err(http::internal)?;
                Ok(http::json(200, "{}".into()))
            }
            (Method::Get, "/stats") => {
                let reg = self.registry.borrow();
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
                    // Every connection a topic object has is a socket it accepted to hibernate.
                    hibernatable: Some((sse + ws) as u64),
                };
                Ok(http::json(200, stats.json().to_string()))
            }
            (Method::Get, path @ ("/topics" | "/connections")) => {
                let q = ListQuery::parse(&q)?;
                let reg = self.registry.borrow();
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

    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// Reads the storage into memory once per start of this object.
    fn load(&self, index: usize, shards: usize) -> Result<()> {
        if self.loaded.get() {
            return Ok(());
        }
        let sql = self.sql();
        sql.exec("CREATE TABLE IF NOT EXISTS members (topic TEXT NOT NULL, id TEXT NOT NULL, conn TEXT NOT NULL, base INTEGER NOT NULL, PRIMARY KEY (topic, id))", None)?;
        sql.exec("CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY, meta TEXT NOT NULL)", None)?;
        sql.exec("CREATE TABLE IF NOT EXISTS totals (k TEXT PRIMARY KEY, v TEXT NOT NULL)", None)?;
        let now = http::now_ms();
        let mut reg = Registry::for_shard(index, shards);
        let members: Vec<MemberRow> = sql.exec("SELECT topic, conn, base FROM members ORDER BY topic", None)?.to_array()?;
        let topics: Vec<TopicRow> = sql.exec("SELECT topic, meta FROM topics", None)?.to_array()?;
        let mut by_topic: std::collections::BTreeMap<String, Vec<(ConnSummary, u64)>> = Default::default();
        for m in members {
            if let Ok(conn) = serde_json::from_str::<ConnSummary>(&m.conn) {
                by_topic.entry(m.topic).or_default().push((conn, m.base.max(0) as u64));
            }
        }
        let mut metas: std::collections::BTreeMap<String, TopicMeta> =
            topics.into_iter().filter_map(|t| serde_json::from_str(&t.meta).ok().map(|m| (t.topic, m))).collect();
        for (topic, members) in by_topic {
            let meta = metas.remove(&topic).unwrap_or_default();
            reg.restore(&topic, meta, members, now);
        }
        #[derive(Deserialize)]
        struct Total {
            v: String,
        }
        let totals: Vec<Total> = sql.exec("SELECT v FROM totals WHERE k = 'counts'", None)?.to_array()?;
        if let Some(counts) = totals.first().and_then(|t| serde_json::from_str::<Counts>(&t.v).ok()) {
            reg.apply(RegistryUpdate::Counts { topic: String::new(), counts }, now);
        }
        *self.registry.borrow_mut() = reg;
        self.loaded.set(true);
        Ok(())
    }

    /// Applies updates in memory and keeps the result in storage (the rows they touched).
    fn apply(&self, updates: Vec<RegistryUpdate>, now: u64) -> Result<()> {
        let sql = self.sql();
        let mut reg = self.registry.borrow_mut();
        let mut counted = false;
        for u in updates {
            let topic = u.topic().to_string();
            let member = match &u {
                RegistryUpdate::Attach { conn, .. } => Some((conn.id.clone(), serde_json::to_string(conn).unwrap_or_default())),
                RegistryUpdate::Detach { id, .. } => Some((id.clone(), String::new())),
                _ => None,
            };
            counted |= matches!(u, RegistryUpdate::Counts { .. });
            reg.apply(u, now);
            if let Some((id, conn)) = member {
                match reg.base_of(&topic, &id) {
                    Some(base) => sql.exec(
                        "INSERT OR REPLACE INTO members (topic, id, conn, base) VALUES (?, ?, ?, ?)",
                        vec![topic.as_str().into(), id.as_str().into(), conn.into(), SqlStorageValue::from(base as i64)],
                    )?,
                    None => sql.exec("DELETE FROM members WHERE topic = ? AND id = ?", vec![topic.as_str().into(), id.as_str().into()])?,
                };
            }
            match reg.meta(&topic) {
                Some(meta) => sql.exec(
                    "INSERT OR REPLACE INTO topics (topic, meta) VALUES (?, ?)",
                    vec![topic.as_str().into(), serde_json::to_string(meta).unwrap_or_default().into()],
                )?,
                None => sql.exec("DELETE FROM topics WHERE topic = ?", vec![topic.as_str().into()])?,
            };
        }
        if counted {
            let totals = serde_json::to_string(&reg.counts()).unwrap_or_default();
            sql.exec("INSERT OR REPLACE INTO totals (k, v) VALUES ('counts', ?)", vec![totals.into()])?;
        }
        Ok(())
    }
}
