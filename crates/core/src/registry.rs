//! The connection registry behind the admin API: which connections exist, on which topics, and
//! cursor-based pagination that neither repeats nor skips a connection that stays connected
//! while pages are read (pages are ranges of a sorted key space, and the cursor is the last key
//! returned, not an offset).
//!
//! Topic owners report attaches and detaches as they happen. A native node also reports a full
//! snapshot of its connections every heartbeat, and memberships not refreshed within the lease
//! expire, so a registry that missed a detach converges by itself. A hibernating Cloudflare topic
//! object sends no snapshot (that would wake every idle object each heartbeat): it reports its
//! changes only, retries a report that failed, and the registry object keeps what it was told in
//! its own storage ([`Registry::restore`]); a connection's `events_sent` is then counted from the
//! topic's published events ([`RegistryUpdate::Counts`]) since the connection attached.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::error::GatewayError;
use crate::time::rfc3339;
use crate::topic::Transport;

/// Largest page the admin API returns.
pub const MAX_PAGE: usize = 500;
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;

/// One connection as a topic owner reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnSummary {
    pub id: String,
    pub transport: Transport,
    pub connected_at: u64,
    pub node: String,
    /// Events this topic has delivered to the connection.
    pub events_sent: u64,
    /// Every topic of the connection, when the owner knows them all (a Cloudflare topic object
    /// does): the registry shard of the first one lists the connection ([`Registry::for_shard`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// The subscriber token's `sub`, when the connection opened with a token that names one
    /// (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

/// A change reported by the owner of `topic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RegistryUpdate {
    Attach {
        topic: String,
        conn: ConnSummary,
    },
    Detach {
        topic: String,
        id: String,
    },
    /// Every connection the owner of `topic` holds now; replaces what was known of the topic.
    Snapshot {
        topic: String,
        conns: Vec<ConnSummary>,
    },
    /// What the owner of `topic` counted since its previous report (publishes, deliveries,
    /// drops, evictions, replayed events): added to the registry's totals, and the events that
    /// reached the topic's connections to each of their `events_sent`.
    Counts {
        topic: String,
        counts: crate::metrics::Counts,
    },
    /// The owner of `topic` was started again (a Cloudflare topic object woke from hibernation,
    /// or started for the first time): its `wakes` so far and when it last woke (ms).
    Woke {
        topic: String,
        wakes: u64,
        at: u64,
    },
    /// The owner of `topic` spreads its subscribers over this many shard objects (Cloudflare).
    Shards {
        topic: String,
        shards: u32,
    },
}

impl RegistryUpdate {
    /// The topic the update is about.
    pub fn topic(&self) -> &str {
        match self {
            RegistryUpdate::Attach { topic, .. }
            | RegistryUpdate::Detach { topic, .. }
            | RegistryUpdate::Snapshot { topic, .. }
            | RegistryUpdate::Counts { topic, .. }
            | RegistryUpdate::Woke { topic, .. }
            | RegistryUpdate::Shards { topic, .. } => topic,
        }
    }
}

#[derive(Debug, Clone)]
struct Membership {
    events_sent: u64,
    seen: u64,
    /// The topic's event count when this membership began (see [`TopicMeta::events`]).
    base: u64,
}

/// What the registry knows of a live topic besides its connections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Events that reached the topic's connections since the topic appeared, as counted by
    /// [`RegistryUpdate::Counts`].
    pub events: u64,
    /// How many times the topic's owner was started (Cloudflare: woke from hibernation).
    pub wakes: Option<u64>,
    /// When it last woke (ms since the Unix epoch).
    pub last_woke_at: Option<u64>,
    /// Shard objects the topic's subscribers are spread over besides its own (Cloudflare).
    #[serde(default)]
    pub shards: Option<u32>,
}

#[derive(Debug, Clone)]
struct Entry {
    transport: Transport,
    connected_at: u64,
    node: String,
    topics: BTreeMap<String, Membership>,
    /// Whether this shard lists the connection (always, unsharded).
    home: bool,
    /// Every topic of the connection, sorted, when its owner said (shards hold only some).
    all_topics: Vec<String>,
    sub: Option<String>,
}

/// The registry shard (of `shards`) that holds `topic`: FNV-1a of the name, so every Worker and
/// object agrees without asking anyone.
pub fn shard_of(topic: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as usize
}

/// The registry shards a listing asks: the topic's own for `?topic=`, else every one.
pub fn shards_to_ask(topic: Option<&str>, shards: usize) -> Vec<usize> {
    match topic {
        Some(t) => vec![shard_of(t, shards)],
        None => (0..shards.max(1)).collect(),
    }
}

/// The name of registry shard `index` of `shards` (one registry keeps its original name).
pub fn shard_name(index: usize, shards: usize) -> String {
    if shards <= 1 {
        "registry".to_string()
    } else {
        format!("registry-{index}-of-{shards}")
    }
}

/// A connection as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionView {
    pub id: String,
    pub topics: Vec<String>,
    pub transport: Transport,
    pub connected_at: String,
    pub node: String,
    pub events_sent: u64,
    /// The subscriber token's `sub`, when the connection opened with a token that names one
    /// (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

impl ConnectionView {
    /// The view of a connection; `connected_at_ms` is milliseconds since the Unix epoch.
    pub fn new(
        id: String,
        topics: Vec<String>,
        transport: Transport,
        connected_at_ms: u64,
        node: String,
        events_sent: u64,
        sub: Option<String>,
    ) -> Self {
        Self { id, topics, transport, connected_at: rfc3339(connected_at_ms), node, events_sent, sub }
    }
}

/// A whole connection as a runtime that keeps one record per connection stores it (the native
/// cluster keeps these in Redis); [`ConnRecord::view`] is what the admin API lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnRecord {
    pub id: String,
    pub topics: Vec<String>,
    pub transport: Transport,
    pub connected_at: u64,
    pub node: String,
    /// Events delivered to the connection, summed over its topics.
    pub events_sent: u64,
    /// The subscriber token's `sub`, when the connection opened with a token that names one
    /// (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

impl ConnRecord {
    pub fn view(&self) -> ConnectionView {
        ConnectionView::new(
            self.id.clone(),
            self.topics.clone(),
            self.transport,
            self.connected_at,
            self.node.clone(),
            self.events_sent,
            self.sub.clone(),
        )
    }
}

/// A topic as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicView {
    pub topic: String,
    pub connections: usize,
    pub mode: &'static str,
    /// Times the topic's object woke (Cloudflare only: absent natively).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wakes: Option<u64>,
    /// When the topic's object last woke, RFC 3339 (Cloudflare only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_woke_at: Option<String>,
    /// Shard objects besides the topic's own that hold its subscribers (Cloudflare, hot topics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
}

impl TopicView {
    /// `mode` is `unicast` for one connection, `multicast` for several.
    pub fn new(topic: String, connections: usize) -> Self {
        Self {
            topic,
            connections,
            mode: if connections == 1 { "unicast" } else { "multicast" },
            wakes: None,
            last_woke_at: None,
            shards: None,
        }
    }

    /// The view with what the registry knows of the topic's wakes.
    pub fn with_meta(mut self, meta: Option<&TopicMeta>) -> Self {
        if let Some(m) = meta {
            self.wakes = m.wakes;
            self.last_woke_at = m.last_woke_at.map(rfc3339);
            self.shards = m.shards.filter(|&n| n > 0);
        }
        self
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: usize,
    pub next_cursor: Option<String>,
}

impl<T: Serialize> Page<T> {
    /// The admin API body: `{"<key>": [...], "total": n, "next_cursor": ...}`.
    pub fn body(&self, key: &str) -> String {
        let mut m = serde_json::Map::new();
        m.insert(key.to_string(), serde_json::to_value(&self.items).expect("views serialise"));
        m.insert("total".into(), self.total.into());
        m.insert("next_cursor".into(), self.next_cursor.clone().into());
        serde_json::Value::Object(m).to_string()
    }
}

/// The registry.
#[derive(Debug, Default)]
pub struct Registry {
    /// This shard and the number of shards; `(0, 1)` unsharded.
    shard: (usize, usize),
    conns: BTreeMap<String, Entry>,
    topics: BTreeMap<String, BTreeSet<String>>,
    /// Per live topic: events counted and wakes (only for topics in `topics`).
    meta: BTreeMap<String, TopicMeta>,
    /// Totals of the [`RegistryUpdate::Counts`] reports received.
    counts: crate::metrics::Counts,
}

/// Cursor kind of the connection listing.
pub const CONN_CURSOR: char = 'c';
/// Cursor kind of the topic listing.
pub const TOPIC_CURSOR: char = 't';

impl Registry {
    pub fn new() -> Self {
        Self::for_shard(0, 1)
    }

    /// Shard `index` of `shards`: it keeps the memberships of the topics [`shard_of`] gives it,
    /// and lists (in the connection listing, counts and stats) the connections whose first topic
    /// is one of them, so that merging the shards' pages lists each connection once.
    pub fn for_shard(index: usize, shards: usize) -> Self {
        Self { shard: (index, shards.max(1)), ..Self::default() }
    }

    fn listed(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.conns.iter().filter(|(_, e)| e.home)
    }

    pub fn connection_count(&self) -> usize {
        self.listed().count()
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Connections by transport: (SSE, WebSocket).
    pub fn connections_by_transport(&self) -> (usize, usize) {
        let ws = self.listed().filter(|(_, e)| e.transport == Transport::Ws).count();
        (self.connection_count() - ws, ws)
    }

    /// Totals of the counts topic owners reported.
    pub fn counts(&self) -> crate::metrics::Counts {
        self.counts
    }

    pub fn apply(&mut self, update: RegistryUpdate, now: u64) {
        match update {
            RegistryUpdate::Attach { topic, conn } => self.upsert(&topic, conn, now),
            RegistryUpdate::Detach { topic, id } => self.remove(&topic, &id),
            RegistryUpdate::Snapshot { topic, conns } => {
                let keep: BTreeSet<&str> = conns.iter().map(|c| c.id.as_str()).collect();
                let stale: Vec<String> = self
                    .topics
                    .get(&topic)
                    .map(|ids| ids.iter().filter(|id| !keep.contains(id.as_str())).cloned().collect())
                    .unwrap_or_default();
                for id in stale {
                    self.remove(&topic, &id);
                }
                for conn in conns {
                    self.upsert(&topic, conn, now);
                }
            }
            RegistryUpdate::Counts { topic, counts } => {
                self.counts.add(&counts);
                if let Some(m) = self.meta.get_mut(&topic) {
                    m.events = m.events.saturating_add(counts.publishes.saturating_sub(counts.drops));
                }
            }
            RegistryUpdate::Shards { topic, shards } => {
                if let Some(m) = self.meta.get_mut(&topic) {
                    m.shards = Some(shards);
                }
            }
            RegistryUpdate::Woke { topic, wakes, at } => {
                // Only a live topic is listed; a wake reported before the topic's first attach
                // (or after its last detach) has nothing to show on.
                if let Some(m) = self.meta.get_mut(&topic) {
                    if m.wakes.is_none_or(|w| wakes >= w) {
                        m.wakes = Some(wakes);
                        m.last_woke_at = Some(at);
                    }
                }
            }
        }
    }

    fn upsert(&mut self, topic: &str, conn: ConnSummary, now: u64) {
        let base = self.meta.entry(topic.to_string()).or_default().events;
        self.insert(topic, conn, now, base);
    }

    fn insert(&mut self, topic: &str, conn: ConnSummary, now: u64, base: u64) {
        let (index, shards) = self.shard;
        let home = conn.topics.iter().min().is_none_or(|first| shard_of(first, shards) == index);
        let entry = self.conns.entry(conn.id.clone()).or_insert_with(|| Entry {
            transport: conn.transport,
            connected_at: conn.connected_at,
            node: conn.node.clone(),
            topics: BTreeMap::new(),
            home,
            all_topics: {
                let mut all = conn.topics.clone();
                all.sort();
                all.dedup();
                all
            },
            sub: conn.sub.clone(),
        });
        entry.topics.insert(topic.to_string(), Membership { events_sent: conn.events_sent, seen: now, base });
        self.topics.entry(topic.to_string()).or_default().insert(conn.id);
        self.meta.entry(topic.to_string()).or_default();
    }

    /// Puts back what a registry kept in storage: the topic's meta, then its memberships
    /// with the topic event count each began at ([`Registry::base_of`]).
    pub fn restore(&mut self, topic: &str, meta: TopicMeta, members: Vec<(ConnSummary, u64)>, now: u64) {
        for (conn, base) in members {
            self.insert(topic, conn, now, base);
        }
        if self.topics.contains_key(topic) {
            self.meta.insert(topic.to_string(), meta);
        }
    }

    /// What the registry knows of `topic` (None when it is not live).
    pub fn meta(&self, topic: &str) -> Option<&TopicMeta> {
        self.meta.get(topic)
    }

    /// The topic event count at which connection `id`'s membership of `topic` began.
    pub fn base_of(&self, topic: &str, id: &str) -> Option<u64> {
        self.conns.get(id).and_then(|e| e.topics.get(topic)).map(|m| m.base)
    }

    /// Whether `topic` is live (has a connection).
    pub fn has_topic(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    fn remove(&mut self, topic: &str, id: &str) {
        if let Some(entry) = self.conns.get_mut(id) {
            entry.topics.remove(topic);
            if entry.topics.is_empty() {
                self.conns.remove(id);
            }
        }
        if let Some(ids) = self.topics.get_mut(topic) {
            ids.remove(id);
            if ids.is_empty() {
                self.topics.remove(topic);
                self.meta.remove(topic);
            }
        }
    }

    /// Drops every membership not refreshed since `now - lease`. Returns how many went.
    pub fn expire(&mut self, now: u64, lease: u64) -> usize {
        let stale: Vec<(String, String)> = self
            .conns
            .iter()
            .flat_map(|(id, e)| {
                e.topics.iter().filter(|(_, m)| m.seen.saturating_add(lease) < now).map(move |(t, _)| (t.clone(), id.clone()))
            })
            .collect();
        for (topic, id) in &stale {
            self.remove(topic, id);
        }
        stale.len()
    }

    fn view(&self, id: &str, e: &Entry) -> ConnectionView {
        let events = |t: &str, m: &Membership| m.events_sent + self.meta.get(t).map_or(0, |tm| tm.events.saturating_sub(m.base));
        let topics = if self.shard.1 > 1 && !e.all_topics.is_empty() { e.all_topics.clone() } else { e.topics.keys().cloned().collect() };
        ConnectionView::new(
            id.to_string(),
            topics,
            e.transport,
            e.connected_at,
            e.node.clone(),
            e.topics.iter().map(|(t, m)| events(t, m)).sum(),
            e.sub.clone(),
        )
    }

    /// A page of connections, optionally only those on `topic`, sorted by id.
    pub fn connections(&self, limit: usize, cursor: Option<&str>, topic: Option<&str>) -> Result<Page<ConnectionView>, GatewayError> {
        let after = cursor.map(|c| decode_cursor(CONN_CURSOR, c)).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE);
        match topic {
            None => {
                let iter = range_after(&self.conns, after.as_deref()).filter(|(_, e)| e.home).map(|(id, e)| self.view(id, e));
                Ok(paginate(iter, limit, self.connection_count(), |v| encode_cursor(CONN_CURSOR, &v.id)))
            }
            Some(t) => {
                let empty = BTreeSet::new();
                let ids = self.topics.get(t).unwrap_or(&empty);
                let iter = set_after(ids, after.as_deref()).filter_map(|id| self.conns.get(id).map(|e| self.view(id, e)));
                Ok(paginate(iter, limit, ids.len(), |v| encode_cursor(CONN_CURSOR, &v.id)))
            }
        }
    }

    /// A page of live topics with their connection counts, sorted by name.
    pub fn topics(&self, limit: usize, cursor: Option<&str>) -> Result<Page<TopicView>, GatewayError> {
        let after = cursor.map(|c| decode_cursor(TOPIC_CURSOR, c)).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE);
        let iter =
            range_after(&self.topics, after.as_deref()).map(|(t, ids)| TopicView::new(t.clone(), ids.len()).with_meta(self.meta.get(t)));
        Ok(paginate(iter, limit, self.topics.len(), |v| encode_cursor(TOPIC_CURSOR, &v.topic)))
    }
}

/// The cursor kind of a listing (`topics` or `connections`).
pub fn cursor_kind(listing: &str) -> char {
    if listing == "topics" {
        TOPIC_CURSOR
    } else {
        CONN_CURSOR
    }
}

/// Checks a listing's cursor before it is sent to the registry shards (400 `invalid_cursor`).
pub fn check_cursor(listing: &str, cursor: Option<&str>) -> Result<(), GatewayError> {
    cursor.map(|c| decode_cursor(cursor_kind(listing), c)).transpose().map(|_| ())
}

/// One listing from the pages the registry shards answered to the same request (`key`: `topics`
/// or `connections`): at most `limit` items in key order, `total` summed, and a cursor that
/// neither repeats nor skips. A shard whose page was full may hold more items after its last
/// one, so nothing past the smallest such last key is returned yet: the next page starts there.
pub fn merge_pages(bodies: &[String], key: &str, limit: usize) -> Result<String, GatewayError> {
    let (field, kind) = (if key == "topics" { "topic" } else { "id" }, cursor_kind(key));
    let bad = |e: &dyn std::fmt::Display| GatewayError::Internal(format!("registry shard page: {e}"));
    let mut items: Vec<(String, serde_json::Value)> = Vec::new();
    let mut total = 0u64;
    let mut bound: Option<String> = None;
    let mut more = false;
    for body in bodies {
        let page: serde_json::Value = serde_json::from_str(body).map_err(|e| bad(&e))?;
        total += page["total"].as_u64().ok_or_else(|| bad(&"no total"))?;
        let list = page[key].as_array().ok_or_else(|| bad(&format!("no {key}")))?;
        let keys: Vec<String> =
            list.iter().map(|v| v[field].as_str().map(str::to_string).ok_or_else(|| bad(&field))).collect::<Result<_, _>>()?;
        if !page["next_cursor"].is_null() {
            more = true;
            if let Some(last) = keys.last() {
                if bound.as_ref().is_none_or(|b| last < b) {
                    bound = Some(last.clone());
                }
            }
        }
        items.extend(keys.into_iter().zip(list.iter().cloned()));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.dedup_by(|a, b| a.0 == b.0);
    if let Some(b) = &bound {
        items.retain(|(k, _)| k <= b);
    }
    let limit = limit.clamp(1, MAX_PAGE);
    more |= items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(|(k, _)| encode_cursor(kind, k)) } else { None };
    let mut m = serde_json::Map::new();
    m.insert(key.to_string(), serde_json::Value::Array(items.into_iter().map(|(_, v)| v).collect()));
    m.insert("total".into(), total.into());
    m.insert("next_cursor".into(), next.into());
    Ok(serde_json::Value::Object(m).to_string())
}

fn range_after<'a, V>(map: &'a BTreeMap<String, V>, after: Option<&str>) -> impl Iterator<Item = (&'a String, &'a V)> {
    let lower = match after {
        Some(k) => Bound::Excluded(k.to_string()),
        None => Bound::Unbounded,
    };
    map.range((lower, Bound::Unbounded))
}

fn set_after<'a>(set: &'a BTreeSet<String>, after: Option<&str>) -> impl Iterator<Item = &'a String> {
    let lower = match after {
        Some(k) => Bound::Excluded(k.to_string()),
        None => Bound::Unbounded,
    };
    set.range((lower, Bound::Unbounded))
}

/// Takes up to `limit` items of a sorted iterator that starts after the cursor; `next_cursor` is
/// the key of the last item taken when more follow. Runtimes whose records live elsewhere (the
/// native cluster's Redis) page with this too, handing it `limit + 1` items at most.
pub fn paginate<T>(mut iter: impl Iterator<Item = T>, limit: usize, total: usize, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let items: Vec<T> = iter.by_ref().take(limit).collect();
    let next_cursor = match (items.last(), iter.next()) {
        (Some(last), Some(_)) => Some(cursor_of(last)),
        _ => None,
    };
    Page { items, total, next_cursor }
}

/// Parses the `limit` query parameter: absent → 100; otherwise an integer in 1–500.
pub fn parse_limit(raw: Option<&str>) -> Result<usize, GatewayError> {
    match raw {
        None => Ok(DEFAULT_PAGE),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(GatewayError::InvalidLimit { max: MAX_PAGE }),
        },
    }
}

/// A cursor is `<kind>1.<hex of the last key>.<checksum>`: opaque to clients, checked on the
/// way back so a truncated or altered cursor is a 400 rather than a silent jump.
pub fn encode_cursor(kind: char, key: &str) -> String {
    let mut s = String::with_capacity(12 + key.len() * 2);
    s.push(kind);
    s.push_str("1.");
    for b in key.bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s.push_str(&format!(".{:08x}", checksum(kind, key)));
    s
}

/// FNV-1a over the kind and the key.
fn checksum(kind: char, key: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in [kind as u8].iter().chain(key.as_bytes()) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

pub fn decode_cursor(kind: char, cursor: &str) -> Result<String, GatewayError> {
    let body = cursor.strip_prefix(kind).and_then(|s| s.strip_prefix("1.")).ok_or(GatewayError::InvalidCursor)?;
    let (hex, sum) = body.split_once('.').ok_or(GatewayError::InvalidCursor)?;
    if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 2 * crate::names::MAX_NAME_LEN || sum.len() != 8 {
        return Err(GatewayError::InvalidCursor);
    }
    let bytes: Option<Vec<u8>> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
    let key = String::from_utf8(bytes.ok_or(GatewayError::InvalidCursor)?).map_err(|_| GatewayError::InvalidCursor)?;
    crate::names::check_name(&key).map_err(|_| GatewayError::InvalidCursor)?;
    if u32::from_str_radix(sum, 16).ok() != Some(checksum(kind, &key)) {
        return Err(GatewayError::InvalidCursor);
    }
    // Only the exact text `encode_cursor` gives: no upper-case hex, no `+` sign (which
    // `from_str_radix` would take), so each position has one cursor and any alteration is refused.
    if encode_cursor(kind, &key) != cursor {
        return Err(GatewayError::InvalidCursor);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn conn(id: &str) -> ConnSummary {
        ConnSummary {
            id: id.into(),
            transport: Transport::Sse,
            connected_at: 0,
            node: "n".into(),
            events_sent: 1,
            topics: vec![],
            sub: None,
        }
    }

    fn attach(r: &mut Registry, topic: &str, id: &str) {
        r.apply(RegistryUpdate::Attach { topic: topic.into(), conn: conn(id) }, 0);
    }

    fn counts(publishes: u64, drops: u64) -> crate::metrics::Counts {
        crate::metrics::Counts { publishes, drops, ..Default::default() }
    }

    fn events_sent(r: &Registry, id: &str) -> u64 {
        r.connections(10, None, None).unwrap().items.into_iter().find(|c| c.id == id).unwrap().events_sent
    }

    #[test]
    fn events_sent_counts_the_topics_events_since_the_connection_attached() {
        let mut r = Registry::new();
        attach(&mut r, "t", "a");
        r.apply(RegistryUpdate::Counts { topic: "t".into(), counts: counts(3, 1) }, 0);
        attach(&mut r, "t", "b");
        attach(&mut r, "u", "a");
        r.apply(RegistryUpdate::Counts { topic: "t".into(), counts: counts(2, 0) }, 0);
        r.apply(RegistryUpdate::Counts { topic: "u".into(), counts: counts(4, 0) }, 0);
        // a: 1 reported at attach on each topic + 2 + 2 on t + 4 on u; b: 1 + 2.
        assert_eq!(events_sent(&r, "a"), 1 + 2 + 2 + 1 + 4);
        assert_eq!(events_sent(&r, "b"), 1 + 2);
        // Counts of a topic nobody is on are totals only.
        r.apply(RegistryUpdate::Counts { topic: "gone".into(), counts: counts(5, 5) }, 0);
        assert!(r.meta("gone").is_none());
        assert_eq!(r.counts().publishes, 14);
    }

    #[test]
    fn wakes_are_shown_on_live_topics_and_forgotten_with_them() {
        let mut r = Registry::new();
        r.apply(RegistryUpdate::Woke { topic: "t".into(), wakes: 1, at: 5 }, 0);
        assert!(r.meta("t").is_none(), "no topic yet");
        attach(&mut r, "t", "a");
        r.apply(RegistryUpdate::Woke { topic: "t".into(), wakes: 2, at: 1_000 }, 0);
        r.apply(RegistryUpdate::Woke { topic: "t".into(), wakes: 1, at: 900 }, 0);
        let page = r.topics(10, None).unwrap();
        assert_eq!(page.items[0].wakes, Some(2));
        assert_eq!(page.items[0].last_woke_at.as_deref(), Some("1970-01-01T00:00:01.000Z"));
        assert!(page.body("topics").contains("\"wakes\":2"));
        r.apply(RegistryUpdate::Detach { topic: "t".into(), id: "a".into() }, 0);
        assert!(r.meta("t").is_none());
        attach(&mut r, "t", "b");
        assert_eq!(r.topics(10, None).unwrap().items[0].wakes, None);
        // Natively nothing reports wakes: the fields are absent.
        assert!(!r.topics(10, None).unwrap().body("topics").contains("wakes"));
    }

    #[test]
    fn a_restored_registry_lists_what_the_original_did() {
        let mut a = Registry::new();
        attach(&mut a, "t", "x");
        a.apply(RegistryUpdate::Counts { topic: "t".into(), counts: counts(2, 0) }, 0);
        attach(&mut a, "t", "y");
        a.apply(RegistryUpdate::Woke { topic: "t".into(), wakes: 3, at: 7 }, 0);
        let mut b = Registry::new();
        let members = ["x", "y"].map(|id| (conn(id), a.base_of("t", id).unwrap())).to_vec();
        b.restore("t", a.meta("t").unwrap().clone(), members, 0);
        assert_eq!(b.connections(10, None, None).unwrap(), a.connections(10, None, None).unwrap());
        assert_eq!(b.topics(10, None).unwrap(), a.topics(10, None).unwrap());
        assert!(b.has_topic("t"));
        b.restore("empty", TopicMeta::default(), Vec::new(), 0);
        assert!(!b.has_topic("empty") && b.meta("empty").is_none());
    }

    #[test]
    fn multi_topic_connection_is_one_record() {
        let mut r = Registry::new();
        attach(&mut r, "a", "c1");
        attach(&mut r, "b", "c1");
        attach(&mut r, "a", "c2");
        let page = r.connections(10, None, None).unwrap();
        assert_eq!(page.total, 2);
        assert_eq!(page.items[0].topics, vec!["a", "b"]);
        assert_eq!(page.items[0].events_sent, 2);
        let topics = r.topics(10, None).unwrap();
        assert_eq!(
            topics.items.iter().map(|t| (t.topic.as_str(), t.connections, t.mode)).collect::<Vec<_>>(),
            vec![("a", 2, "multicast"), ("b", 1, "unicast")]
        );
        assert_eq!(r.connections(10, None, Some("b")).unwrap().items.len(), 1);
    }

    #[test]
    fn last_detach_removes_topic_and_record() {
        let mut r = Registry::new();
        attach(&mut r, "a", "c1");
        attach(&mut r, "b", "c1");
        r.apply(RegistryUpdate::Detach { topic: "a".into(), id: "c1".into() }, 0);
        assert_eq!(r.topic_count(), 1);
        r.apply(RegistryUpdate::Detach { topic: "b".into(), id: "c1".into() }, 0);
        assert_eq!((r.topic_count(), r.connection_count()), (0, 0));
    }

    #[test]
    fn snapshot_replaces_and_leases_expire() {
        let mut r = Registry::new();
        attach(&mut r, "a", "c1");
        attach(&mut r, "a", "c2");
        r.apply(RegistryUpdate::Snapshot { topic: "a".into(), conns: vec![conn("c2"), conn("c3")] }, 100);
        let ids: Vec<_> = r.connections(10, None, None).unwrap().items.into_iter().map(|c| c.id).collect();
        assert_eq!(ids, vec!["c2", "c3"]);
        attach(&mut r, "b", "c9"); // seen at 0
        assert_eq!(r.expire(150, 60), 1);
        assert_eq!(r.topic_count(), 1);
        assert_eq!(r.expire(1000, 60), 2);
        assert_eq!(r.connection_count(), 0);
    }

    #[test]
    fn counts_add_up_and_transports_are_counted() {
        let mut r = Registry::new();
        attach(&mut r, "a", "c1");
        r.apply(RegistryUpdate::Attach { topic: "a".into(), conn: ConnSummary { transport: Transport::Ws, ..conn("c2") } }, 0);
        assert_eq!(r.connections_by_transport(), (1, 1));
        let c = crate::metrics::Counts { publishes: 2, deliveries: 3, drops: 1, evictions: 0, replayed: 4 };
        r.apply(RegistryUpdate::Counts { topic: "a".into(), counts: c }, 0);
        r.apply(RegistryUpdate::Counts { topic: "b".into(), counts: c }, 0);
        assert_eq!(r.counts(), crate::metrics::Counts { publishes: 4, deliveries: 6, drops: 2, evictions: 0, replayed: 8 });
        let wire = serde_json::to_string(&RegistryUpdate::Counts { topic: "a".into(), counts: c }).unwrap();
        assert!(wire.starts_with(r#"{"op":"counts","topic":"a","counts":{"publishes":2"#), "{wire}");
    }

    #[test]
    fn pages_and_cursors() {
        let mut r = Registry::new();
        for i in 0..7 {
            attach(&mut r, "a", &format!("c{i}"));
        }
        let p1 = r.connections(3, None, None).unwrap();
        assert_eq!(p1.items.len(), 3);
        let p2 = r.connections(3, p1.next_cursor.as_deref(), None).unwrap();
        let p3 = r.connections(3, p2.next_cursor.as_deref(), None).unwrap();
        assert_eq!(p3.items.len(), 1);
        assert_eq!(p3.next_cursor, None);
        // An exact fit has no next page.
        assert_eq!(r.connections(7, None, None).unwrap().next_cursor, None);
    }

    #[test]
    fn records_views_and_bodies() {
        let rec = ConnRecord {
            id: "c1".into(),
            topics: vec!["a".into()],
            transport: Transport::Ws,
            connected_at: 0,
            node: "n1".into(),
            events_sent: 4,
            sub: None,
        };
        let v = rec.view();
        assert_eq!((v.connected_at.as_str(), v.events_sent), ("1970-01-01T00:00:00.000Z", 4));
        assert_eq!(TopicView::new("t".into(), 1).mode, "unicast");
        assert_eq!(TopicView::new("t".into(), 2).mode, "multicast");
        let page = paginate(vec![v.clone(), v].into_iter(), 1, 2, |v| encode_cursor(CONN_CURSOR, &v.id));
        let expected = encode_cursor(CONN_CURSOR, "c1");
        assert_eq!(page.next_cursor.as_deref(), Some(expected.as_str()));
        let body: serde_json::Value = serde_json::from_str(&page.body("connections")).unwrap();
        assert_eq!(body["connections"][0]["node"], "n1");
        assert_eq!((body["total"].as_u64(), body["next_cursor"].as_str()), (Some(2), Some(expected.as_str())));
        let empty: Page<TopicView> = paginate(std::iter::empty(), 10, 0, |v: &TopicView| v.topic.clone());
        assert_eq!(empty.body("topics"), r#"{"next_cursor":null,"topics":[],"total":0}"#);
    }

    #[test]
    fn a_connections_sub_is_listed_when_it_has_one() {
        let named = |id: &str, sub: &str| ConnSummary { sub: Some(sub.into()), ..conn(id) };
        // Every form that carries a connection keeps the sub: the owner's report (JSON, as a
        // Cloudflare registry object stores it), the registry, a restored registry, merged pages.
        let report = serde_json::to_string(&named("c1", "alice")).unwrap();
        assert!(report.contains(r#""sub":"alice""#), "{report}");
        assert!(!serde_json::to_string(&conn("c2")).unwrap().contains("sub"));
        let mut r = Registry::new();
        r.apply(RegistryUpdate::Attach { topic: "t".into(), conn: serde_json::from_str(&report).unwrap() }, 0);
        r.apply(RegistryUpdate::Attach { topic: "u".into(), conn: named("c1", "alice") }, 0);
        attach(&mut r, "t", "c2");
        let page = r.connections(10, None, Some("t")).unwrap();
        assert_eq!(page.items.iter().map(|v| v.sub.as_deref()).collect::<Vec<_>>(), vec![Some("alice"), None]);
        let body: serde_json::Value = serde_json::from_str(&page.body("connections")).unwrap();
        assert_eq!(body["connections"][0]["sub"], "alice");
        assert!(body["connections"][1].get("sub").is_none(), "absent, not null: {body}");
        let mut b = Registry::new();
        b.restore("t", TopicMeta::default(), vec![(named("c1", "alice"), 0), (conn("c2"), 0)], 0);
        assert_eq!(b.connections(10, None, None).unwrap().items[0].sub.as_deref(), Some("alice"));
        let mut s = Sharded::new(3);
        for u in multi("c3", &["a", "b", "c"]) {
            s.apply(match u {
                RegistryUpdate::Attach { topic, conn } => {
                    RegistryUpdate::Attach { topic, conn: ConnSummary { sub: Some("bob".into()), ..conn } }
                }
                other => other,
            });
        }
        s.apply(RegistryUpdate::Attach { topic: "a".into(), conn: conn("c4") });
        let merged = s.page("connections", 10, None);
        assert_eq!((merged["connections"][0]["sub"].as_str(), merged["connections"][1].get("sub")), (Some("bob"), None));
    }

    #[test]
    fn connection_records_without_a_sub_still_read() {
        // A record written before connections carried a sub (a node of an older version).
        let old = r#"{"id":"c1","topics":["a"],"transport":"sse","connected_at":0,"node":"n1","events_sent":2}"#;
        let rec: ConnRecord = serde_json::from_str(old).unwrap();
        assert_eq!(rec.sub, None);
        assert_eq!(serde_json::to_string(&rec).unwrap(), old, "written back the same");
        assert!(!serde_json::to_string(&rec.view()).unwrap().contains("sub"));
        let old_summary = r#"{"id":"c1","transport":"ws","connected_at":0,"node":"n","events_sent":1}"#;
        assert_eq!(serde_json::from_str::<ConnSummary>(old_summary).unwrap().sub, None);
        let rec = ConnRecord { sub: Some("alice".into()), ..rec };
        let back: ConnRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
        assert_eq!(back.view().sub.as_deref(), Some("alice"));
    }

    #[test]
    fn limit_parsing() {
        assert_eq!(parse_limit(None).unwrap(), 100);
        assert_eq!(parse_limit(Some("500")).unwrap(), 500);
        for bad in ["0", "501", "abc", "", "-1", "+5", " 5", "99999999999999999999999"] {
            assert_eq!(parse_limit(Some(bad)).unwrap_err().code(), "invalid_limit", "{bad}");
        }
    }

    #[test]
    fn forged_cursors_are_rejected() {
        let good = encode_cursor('c', "c01");
        let altered = good.replacen("63", "64", 1);
        let truncated = &good[..good.len() - 1];
        let foreign = encode_cursor('t', "c01");
        for bad in ["", "abc", "c1.", "c1.zz", "c1.6", "t1.61", "c1.2f2f", "c2.61", "c1.ff", "c1.61", &altered, truncated, &foreign] {
            assert_eq!(decode_cursor('c', bad).unwrap_err().code(), "invalid_cursor", "{bad}");
        }
        assert_eq!(decode_cursor('c', &encode_cursor('c', "c01:x")).unwrap(), "c01:x");
        // Found by fuzzing (crates/core/fuzz, target cursor): non-canonical spellings of a
        // valid cursor were accepted.
        let good = encode_cursor('c', "conn-1");
        assert_eq!(good, "c1.636f6e6e2d31.b5cae2a2");
        for bad in ["c1.636f6e6e2d31.B5cae2a2", "c1.636F6e6e2d31.b5cae2a2", "c1.636f6e6e2d31.B5CAE2A2"] {
            assert_eq!(decode_cursor('c', bad).unwrap_err().code(), "invalid_cursor", "{bad}");
        }
        // A checksum with a leading 0 could be spelled with a `+` instead.
        assert_eq!(encode_cursor('c', "k620"), "c1.6b363230.058ceffd");
        assert_eq!(decode_cursor('c', "c1.6b363230.+58ceffd").unwrap_err().code(), "invalid_cursor");
        // A well-formed cursor for a connection that has left still works as a position.
        let mut r = Registry::new();
        attach(&mut r, "a", "b");
        let p = r.connections(10, Some(&encode_cursor('c', "a")), None).unwrap();
        assert_eq!(p.items.len(), 1);
    }

    /// A registry spread over `shards`, fed as the topic objects feed it: each update goes to
    /// the shard of its topic.
    struct Sharded(Vec<Registry>);

    impl Sharded {
        fn new(shards: usize) -> Self {
            Sharded((0..shards).map(|i| Registry::for_shard(i, shards)).collect())
        }
        fn apply(&mut self, u: RegistryUpdate) {
            let n = self.0.len();
            self.0[shard_of(u.topic(), n)].apply(u, 0);
        }
        fn page(&self, key: &str, limit: usize, cursor: Option<&str>) -> serde_json::Value {
            let bodies: Vec<String> = self
                .0
                .iter()
                .map(|r| {
                    if key == "topics" {
                        r.topics(limit, cursor).unwrap().body(key)
                    } else {
                        r.connections(limit, cursor, None).unwrap().body(key)
                    }
                })
                .collect();
            serde_json::from_str(&merge_pages(&bodies, key, limit).unwrap()).unwrap()
        }
    }

    fn multi(id: &str, topics: &[&str]) -> Vec<RegistryUpdate> {
        let mut c = conn(id);
        c.topics = topics.iter().map(|t| t.to_string()).collect();
        topics.iter().map(|t| RegistryUpdate::Attach { topic: t.to_string(), conn: c.clone() }).collect()
    }

    #[test]
    fn shard_of_is_stable_and_spreads() {
        assert_eq!(shard_of("user:42", 4), shard_of("user:42", 4));
        assert_eq!(shard_of("anything", 1), 0);
        let used: BTreeSet<usize> = (0..64).map(|i| shard_of(&format!("t{i}"), 4)).collect();
        assert_eq!(used.len(), 4);
        assert_eq!(shard_name(0, 1), "registry");
        assert_eq!(shards_to_ask(None, 3), vec![0, 1, 2]);
        assert_eq!(shards_to_ask(Some("user:42"), 4), vec![shard_of("user:42", 4)]);
        assert_ne!(shard_name(1, 4), shard_name(1, 8));
    }

    #[test]
    fn a_sharded_registry_lists_a_multi_topic_connection_once_with_all_its_topics() {
        let mut s = Sharded::new(4);
        let topics: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        for u in multi("c1", &refs) {
            s.apply(u);
        }
        let page = s.page("connections", 10, None);
        assert_eq!(page["total"], 1);
        assert_eq!(page["connections"].as_array().unwrap().len(), 1);
        assert_eq!(page["connections"][0]["topics"].as_array().unwrap().len(), 8);
        assert_eq!(s.page("topics", 100, None)["total"], 8);
    }

    proptest! {
        /// Merged pages of a sharded registry list what one registry lists, in the same order,
        /// each item once, never over the limit.
        #[test]
        fn sharded_pages_list_what_one_registry_lists(
            conns in proptest::collection::vec(("[a-z0-9]{1,6}", proptest::collection::btree_set("[a-e]{1,2}", 1..4)), 0..40),
            limit in 1usize..9,
            shards in 2usize..6,
        ) {
            let mut one = Registry::new();
            let mut many = Sharded::new(shards);
            let mut ids = BTreeSet::new();
            for (id, topics) in &conns {
                if !ids.insert(id.clone()) { continue; }
                let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
                for u in multi(id, &refs) {
                    one.apply(u.clone(), 0);
                    many.apply(u);
                }
            }
            for key in ["topics", "connections"] {
                let field = if key == "topics" { "topic" } else { "id" };
                let mut cursor: Option<String> = None;
                let mut got: Vec<serde_json::Value> = Vec::new();
                loop {
                    let page = many.page(key, limit, cursor.as_deref());
                    let items = page[key].as_array().unwrap().clone();
                    prop_assert!(items.len() <= limit);
                    prop_assert!(!items.is_empty() || page["next_cursor"].is_null());
                    got.extend(items);
                    match page["next_cursor"].as_str() { Some(c) => cursor = Some(c.to_string()), None => break }
                }
                let want: Vec<serde_json::Value> = if key == "topics" {
                    serde_json::from_str::<serde_json::Value>(&one.topics(MAX_PAGE, None).unwrap().body(key)).unwrap()[key].as_array().unwrap().clone()
                } else {
                    serde_json::from_str::<serde_json::Value>(&one.connections(MAX_PAGE, None, None).unwrap().body(key)).unwrap()[key].as_array().unwrap().clone()
                };
                let keys = |v: &[serde_json::Value]| v.iter().map(|x| x[field].as_str().unwrap().to_string()).collect::<Vec<_>>();
                prop_assert_eq!(keys(&got), keys(&want));
                if key == "connections" {
                    for (g, w) in got.iter().zip(&want) { prop_assert_eq!(&g["topics"], &w["topics"]); }
                }
                let first = many.page(key, limit, None);
                prop_assert_eq!(first["total"].as_u64().unwrap() as usize, want.len());
            }
        }

        /// Reading all pages while connections come and go: every connection present from the
        /// first page to the last is seen exactly once, no page is over the limit.
        #[test]
        fn pagination_never_repeats_or_skips_stable_connections(
            stable in proptest::collection::btree_set("[a-z0-9]{1,6}", 0..60),
            churn in proptest::collection::vec(("[a-z0-9]{1,6}", any::<bool>()), 0..80),
            limit in 1usize..12,
            topic_filter in any::<bool>(),
        ) {
            let mut r = Registry::new();
            for id in &stable { attach(&mut r, "t", &format!("s{id}")); }
            let mut churn = churn.into_iter();
            let mut seen: Vec<String> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = r.connections(limit, cursor.as_deref(), topic_filter.then_some("t")).unwrap();
                prop_assert!(page.items.len() <= limit);
                seen.extend(page.items.iter().map(|c| c.id.clone()));
                // Between pages, other connections arrive and leave.
                for _ in 0..3 {
                    if let Some((id, add)) = churn.next() {
                        let id = format!("x{id}");
                        if add { attach(&mut r, "t", &id) } else {
                            r.apply(RegistryUpdate::Detach { topic: "t".into(), id }, 0)
                        }
                    }
                }
                match page.next_cursor { Some(c) => cursor = Some(c), None => break }
            }
            for id in &stable {
                let id = format!("s{id}");
                prop_assert_eq!(seen.iter().filter(|s| **s == id).count(), 1, "{}", id);
            }
            let mut sorted = seen.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), seen.len(), "no id repeats");
        }
    }
}
