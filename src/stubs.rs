//! The Worker's and objects' handles on the Durable Objects: a topic's object, the registry,
//! and the URL of an internal request (its host is never looked at).

use sse_core::registry::RegistryUpdate;
use sse_core::GatewayError;
use worker::{Env, Method, Request, RequestInit, Stub};

use crate::http;

/// The object of `topic`.
pub fn topic_stub(env: &Env, topic: &str) -> Result<Stub, GatewayError> {
    env.durable_object("TOPIC").and_then(|ns| ns.get_by_name(topic)).map_err(http::internal)
}

/// The registry object.
pub fn registry(env: &Env) -> Result<Stub, GatewayError> {
    env.durable_object("REGISTRY").and_then(|ns| ns.get_by_name("registry")).map_err(http::internal)
}

/// The URL of an internal request to an object.
pub fn internal_url(path_and_query: &str) -> String {
    format!("https://object{path_and_query}")
}

/// Sends updates to the registry; the error says why they did not arrive.
pub async fn report(env: &Env, updates: &[RegistryUpdate]) -> Result<(), String> {
    let stub = registry(env).map_err(|e| e.to_string())?;
    let body = serde_json::to_string(updates).map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let req = Request::new_with_init("https://registry/update", &init).map_err(|e| e.to_string())?;
    let resp = stub.fetch_with_request(req).await.map_err(|e| e.to_string())?;
    match resp.status_code() {
        200 => Ok(()),
        other => Err(format!("registry answered {other}")),
    }
}
