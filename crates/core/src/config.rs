//! Settings shared by both runtimes, read from environment-style key/value pairs (process
//! environment natively, `[vars]` and secrets on Cloudflare), with defaults and validation.

use crate::auth::ApiKeys;
use crate::cors::CredentialedOrigins;
use crate::replay::Retention;
pub use crate::setting::{ConfigError, Setting, SUBSCRIBER_TOKEN_LEEWAY_S};
use crate::token::{PrivateTopics, TokenSettings};

pub const HEARTBEAT_INTERVAL_MS: Setting = Setting {
    key: "HEARTBEAT_INTERVAL_MS",
    default: 15_000,
    min: 500,
    max: 300_000,
    help: "keepalive comment interval; dead connections leave within two intervals",
};
pub const RETRY_MS: Setting =
    Setting { key: "RETRY_MS", default: 3_000, min: 0, max: 600_000, help: "the `retry:` reconnect delay sent to SSE clients" };
pub const MAX_BODY_BYTES: Setting =
    Setting { key: "MAX_BODY_BYTES", default: 65_536, min: 1, max: 1_048_576, help: "largest publish body" };
pub const MAX_TOPICS_PER_REQUEST: Setting =
    Setting { key: "MAX_TOPICS_PER_REQUEST", default: 64, min: 1, max: 1_024, help: "most distinct topics in one x-sse-topic list" };
pub const QUEUE_CAPACITY: Setting = Setting {
    key: "QUEUE_CAPACITY",
    default: 1_024,
    min: 1,
    max: 1_048_576,
    help: "frames queued per connection before it is closed as too slow",
};
pub const MAX_CONNECTIONS_PER_TOPIC: Setting = Setting {
    key: "MAX_CONNECTIONS_PER_TOPIC",
    default: 20_000,
    min: 1,
    max: 10_000_000,
    help: "connections one topic accepts before answering 503",
};

pub const PUBLISH_RATE_PER_KEY: Setting = Setting {
    key: "PUBLISH_RATE_PER_KEY",
    default: 0,
    min: 0,
    max: 1_000_000,
    help: "publishes per second each API key may make on average (token bucket); 0 = unlimited; over it: 429",
};
pub const PUBLISH_BURST_PER_KEY: Setting = Setting {
    key: "PUBLISH_BURST_PER_KEY",
    default: 0,
    min: 0,
    max: 10_000_000,
    help: "publishes an API key may make at once before the rate applies; 0 = PUBLISH_RATE_PER_KEY",
};

pub const REGISTRY_SHARDS: Setting = Setting {
    key: "REGISTRY_SHARDS",
    default: 1,
    min: 1,
    max: 64,
    help: "registry objects the admin listings are spread over, by topic (Cloudflare)",
};

pub const TOPIC_SHARD_SIZE: Setting = Setting {
    key: "TOPIC_SHARD_SIZE",
    default: 5_000,
    min: 1,
    max: 32_768,
    help: "subscribers one topic object holds before new ones go to the topic's shard objects (Cloudflare)",
};

pub const SETTINGS: [&Setting; 11] = [
    &HEARTBEAT_INTERVAL_MS,
    &RETRY_MS,
    &MAX_BODY_BYTES,
    &MAX_TOPICS_PER_REQUEST,
    &QUEUE_CAPACITY,
    &MAX_CONNECTIONS_PER_TOPIC,
    &PUBLISH_RATE_PER_KEY,
    &PUBLISH_BURST_PER_KEY,
    &REGISTRY_SHARDS,
    &TOPIC_SHARD_SIZE,
    &SUBSCRIBER_TOKEN_LEEWAY_S,
];

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub api_keys: ApiKeys,
    pub heartbeat_ms: u64,
    pub retry_ms: u64,
    pub max_body_bytes: usize,
    pub max_topics: usize,
    pub queue_capacity: usize,
    pub max_connections_per_topic: usize,
    /// Publishes per second per API key (0 = unlimited).
    pub publish_rate_per_key: u64,
    /// Bucket size per API key (0 = the rate).
    pub publish_burst_per_key: u64,
    /// Per-topic retention (`RETENTION`); empty = the plain drop rule everywhere.
    pub retention: Retention,
    /// Registry objects (Cloudflare), each holding the topics [`crate::registry::shard_of`] gives it.
    pub registry_shards: usize,
    /// Subscribers one topic object holds before it sends new ones to shard objects (Cloudflare).
    pub topic_shard_size: usize,
    /// Topics that need a subscriber token (`PRIVATE_TOPICS`); empty = every topic is anonymous.
    pub private_topics: PrivateTopics,
    /// How subscriber tokens are verified (`SUBSCRIBER_TOKEN_*`).
    pub tokens: TokenSettings,
    /// Origins answered with credentials, whose pages may use the token cookie
    /// (`CREDENTIALED_ORIGINS`); empty = `access-control-allow-origin: *` for every answer.
    pub credentialed_origins: CredentialedOrigins,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_lookup(|_| None).expect("defaults are valid")
    }
}

impl Config {
    /// Builds the configuration from a key lookup (e.g. `std::env::var(k).ok()`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let num = |s: &Setting| s.read(&lookup);
        let private_topics = PrivateTopics::parse(&lookup("PRIVATE_TOPICS").unwrap_or_default()).map_err(ConfigError::PrivateTopics)?;
        let tokens = TokenSettings::from_lookup(&lookup)?;
        // Private topics nobody could open are a mistake to report at start, not a 401 per request.
        if !private_topics.is_empty() && !tokens.has_keys() {
            return Err(ConfigError::PrivateTopicsWithoutKeys);
        }
        Ok(Self {
            api_keys: ApiKeys::parse(&lookup("API_KEYS").unwrap_or_default())
                .with_scoped(&lookup("SCOPED_API_KEYS").unwrap_or_default())
                .map_err(ConfigError::ScopedApiKeys)?,
            heartbeat_ms: num(&HEARTBEAT_INTERVAL_MS)?,
            retry_ms: num(&RETRY_MS)?,
            max_body_bytes: num(&MAX_BODY_BYTES)? as usize,
            max_topics: num(&MAX_TOPICS_PER_REQUEST)? as usize,
            queue_capacity: num(&QUEUE_CAPACITY)? as usize,
            max_connections_per_topic: num(&MAX_CONNECTIONS_PER_TOPIC)? as usize,
            publish_rate_per_key: num(&PUBLISH_RATE_PER_KEY)?,
            publish_burst_per_key: num(&PUBLISH_BURST_PER_KEY)?,
            retention: Retention::parse(&lookup("RETENTION").unwrap_or_default()).map_err(ConfigError::Retention)?,
            registry_shards: num(&REGISTRY_SHARDS)? as usize,
            topic_shard_size: num(&TOPIC_SHARD_SIZE)? as usize,
            private_topics,
            tokens,
            credentialed_origins: CredentialedOrigins::parse(&lookup("CREDENTIALED_ORIGINS").unwrap_or_default())
                .map_err(ConfigError::CredentialedOrigins)?,
        })
    }

    /// How long after it counted something a Cloudflare topic object reports its counts: within
    /// a heartbeat, and never later than 1 s, so that the report runs before the runtime may
    /// evict the idle object (10 s) and lose them, and without waking it a second time.
    pub fn counts_report_ms(&self) -> u64 {
        self.heartbeat_ms.min(1_000)
    }

    /// How long a registry membership lives without a refresh: three heartbeats.
    pub fn registry_lease_ms(&self) -> u64 {
        self.heartbeat_ms * 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!((c.heartbeat_ms, c.max_body_bytes, c.max_topics), (15_000, 65_536, 64));
        assert!(c.api_keys.is_empty());
        assert_eq!((c.publish_rate_per_key, c.publish_burst_per_key), (0, 0));
        let r = cfg(&[("PUBLISH_RATE_PER_KEY", "5"), ("PUBLISH_BURST_PER_KEY", "10")]).unwrap();
        assert_eq!((r.publish_rate_per_key, r.publish_burst_per_key), (5, 10));
    }

    #[test]
    fn overrides_and_validation() {
        let c = cfg(&[("HEARTBEAT_INTERVAL_MS", "1000"), ("API_KEYS", "a,b"), ("MAX_BODY_BYTES", " ")]).unwrap();
        assert_eq!(c.heartbeat_ms, 1000);
        assert_eq!(c.max_body_bytes, 65_536);
        assert_eq!(c.api_keys.len(), 2);
        assert_eq!(
            cfg(&[("MAX_BODY_BYTES", "2000000")]).unwrap_err(),
            ConfigError::OutOfRange { key: "MAX_BODY_BYTES", value: 2_000_000, min: 1, max: 1_048_576 }
        );
        assert!(matches!(cfg(&[("RETRY_MS", "soon")]), Err(ConfigError::NotANumber { .. })));
        assert!(Config::default().retention.is_empty());
        assert_eq!(cfg(&[("RETENTION", "a.*=5/10s")]).unwrap().retention.window("a.b").unwrap().max_count, 5);
        assert!(matches!(cfg(&[("RETENTION", "a.*")]), Err(ConfigError::Retention(_))));
    }

    const SECRET: &str = "a-subscriber-token-secret-of-32-bytes";
    const ED_PUB: &str = "MCowBQYDK2VwAyEAaUuVrdTm2Fd4wFkHh6KUTLRp4iZKMSfPsYU72FIgJtU=";

    #[test]
    fn subscriber_token_defaults() {
        let c = Config::default();
        assert!(c.private_topics.is_empty());
        assert!(!c.tokens.has_keys());
        assert_eq!((c.tokens.leeway_s(), c.tokens.audience(), c.tokens.cookie()), (30, None, "sse_token"));
    }

    #[test]
    fn subscriber_token_settings() {
        let c = cfg(&[
            ("PRIVATE_TOPICS", "user:*, billing"),
            ("SUBSCRIBER_TOKEN_SECRETS", &format!("{SECRET},{SECRET}-next")),
            ("SUBSCRIBER_TOKEN_PUBLIC_KEYS", &format!("ed-1:EdDSA:{ED_PUB}")),
            ("SUBSCRIBER_TOKEN_LEEWAY_S", "5"),
            ("SUBSCRIBER_TOKEN_AUDIENCE", "sse"),
            ("SUBSCRIBER_TOKEN_COOKIE", "tok"),
        ])
        .unwrap();
        assert!(c.private_topics.is_private("user:42") && c.private_topics.is_private("billing") && !c.private_topics.is_private("news"));
        assert_eq!((c.tokens.secret_count(), c.tokens.public_keys().len()), (2, 1));
        assert_eq!((c.tokens.leeway_s(), c.tokens.audience(), c.tokens.cookie()), (5, Some("sse"), "tok"));
        assert!(!format!("{c:?}").contains(SECRET), "the secrets stay out of Debug");
        // Public keys alone are enough to make topics private.
        assert!(cfg(&[("PRIVATE_TOPICS", "*"), ("SUBSCRIBER_TOKEN_PUBLIC_KEYS", &format!("k:EdDSA:{ED_PUB}"))]).is_ok());
    }

    #[test]
    fn subscriber_token_errors_name_the_setting() {
        assert_eq!(cfg(&[("PRIVATE_TOPICS", "user:*")]).unwrap_err(), ConfigError::PrivateTopicsWithoutKeys);
        assert!(matches!(cfg(&[("PRIVATE_TOPICS", "a b"), ("SUBSCRIBER_TOKEN_SECRETS", SECRET)]), Err(ConfigError::PrivateTopics(_))));
        assert!(matches!(cfg(&[("SUBSCRIBER_TOKEN_SECRETS", "short")]), Err(ConfigError::TokenSecrets(_))));
        assert!(matches!(cfg(&[("SUBSCRIBER_TOKEN_PUBLIC_KEYS", "k:RS256:AAAA")]), Err(ConfigError::TokenPublicKeys(_))));
        assert!(matches!(cfg(&[("SUBSCRIBER_TOKEN_COOKIE", "a=b")]), Err(ConfigError::TokenCookie(_))));
        assert_eq!(
            cfg(&[("SUBSCRIBER_TOKEN_LEEWAY_S", "7200")]).unwrap_err(),
            ConfigError::OutOfRange { key: "SUBSCRIBER_TOKEN_LEEWAY_S", value: 7_200, min: 0, max: 3_600 }
        );
        let err = |pairs: &[(&str, &str)]| cfg(pairs).unwrap_err().to_string();
        assert!(err(&[("PRIVATE_TOPICS", "a/b")]).starts_with("PRIVATE_TOPICS: \"a/b\""));
        assert!(err(&[("SUBSCRIBER_TOKEN_SECRETS", "short")]).starts_with("SUBSCRIBER_TOKEN_SECRETS: "));
        assert!(!err(&[("SUBSCRIBER_TOKEN_SECRETS", "short")]).contains("short"), "a secret is never printed");
        assert!(err(&[("SUBSCRIBER_TOKEN_PUBLIC_KEYS", "k:ES256:AAAA")]).starts_with("SUBSCRIBER_TOKEN_PUBLIC_KEYS: entry 1 (k)"));
    }

    #[test]
    fn credentialed_origins() {
        assert!(Config::default().credentialed_origins.is_empty());
        let c = cfg(&[("CREDENTIALED_ORIGINS", "https://app.example.com, http://localhost:3000")]).unwrap();
        assert_eq!(c.credentialed_origins.origins(), vec!["https://app.example.com", "http://localhost:3000"]);
        let e = cfg(&[("CREDENTIALED_ORIGINS", "https://app.example.com/")]).unwrap_err();
        assert!(matches!(e, ConfigError::CredentialedOrigins(_)));
        assert!(e.to_string().starts_with("CREDENTIALED_ORIGINS: \"https://app.example.com/\" has a path"), "{e}");
    }
}
