//! What one setting is (a key with a default and a range) and what reading settings can say
//! is wrong: shared by `config` and by the modules whose own settings it reads through them
//! (`token`), so that none of them imports `config`.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("{key}={value:?} is not a whole number")]
    NotANumber { key: &'static str, value: String },
    #[error("{key}={value} is out of range {min}..={max}")]
    OutOfRange { key: &'static str, value: u64, min: u64, max: u64 },
    #[error("RETENTION: {0}")]
    Retention(String),
    #[error("SUBSCRIBER_TOKEN_EXPIRY={0:?} is neither close nor keep")]
    TokenExpiry(String),
    #[error("SCOPED_API_KEYS: {0}")]
    ScopedApiKeys(String),
    #[error("PRIVATE_TOPICS: {0}")]
    PrivateTopics(String),
    #[error("SUBSCRIBER_TOKEN_SECRETS: {0}")]
    TokenSecrets(String),
    #[error("SUBSCRIBER_TOKEN_PUBLIC_KEYS: {0}")]
    TokenPublicKeys(String),
    #[error("SUBSCRIBER_TOKEN_COOKIE={0:?} is not a cookie name (visible ASCII without separators)")]
    TokenCookie(String),
    #[error("CREDENTIALED_ORIGINS: {0}")]
    CredentialedOrigins(String),
    #[error("PRIVATE_TOPICS is set but no token can verify: set SUBSCRIBER_TOKEN_SECRETS or SUBSCRIBER_TOKEN_PUBLIC_KEYS")]
    PrivateTopicsWithoutKeys,
}

/// One numeric setting: its key, default and allowed range. Documented in docs/configuration.
pub struct Setting {
    pub key: &'static str,
    pub default: u64,
    pub min: u64,
    pub max: u64,
    pub help: &'static str,
}

impl Setting {
    /// Reads the setting: absent or blank → the default; otherwise a whole number in range.
    pub fn read(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<u64, ConfigError> {
        let value = match lookup(self.key) {
            None => return Ok(self.default),
            Some(v) if v.trim().is_empty() => return Ok(self.default),
            Some(v) => v,
        };
        let n: u64 = value.trim().parse().map_err(|_| ConfigError::NotANumber { key: self.key, value: value.clone() })?;
        if n < self.min || n > self.max {
            return Err(ConfigError::OutOfRange { key: self.key, value: n, min: self.min, max: self.max });
        }
        Ok(n)
    }
}

pub const SUBSCRIBER_TOKEN_LEEWAY_S: Setting = Setting {
    key: "SUBSCRIBER_TOKEN_LEEWAY_S",
    default: 30,
    min: 0,
    max: 3_600,
    help: "seconds of clock difference tolerated on a subscriber token's exp, nbf and iat",
};
