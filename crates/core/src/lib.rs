//! The SSE gateway's logic, with no I/O: no async runtime, no sockets, no clock. The Cloudflare
//! Worker (`src/`) and the native server (`crates/server`) both drive it.
//!
//! - [`names`]: topic / id / event validation and topic lists.
//! - [`frame`]: SSE frames, the JSON envelope, and an SSE parser.
//! - [`topic`]: one topic's connections, publish (deliver or drop), disconnects.
//! - [`registry`]: connection records and cursor pagination for the admin API.
//! - [`request`]: query strings, subscriptions, publish headers, response bodies.
//! - [`routes`]: the HTTP surface and its fixed headers.
//! - [`limits`]: per-API-key publish rate limits (token buckets).
//! - [`metrics`]: the counts, their Prometheus text and the admin API's JSON.
//! - [`protocol`]: the topic-object protocol: the drop rule, the publish plan, the internal
//!   messages (attach, probe, deliver, the owner's answer), connection summaries and resume.
//! - [`replay`]: retention (`RETENTION`), the replay ring, and the resume algorithm.
//! - [`token`]: private topics (`PRIVATE_TOPICS`) and the verification of subscriber tokens
//!   (JWT: HS256, ES256, EdDSA) into what they grant.
//! - [`cors`]: cross-origin answers and cookie mode (`CREDENTIALED_ORIGINS`).
//! - [`auth`], [`config`] (with [`setting`]), [`error`], [`time`].

pub mod auth;
pub mod config;
pub mod cors;
pub mod error;
pub mod frame;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod protocol;
pub mod registry;
pub mod replay;
pub mod request;
pub mod routes;
pub mod setting;
pub mod time;
pub mod token;
pub mod topic;

pub use config::Config;
pub use error::GatewayError;
