//! An order service that embeds the SSE gateway. Its own route, `POST /orders`, publishes an
//! `order.created` event in-process (no HTTP hop, no API key); browsers subscribe with
//! `GET /sse?topic=orders` on the same port. The gateway's other routes (`/ws`, `/publish`,
//! `/admin`, `/healthz`) come along.
//!
//!   API_KEYS=dev-key-change-me cargo run -p sse-gateway-embedded-example
//!   curl -N 'http://127.0.0.1:3000/sse?topic=orders'          # in one terminal
//!   curl -X POST -d 'two apples' http://127.0.0.1:3000/orders   # in another

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use sse_gateway_server::{Config, Gateway, ServerConfig};

#[derive(Clone)]
struct Orders {
    gateway: Gateway,
    next_id: Arc<AtomicU64>,
}

/// `POST /orders`: the body is the item; the order is announced on topic `orders`.
async fn create_order(State(orders): State<Orders>, item: String) -> impl IntoResponse {
    let id = orders.next_id.fetch_add(1, Ordering::Relaxed);
    let event_id = format!("order-{id}");
    let data = serde_json::json!({"order": id, "item": item}).to_string();
    match orders.gateway.publish(&["orders"], &event_id, Some("order.created"), &data).await {
        Ok(results) => {
            // Connections it reached (a topic with RETENTION also reports `Retained(n)`).
            let listeners = results[0].1.delivered();
            let body = serde_json::json!({"order": id, "notified": listeners}).to_string();
            (StatusCode::CREATED, [(header::CONTENT_TYPE, "application/json")], body)
        }
        // Only a bad id, topic or body size can fail; the item is JSON-escaped, so this is a
        // body over MAX_BODY_BYTES.
        Err(e) => {
            (StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST), [(header::CONTENT_TYPE, "application/json")], e.body())
        }
    }
}

/// The service's router: its own routes, then the gateway's.
pub fn app(gateway: Gateway) -> Router {
    let orders = Orders { gateway: gateway.clone(), next_id: Arc::new(AtomicU64::new(1)) };
    Router::new().route("/orders", post(create_order)).with_state(orders).merge(gateway.router())
}

/// A single-node gateway configured from the environment (API_KEYS, HEARTBEAT_INTERVAL_MS, ...).
pub async fn gateway(addr: SocketAddr) -> Result<Gateway, Box<dyn std::error::Error>> {
    let core = Config::from_lookup(|k| std::env::var(k).ok())?;
    Ok(Gateway::new(ServerConfig::single_node(core, addr)).await?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into()).parse()?;
    let gateway = gateway(addr).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("orders service on http://{addr}: POST /orders, GET /sse?topic=orders");
    let on_stop = gateway.clone();
    axum::serve(listener, app(gateway))
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            // Subscribers get `event: reconnect` and their streams end; then the server stops.
            on_stop.shutdown().await;
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[tokio::test]
    async fn an_order_reaches_a_subscriber_on_the_same_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gw = gateway(addr).await.unwrap();
        tokio::spawn(async move { axum::serve(listener, app(gw)).await });

        let mut sub = TcpStream::connect(addr).await.unwrap();
        sub.write_all(b"GET /sse?topic=orders HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while !seen.contains("event: connected") {
            let n = sub.read(&mut buf).await.unwrap();
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }

        let mut publisher = TcpStream::connect(addr).await.unwrap();
        publisher
            .write_all(b"POST /orders HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\nconnection: close\r\n\r\ntwo apples")
            .await
            .unwrap();
        let mut answer = String::new();
        publisher.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        assert!(answer.contains(r#""notified":1"#), "{answer}");

        while !seen.contains("two apples") {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), sub.read(&mut buf)).await.unwrap().unwrap();
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(seen.contains("id: order-1\nevent: order.created\ndata: {\"item\":\"two apples\",\"order\":1}\n\n"), "{seen}");
    }
}
