//! Subscriber tokens for private topics, with no I/O and no clock (the time is passed in).
//!
//! - [`PrivateTopics`]: the `PRIVATE_TOPICS` setting, topic patterns in the syntax of
//!   `RETENTION` ([`crate::replay::glob`]). A topic that matches one needs a token; every other
//!   topic stays anonymous. Empty (the default) = nothing is private.
//! - [`TokenSettings`]: the keys tokens are verified with (`SUBSCRIBER_TOKEN_SECRETS` for HS256,
//!   `SUBSCRIBER_TOKEN_PUBLIC_KEYS` for ES256 and EdDSA), the clock leeway, the audience and the
//!   cookie name.
//! - [`verify`]: a token (a JWT, RFC 7519, signed as a compact JWS) into a [`Grant`]: who holds it
//!   (`sub`), until when (`exp`), and which topics it opens (`topics`: names or patterns).
//! - [`check_subscribe`]: the all-or-nothing rule of one subscription: 401 without a valid token,
//!   403 when the token does not grant every private topic requested.
//! - [`token_from`]: where a request carries its token (header, query, cookie).
//!
//! The algorithm of a token selects the key set, never the other way round: HS256 is only ever
//! checked with the shared secrets, ES256 and EdDSA only with the configured public keys, and a
//! key a token embeds (`jwk`, `jku`, `x5u`, `x5c`) is never looked at. So a token MACed with a
//! public key as the HS256 secret (algorithm confusion) never verifies.

use std::fmt;

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use p256::pkcs8::DecodePublicKey;
use serde_json::{Map, Value};
use sha2::Sha256;
use thiserror::Error;

use crate::error::GatewayError;
use crate::replay::{check_pattern, glob};
use crate::setting::{ConfigError, SUBSCRIBER_TOKEN_LEEWAY_S};

/// Longest token accepted, in bytes: anything longer is refused before it is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Shortest HS256 secret, in bytes: RFC 7518 §3.2 requires a key at least as long as the hash.
pub const MIN_SECRET_BYTES: usize = 32;
/// The cookie read when `SUBSCRIBER_TOKEN_COOKIE` is not set.
pub const DEFAULT_COOKIE: &str = "sse_token";
/// Longest key id in `SUBSCRIBER_TOKEN_PUBLIC_KEYS`.
pub const MAX_KID_LEN: usize = 128;

/// The `PRIVATE_TOPICS` setting: topics matching one of these patterns need a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateTopics {
    patterns: Vec<String>,
}

impl PrivateTopics {
    /// Nothing is private (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma-separated list of patterns; items are trimmed, empty ones ignored. Each is
    /// 1-128 bytes of the topic alphabet plus `*` (`*` matches any run of characters).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            check_pattern(item).map_err(|m| format!("{item:?}: {m}"))?;
            patterns.push(item.to_string());
        }
        Ok(Self { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether subscribing to `topic` needs a token.
    pub fn is_private(&self, topic: &str) -> bool {
        self.patterns.iter().any(|p| glob(p, topic))
    }
}

/// A signature algorithm the gateway verifies (the JWS `alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// HMAC SHA-256 with a shared secret.
    Hs256,
    /// ECDSA on P-256 with SHA-256, the signature as `r || s` (64 bytes).
    Es256,
    /// Ed25519 (`EdDSA`, RFC 8037; `Ed25519`, RFC 9864, is taken as the same).
    EdDsa,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// The algorithm of a token header. JWS algorithm names are case-sensitive; `none` is
    /// refused in any case, so that no spelling of it reaches a key lookup.
    fn from_header(alg: &str) -> Result<Self, TokenError> {
        match alg {
            "HS256" => Ok(Alg::Hs256),
            "ES256" => Ok(Alg::Es256),
            "EdDSA" | "Ed25519" => Ok(Alg::EdDsa),
            a if a.eq_ignore_ascii_case("none") => Err(TokenError::AlgNone),
            _ => Err(TokenError::UnsupportedAlg),
        }
    }

    /// The algorithm of a `SUBSCRIBER_TOKEN_PUBLIC_KEYS` entry (the operator's spelling, so any
    /// case).
    fn from_setting(alg: &str) -> Option<Self> {
        if alg.eq_ignore_ascii_case("ES256") {
            Some(Alg::Es256)
        } else if alg.eq_ignore_ascii_case("EdDSA") || alg.eq_ignore_ascii_case("Ed25519") {
            Some(Alg::EdDsa)
        } else {
            None
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A part of a compact JWS, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Header,
    Claims,
    Signature,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Claims => "claims",
            Part::Signature => "signature",
        })
    }
}

/// Why a token is refused. The text is short, fixed (it never echoes the token) and free of
/// quotes and backslashes: it goes into the `error_description` of
/// `www-authenticate: Bearer error="invalid_token"` as well as the JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("the token is longer than 8192 bytes")]
    TooLong,
    #[error("the token is not a signed JWT (three dot-separated parts)")]
    Segments,
    #[error("the token {0} is not base64url without padding")]
    Base64(Part),
    #[error("the token {0} is not a JSON object")]
    Json(Part),
    #[error("unsigned tokens (alg none) are not accepted")]
    AlgNone,
    #[error("the token header has no alg")]
    MissingAlg,
    #[error("the token algorithm is not supported (HS256, ES256 or EdDSA)")]
    UnsupportedAlg,
    #[error("the token header {0} is not a string")]
    HeaderType(&'static str),
    #[error("the token header has crit, which is not supported")]
    Crit,
    #[error("no {0} key is configured")]
    AlgNotConfigured(Alg),
    #[error("the token kid names no configured key")]
    UnknownKid,
    #[error("the key the token kid names is not a {0} key")]
    KidAlgMismatch(Alg),
    #[error("the token signature does not verify")]
    BadSignature,
    #[error("the token has no exp claim")]
    MissingExp,
    #[error("the token claim {0} has the wrong type")]
    ClaimType(&'static str),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token is issued in the future (iat)")]
    IssuedInFuture,
    #[error("the token has no aud claim")]
    MissingAudience,
    #[error("the token audience does not include this gateway")]
    WrongAudience,
    #[error("the token has no topics claim")]
    MissingTopics,
    #[error("the token topics claim must be an array of topic names or patterns")]
    BadTopics,
}

type HmacSha256 = Hmac<Sha256>;

/// One configured public key.
#[derive(Clone)]
struct PublicKey {
    kid: String,
    key: KeyKind,
}

#[derive(Clone)]
enum KeyKind {
    Es256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    fn alg(&self) -> Alg {
        match self.key {
            KeyKind::Es256(_) => Alg::Es256,
            KeyKind::Ed25519(_) => Alg::EdDsa,
        }
    }

    fn verifies(&self, signed: &[u8], sig: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        match &self.key {
            KeyKind::Es256(k) => p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(signed, &s).is_ok()),
            KeyKind::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig).is_ok_and(|s| k.verify_strict(signed, &s).is_ok()),
        }
    }
}

/// What tokens are verified with, and how. Its `Debug` shows how many secrets there are and the
/// public keys' ids, never a secret.
#[derive(Clone)]
pub struct TokenSettings {
    /// One keyed HMAC state per secret (the key's pads computed once, cloned per token).
    secrets: Vec<HmacSha256>,
    keys: Vec<PublicKey>,
    leeway_s: u64,
    audience: Option<String>,
    cookie: String,
    on_expiry: OnExpiry,
}

/// What an open connection does when the token it opened with expires
/// (`SUBSCRIBER_TOKEN_EXPIRY`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnExpiry {
    /// Closed once the token is no longer accepted, with a last frame telling the client to come
    /// back with a fresh token (the default: a grant lasts only as long as its token).
    #[default]
    Close,
    /// Kept open: the token is checked only when the connection opens.
    Keep,
}

impl OnExpiry {
    fn parse(value: Option<String>) -> Result<Self, ConfigError> {
        match value.as_deref() {
            None | Some("close") => Ok(OnExpiry::Close),
            Some("keep") => Ok(OnExpiry::Keep),
            Some(other) => Err(ConfigError::TokenExpiry(other.to_string())),
        }
    }
}

/// The `reason` of the `reconnect` frame that closes a connection whose token expired.
pub const EXPIRED_REASON: &str = "token_expired";

/// The WebSocket close (code, reason) that follows that frame on a WebSocket.
pub const EXPIRED_CLOSE: (u16, &str) = (4401, "token expired");

impl fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSettings")
            .field("secrets", &self.secrets.len())
            .field("public_keys", &self.keys.iter().map(|k| format!("{}:{}", k.kid, k.alg())).collect::<Vec<_>>())
            .field("leeway_s", &self.leeway_s)
            .field("audience", &self.audience)
            .field("cookie", &self.cookie)
            .field("on_expiry", &self.on_expiry)
            .finish()
    }
}

impl Default for TokenSettings {
    /// No keys (every token is refused), 30 s leeway, no audience, cookie `sse_token`.
    fn default() -> Self {
        Self {
            secrets: Vec::new(),
            keys: Vec::new(),
            leeway_s: SUBSCRIBER_TOKEN_LEEWAY_S.default,
            audience: None,
            cookie: DEFAULT_COOKIE.to_string(),
            on_expiry: OnExpiry::Close,
        }
    }
}

impl TokenSettings {
    /// Reads `SUBSCRIBER_TOKEN_SECRETS`, `SUBSCRIBER_TOKEN_PUBLIC_KEYS`,
    /// `SUBSCRIBER_TOKEN_LEEWAY_S`, `SUBSCRIBER_TOKEN_AUDIENCE` and `SUBSCRIBER_TOKEN_COOKIE`.
    /// Absent or blank = the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = |key: &str| lookup(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let cookie = match text("SUBSCRIBER_TOKEN_COOKIE") {
            None => DEFAULT_COOKIE.to_string(),
            Some(c) if is_cookie_name(&c) => c,
            Some(c) => return Err(ConfigError::TokenCookie(c)),
        };
        Ok(Self {
            secrets: parse_secrets(&text("SUBSCRIBER_TOKEN_SECRETS").unwrap_or_default()).map_err(ConfigError::TokenSecrets)?,
            keys: parse_public_keys(&text("SUBSCRIBER_TOKEN_PUBLIC_KEYS").unwrap_or_default()).map_err(ConfigError::TokenPublicKeys)?,
            leeway_s: SUBSCRIBER_TOKEN_LEEWAY_S.read(&lookup)?,
            audience: text("SUBSCRIBER_TOKEN_AUDIENCE"),
            cookie,
            on_expiry: OnExpiry::parse(text("SUBSCRIBER_TOKEN_EXPIRY"))?,
        })
    }

    /// Whether any token can verify at all (some secret or public key is configured).
    pub fn has_keys(&self) -> bool {
        !self.secrets.is_empty() || !self.keys.is_empty()
    }

    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// The configured public keys: (kid, algorithm), in the order given.
    pub fn public_keys(&self) -> Vec<(&str, Alg)> {
        self.keys.iter().map(|k| (k.kid.as_str(), k.alg())).collect()
    }

    /// Seconds of clock difference tolerated on `exp`, `nbf` and `iat`.
    pub fn leeway_s(&self) -> u64 {
        self.leeway_s
    }

    /// What an open connection does when its token expires.
    pub fn on_expiry(&self) -> OnExpiry {
        self.on_expiry
    }

    /// When a connection opened with `grant` is closed (Unix seconds): once its token would no
    /// longer be accepted (`exp` plus the leeway), or never with [`OnExpiry::Keep`].
    pub fn closes_at_s(&self, grant: &Grant) -> Option<u64> {
        (self.on_expiry == OnExpiry::Close).then(|| grant.exp.saturating_add(self.leeway_s))
    }

    /// The audience a token's `aud` must contain, when set.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The cookie a browser's token is read from ([`token_from`]).
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// Checks the signature of `signed` (the token's `header.claims` text) with the keys of
    /// `alg`: HS256 with every secret, the others with the key `kid` names, or without a kid
    /// with every key of the algorithm.
    fn check_signature(&self, alg: Alg, kid: Option<&str>, signed: &[u8], sig: &[u8]) -> Result<(), TokenError> {
        if alg == Alg::Hs256 {
            if self.secrets.is_empty() {
                return Err(TokenError::AlgNotConfigured(alg));
            }
            // verify_slice compares in constant time and refuses a truncated MAC. The timing can
            // tell which secret matched, never how much of a wrong MAC was right.
            let ok = self.secrets.iter().any(|mac| {
                let mut mac = mac.clone();
                mac.update(signed);
                mac.verify_slice(sig).is_ok()
            });
            return if ok { Ok(()) } else { Err(TokenError::BadSignature) };
        }
        if !self.keys.iter().any(|k| k.alg() == alg) {
            return Err(TokenError::AlgNotConfigured(alg));
        }
        let ok = match kid {
            Some(kid) => {
                let key = self.keys.iter().find(|k| k.kid == kid).ok_or(TokenError::UnknownKid)?;
                if key.alg() != alg {
                    return Err(TokenError::KidAlgMismatch(alg));
                }
                key.verifies(signed, sig)
            }
            None => self.keys.iter().filter(|k| k.alg() == alg).any(|k| k.verifies(signed, sig)),
        };
        if ok {
            Ok(())
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

/// `SUBSCRIBER_TOKEN_SECRETS`: comma-separated, trimmed, empty items ignored; each at least
/// [`MIN_SECRET_BYTES`] bytes, used as its UTF-8 bytes. Errors name a secret by position only.
fn parse_secrets(list: &str) -> Result<Vec<HmacSha256>, String> {
    let items: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let mut secrets = Vec::with_capacity(items.len());
    for (i, s) in items.iter().enumerate() {
        if s.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "secret {} of {} is {} bytes; HS256 secrets must be at least {MIN_SECRET_BYTES} bytes",
                i + 1,
                items.len(),
                s.len()
            ));
        }
        secrets.push(HmacSha256::new_from_slice(s.as_bytes()).map_err(|_| format!("secret {} cannot key HMAC", i + 1))?);
    }
    Ok(secrets)
}

/// `SUBSCRIBER_TOKEN_PUBLIC_KEYS`: comma-separated `KID:ALG:KEY` entries. ALG is `ES256` or
/// `EdDSA` (any case; `Ed25519` is taken as `EdDSA`); KEY is the base64 (standard or URL-safe, padding optional, whitespace ignored) of
/// the key's SubjectPublicKeyInfo DER, i.e. the body of its `BEGIN PUBLIC KEY` PEM. Key ids are
/// unique, 1-128 visible ASCII characters.
fn parse_public_keys(list: &str) -> Result<Vec<PublicKey>, String> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for (i, entry) in list.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
        let n = i + 1;
        let mut fields = entry.splitn(3, ':');
        let (Some(kid), Some(alg), Some(key)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!("entry {n}: expected KID:ALG:KEY"));
        };
        let (kid, alg, key) = (kid.trim(), alg.trim(), key.trim());
        if kid.is_empty() || kid.len() > MAX_KID_LEN || !kid.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("entry {n}: the key id must be 1-{MAX_KID_LEN} visible ASCII characters"));
        }
        if keys.iter().any(|k| k.kid == kid) {
            return Err(format!("entry {n}: key id {kid:?} is given twice"));
        }
        let alg = Alg::from_setting(alg).ok_or_else(|| format!("entry {n} ({kid}): the algorithm must be ES256 or EdDSA, not {alg:?}"))?;
        let der = decode_key_base64(key).ok_or_else(|| format!("entry {n} ({kid}): the key is not base64"))?;
        let key = match alg {
            Alg::Es256 => p256::ecdsa::VerifyingKey::from_public_key_der(&der)
                .map(KeyKind::Es256)
                .map_err(|_| format!("entry {n} ({kid}): not a P-256 public key (SubjectPublicKeyInfo DER)"))?,
            _ => {
                let k = ed25519_dalek::VerifyingKey::from_public_key_der(&der)
                    .map_err(|_| format!("entry {n} ({kid}): not an Ed25519 public key (SubjectPublicKeyInfo DER)"))?;
                if k.is_weak() {
                    return Err(format!("entry {n} ({kid}): a weak (small-order) Ed25519 key"));
                }
                KeyKind::Ed25519(k)
            }
        };
        keys.push(PublicKey { kid: kid.to_string(), key });
    }
    Ok(keys)
}

/// Base64 in either alphabet, with or without padding, whitespace ignored.
fn decode_key_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let compact = compact.trim_end_matches('=');
    let engine = if compact.contains(['-', '_']) { &URL_SAFE_NO_PAD } else { &STANDARD_NO_PAD };
    engine.decode(compact).ok().filter(|d| !d.is_empty())
}

/// A cookie name (an RFC 7230 token): visible ASCII without separators.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// What a valid token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The subscriber's identity (`sub`), when the token names one.
    pub sub: Option<String>,
    /// Topic names and patterns (`topics`), each valid by [`check_pattern`].
    pub topics: Vec<String>,
    /// When the token expires (`exp`, seconds since the epoch; 0 for a date before it).
    pub exp: u64,
}

impl Grant {
    /// Whether the token opens `topic`: a name equal to it, or a pattern matching it.
    pub fn allows(&self, topic: &str) -> bool {
        self.topics.iter().any(|p| glob(p, topic))
    }
}

/// Verifies a token at `now_s` (seconds since the epoch). Pure: the same inputs give the same
/// answer, and no input panics.
///
/// Order: size, shape, header (`crit`, `alg`, `kid`), signature, then the claims, so that the
/// claims are only parsed once they are known to come from a key holder. Claims: `exp`
/// required, `nbf` and `iat` honoured, each with the leeway (`iat` later than now + leeway is
/// refused); NumericDates may be fractional (the fraction is dropped). `aud` is checked only when
/// an audience is configured (then a string equal to it, or an array holding it, is required);
/// `sub` is an optional string; `topics` an array of topic names or patterns, possibly empty.
/// `typ`, `cty`, `iss`, `jti` and unknown members are not checked; a `kid` on an HS256 token is
/// not used (the secrets have no ids).
pub fn verify(token: &str, settings: &TokenSettings, now_s: u64) -> Result<Grant, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Segments);
    };
    let header = decode_object(header_b64, Part::Header)?;
    if header.contains_key("crit") {
        return Err(TokenError::Crit);
    }
    let alg = match header.get("alg") {
        None => return Err(TokenError::MissingAlg),
        Some(Value::String(a)) => Alg::from_header(a)?,
        Some(_) => return Err(TokenError::HeaderType("alg")),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(TokenError::HeaderType("kid")),
    };
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| TokenError::Base64(Part::Signature))?;
    let signed = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
    settings.check_signature(alg, kid, signed, &sig)?;
    let claims = decode_object(claims_b64, Part::Claims)?;
    check_claims(&claims, settings, now_s)
}

fn decode_object(b64: &str, part: Part) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|_| TokenError::Base64(part))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Json(part))
}

/// A NumericDate claim: absent → `None`; a JSON number → whole seconds (fraction dropped,
/// saturating); anything else is the wrong type.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(u) = n.as_u64() {
                Ok(Some(i64::try_from(u).unwrap_or(i64::MAX)))
            } else {
                match n.as_f64() {
                    // `as` saturates (and a NaN, which JSON cannot hold anyway, would be 0).
                    Some(f) if f.is_finite() => Ok(Some(f.floor() as i64)),
                    _ => Err(TokenError::ClaimType(name)),
                }
            }
        }
        Some(_) => Err(TokenError::ClaimType(name)),
    }
}

fn check_claims(claims: &Map<String, Value>, settings: &TokenSettings, now_s: u64) -> Result<Grant, TokenError> {
    let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingExp)?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
    // i128: no overflow whatever the claims and the clock say.
    let (now, leeway) = (i128::from(now_s), i128::from(settings.leeway_s));
    if now >= i128::from(exp) + leeway {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| i128::from(nbf) > now + leeway) {
        return Err(TokenError::NotYetValid);
    }
    if iat.is_some_and(|iat| i128::from(iat) > now + leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(audience) = &settings.audience {
        match claims.get("aud") {
            None => return Err(TokenError::MissingAudience),
            Some(Value::String(a)) if a == audience => {}
            Some(Value::String(_)) => return Err(TokenError::WrongAudience),
            Some(Value::Array(items)) => {
                if !items.iter().any(|a| a.as_str() == Some(audience.as_str())) {
                    return Err(TokenError::WrongAudience);
                }
            }
            Some(_) => return Err(TokenError::ClaimType("aud")),
        }
    }
    let sub = match claims.get("sub") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(TokenError::ClaimType("sub")),
    };
    let topics = match claims.get("topics") {
        None => return Err(TokenError::MissingTopics),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().filter(|t| check_pattern(t).is_ok()).map(str::to_string))
            .collect::<Option<Vec<String>>>()
            .ok_or(TokenError::BadTopics)?,
        Some(_) => return Err(TokenError::BadTopics),
    };
    Ok(Grant { sub, topics, exp: u64::try_from(exp).unwrap_or(0) })
}

/// The all-or-nothing rule of one subscription to `topics` (already validated names).
///
/// - No requested topic is private: `Ok(None)`. A token the request carries is then not even
///   verified, so a browser that always sends its cookie keeps reading public topics after its
///   token expired.
/// - Some are: no token → 401 `token_required`; a token [`verify`] refuses → 401
///   `invalid_token`; a valid token that does not grant every private topic requested → 403
///   `forbidden` (the whole subscription, not the granted part); else the [`Grant`] (which a
///   runtime may keep, e.g. to end the stream at `exp`).
///
/// No answer depends on whether a topic exists or has subscribers.
pub fn check_subscribe(
    private: &PrivateTopics,
    settings: &TokenSettings,
    topics: &[String],
    token: Option<&str>,
    now_s: u64,
) -> Result<Option<Grant>, GatewayError> {
    if !topics.iter().any(|t| private.is_private(t)) {
        return Ok(None);
    }
    let token = token.ok_or(GatewayError::TokenRequired)?;
    let grant = verify(token, settings, now_s).map_err(|e| GatewayError::InvalidToken(e.to_string()))?;
    if let Some(t) = topics.iter().find(|t| private.is_private(t) && !grant.allows(t)) {
        return Err(GatewayError::Forbidden(format!("the token does not grant topic {t:?}")));
    }
    Ok(Some(grant))
}

/// The token a request presents, first found of: `authorization: Bearer <token>` (scheme in
/// any case; another scheme is passed over), the `token` query parameter (URL-decoded by the
/// caller), the cookie `cookie_name` in the `cookie` header (several `cookie` headers joined
/// with `; `; a double-quoted value is unquoted). Blank values are passed over. Browsers cannot
/// set headers on an `EventSource`, hence the query and the cookie.
pub fn token_from<'a>(
    authorization: Option<&'a str>,
    query_token: Option<&'a str>,
    cookie_header: Option<&'a str>,
    cookie_name: &str,
) -> Option<&'a str> {
    let bearer = authorization.and_then(|a| a.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).map(|_| a[7..].trim()));
    let query = query_token.map(str::trim);
    let cookie = cookie_header.and_then(|h| {
        h.split(';').filter_map(|c| c.split_once('=')).find(|(name, _)| name.trim() == cookie_name).map(|(_, v)| {
            let v = v.trim();
            v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
        })
    });
    [bearer, query, cookie].into_iter().flatten().find(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashMap;

    /// The clock of the tests.
    const NOW: u64 = 1_763_784_000;
    /// Two HS256 secrets, as rotated: both verify.
    const SECRET_1: &str = "rotation-secret-one-0123456789abcdef";
    const SECRET_2: &str = "rotation-secret-two-0123456789abcdef";
    /// Fixed test keys made with `openssl genpkey`; the public ones exactly as
    /// `openssl pkey -pubin -outform DER | base64 -w0` prints them.
    const ES_1_SCALAR: &str = "03e4df70c114eda578d0257f08c77781814942cdb4c9b7b7dad733535d896213";
    const ES_1_PUB: &str =
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEK/5EZpMCVg8dL0v1TNB9RK7kvF1LJuyPKAq1EK6KHjrQYPDnQer/HCN2LYZ/suHoxE8ZGVBjGhRphbuoTt76aw==";
    const ES_2_SCALAR: &str = "a27ea242037f1f7a2e1fb55beede36a23b0ce674316b6e499706b448b00febea";
    const ES_2_PUB: &str =
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqtfwYPO1HXGyI8xShuu6gq++vQ/y+lo83RH03UJzEtiyPCPtbPz25JrIvwsfHGIEUZR4ZNAPoDYJOghVK7xL5g==";
    const ED_1_SEED: &str = "46b565ff3a7bbe01b62958ce8042c6494cd5c9a2d46fd75f57e49ce2873f4bd5";
    const ED_1_PUB: &str = "MCowBQYDK2VwAyEAaUuVrdTm2Fd4wFkHh6KUTLRp4iZKMSfPsYU72FIgJtU=";
    const ED_2_SEED: &str = "2d443747977528594d716df642d3a7adf3b6cbf75466d3c9582a40106e200de6";
    const ED_2_PUB: &str = "MCowBQYDK2VwAyEAODiwZ0iHQ0rQo4RGzmx6uSlq/lMtmMPRrQKUJEMItkM=";
    /// Tokens signed by another implementation (Python `cryptography`) with ES_1 (kid `es-1`)
    /// and ED_1 (no kid): sub alice, exp 2100-01-01, iat 2023-11-14, topics orders.* and user:42.
    const PY_ES256: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImVzLTEifQ.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMCwiaWF0IjoxNzAwMDAwMDAwLCJ0b3BpY3MiOlsib3JkZXJzLioiLCJ1c2VyOjQyIl19.Ev7YdcsibdVCYURRE0SEaGR9vtWleGFw_ZZZ3JzobMUCPAcO-0w4vfdth4w_HYwO51omkqp3RRH6YkHJjt8SuA";
    const PY_EDDSA: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMCwiaWF0IjoxNzAwMDAwMDAwLCJ0b3BpY3MiOlsib3JkZXJzLioiLCJ1c2VyOjQyIl19.y-XGfuARI1sJ3Nc6lZY7DtcMUXiqZv4Xw09LZEGZ5uPEHlqjohTVP1e3D5HJFHcwhdtYk2gbR0wZ0QNgqX0vCg";

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
    }

    fn es_key(scalar: &str) -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&unhex(scalar)).unwrap()
    }

    fn ed_key(seed: &str) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&unhex(seed).try_into().unwrap())
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn signing_input(header: &str, claims: &str) -> String {
        format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()))
    }

    fn hs(secret: &[u8], header: &str, claims: &str) -> String {
        let signed = signing_input(header, claims);
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn es(key: &p256::ecdsa::SigningKey, header: &str, claims: &str) -> String {
        let signed = signing_input(header, claims);
        let sig: p256::ecdsa::Signature = key.sign(signed.as_bytes());
        format!("{signed}.{}", b64(&sig.to_bytes()))
    }

    fn ed(key: &ed25519_dalek::SigningKey, header: &str, claims: &str) -> String {
        let signed = signing_input(header, claims);
        format!("{signed}.{}", b64(&key.sign(signed.as_bytes()).to_bytes()))
    }

    fn settings(pairs: &[(&str, &str)]) -> TokenSettings {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TokenSettings::from_lookup(|k| m.get(k).cloned()).unwrap()
    }

    fn secrets_value() -> String {
        format!("{SECRET_1}, {SECRET_2}")
    }

    fn keys_value() -> String {
        format!("es-1:ES256:{ES_1_PUB},ed-1:EdDSA:{ED_1_PUB},es-2:ES256:{ES_2_PUB},ed-2:EdDSA:{ED_2_PUB}")
    }

    /// Both secrets and all four public keys.
    fn all_keys() -> TokenSettings {
        settings(&[("SUBSCRIBER_TOKEN_SECRETS", &secrets_value()), ("SUBSCRIBER_TOKEN_PUBLIC_KEYS", &keys_value())])
    }

    fn claims() -> serde_json::Value {
        json!({"sub": "alice", "exp": NOW + 600, "iat": NOW, "topics": ["orders.*", "user:42"]})
    }

    fn with(key: &str, value: serde_json::Value) -> String {
        let mut c = claims();
        c[key] = value;
        c.to_string()
    }

    fn without(key: &str) -> String {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(key);
        c.to_string()
    }

    const HS: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    fn hs1(claims: &str) -> String {
        hs(SECRET_1.as_bytes(), HS, claims)
    }

    fn good_hs() -> String {
        hs1(&claims().to_string())
    }

    /// A token with the parts given as text (each base64url-encoded) and any signature bytes.
    fn raw(header: &str, claims: &str, sig: &[u8]) -> String {
        format!("{}.{}", signing_input(header, claims), b64(sig))
    }

    #[test]
    fn refuses_the_catalogue_of_bad_tokens() {
        let keys = all_keys();
        let no_secrets = settings(&[("SUBSCRIBER_TOKEN_PUBLIC_KEYS", &keys_value())]);
        let only_ed = settings(&[("SUBSCRIBER_TOKEN_PUBLIC_KEYS", &format!("ed-1:EdDSA:{ED_1_PUB}"))]);
        let only_secrets = settings(&[("SUBSCRIBER_TOKEN_SECRETS", SECRET_1)]);
        let aud = settings(&[("SUBSCRIBER_TOKEN_SECRETS", SECRET_1), ("SUBSCRIBER_TOKEN_AUDIENCE", "sse-gateway")]);
        let (es1, ed1, es2) = (es_key(ES_1_SCALAR), ed_key(ED_1_SEED), es_key(ES_2_SCALAR));
        let good = claims().to_string();
        let es_der_pub = STANDARD_NO_PAD.decode(ES_1_PUB.trim_end_matches('=')).unwrap();
        let ed_der_pub = STANDARD_NO_PAD.decode(ED_1_PUB.trim_end_matches('=')).unwrap();
        let sig_of = |t: &str| t.rsplit('.').next().unwrap().to_string();
        let (h, c) = (b64(HS.as_bytes()), b64(good.as_bytes()));
        let der_sig = {
            let sig: p256::ecdsa::Signature = es1.sign(signing_input(r#"{"alg":"ES256"}"#, &good).as_bytes());
            sig.to_der().as_bytes().to_vec()
        };
        let tampered_ed = {
            let t = ed(&ed1, r#"{"alg":"EdDSA","kid":"ed-1"}"#, &good);
            let (signed, sig) = t.rsplit_once('.').unwrap();
            let (hdr, _) = signed.split_once('.').unwrap();
            format!("{hdr}.{}.{sig}", b64(with("topics", json!(["*"])).as_bytes()))
        };
        let alg = |a: &str| format!(r#"{{"alg":"{a}"}}"#);
        use Part::*;
        use TokenError::*;
        let cases: Vec<(&str, String, &TokenSettings, TokenError)> = vec![
            ("longer than 8 KiB", format!("{}.{}", good_hs(), "A".repeat(MAX_TOKEN_BYTES)), &keys, TooLong),
            ("empty", String::new(), &keys, Segments),
            ("one segment", "abc".into(), &keys, Segments),
            ("two segments", format!("{h}.{c}"), &keys, Segments),
            ("four segments", format!("{}.x", good_hs()), &keys, Segments),
            ("JWE (five segments)", format!("{h}.{c}.a.b.c"), &keys, Segments),
            (
                "header in the standard alphabet",
                format!("{}.{c}.{}", STANDARD_NO_PAD.encode(br#"{"alg":"HS256","x":"???"}"#), sig_of(&good_hs())),
                &keys,
                Base64(Header),
            ),
            ("header padded", format!("{h}==.{c}.{}", sig_of(&good_hs())), &keys, Base64(Header)),
            ("header with a space", format!(" {h}.{c}.{}", sig_of(&good_hs())), &keys, Base64(Header)),
            (
                "claims not base64url (signed)",
                {
                    let signed = format!("{h}.*claims*");
                    let mut mac = HmacSha256::new_from_slice(SECRET_1.as_bytes()).unwrap();
                    mac.update(signed.as_bytes());
                    format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
                },
                &keys,
                Base64(Claims),
            ),
            ("signature not base64url", format!("{h}.{c}.a+b/c"), &keys, Base64(Signature)),
            ("signature with non-canonical trailing bits", format!("{h}.{c}.AB"), &keys, Base64(Signature)),
            ("header not JSON", raw("{alg:HS256}", &good, b"x"), &keys, Json(Header)),
            ("header a JSON array", raw(r#"["HS256"]"#, &good, b"x"), &keys, Json(Header)),
            ("header empty", raw("", &good, b"x"), &keys, Json(Header)),
            ("claims not JSON (signed)", hs1("exp=1"), &keys, Json(Claims)),
            ("claims a JSON array (signed)", hs1("[1,2]"), &keys, Json(Claims)),
            ("alg none", raw(&alg("none"), &good, b""), &keys, AlgNone),
            ("alg None", raw(&alg("None"), &good, b""), &keys, AlgNone),
            ("alg NONE", raw(&alg("NONE"), &good, b""), &keys, AlgNone),
            ("alg nOnE, with kid", raw(r#"{"alg":"nOnE","kid":"es-1"}"#, &good, b""), &keys, AlgNone),
            ("no alg", raw(r#"{"typ":"JWT"}"#, &good, b"x"), &keys, MissingAlg),
            ("alg a number", raw(r#"{"alg":256}"#, &good, b"x"), &keys, HeaderType("alg")),
            ("alg null", raw(r#"{"alg":null}"#, &good, b"x"), &keys, HeaderType("alg")),
            ("alg RS256", raw(&alg("RS256"), &good, &[0; 256]), &keys, UnsupportedAlg),
            ("alg hs256 (case matters)", hs(SECRET_1.as_bytes(), &alg("hs256"), &good), &keys, UnsupportedAlg),
            ("alg HS512", raw(&alg("HS512"), &good, &[0; 64]), &keys, UnsupportedAlg),
            ("kid a number", es(&es1, r#"{"alg":"ES256","kid":1}"#, &good), &keys, HeaderType("kid")),
            ("crit header", hs(SECRET_1.as_bytes(), r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, &good), &keys, Crit),
            ("crit before alg none", raw(r#"{"alg":"none","crit":[]}"#, &good, b""), &keys, Crit),
            ("HS256 without secrets", hs1(&good), &no_secrets, AlgNotConfigured(Alg::Hs256)),
            ("ES256 with only an EdDSA key", es(&es1, &alg("ES256"), &good), &only_ed, AlgNotConfigured(Alg::Es256)),
            ("EdDSA with only secrets", ed(&ed1, &alg("EdDSA"), &good), &only_secrets, AlgNotConfigured(Alg::EdDsa)),
            (
                "HS256 keyed with the ES256 public key DER, no secrets",
                hs(&es_der_pub, HS, &good),
                &no_secrets,
                AlgNotConfigured(Alg::Hs256),
            ),
            ("HS256 keyed with the ES256 public key DER", hs(&es_der_pub, HS, &good), &keys, BadSignature),
            ("HS256 keyed with the ES256 public key base64", hs(ES_1_PUB.as_bytes(), HS, &good), &keys, BadSignature),
            (
                "HS256 keyed with the Ed25519 public key DER, kid ed-1",
                hs(&ed_der_pub, r#"{"alg":"HS256","kid":"ed-1"}"#, &good),
                &keys,
                BadSignature,
            ),
            ("HS256 with an unknown secret", hs(b"another-secret-0123456789abcdef-xyz", HS, &good), &keys, BadSignature),
            (
                "HS256 MAC truncated to 16 bytes",
                format!("{h}.{c}.{}", b64(&URL_SAFE_NO_PAD.decode(sig_of(&good_hs())).unwrap()[..16])),
                &keys,
                BadSignature,
            ),
            ("HS256 empty signature", format!("{h}.{c}."), &keys, BadSignature),
            (
                "HS256 claims changed after signing",
                format!("{h}.{}.{}", b64(with("topics", json!(["*"])).as_bytes()), sig_of(&good_hs())),
                &keys,
                BadSignature,
            ),
            ("ES256 signed by another key, kid es-1", es(&es2, r#"{"alg":"ES256","kid":"es-1"}"#, &good), &keys, BadSignature),
            ("ES256 signature DER-encoded", raw(r#"{"alg":"ES256"}"#, &good, &der_sig), &keys, BadSignature),
            ("ES256 signature all zero", raw(r#"{"alg":"ES256"}"#, &good, &[0; 64]), &keys, BadSignature),
            ("EdDSA signed by another key, no kid", ed(&ed_key("00".repeat(32).as_str()), &alg("EdDSA"), &good), &keys, BadSignature),
            ("EdDSA claims changed after signing", tampered_ed, &keys, BadSignature),
            ("unknown kid", es(&es1, r#"{"alg":"ES256","kid":"es-9"}"#, &good), &keys, UnknownKid),
            (
                "kid of an EdDSA key on an ES256 token",
                es(&es1, r#"{"alg":"ES256","kid":"ed-1"}"#, &good),
                &keys,
                KidAlgMismatch(Alg::Es256),
            ),
            ("no exp", hs1(&without("exp")), &keys, MissingExp),
            ("exp a string", hs1(&with("exp", json!((NOW + 600).to_string()))), &keys, ClaimType("exp")),
            ("exp null", hs1(&with("exp", json!(null))), &keys, ClaimType("exp")),
            ("nbf a string", hs1(&with("nbf", json!("now"))), &keys, ClaimType("nbf")),
            ("iat a boolean", hs1(&with("iat", json!(true))), &keys, ClaimType("iat")),
            ("expired an hour ago", hs1(&with("exp", json!(NOW - 3600))), &keys, Expired),
            ("exp negative", hs1(&with("exp", json!(-1))), &keys, Expired),
            ("nbf in an hour", hs1(&with("nbf", json!(NOW + 3600))), &keys, NotYetValid),
            ("iat in an hour", hs1(&with("iat", json!(NOW + 3600))), &keys, IssuedInFuture),
            ("no aud with an audience set", hs1(&good), &aud, MissingAudience),
            ("another aud", hs1(&with("aud", json!("other"))), &aud, WrongAudience),
            ("aud array without ours", hs1(&with("aud", json!(["a", "b"]))), &aud, WrongAudience),
            ("aud a number", hs1(&with("aud", json!(1))), &aud, ClaimType("aud")),
            ("sub a number", hs1(&with("sub", json!(42))), &keys, ClaimType("sub")),
            ("no topics", hs1(&without("topics")), &keys, MissingTopics),
            ("topics a string", hs1(&with("topics", json!("orders.*"))), &keys, BadTopics),
            ("topics with a number", hs1(&with("topics", json!(["a", 1]))), &keys, BadTopics),
            ("topics with an empty name", hs1(&with("topics", json!([""]))), &keys, BadTopics),
            ("topics with a space", hs1(&with("topics", json!(["a b"]))), &keys, BadTopics),
            ("topics with a 129-byte name", hs1(&with("topics", json!(["a".repeat(129)]))), &keys, BadTopics),
            ("topics null", hs1(&with("topics", json!(null))), &keys, BadTopics),
        ];
        assert!(cases.len() >= 24);
        for (name, token, settings, want) in &cases {
            assert_eq!(verify(token, settings, NOW), Err(*want), "{name}");
            let text = want.to_string();
            assert!(text.bytes().all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\')), "{name}: {text}");
        }
    }

    #[test]
    fn the_size_limit_is_8_kib() {
        let keys = all_keys();
        let padded = |n: usize| hs1(&with("pad", json!("x".repeat(n))));
        // The longest padding that keeps the token within the limit (3 bytes of claims = 4
        // characters), then 3 bytes more.
        let mut n = (MAX_TOKEN_BYTES - padded(0).len()) * 3 / 4 + 8;
        while padded(n).len() > MAX_TOKEN_BYTES {
            n -= 1;
        }
        assert!(padded(n).len() > MAX_TOKEN_BYTES - 4, "{}", padded(n).len());
        assert!(verify(&padded(n), &keys, NOW).is_ok());
        assert_eq!(verify(&padded(n + 3), &keys, NOW), Err(TokenError::TooLong));
    }

    #[test]
    fn hs256_with_either_rotated_secret() {
        let keys = all_keys();
        for secret in [SECRET_1, SECRET_2] {
            let g = verify(&hs(secret.as_bytes(), HS, &claims().to_string()), &keys, NOW).unwrap();
            assert_eq!(g, Grant { sub: Some("alice".into()), topics: vec!["orders.*".into(), "user:42".into()], exp: NOW + 600 });
        }
        // A kid on an HS256 token is not used: the secrets have none.
        assert!(verify(&hs(SECRET_2.as_bytes(), r#"{"alg":"HS256","kid":"whatever"}"#, &claims().to_string()), &keys, NOW).is_ok());
        let one = settings(&[("SUBSCRIBER_TOKEN_SECRETS", SECRET_1)]);
        assert_eq!(verify(&hs(SECRET_2.as_bytes(), HS, &claims().to_string()), &one, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn es256_and_eddsa_with_and_without_kid() {
        let keys = all_keys();
        let c = claims().to_string();
        let (es1, es2, ed1, ed2) = (es_key(ES_1_SCALAR), es_key(ES_2_SCALAR), ed_key(ED_1_SEED), ed_key(ED_2_SEED));
        for t in [
            es(&es1, r#"{"alg":"ES256","kid":"es-1"}"#, &c),
            es(&es2, r#"{"alg":"ES256","kid":"es-2"}"#, &c),
            es(&es1, r#"{"alg":"ES256"}"#, &c),
            es(&es2, r#"{"alg":"ES256","typ":"JWT"}"#, &c),
            ed(&ed1, r#"{"alg":"EdDSA","kid":"ed-1"}"#, &c),
            ed(&ed2, r#"{"alg":"EdDSA","kid":"ed-2"}"#, &c),
            ed(&ed1, r#"{"alg":"EdDSA"}"#, &c),
            ed(&ed2, r#"{"alg":"EdDSA"}"#, &c),
            ed(&ed2, r#"{"alg":"Ed25519"}"#, &c),
        ] {
            assert_eq!(verify(&t, &keys, NOW).unwrap().sub.as_deref(), Some("alice"), "{t}");
        }
        // The kid selects one key: another key of the same algorithm does not verify it.
        assert_eq!(verify(&es(&es2, r#"{"alg":"ES256","kid":"es-1"}"#, &c), &keys, NOW), Err(TokenError::BadSignature));
        assert_eq!(verify(&ed(&ed2, r#"{"alg":"EdDSA","kid":"ed-1"}"#, &c), &keys, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn tokens_of_another_implementation_verify() {
        let keys = all_keys();
        let want = Grant { sub: Some("alice".into()), topics: vec!["orders.*".into(), "user:42".into()], exp: 4_102_444_800 };
        assert_eq!(verify(PY_ES256, &keys, NOW), Ok(want.clone()));
        assert_eq!(verify(PY_EDDSA, &keys, NOW), Ok(want));
        // One character of the signature changed.
        let mut bad = PY_ES256.to_string();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert!(verify(&bad, &keys, NOW).is_err());
    }

    #[test]
    fn leeway_edges() {
        let keys = all_keys(); // 30 s
        let at = |key: &str, v: i64| verify(&hs1(&with(key, json!(v))), &keys, NOW);
        let now = NOW as i64;
        // exp: valid while now < exp + leeway.
        assert!(at("exp", now - 29).is_ok());
        assert_eq!(at("exp", now - 30), Err(TokenError::Expired));
        // nbf: valid once now + leeway >= nbf.
        assert!(at("nbf", now + 30).is_ok());
        assert_eq!(at("nbf", now + 31), Err(TokenError::NotYetValid));
        // iat: at most leeway in the future.
        assert!(at("iat", now + 30).is_ok());
        assert_eq!(at("iat", now + 31), Err(TokenError::IssuedInFuture));
        // Zero leeway.
        let strict = settings(&[("SUBSCRIBER_TOKEN_SECRETS", SECRET_1), ("SUBSCRIBER_TOKEN_LEEWAY_S", "0")]);
        assert!(verify(&hs1(&with("exp", json!(now + 1))), &strict, NOW).is_ok());
        assert_eq!(verify(&hs1(&with("exp", json!(now))), &strict, NOW), Err(TokenError::Expired));
        assert!(verify(&hs1(&with("nbf", json!(now))), &strict, NOW).is_ok());
        assert_eq!(verify(&hs1(&with("nbf", json!(now + 1))), &strict, NOW), Err(TokenError::NotYetValid));
        // Fractional and extreme NumericDates.
        assert_eq!(verify(&hs1(&with("exp", json!(now as f64 + 600.9))), &keys, NOW).unwrap().exp, NOW + 600);
        assert_eq!(verify(&hs1(&with("exp", json!(u64::MAX))), &keys, NOW).unwrap().exp, i64::MAX as u64);
        assert_eq!(verify(&hs1(&with("exp", json!(1e300))), &keys, NOW).unwrap().exp, i64::MAX as u64);
        assert_eq!(verify(&hs1(&with("exp", json!(-1e300))), &keys, NOW), Err(TokenError::Expired));
        assert!(verify(&hs1(&with("nbf", json!(i64::MIN))), &keys, NOW).is_ok());
        assert_eq!(verify(&hs1(&with("exp", json!(now + 600))), &keys, u64::MAX), Err(TokenError::Expired));
        assert_eq!(verify(&hs1(&with("iat", json!(now))), &keys, 0), Err(TokenError::IssuedInFuture));
    }

    #[test]
    fn audience_string_or_array() {
        let aud = settings(&[("SUBSCRIBER_TOKEN_SECRETS", SECRET_1), ("SUBSCRIBER_TOKEN_AUDIENCE", " sse-gateway ")]);
        assert_eq!(aud.audience(), Some("sse-gateway"));
        assert!(verify(&hs1(&with("aud", json!("sse-gateway"))), &aud, NOW).is_ok());
        assert!(verify(&hs1(&with("aud", json!(["other", "sse-gateway"]))), &aud, NOW).is_ok());
        assert_eq!(verify(&hs1(&with("aud", json!([]))), &aud, NOW), Err(TokenError::WrongAudience));
        assert_eq!(verify(&hs1(&with("aud", json!("SSE-GATEWAY"))), &aud, NOW), Err(TokenError::WrongAudience));
        // Without a configured audience, aud is not looked at.
        assert!(verify(&hs1(&with("aud", json!(1))), &all_keys(), NOW).is_ok());
    }

    #[test]
    fn grants_by_name_and_by_pattern() {
        let g = verify(&hs1(&with("topics", json!(["user:42", "orders.*", "*:eu", "a*b"]))), &all_keys(), NOW).unwrap();
        for t in ["user:42", "orders.1", "orders.eu.west", "chat:eu", "ab", "aXXb"] {
            assert!(g.allows(t), "{t}");
        }
        for t in ["user:4", "user:420", "orders", "chat:eu1", "ba", "xab"] {
            assert!(!g.allows(t), "{t}");
        }
        let none = verify(&hs1(&with("topics", json!([]))), &all_keys(), NOW).unwrap();
        assert!(!none.allows("anything") && none.topics.is_empty());
        let anon = verify(&hs1(&without("sub")), &all_keys(), NOW).unwrap();
        assert_eq!(anon.sub, None);
    }

    fn topics(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn subscribe_is_all_or_nothing() {
        let private = PrivateTopics::parse("user:*, orders.private.*").unwrap();
        let keys = all_keys();
        let token = hs1(&with("topics", json!(["user:42", "orders.private.eu"])));
        let check = |t: &[&str], token: Option<&str>| check_subscribe(&private, &keys, &topics(t), token, NOW);

        // Nothing private: no token needed, and one presented is not verified.
        assert_eq!(check(&["news", "orders.eu"], None), Ok(None));
        assert_eq!(check(&["news"], Some("garbage")), Ok(None));
        assert_eq!(check(&["news"], Some(&hs1(&with("exp", json!(1))))), Ok(None));

        // Private without a token: 401 token_required.
        let e = check(&["news", "user:42"], None).unwrap_err();
        assert_eq!((e.status(), e.code()), (401, "token_required"));
        // An invalid token: 401 invalid_token, with the reason.
        let e = check(&["user:42"], Some(&hs1(&with("exp", json!(1))))).unwrap_err();
        assert_eq!((e.status(), e.code()), (401, "invalid_token"));
        assert_eq!(e, GatewayError::InvalidToken("the token has expired".into()));
        assert_eq!(check(&["user:42"], Some("")).unwrap_err().code(), "invalid_token");

        // Valid, granting every private topic asked for (public ones need no grant).
        let g = check(&["news", "user:42", "orders.private.eu"], Some(&token)).unwrap().unwrap();
        assert_eq!(g.sub.as_deref(), Some("alice"));
        // One private topic not granted: 403 for the whole subscription.
        let e = check(&["user:42", "user:43"], Some(&token)).unwrap_err();
        assert_eq!((e.status(), e.code()), (403, "forbidden"));
        assert_eq!(e.to_string(), "the token does not grant topic \"user:43\"");
        assert_eq!(check(&["orders.private.us", "news"], Some(&token)).unwrap_err().code(), "forbidden");

        // Nothing configured as private: nothing changes.
        assert_eq!(check_subscribe(&PrivateTopics::none(), &TokenSettings::default(), &topics(&["user:42"]), None, NOW), Ok(None));
    }

    #[test]
    fn private_topics_parse() {
        let p = PrivateTopics::parse(" user:* , ,secret ").unwrap();
        assert_eq!(p.patterns(), ["user:*", "secret"]);
        assert!(p.is_private("user:1") && p.is_private("secret"));
        assert!(!p.is_private("secrets") && !p.is_private("user"));
        assert!(PrivateTopics::parse("").unwrap().is_empty());
        assert!(PrivateTopics::parse("*").unwrap().is_private("anything"));
        for bad in ["a b", "a/b", "é", &"a".repeat(129)] {
            assert!(PrivateTopics::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_sources_in_order() {
        let c = "sse_token";
        assert_eq!(token_from(Some("Bearer h"), Some("q"), Some("sse_token=c"), c), Some("h"));
        assert_eq!(token_from(Some("bearer  h "), None, None, c), Some("h"));
        assert_eq!(token_from(Some("Basic dXNlcg=="), Some("q"), Some("sse_token=c"), c), Some("q"));
        assert_eq!(token_from(Some("Bearer "), Some(" "), Some("sse_token=c"), c), Some("c"));
        assert_eq!(token_from(Some("Bearer"), None, Some("a=1; sse_token=\"c\"; b=2"), c), Some("c"));
        assert_eq!(token_from(None, None, Some("a=1;sse_token = c2 ;b=2"), c), Some("c2"));
        assert_eq!(token_from(None, None, Some("my_sse_token=x; sse_tokens=y"), c), None);
        assert_eq!(token_from(None, None, Some("other=x"), "other"), Some("x"));
        assert_eq!(token_from(Some("Bearé x"), None, None, c), None);
        assert_eq!(token_from(None, None, None, c), None);
    }

    #[test]
    fn settings_parse_and_debug_hides_secrets() {
        let d = TokenSettings::default();
        assert!(!d.has_keys());
        assert_eq!((d.leeway_s(), d.audience(), d.cookie(), d.secret_count()), (30, None, "sse_token", 0));
        let s = all_keys();
        assert_eq!(s.secret_count(), 2);
        assert_eq!(s.public_keys(), vec![("es-1", Alg::Es256), ("ed-1", Alg::EdDsa), ("es-2", Alg::Es256), ("ed-2", Alg::EdDsa)]);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("rotation-secret") && dbg.contains("es-1:ES256") && dbg.contains("secrets: 2"), "{dbg}");

        // Keys in either base64 alphabet, padded or not, wrapped, with the algorithm in any case.
        let url = URL_SAFE_NO_PAD.encode(STANDARD_NO_PAD.decode(ES_1_PUB.trim_end_matches('=')).unwrap());
        let wrapped = format!("{}\n{}", &ED_1_PUB[..20], &ED_1_PUB[20..]);
        let s = settings(&[("SUBSCRIBER_TOKEN_PUBLIC_KEYS", &format!(" a:es256:{url} , b:ed25519:{wrapped},"))]);
        assert_eq!(s.public_keys(), vec![("a", Alg::Es256), ("b", Alg::EdDsa)]);
        assert!(verify(&es(&es_key(ES_1_SCALAR), r#"{"alg":"ES256","kid":"a"}"#, &claims().to_string()), &s, NOW).is_ok());

        let err = |pairs: &[(&str, &str)]| {
            let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            TokenSettings::from_lookup(|k| m.get(k).cloned()).unwrap_err().to_string()
        };
        let short = err(&[("SUBSCRIBER_TOKEN_SECRETS", &format!("{SECRET_1},too-short"))]);
        assert!(short.starts_with("SUBSCRIBER_TOKEN_SECRETS: secret 2 of 2 is 9 bytes") && !short.contains("too-short"), "{short}");
        for (value, says) in [
            ("k1:ES256", "entry 1: expected KID:ALG:KEY"),
            (&format!("k1:RS256:{ES_1_PUB}"), "must be ES256 or EdDSA"),
            (&format!("k1:ES256:{ED_1_PUB}"), "not a P-256 public key"),
            (&format!("k1:EdDSA:{ES_1_PUB}"), "not an Ed25519 public key"),
            ("k1:EdDSA:not*base64", "not base64"),
            (&format!(":EdDSA:{ED_1_PUB}"), "key id"),
            (&format!("k 1:EdDSA:{ED_1_PUB}"), "key id"),
            (&format!("k1:EdDSA:{ED_1_PUB},k1:ES256:{ES_1_PUB}"), "entry 2: key id \"k1\" is given twice"),
            // The identity point: a small-order key.
            ("k1:EdDSA:MCowBQYDK2VwAyEAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "weak"),
        ] {
            let e = err(&[("SUBSCRIBER_TOKEN_PUBLIC_KEYS", value)]);
            assert!(e.starts_with("SUBSCRIBER_TOKEN_PUBLIC_KEYS: ") && e.contains(says), "{value}: {e}");
        }
        assert!(err(&[("SUBSCRIBER_TOKEN_COOKIE", "a;b")]).starts_with("SUBSCRIBER_TOKEN_COOKIE="));
        assert!(err(&[("SUBSCRIBER_TOKEN_LEEWAY_S", "3601")]).contains("out of range"));
        assert_eq!(settings(&[("SUBSCRIBER_TOKEN_COOKIE", " tok ")]).cookie(), "tok");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(s in any::<String>()) {
            let _ = verify(&s, &all_keys(), NOW);
        }

        #[test]
        fn never_panics_on_three_segments(h in "[A-Za-z0-9_=+/-]{0,80}", c in "[A-Za-z0-9_=+/-]{0,200}", s in "[A-Za-z0-9_=+/-]{0,120}") {
            let t = format!("{h}.{c}.{s}");
            prop_assert!(verify(&t, &all_keys(), NOW).is_err());
        }

        #[test]
        fn random_signatures_never_verify(
            header in prop::sample::select(vec![
                r#"{"alg":"HS256"}"#, r#"{"alg":"ES256"}"#, r#"{"alg":"EdDSA"}"#, r#"{"alg":"ES256","kid":"es-1"}"#,
                r#"{"alg":"EdDSA","kid":"ed-2"}"#, r#"{"alg":"none"}"#, r#"{"alg":"HS256","kid":"es-1"}"#,
            ]),
            claims in prop::collection::vec(any::<u8>(), 0..300),
            sig in prop::collection::vec(any::<u8>(), 0..100),
        ) {
            let t = format!("{}.{}.{}", b64(header.as_bytes()), b64(&claims), b64(&sig));
            prop_assert!(verify(&t, &all_keys(), NOW).is_err());
        }

        #[test]
        fn signed_arbitrary_claims_never_panic(claims in any::<String>(), json_claims in "\\{(\"(exp|nbf|iat|aud|sub|topics)\":(-?[0-9]{1,20}(\\.[0-9]{1,3})?|\"[a-z*:.]{0,10}\"|\\[\"[a-z*:.]{0,10}\"\\]|null),?){0,6}\\}") {
            let keys = all_keys();
            for c in [claims.as_str(), json_claims.as_str()] {
                if let Ok(g) = verify(&hs1(c), &keys, NOW) {
                    prop_assert!(g.topics.iter().all(|t| check_pattern(t).is_ok()));
                    prop_assert!(g.exp + keys.leeway_s() > NOW);
                }
            }
        }
    }
}
