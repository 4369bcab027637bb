//! Response helpers and the pieces of request handling the Worker and its objects share.

use std::cell::RefCell;
use std::rc::Rc;

use sse_core::cors::ALLOW_ORIGIN;
use sse_core::{routes, Config, GatewayError};
use worker::{Date, Env, Headers, Response};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// A random 32-bit number for connection ids.
pub fn random_u32() -> u32 {
    (js_sys::Math::random() * f64::from(u32::MAX)) as u32
}

/// One structured log line.
pub fn log(line: &str) {
    worker::console_log!("{line}");
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    let h = Headers::new();
    for (k, v) in pairs {
        let _ = h.set(k, v);
    }
    h
}

/// A JSON response.
pub fn json(status: u16, body: String) -> Response {
    Response::ok(body).expect("a string body is always accepted").with_status(status).with_headers(headers(&routes::JSON_HEADERS))
}

/// The JSON error response, with the error's extra headers.
/// Not logged here: the router logs every error answer once (`request::rejected_log_line`).
pub fn error(e: &GatewayError) -> Response {
    let resp = json(e.status(), e.body());
    for (k, v) in e.headers() {
        let _ = resp.headers().set(k, &v);
    }
    resp
}

/// 204 for a CORS preflight.
pub fn preflight() -> Response {
    Response::empty().expect("empty").with_status(204).with_headers(headers(&routes::PREFLIGHT_HEADERS))
}

/// Sets the SSE headers on a streaming response.
pub fn sse(resp: Response) -> Response {
    resp.with_headers(headers(&routes::SSE_HEADERS))
}

/// The CORS headers of an answer to a request with `origin` (its `Origin` header): the
/// builders here give `access-control-allow-origin: *`; for an origin listed in
/// `CREDENTIALED_ORIGINS` that becomes the origin with credentials (the core's rule). An answer
/// without CORS headers (a WebSocket upgrade) is left as it is.
pub fn cors(resp: Response, origin: Option<&str>, env: &Env) -> Response {
    let Ok(cfg) = config(env) else { return resp };
    if cfg.credentialed_origins.is_empty() || !resp.headers().has(ALLOW_ORIGIN).unwrap_or(false) {
        return resp;
    }
    for (k, v) in cfg.credentialed_origins.headers(origin.map(str::as_bytes)) {
        let _ = resp.headers().set(k, v);
    }
    resp
}

/// Turns a worker error into a 500.
pub fn internal(e: worker::Error) -> GatewayError {
    GatewayError::Internal(e.to_string())
}

thread_local! {
    /// The configuration, read once per isolate: `[vars]` and secrets do not change while an
    /// isolate lives (a deploy starts new ones), and reading it parses the subscriber-token keys.
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

/// The configuration from `[vars]` and secrets (read on the isolate's first request, shared
/// after that).
pub fn config(env: &Env) -> Result<Rc<Config>, GatewayError> {
    if let Some(c) = CONFIG.with(|slot| slot.borrow().clone()) {
        return Ok(c);
    }
    let c = Config::from_lookup(|key| env.var(key).map(|v| v.to_string()).or_else(|_| env.secret(key).map(|v| v.to_string())).ok())
        .map_err(|e| GatewayError::Internal(format!("configuration: {e}")))?;
    let c = Rc::new(c);
    CONFIG.with(|slot| *slot.borrow_mut() = Some(c.clone()));
    Ok(c)
}

/// A header as bytes (the core validates its content).
pub fn header(h: &Headers, name: &str) -> Option<String> {
    h.get(name).ok().flatten()
}
