//! Cross-origin answers and cookie mode (`CREDENTIALED_ORIGINS`).
//!
//! With no origin listed (the default) every answer carries `access-control-allow-origin: *`
//! and no credentials. A request whose `Origin` is listed is answered with that origin,
//! `access-control-allow-credentials: true` and `vary: origin` (preflights too), so a page of
//! that site can send the browser's cookies (`new EventSource(url, { withCredentials: true })`).
//!
//! A subscriber token read from the cookie ([`CredentialedOrigins::cookie_allowed`]) is only
//! used when the request has no `Origin`, or its `Origin` is the gateway's own host, or is
//! listed. Otherwise the cookie is ignored: a page of another site cannot ride a user's cookie,
//! which matters most for WebSocket, where the browser applies no CORS check at all.
//!
//! Origins compare as their serialization (`scheme://host[:port]`), ASCII case-insensitively,
//! with a scheme's default port (80 for http and ws, 443 for https and wss) left out.

/// The header every gateway answer carries.
pub const ALLOW_ORIGIN: &str = "access-control-allow-origin";
pub const ALLOW_CREDENTIALS: &str = "access-control-allow-credentials";

/// An origin in its canonical form: lowercase, the scheme's default port left out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    /// The host (an IPv6 address keeps its brackets) and the port when not the default.
    authority: Authority,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority.host)?;
        match self.authority.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// `host[:port]` (a `Host` header, or what follows `scheme://`), lowercased.
fn parse_authority(s: &str) -> Result<Authority, &'static str> {
    if s.is_empty() {
        return Err("has no host");
    }
    if s.contains(['/', '?', '#']) {
        return Err("has a path: an origin is scheme://host[:port], with no / after the host");
    }
    if s.contains('@') {
        return Err("has user information");
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or("has an unclosed [")?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err("has a malformed IPv6 address");
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("has something after the IPv6 address")?),
        };
        (&s[..addr.len() + 2], port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if !host.starts_with('[') && !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
        return Err("has a host that is not a name or an address");
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|&n| n > 0).ok_or("has a port outside 1-65535")?)
        }
        Some(_) => return Err("has a port that is not a number"),
    };
    Ok(Authority { host: host.to_ascii_lowercase(), port })
}

/// `scheme://host[:port]`, as the `Origin` header carries it.
fn parse_origin(s: &str) -> Result<Origin, &'static str> {
    let (scheme, rest) = s.split_once("://").ok_or("is not scheme://host[:port]")?;
    let mut chars = scheme.bytes();
    let scheme_ok = chars.next().is_some_and(|b| b.is_ascii_alphabetic())
        && chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err("has no valid scheme (scheme://host[:port])");
    }
    let scheme = scheme.to_ascii_lowercase();
    let mut authority = parse_authority(rest)?;
    if authority.port.is_some() && authority.port == default_port(&scheme) {
        authority.port = None;
    }
    Ok(Origin { scheme, authority })
}

/// The request's `Origin` header, when it is one (not `null`, not malformed).
fn request_origin(origin: &[u8]) -> Option<Origin> {
    std::str::from_utf8(origin).ok().and_then(|s| parse_origin(s.trim()).ok())
}

/// The origins whose pages may send credentials (`CREDENTIALED_ORIGINS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialedOrigins {
    origins: Vec<Origin>,
}

impl CredentialedOrigins {
    /// A comma-separated list of origins (`https://app.example.com, http://localhost:3000`);
    /// blank entries are skipped. Each must be `scheme://host[:port]`: no path (not even a
    /// trailing `/`), no `*`, not `null`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let why = match item {
                "*" => Err("is a wildcard: credentials need each origin listed"),
                "null" => Err("is the opaque origin of sandboxed and file pages, which any page can take on"),
                _ => parse_origin(item),
            };
            let origin = why.map_err(|m| format!("{item:?} {m}"))?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self { origins })
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// The listed origins, in their canonical form.
    pub fn origins(&self) -> Vec<String> {
        self.origins.iter().map(Origin::to_string).collect()
    }

    /// Whether a request's `Origin` is listed.
    pub fn is_listed(&self, origin: &[u8]) -> bool {
        !self.origins.is_empty() && request_origin(origin).is_some_and(|o| self.origins.contains(&o))
    }

    /// The CORS headers of any answer to a request with `origin` (its `Origin` header): the
    /// origin itself, with credentials, when it is listed; `*` otherwise. `vary: origin` as soon
    /// as any origin is listed, since the answer then depends on it.
    pub fn headers<'a>(&self, origin: Option<&'a [u8]>) -> Vec<(&'static str, &'a str)> {
        if self.origins.is_empty() {
            return vec![(ALLOW_ORIGIN, "*")];
        }
        match origin.filter(|o| self.is_listed(o)).and_then(|o| std::str::from_utf8(o).ok()) {
            Some(listed) => vec![(ALLOW_ORIGIN, listed.trim()), (ALLOW_CREDENTIALS, "true"), ("vary", "origin")],
            None => vec![(ALLOW_ORIGIN, "*"), ("vary", "origin")],
        }
    }

    /// Whether a subscriber token read from the cookie may be used, given the request's
    /// `Origin` and `Host` headers: yes with no `Origin` (not a cross-origin browser request),
    /// with an `Origin` on the gateway's own host (same host and port, any scheme: TLS may end
    /// in front of the gateway), or with a listed one. No for any other, `null` included.
    pub fn cookie_allowed(&self, origin: Option<&[u8]>, host: Option<&[u8]>) -> bool {
        let Some(origin) = origin else { return true };
        let Some(origin) = request_origin(origin) else { return false };
        if self.origins.contains(&origin) {
            return true;
        }
        let host = host.and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| parse_authority(h.trim()).ok());
        host.is_some_and(|mut h| {
            if h.port.is_some() && h.port == default_port(&origin.scheme) {
                h.port = None;
            }
            h == origin.authority
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> CredentialedOrigins {
        CredentialedOrigins::parse(s).unwrap()
    }

    #[test]
    fn parsing() {
        let l = list(" https://App.Example.com , http://localhost:3000,,https://app.example.com:443, http://[::1]:8080");
        assert_eq!(l.origins(), vec!["https://app.example.com", "http://localhost:3000", "http://[::1]:8080"]);
        assert!(list("").is_empty() && list(" , ").is_empty());
        assert_eq!(list("capacitor://localhost").origins(), vec!["capacitor://localhost"]);
        assert_eq!(
            list("http://app.example.com:443").origins(),
            vec!["http://app.example.com:443"],
            "443 is http's default only for https"
        );
        let err = |s: &str| CredentialedOrigins::parse(s).unwrap_err();
        for bad in [
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?x",
            "app.example.com",
            "//app.example.com",
            "https://",
            "https://:443",
            "https://user@app.example.com",
            "https://app.example.com:",
            "https://app.example.com:0",
            "https://app.example.com:65536",
            "https://app.example.com:http",
            "https://app example.com",
            "https://[::1",
            "https://[zz]",
            "1http://a",
            "*",
            "null",
        ] {
            let e = err(&format!("https://ok.example.com,{bad}"));
            assert!(e.starts_with(&format!("{bad:?} ")), "{bad}: {e}");
        }
        assert!(err("https://a.example.com/").contains("no / after the host"));
    }

    #[test]
    fn headers_follow_the_origin() {
        let none = CredentialedOrigins::default();
        assert_eq!(none.headers(None), vec![(ALLOW_ORIGIN, "*")]);
        assert_eq!(none.headers(Some(b"https://app.example.com")), vec![(ALLOW_ORIGIN, "*")], "nothing listed: * for all");
        let l = list("https://app.example.com,http://localhost:3000");
        let credentialed = |o: &'static str| vec![(ALLOW_ORIGIN, o), (ALLOW_CREDENTIALS, "true"), ("vary", "origin")];
        assert_eq!(l.headers(Some(b"https://app.example.com")), credentialed("https://app.example.com"));
        assert_eq!(l.headers(Some(b"http://localhost:3000")), credentialed("http://localhost:3000"));
        // Compared case-insensitively, echoed as sent.
        assert_eq!(l.headers(Some(b"HTTPS://APP.example.com")), credentialed("HTTPS://APP.example.com"));
        let any = vec![(ALLOW_ORIGIN, "*"), ("vary", "origin")];
        for other in [&b"https://evil.example.com"[..], b"http://app.example.com", b"https://app.example.com:8443", b"null", b"\xff", b""] {
            assert_eq!(l.headers(Some(other)), any, "{other:?}");
        }
        assert_eq!(l.headers(None), any);
    }

    #[test]
    fn cookie_rule() {
        let l = list("https://app.example.com");
        let ok = |origin: Option<&str>, host: Option<&str>| l.cookie_allowed(origin.map(str::as_bytes), host.map(str::as_bytes));
        // No Origin: not a cross-origin browser request.
        assert!(ok(None, Some("gw.example.com")) && ok(None, None));
        // Listed, in any case.
        assert!(ok(Some("https://app.example.com"), Some("gw.example.com")));
        assert!(ok(Some("https://APP.Example.COM"), None));
        assert!(ok(Some("https://app.example.com:443"), None));
        // The gateway's own host (the scheme is not looked at: TLS may end in front of it).
        assert!(ok(Some("https://gw.example.com"), Some("gw.example.com")));
        assert!(ok(Some("https://GW.example.com"), Some("gw.EXAMPLE.com:443")));
        assert!(ok(Some("http://localhost:8862"), Some("localhost:8862")));
        assert!(ok(Some("http://[::1]:8862"), Some("[::1]:8862")));
        // Anything else: the cookie is ignored.
        assert!(!ok(Some("https://evil.example.com"), Some("gw.example.com")));
        assert!(!ok(Some("http://app.example.com"), Some("gw.example.com")), "another scheme is another origin");
        assert!(!ok(Some("http://localhost:3000"), Some("localhost:8862")), "another port is another host");
        assert!(!ok(Some("https://gw.example.com.evil.example"), Some("gw.example.com")));
        assert!(!ok(Some("https://gw.example.com"), None), "no Host: only listed origins");
        assert!(!ok(Some("null"), Some("gw.example.com")));
        assert!(!ok(Some(""), Some("gw.example.com")));
        assert!(!ok(Some("garbage"), Some("garbage")));
        assert!(!l.cookie_allowed(Some(b"https://app.example.com\xff"), None));
        // With nothing listed, same host and no Origin still work.
        let none = CredentialedOrigins::default();
        assert!(none.cookie_allowed(None, None));
        assert!(none.cookie_allowed(Some(b"http://localhost:8862"), Some(b"localhost:8862")));
        assert!(!none.cookie_allowed(Some(b"https://app.example.com"), Some(b"gw.example.com")));
    }
}
