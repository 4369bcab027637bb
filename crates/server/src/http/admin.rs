//! The admin API's listings (from the namespace: this node, or the whole cluster) and the admin
//! UI's static files, embedded in the binary at build time from `admin/dist`.

use std::sync::Arc;

use axum::response::Response;
use sse_core::request::{ListQuery, Query};
use sse_core::GatewayError;

use super::respond;
use crate::state::GatewayState;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/admin_assets.rs"));
}

pub async fn topics(gw: &Arc<GatewayState>, q: &Query) -> Result<Response, GatewayError> {
    let page = gw.ns.topics(ListQuery::parse(q)?).await?;
    Ok(respond::json(200, page.body("topics")))
}

pub async fn connections(gw: &Arc<GatewayState>, q: &Query) -> Result<Response, GatewayError> {
    let page = gw.ns.connections(ListQuery::parse(q)?).await?;
    Ok(respond::json(200, page.body("connections")))
}

const PLACEHOLDER: &[u8] = b"<!doctype html><title>SSE gateway admin</title><p>The admin UI was not built into this binary: build admin/ (npm run build) and rebuild the server.</p>";

/// `/admin` and `/admin/` serve index.html; `/admin/<file>` the file; any other path without a
/// dot in its last segment is a client-side route of the single-page app (index.html).
pub fn ui(path: &str) -> Response {
    let rel = path.strip_prefix("/admin").unwrap_or("").trim_start_matches('/');
    if !rel.is_empty() {
        if let Some(bytes) = find(rel) {
            let cache = if rel.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
            return respond::file(bytes, content_type(rel), cache);
        }
        if rel.rsplit('/').next().is_some_and(|last| last.contains('.')) {
            return respond::error(&GatewayError::NotFound);
        }
    }
    respond::file(find("index.html").unwrap_or(PLACEHOLDER), "text/html; charset=utf-8", "no-cache")
}

fn find(rel: &str) -> Option<&'static [u8]> {
    assets::FILES.iter().find(|(name, _)| *name == rel).map(|(_, bytes)| *bytes)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spa_fallback_and_404() {
        for p in ["/admin", "/admin/", "/admin/topics", "/admin/tail/x"] {
            let r = ui(p);
            assert_eq!(r.status(), 200, "{p}");
            assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8", "{p}");
        }
        assert_eq!(ui("/admin/assets/nope.js").status(), 404);
        assert_eq!(content_type("a/b.css"), "text/css; charset=utf-8");
    }
}
