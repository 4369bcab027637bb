//! API keys: parsing the configured list, finding the key a request presents, and a comparison
//! whose time does not depend on where a wrong key differs from a right one.

/// The configured API keys.
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<Vec<u8>>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

impl ApiKeys {
    /// A comma-separated list; items are trimmed, empty ones ignored.
    pub fn parse(list: &str) -> Self {
        Self(list.split(',').map(str::trim).filter(|k| !k.is_empty()).map(|k| k.as_bytes().to_vec()).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `presented` is one of the keys. Every key is compared, each in constant time.
    pub fn check(&self, presented: &[u8]) -> bool {
        self.0.iter().fold(false, |found, key| found | ct_eq(key, presented))
    }

    /// The index of `presented` in the list (for per-key limits), comparing every key in
    /// constant time.
    pub fn find(&self, presented: &[u8]) -> Option<usize> {
        self.0.iter().enumerate().fold(None, |found, (i, key)| if ct_eq(key, presented) { found.or(Some(i)) } else { found })
    }

    /// The index of the key a request presents, if it is one of the keys.
    pub fn key_index(&self, authorization: Option<&[u8]>, x_api_key: Option<&[u8]>) -> Option<usize> {
        presented_key(authorization, x_api_key).and_then(|k| self.find(k))
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

    #[test]
    fn ct_eq_is_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"ab", b"abc"));
        assert!(!ct_eq(b"\0", b""));
    }
}
