//! API keys: parsing the configured lists, finding the key a request presents, what that key
//! may do (keys in `API_KEYS` everything; a key of `SCOPED_API_KEYS` publishing to some topics
//! and/or the admin API), and a comparison whose time does not depend on where a wrong key
//! differs from a right one.

use crate::error::GatewayError;
use crate::replay::{check_pattern, glob};
use crate::routes::Route;

/// What a scoped key may do: publish to topics matching its patterns, and/or use the admin API
/// (the tail only of topics matching them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub publish: bool,
    pub admin: bool,
    /// Topic patterns (`*` matches any run of characters; `*` alone, every topic).
    pub patterns: Vec<String>,
}

impl Scope {
    /// Whether `topic` matches one of the patterns.
    pub fn covers(&self, topic: &str) -> bool {
        self.patterns.iter().any(|p| glob(p, topic))
    }
}

/// The configured API keys: those of `API_KEYS` (no scope: everything) first, then those of
/// `SCOPED_API_KEYS`. A key's index (for per-key limits) is its position in that order.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Vec<u8>>,
    scopes: Vec<Option<Scope>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scoped = self.scopes.iter().filter(|s| s.is_some()).count();
        write!(f, "ApiKeys({} keys, {scoped} scoped)", self.keys.len())
    }
}

/// The key a request presented, found among the configured keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGrant<'a> {
    /// Its index (for per-key limits).
    pub index: usize,
    /// `None`: a key of `API_KEYS`, which may do everything.
    pub scope: Option<&'a Scope>,
}

impl KeyGrant<'_> {
    /// Whether the key may use `route` at all (403 if not): a publish needs the `publish` role,
    /// the admin API and `/metrics` the `admin` role, a tail also a pattern matching its topic.
    /// Which topics a publish may reach is [`KeyGrant::check_publish`], once they are parsed.
    pub fn check_route(&self, route: &Route) -> Result<(), GatewayError> {
        let Some(scope) = self.scope else { return Ok(()) };
        let allowed = match route {
            Route::Publish => scope.publish,
            Route::AdminTail(topic) => scope.admin && scope.covers(topic),
            Route::AdminTopics | Route::AdminConnections | Route::AdminStats | Route::Metrics => scope.admin,
            Route::Sse | Route::Ws | Route::Healthz | Route::AdminUi | Route::Preflight => true,
        };
        if allowed {
            return Ok(());
        }
        Err(GatewayError::Forbidden(match route {
            Route::Publish => "this API key may not publish".to_string(),
            Route::AdminTail(topic) => format!("this API key may not tail topic {topic:?}"),
            _ => "this API key may not use the admin API".to_string(),
        }))
    }

    /// Whether the key may publish to every one of `topics` (403 naming the first it may not).
    pub fn check_publish(&self, topics: &[String]) -> Result<(), GatewayError> {
        let Some(scope) = self.scope else { return Ok(()) };
        match topics.iter().find(|t| !(scope.publish && scope.covers(t))) {
            None => Ok(()),
            Some(t) => Err(GatewayError::Forbidden(format!("this API key may not publish to topic {t:?}"))),
        }
    }
}

/// Longest scoped key, role list or pattern list accepted in `SCOPED_API_KEYS`.
const MAX_SCOPED_ITEM: usize = 4_096;

impl ApiKeys {
    /// A comma-separated list; items are trimmed, empty ones ignored.
    pub fn parse(list: &str) -> Self {
        let keys: Vec<Vec<u8>> = list.split(',').map(str::trim).filter(|k| !k.is_empty()).map(|k| k.as_bytes().to_vec()).collect();
        let scopes = vec![None; keys.len()];
        Self { keys, scopes }
    }

    /// Adds the keys of `SCOPED_API_KEYS`: comma-separated `KEY:ROLE:PATTERNS`, ROLE `publish`,
    /// `admin` or `publish+admin`, PATTERNS `|`-separated topic patterns. Items are trimmed,
    /// empty ones ignored; a malformed item is an error naming it by position (never the key).
    pub fn with_scoped(mut self, list: &str) -> Result<Self, String> {
        for (n, item) in list.split(',').map(str::trim).filter(|i| !i.is_empty()).enumerate() {
            let at = |m: &str| format!("item {}: {m}", n + 1);
            if item.len() > MAX_SCOPED_ITEM {
                return Err(at("too long"));
            }
            let mut parts = item.splitn(3, ':');
            let (key, role, patterns) = match (parts.next(), parts.next(), parts.next()) {
                (Some(k), Some(r), Some(p)) => (k, r, p),
                _ => return Err(at("expected KEY:ROLE:PATTERNS")),
            };
            if key.is_empty() || key.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
                return Err(at("the key is empty or has whitespace"));
            }
            let (publish, admin) = match role {
                "publish" => (true, false),
                "admin" => (false, true),
                "publish+admin" | "admin+publish" => (true, true),
                other => return Err(at(&format!("role {other:?} is not publish, admin or publish+admin"))),
            };
            let patterns: Vec<String> = patterns.split('|').map(str::trim).map(str::to_string).collect();
            for p in &patterns {
                check_pattern(p).map_err(|m| at(&format!("pattern {p:?}: {m}")))?;
            }
            if self.find(key.as_bytes()).is_some() {
                return Err(at("the key is listed twice"));
            }
            self.keys.push(key.as_bytes().to_vec());
            self.scopes.push(Some(Scope { publish, admin, patterns }));
        }
        Ok(self)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether `presented` is one of the keys. Every key is compared, each in constant time.
    pub fn check(&self, presented: &[u8]) -> bool {
        self.keys.iter().fold(false, |found, key| found | ct_eq(key, presented))
    }

    /// The index of `presented` in the list (for per-key limits), comparing every key in
    /// constant time.
    pub fn find(&self, presented: &[u8]) -> Option<usize> {
        self.keys.iter().enumerate().fold(None, |found, (i, key)| if ct_eq(key, presented) { found.or(Some(i)) } else { found })
    }

    /// The index of the key a request presents, if it is one of the keys.
    pub fn key_index(&self, authorization: Option<&[u8]>, x_api_key: Option<&[u8]>) -> Option<usize> {
        presented_key(authorization, x_api_key).and_then(|k| self.find(k))
    }

    /// The key a request presents and what it may do; 401 if it presents none of the keys.
    pub fn grant(&self, authorization: Option<&[u8]>, x_api_key: Option<&[u8]>) -> Result<KeyGrant<'_>, GatewayError> {
        let index = self.key_index(authorization, x_api_key).ok_or(GatewayError::Unauthorized)?;
        Ok(KeyGrant { index, scope: self.scopes[index].as_ref() })
    }

    /// Authorises a request from its `authorization` and `x-api-key` headers.
    pub fn authorize(&self, authorization: Option<&[u8]>, x_api_key: Option<&[u8]>) -> bool {
        match presented_key(authorization, x_api_key) {
            Some(k) => self.check(k),
            None => false,
        }
    }
}

/// The key a request presents: `authorization: Bearer <key>` or else `x-api-key: <key>`.
pub fn presented_key<'a>(authorization: Option<&'a [u8]>, x_api_key: Option<&'a [u8]>) -> Option<&'a [u8]> {
    if let Some(auth) = authorization {
        if auth.len() > 7 && auth[..7].eq_ignore_ascii_case(b"bearer ") {
            return Some(trim(&auth[7..]));
        }
    }
    x_api_key.map(trim)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &b[start..end]
}

/// Compares in time that depends only on the length of `presented`, not on its content.
pub fn ct_eq(key: &[u8], presented: &[u8]) -> bool {
    let mut diff = (key.len() != presented.len()) as u8;
    for (i, p) in presented.iter().enumerate() {
        let k = key.get(i).copied().unwrap_or(0);
        diff |= k ^ p;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_check() {
        let keys = ApiKeys::parse(" a1 , ,b2,");
        assert_eq!(keys.len(), 2);
        assert!(keys.check(b"a1") && keys.check(b"b2"));
        assert!(!keys.check(b"a") && !keys.check(b"a12") && !keys.check(b"") && !keys.check(b"A1"));
        assert!(!ApiKeys::parse("").check(b""));
        assert_eq!((keys.find(b"a1"), keys.find(b"b2"), keys.find(b"c")), (Some(0), Some(1), None));
        assert_eq!(keys.key_index(Some(b"Bearer b2"), None), Some(1));
    }

    #[test]
    fn headers() {
        let keys = ApiKeys::parse("k");
        assert!(keys.authorize(Some(b"Bearer k"), None));
        assert!(keys.authorize(Some(b"bearer  k "), None));
        assert!(keys.authorize(None, Some(b"k")));
        assert!(keys.authorize(Some(b"Basic xyz"), Some(b"k")));
        assert!(!keys.authorize(Some(b"Bearer x"), Some(b"x")));
        assert!(!keys.authorize(Some(b"Bearer "), None));
        assert!(!keys.authorize(None, None));
    }

    fn scoped() -> ApiKeys {
        ApiKeys::parse("full").with_scoped(" pub-1:publish:orders.*|audit , adm-1:admin:ops.*, both-1:publish+admin:* ").unwrap()
    }

    #[test]
    fn scoped_keys_parse() {
        let keys = scoped();
        assert_eq!(keys.len(), 4);
        assert_eq!(format!("{keys:?}"), "ApiKeys(4 keys, 3 scoped)");
        let g = keys.grant(Some(b"Bearer pub-1"), None).unwrap();
        assert_eq!(g.index, 1);
        assert_eq!(g.scope, Some(&Scope { publish: true, admin: false, patterns: vec!["orders.*".into(), "audit".into()] }));
        assert_eq!(keys.grant(None, Some(b"full")).unwrap(), KeyGrant { index: 0, scope: None });
        assert_eq!(keys.grant(None, Some(b"nope")), Err(GatewayError::Unauthorized));
        assert_eq!(keys.grant(None, None), Err(GatewayError::Unauthorized));
        assert!(ApiKeys::parse("").with_scoped(" , ").unwrap().is_empty());
        for (bad, why) in [
            ("k", "expected KEY:ROLE:PATTERNS"),
            ("k:publish", "expected KEY:ROLE:PATTERNS"),
            (":publish:*", "the key is empty"),
            ("k k:publish:*", "whitespace"),
            ("k:read:*", "role \"read\""),
            ("k:publish:", "pattern \"\""),
            ("k:publish:a|", "pattern \"\""),
            ("k:publish:a b", "pattern \"a b\""),
            ("k:publish:*,k:admin:*", "listed twice"),
            ("full:admin:*", "listed twice"),
        ] {
            let err = ApiKeys::parse("full").with_scoped(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(!err.contains("full:") && !err.contains("k:"), "an error never repeats the key: {err}");
        }
    }

    #[test]
    fn scoped_keys_routes_and_topics() {
        let keys = scoped();
        let grant = |k: &str| keys.grant(None, Some(k.as_bytes())).unwrap();
        let (full, publisher, admin, both) = (grant("full"), grant("pub-1"), grant("adm-1"), grant("both-1"));
        let tail = |t: &str| Route::AdminTail(t.to_string());
        for g in [full, both] {
            for r in [Route::Publish, Route::AdminStats, Route::AdminTopics, Route::AdminConnections, Route::Metrics, tail("x")] {
                assert_eq!(g.check_route(&r), Ok(()), "{r:?}");
            }
            assert_eq!(g.check_publish(&["anything".into(), "x:1".into()]), Ok(()));
        }
        assert_eq!(publisher.check_route(&Route::Publish), Ok(()));
        for r in [Route::AdminStats, Route::AdminTopics, Route::AdminConnections, Route::Metrics, tail("orders.1")] {
            assert!(matches!(publisher.check_route(&r), Err(GatewayError::Forbidden(_))), "{r:?}");
        }
        assert_eq!(publisher.check_publish(&["orders.1".into(), "audit".into()]), Ok(()));
        let out = publisher.check_publish(&["orders.1".into(), "audits".into()]).unwrap_err();
        assert_eq!(out, GatewayError::Forbidden("this API key may not publish to topic \"audits\"".into()));
        assert_eq!(out.status(), 403);
        assert!(matches!(admin.check_route(&Route::Publish), Err(GatewayError::Forbidden(_))));
        assert!(admin.check_publish(&["ops.1".into()]).is_err(), "an admin key publishes nowhere");
        assert_eq!(admin.check_route(&Route::AdminStats), Ok(()));
        assert_eq!(admin.check_route(&tail("ops.1")), Ok(()));
        assert!(matches!(admin.check_route(&tail("orders.1")), Err(GatewayError::Forbidden(_))));
        for g in [publisher, admin] {
            assert_eq!(g.check_route(&Route::Sse), Ok(()));
        }
    }

    #[test]
    fn ct_eq_is_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"ab", b"abc"));
        assert!(!ct_eq(b"\0", b""));
    }
}
