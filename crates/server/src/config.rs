//! The native runtime's settings: the core's (limits, heartbeat, API keys) plus where to listen,
//! who this node is, and how to reach Redis. Read from the environment, validated at start.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use sse_core::config::{ConfigError, Setting};
use sse_core::{names, Config};
use thiserror::Error;

/// Numeric settings of the native runtime (the core's are in `sse_core::config::SETTINGS`).
pub const PUBLISH_BODY_TIMEOUT_MS: Setting = Setting {
    key: "PUBLISH_BODY_TIMEOUT_MS",
    default: 30_000,
    min: 100,
    max: 600_000,
    help: "time a publisher has to send the whole body once the gateway reads it; then 408",
};
pub const REQUEST_HEAD_TIMEOUT_MS: Setting = Setting {
    key: "REQUEST_HEAD_TIMEOUT_MS",
    default: 30_000,
    min: 100,
    max: 600_000,
    help: "time a new connection has to send its first request head; then it is closed (slowloris)",
};
pub const NODE_TTL_MS: Setting = Setting {
    key: "NODE_TTL_MS",
    default: 10_000,
    min: 1_000,
    max: 600_000,
    help: "cluster: a node that stops refreshing its identity is dead after this long",
};
pub const NODE_REFRESH_MS: Setting = Setting {
    key: "NODE_REFRESH_MS",
    default: 3_000,
    min: 200,
    max: 300_000,
    help: "cluster: how often a node refreshes its identity and purges dead nodes (less than NODE_TTL_MS / 2)",
};
pub const SHUTDOWN_GRACE_MS: Setting = Setting {
    key: "SHUTDOWN_GRACE_MS",
    default: 5_000,
    min: 0,
    max: 600_000,
    help: "on SIGTERM/SIGINT, how long subscribers get to be told to reconnect and closed",
};
pub const WS_MAX_MESSAGE_BYTES: Setting = Setting {
    key: "WS_MAX_MESSAGE_BYTES",
    default: 4_096,
    min: 125,
    max: 1_048_576,
    help: "largest message a WebSocket client may send (they are ignored); larger closes with 1009",
};
pub const FORWARD_TIMEOUT_MS: Setting = Setting {
    key: "FORWARD_TIMEOUT_MS",
    default: 5_000,
    min: 100,
    max: 600_000,
    help: "cluster: how long a node waits for another node to take a forwarded event",
};

pub const MAX_CONNECTIONS_PER_NODE: Setting = Setting {
    key: "MAX_CONNECTIONS_PER_NODE",
    default: 0,
    min: 0,
    max: 10_000_000,
    help: "connections (SSE, WebSocket, admin tails) one node accepts before answering 503; 0 = unlimited",
};

pub const METRICS_REQUIRE_KEY: Setting = Setting {
    key: "METRICS_REQUIRE_KEY",
    default: 0,
    min: 0,
    max: 1,
    help: "1 = GET /metrics needs an API key like the admin API; 0 = open (the usual Prometheus scrape)",
};

pub const NATIVE_SETTINGS: [&Setting; 9] = [
    &PUBLISH_BODY_TIMEOUT_MS,
    &REQUEST_HEAD_TIMEOUT_MS,
    &NODE_TTL_MS,
    &NODE_REFRESH_MS,
    &SHUTDOWN_GRACE_MS,
    &WS_MAX_MESSAGE_BYTES,
    &FORWARD_TIMEOUT_MS,
    &MAX_CONNECTIONS_PER_NODE,
    &METRICS_REQUIRE_KEY,
];

/// Default `LISTEN_ADDR`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default `REDIS_KEY_PREFIX`.
pub const DEFAULT_PREFIX: &str = "sse:";

#[derive(Debug, Error)]
pub enum ServerConfigError {
    #[error(transparent)]
    Core(#[from] ConfigError),
    #[error("{key}={value:?}: {reason}")]
    Invalid { key: &'static str, value: String, reason: String },
}

/// The cluster part of the configuration (present when `REDIS_URL` or `REDIS_CLUSTER_URLS` is
/// set).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `REDIS_URL`, or the first of `REDIS_CLUSTER_URLS` (for messages).
    pub redis_url: String,
    /// `REDIS_CLUSTER_URLS`: seed nodes of a Redis Cluster (sharded); empty with one Redis.
    pub redis_cluster_urls: Vec<String>,
    /// Prefix of every Redis key, so several gateways can share one Redis.
    pub prefix: String,
    /// Shared by the nodes of a cluster; authenticates node-to-node forwarding.
    pub secret: String,
    pub node_ttl_ms: u64,
    pub node_refresh_ms: u64,
    pub forward_timeout_ms: u64,
}

/// Everything the native runtime needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub core: Config,
    pub listen_addr: SocketAddr,
    /// This node's id: in admin listings (`node`) and in Redis.
    pub node_id: String,
    /// `host:port` other nodes use to reach this one.
    pub advertise_addr: String,
    pub cluster: Option<ClusterConfig>,
    pub publish_body_timeout_ms: u64,
    /// How long a new connection may take to send its first request head.
    pub request_head_timeout_ms: u64,
    pub shutdown_grace_ms: u64,
    pub ws_max_message_bytes: usize,
    /// Connections this node accepts (0 = unlimited).
    pub max_connections_per_node: usize,
    /// Whether `GET /metrics` needs an API key (`METRICS_REQUIRE_KEY=1`).
    pub metrics_require_key: bool,
}

impl ServerConfig {
    /// A single node listening on `listen_addr` with the core's defaults: handy for embedding.
    pub fn single_node(core: Config, listen_addr: SocketAddr) -> Self {
        let lookup = |_: &str| None;
        Self::from_lookup_with(core, lookup, Some(listen_addr)).expect("defaults are valid")
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ServerConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings from a key lookup.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ServerConfigError> {
        let core = Config::from_lookup(&lookup)?;
        Self::from_lookup_with(core, lookup, None)
    }

    fn from_lookup_with(
        core: Config,
        lookup: impl Fn(&str) -> Option<String>,
        listen: Option<SocketAddr>,
    ) -> Result<Self, ServerConfigError> {
        let get = |k: &str| lookup(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let listen_addr = match listen {
            Some(a) => a,
            None => {
                let raw = get("LISTEN_ADDR").unwrap_or_else(|| DEFAULT_LISTEN.to_string());
                raw.parse().map_err(|_| invalid("LISTEN_ADDR", &raw, "expected ip:port, e.g. 0.0.0.0:8080"))?
            }
        };
        let node_id = get("NODE_ID").unwrap_or_else(hostname);
        names::check_name(&node_id).map_err(|m| invalid("NODE_ID", &node_id, &format!("a node id {m}")))?;
        let advertise_addr = match get("ADVERTISE_ADDR") {
            Some(a) => {
                check_host_port(&a).map_err(|r| invalid("ADVERTISE_ADDR", &a, &r))?;
                a
            }
            None => default_advertise(listen_addr),
        };
        let redis_cluster_urls: Vec<String> = match get("REDIS_CLUSTER_URLS") {
            None => Vec::new(),
            Some(list) => {
                let urls: Vec<String> = list.split(',').map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect();
                if urls.is_empty() || urls.iter().any(|u| !(u.starts_with("redis://") || u.starts_with("rediss://"))) {
                    return Err(invalid(
                        "REDIS_CLUSTER_URLS",
                        &list,
                        "expected redis://host:port[,redis://host:port...] (seed nodes of a Redis Cluster)",
                    ));
                }
                urls
            }
        };
        let redis_url = match (get("REDIS_URL"), redis_cluster_urls.first()) {
            (Some(url), Some(_)) => {
                return Err(invalid("REDIS_URL", &url, "set REDIS_URL (one Redis) or REDIS_CLUSTER_URLS (a Redis Cluster), not both"));
            }
            (Some(url), None) => Some(url),
            (None, Some(first)) => Some(first.clone()),
            (None, None) => None,
        };
        let cluster = match redis_url {
            None => None,
            Some(url) => {
                if !(url.starts_with("redis://")
                    || url.starts_with("rediss://")
                    || url.starts_with("unix://")
                    || url.starts_with("redis+unix://"))
                {
                    return Err(invalid("REDIS_URL", &url, "expected redis://host:port[/db]"));
                }
                let node_ttl_ms = NODE_TTL_MS.read(&lookup)?;
                let node_refresh_ms = NODE_REFRESH_MS.read(&lookup)?;
                if node_refresh_ms * 2 > node_ttl_ms {
                    return Err(invalid(
                        "NODE_REFRESH_MS",
                        &node_refresh_ms.to_string(),
                        &format!("must be at most half of NODE_TTL_MS ({node_ttl_ms})"),
                    ));
                }
                let secret = get("CLUSTER_SECRET").or_else(|| get("API_KEYS")).unwrap_or_default();
                if secret.is_empty() {
                    return Err(invalid(
                        "CLUSTER_SECRET",
                        "",
                        "a cluster needs CLUSTER_SECRET (or API_KEYS, its default) shared by every node",
                    ));
                }
                let prefix = get("REDIS_KEY_PREFIX").unwrap_or_else(|| DEFAULT_PREFIX.to_string());
                if prefix.contains(['{', '}']) {
                    return Err(invalid(
                        "REDIS_KEY_PREFIX",
                        &prefix,
                        "must not contain { or } (the gateway puts its own hash tags in every key)",
                    ));
                }
                Some(ClusterConfig {
                    redis_url: url,
                    redis_cluster_urls,
                    prefix,
                    secret,
                    node_ttl_ms,
                    node_refresh_ms,
                    forward_timeout_ms: FORWARD_TIMEOUT_MS.read(&lookup)?,
                })
            }
        };
        Ok(Self {
            core,
            listen_addr,
            node_id,
            advertise_addr,
            cluster,
            publish_body_timeout_ms: PUBLISH_BODY_TIMEOUT_MS.read(&lookup)?,
            request_head_timeout_ms: REQUEST_HEAD_TIMEOUT_MS.read(&lookup)?,
            shutdown_grace_ms: SHUTDOWN_GRACE_MS.read(&lookup)?,
            ws_max_message_bytes: WS_MAX_MESSAGE_BYTES.read(&lookup)? as usize,
            max_connections_per_node: MAX_CONNECTIONS_PER_NODE.read(&lookup)? as usize,
            metrics_require_key: METRICS_REQUIRE_KEY.read(&lookup)? == 1,
        })
    }
}

fn invalid(key: &'static str, value: &str, reason: &str) -> ServerConfigError {
    ServerConfigError::Invalid { key, value: value.to_string(), reason: reason.to_string() }
}

fn check_host_port(s: &str) -> Result<(), String> {
    let (host, port) = s.rsplit_once(':').ok_or("expected host:port")?;
    if host.is_empty() || host.contains('/') || host.chars().any(char::is_whitespace) {
        return Err("expected host:port".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err("the port must be 1-65535".into()),
    }
}

/// The machine's host name (`HOSTNAME`, else the kernel's), or `localhost`.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The listen address when it names one interface; for 0.0.0.0 / [::], the host name's first
/// non-loopback address (IPv4 first), with the listen port.
fn default_advertise(listen: SocketAddr) -> String {
    if !listen.ip().is_unspecified() {
        return listen.to_string();
    }
    let port = listen.port();
    let addrs: Vec<IpAddr> = (hostname().as_str(), port).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default();
    let pick = addrs.iter().find(|ip| ip.is_ipv4() && !ip.is_loopback()).or_else(|| addrs.iter().find(|ip| !ip.is_loopback()));
    match pick {
        Some(ip) => SocketAddr::new(*ip, port).to_string(),
        None => SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<ServerConfig, ServerConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ServerConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_are_a_single_node_on_localhost() {
        let c = cfg(&[("NODE_ID", "n1")]).unwrap();
        assert_eq!(c.listen_addr.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.advertise_addr, DEFAULT_LISTEN);
        assert!(c.cluster.is_none());
        assert_eq!((c.publish_body_timeout_ms, c.shutdown_grace_ms), (30_000, 5_000));
    }

    #[test]
    fn cluster_settings() {
        let c =
            cfg(&[("REDIS_URL", "redis://127.0.0.1:6390"), ("API_KEYS", "k1,k2"), ("NODE_ID", "node-1"), ("LISTEN_ADDR", "0.0.0.0:8081")])
                .unwrap();
        let cl = c.cluster.unwrap();
        assert_eq!((cl.prefix.as_str(), cl.secret.as_str(), cl.node_ttl_ms), ("sse:", "k1,k2", 10_000));
        assert!(c.advertise_addr.ends_with(":8081"), "{}", c.advertise_addr);
        assert!(!c.advertise_addr.starts_with("0.0.0.0"));
    }

    #[test]
    fn every_setting_is_in_the_documented_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let doc = std::fs::read_to_string(path).expect("docs/configuration.md");
        let row = |key: &str| doc.lines().find(|l| l.starts_with(&format!("| `{key}` |"))).map(str::to_string);
        for s in sse_core::config::SETTINGS.iter().chain(NATIVE_SETTINGS.iter()) {
            let r = row(s.key).unwrap_or_else(|| panic!("{} is not in docs/configuration.md", s.key));
            assert!(r.contains(&format!("| `{}` |", s.default)), "{}: default {} not in: {r}", s.key, s.default);
            assert!(r.contains(&format!("| {} – {}", s.min, s.max)), "{}: range {}–{} not in: {r}", s.key, s.min, s.max);
        }
        for key in [
            "PRIVATE_TOPICS",
            "SUBSCRIBER_TOKEN_SECRETS",
            "SUBSCRIBER_TOKEN_PUBLIC_KEYS",
            "SUBSCRIBER_TOKEN_AUDIENCE",
            "SUBSCRIBER_TOKEN_COOKIE",
            "SUBSCRIBER_TOKEN_EXPIRY",
            "SCOPED_API_KEYS",
            "CREDENTIALED_ORIGINS",
        ] {
            assert!(row(key).is_some(), "{key} is not in docs/configuration.md");
        }
        for key in [
            "API_KEYS",
            "LISTEN_ADDR",
            "NODE_ID",
            "ADVERTISE_ADDR",
            "REDIS_URL",
            "REDIS_CLUSTER_URLS",
            "REDIS_KEY_PREFIX",
            "CLUSTER_SECRET",
            "RUST_LOG",
        ] {
            assert!(row(key).is_some(), "{key} is not in docs/configuration.md");
        }
        assert!(row("LISTEN_ADDR").unwrap().contains(DEFAULT_LISTEN));
        assert!(row("REDIS_KEY_PREFIX").unwrap().contains(DEFAULT_PREFIX));
    }

    #[test]
    fn invalid_values_are_named() {
        let err = |pairs: &[(&str, &str)]| cfg(pairs).unwrap_err().to_string();
        assert!(err(&[("LISTEN_ADDR", "nope")]).starts_with("LISTEN_ADDR=\"nope\""));
        assert!(err(&[("NODE_ID", "a b")]).starts_with("NODE_ID="));
        assert!(err(&[("ADVERTISE_ADDR", "host")]).starts_with("ADVERTISE_ADDR="));
        assert!(err(&[("ADVERTISE_ADDR", "host:0")]).contains("port"));
        assert!(err(&[("REDIS_URL", "http://x")]).starts_with("REDIS_URL="));
        assert!(err(&[("REDIS_URL", "redis://x")]).starts_with("CLUSTER_SECRET="));
        assert!(err(&[("REDIS_URL", "redis://x"), ("API_KEYS", "k"), ("NODE_REFRESH_MS", "6000")]).starts_with("NODE_REFRESH_MS="));
        assert!(err(&[("REDIS_CLUSTER_URLS", "http://x")]).starts_with("REDIS_CLUSTER_URLS="));
        assert!(err(&[("REDIS_CLUSTER_URLS", "redis://a:1"), ("REDIS_URL", "redis://b:1")]).starts_with("REDIS_URL="));
        assert!(err(&[("REDIS_URL", "redis://x"), ("API_KEYS", "k"), ("REDIS_KEY_PREFIX", "a{b}")]).starts_with("REDIS_KEY_PREFIX="));
        let c = cfg(&[("REDIS_CLUSTER_URLS", "redis://a:1, redis://b:2"), ("API_KEYS", "k")]).unwrap();
        let cl = c.cluster.unwrap();
        assert_eq!((cl.redis_url.as_str(), cl.redis_cluster_urls.len()), ("redis://a:1", 2));
        assert!(err(&[("MAX_BODY_BYTES", "0")]).contains("out of range"));
        assert!(err(&[("PUBLISH_BODY_TIMEOUT_MS", "x")]).contains("not a whole number"));
    }
}
