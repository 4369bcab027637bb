//! The native runtime of the SSE gateway: the same routes and behaviour as the Cloudflare
//! Worker, driving the same core (`sse-core`), on tokio + axum.
//!
//! - [`Gateway`]: build from a [`ServerConfig`], mount [`Gateway::router`], publish in-process
//!   (the library façade over the gateway's state, `state`, which `http` and `listen` serve).
//! - [`hub`]: this node's topics (core `TopicState`s over bounded per-connection queues).
//! - [`objects`]: the Durable-Object-shaped namespace the gateway talks to, implemented by
//!   [`memory`] (single node) and [`redis`] (a cluster through Redis).

pub mod clock;
pub mod config;
mod gateway;
mod http;
pub mod hub;
mod listen;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod objects;
pub mod redis;
pub mod sink;
mod state;
mod subscriber;

pub use config::ServerConfig;
pub use gateway::{Gateway, StartError};
pub use sse_core::protocol::TopicResult;
pub use sse_core::Config;
