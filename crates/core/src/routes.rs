//! The gateway's routes and the fixed headers it answers with, shared by both runtimes so the
//! HTTP surface is defined once.

use crate::error::{GatewayError, Result};
use crate::names;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Sse,
    Ws,
    Publish,
    Healthz,
    AdminTopics,
    AdminConnections,
    /// `GET /admin/api/stats`: the counts as JSON.
    AdminStats,
    AdminTail(String),
    /// `GET /metrics`: Prometheus text (native runtime only; the Worker answers 404). Whether it
    /// needs a key is the runtime's setting (`METRICS_REQUIRE_KEY`), not [`Route::needs_key`].
    Metrics,
    /// The admin UI's static files (`/admin`, `/admin/...` outside `/admin/api`).
    AdminUi,
    /// A CORS preflight.
    Preflight,
}

impl Route {
    /// Whether the route needs an API key.
    pub fn needs_key(&self) -> bool {
        matches!(self, Route::Publish | Route::AdminTopics | Route::AdminConnections | Route::AdminStats | Route::AdminTail(_))
    }
}

/// Largest request header block (names + values) the gateway looks at: a larger one is 431
/// before any routing. The gateway's own headers are a few hundred bytes; browsers send a few KiB.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// 431 when `sizes` (each header's name and value lengths) add up to more than
/// [`MAX_HEADER_BYTES`].
pub fn check_header_bytes(sizes: impl Iterator<Item = (usize, usize)>) -> Result<()> {
    let total: usize = sizes.map(|(n, v)| n + v + 4).sum();
    if total > MAX_HEADER_BYTES {
        return Err(GatewayError::HeadersTooLarge { max: MAX_HEADER_BYTES });
    }
    Ok(())
}

const GET: &str = "GET, HEAD, OPTIONS";
const POST: &str = "POST, OPTIONS";

/// Resolves a method and path (no query string) to a route: 404 for an unknown path, 405 with
/// the allowed methods for a known path and a wrong method.
pub fn route(method: &str, path: &str) -> Result<Route> {
    if method == "OPTIONS" {
        return Ok(Route::Preflight);
    }
    let (route, allow) = match path {
        "/sse" => (Route::Sse, GET),
        "/ws" => (Route::Ws, GET),
        "/publish" => (Route::Publish, POST),
        "/healthz" => (Route::Healthz, GET),
        "/admin/api/topics" => (Route::AdminTopics, GET),
        "/admin/api/connections" => (Route::AdminConnections, GET),
        "/admin/api/stats" => (Route::AdminStats, GET),
        "/metrics" => (Route::Metrics, GET),
        _ => {
            if let Some(rest) = path.strip_prefix("/admin/api/topics/") {
                match rest.strip_suffix("/tail") {
                    Some(topic) => {
                        names::check_topic(topic)?;
                        (Route::AdminTail(topic.to_string()), GET)
                    }
                    None => return Err(GatewayError::NotFound),
                }
            } else if path == "/admin" || (path.starts_with("/admin/") && !path.starts_with("/admin/api")) {
                (Route::AdminUi, GET)
            } else {
                return Err(GatewayError::NotFound);
            }
        }
    };
    let ok = if allow == POST { method == "POST" } else { method == "GET" || method == "HEAD" };
    if ok {
        Ok(route)
    } else {
        Err(GatewayError::MethodNotAllowed { allow })
    }
}

/// Headers of every SSE response.
pub const SSE_HEADERS: [(&str, &str); 4] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
    ("access-control-allow-origin", "*"),
];

/// Headers of a CORS preflight answer (status 204).
pub const PREFLIGHT_HEADERS: [(&str, &str); 4] = [
    ("access-control-allow-origin", "*"),
    ("access-control-allow-methods", "GET, POST, OPTIONS"),
    ("access-control-allow-headers", "authorization, content-type, last-event-id, x-api-key, x-sse-event, x-sse-id, x-sse-topic"),
    ("access-control-max-age", "86400"),
];

/// Headers of every JSON response.
pub const JSON_HEADERS: [(&str, &str); 3] =
    [("content-type", "application/json"), ("cache-control", "no-store"), ("access-control-allow-origin", "*")];

/// A connection id: creation time then randomness, so ids sort roughly by age and stay within
/// the name alphabet.
pub fn connection_id(now_ms: u64, random: u32) -> String {
    format!("c{now_ms:011x}-{random:08x}")
}

/// The `/healthz` body.
pub fn health_body(runtime: &str) -> String {
    serde_json::json!({"status": "ok", "runtime": runtime}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_block_limit() {
        assert!(check_header_bytes([(4, 100), (10, 2_000)].into_iter()).is_ok());
        assert_eq!(check_header_bytes([(5, MAX_HEADER_BYTES)].into_iter()).unwrap_err().status(), 431);
        assert!(check_header_bytes((0..1_000).map(|_| (10, 30))).unwrap_err().code() == "headers_too_large");
    }

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/sse").unwrap(), Route::Sse);
        assert_eq!(route("POST", "/publish").unwrap(), Route::Publish);
        assert_eq!(route("OPTIONS", "/anything").unwrap(), Route::Preflight);
        assert_eq!(route("GET", "/admin/api/topics/user:42/tail").unwrap(), Route::AdminTail("user:42".into()));
        assert_eq!(route("GET", "/admin").unwrap(), Route::AdminUi);
        assert_eq!(route("GET", "/admin/assets/x.js").unwrap(), Route::AdminUi);
        assert_eq!(route("GET", "/nope").unwrap_err().code(), "not_found");
        assert_eq!(route("GET", "/admin/api/nope").unwrap_err().code(), "not_found");
        assert_eq!(route("GET", "/admin/api/topics/a b/tail").unwrap_err().code(), "invalid_topic");
        assert_eq!(route("GET", "/publish").unwrap_err(), GatewayError::MethodNotAllowed { allow: POST });
        assert_eq!(route("POST", "/sse").unwrap_err().status(), 405);
        assert!(route("POST", "/publish").unwrap().needs_key());
        assert!(!route("GET", "/sse").unwrap().needs_key());
        assert!(route("GET", "/admin/api/stats").unwrap().needs_key());
        assert_eq!(route("GET", "/metrics").unwrap(), Route::Metrics);
        assert!(!Route::Metrics.needs_key());
        assert_eq!(route("POST", "/metrics").unwrap_err().status(), 405);
    }

    #[test]
    fn ids_are_names_and_sort_by_time() {
        let a = connection_id(1_000, u32::MAX);
        let b = connection_id(1_001, 0);
        assert!(names::check_name(&a).is_ok());
        assert!(a < b);
    }
}
