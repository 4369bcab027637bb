//! The Worker's and objects' handles on the Durable Objects: a topic's object, the registry,
//! and the URL of an internal request (its host is never looked at).

use std::collections::BTreeMap;

use futures_util::future::join_all;
use sse_core::protocol::answer::decode_error;
use sse_core::protocol::{shards, Deliver, ObjectAnswer};
use sse_core::registry::{self, RegistryUpdate};
use sse_core::GatewayError;
use worker::{Env, Headers, Method, Request, RequestInit, Stub};

use crate::http;

/// The object of `topic`.
pub fn topic_stub(env: &Env, topic: &str) -> Result<Stub, GatewayError> {
    env.durable_object("TOPIC").and_then(|ns| ns.get_by_name(topic)).map_err(http::internal)
}

/// Shard `index` (≥ 1) of `topic`'s object ([`sse_core::protocol::shards`]).
pub fn topic_shard_stub(env: &Env, topic: &str, index: u32) -> Result<Stub, GatewayError> {
    env.durable_object("TOPIC").and_then(|ns| ns.get_by_name(&shards::object_name(topic, index))).map_err(http::internal)
}

/// The object an attach goes to: the topic's own, or the shard it names.
pub fn attach_stub(env: &Env, topic: &str, shard: u32) -> Result<Stub, GatewayError> {
    if shard == 0 {
        topic_stub(env, topic)
    } else {
        topic_shard_stub(env, topic, shard)
    }
}

/// Registry shard `index` of `shards`.
pub fn registry(env: &Env, index: usize, shards: usize) -> Result<Stub, GatewayError> {
    env.durable_object("REGISTRY").and_then(|ns| ns.get_by_name(&registry::shard_name(index, shards))).map_err(http::internal)
}

/// The URL of a request to registry shard `index` of `shards` (which tells the shard who it is).
pub fn registry_url(path: &str, query: &str, index: usize, shards: usize) -> String {
    let sep = if query.is_empty() { "" } else { "&" };
    format!("https://registry/{path}?{query}{sep}shard={index}&shards={shards}")
}

/// The URL of an internal request to an object.
pub fn internal_url(path_and_query: &str) -> String {
    format!("https://object{path_and_query}")
}

/// Sends updates to the registry shards of their topics; the error says why some did not arrive.
pub async fn report(env: &Env, shards: usize, updates: &[RegistryUpdate]) -> Result<(), String> {
    let mut by_shard: BTreeMap<usize, Vec<&RegistryUpdate>> = BTreeMap::new();
    for u in updates {
        by_shard.entry(registry::shard_of(u.topic(), shards)).or_default().push(u);
    }
    let sends = by_shard.into_iter().map(|(index, updates)| async move {
        let stub = registry(env, index, shards).map_err(|e| e.to_string())?;
        let body = serde_json::to_string(&updates).map_err(|e| e.to_string())?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let req = Request::new_with_init(&registry_url("update", "", index, shards), &init).map_err(|e| e.to_string())?;
        let resp = stub.fetch_with_request(req).await.map_err(|e| e.to_string())?;
        match resp.status_code() {
            200 => Ok(()),
            other => Err(format!("registry shard {index} answered {other}")),
        }
    });
    join_all(sends).await.into_iter().collect()
}

/// The internal request that hands `msg` to an object, its data as the body; `query` names the
/// receiving shard when it is one (`shard=i`, or empty).
pub fn deliver_request(msg: &Deliver, data: String, query: &str) -> Result<Request, GatewayError> {
    let headers = Headers::new();
    for (k, v) in msg.headers() {
        headers.set(k, &v).map_err(http::internal)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(data.into()));
    let sep = if query.is_empty() { "" } else { "?" };
    Request::new_with_init(&internal_url(&format!("{}{sep}{query}", Deliver::PATH)), &init).map_err(http::internal)
}

/// Calls a topic object and reads its answer (an error answer comes back as the error).
pub async fn object_call(stub: &Stub, req: Request, max_body_bytes: usize) -> Result<ObjectAnswer, GatewayError> {
    let mut resp = stub.fetch_with_request(req).await.map_err(http::internal)?;
    let text = resp.text().await.map_err(http::internal)?;
    if resp.status_code() != 200 {
        return Err(decode_error(resp.status_code(), &text, max_body_bytes));
    }
    ObjectAnswer::decode(&text)
}
