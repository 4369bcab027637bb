//! The topic-object protocol, sans I/O: everything that decides how a publish runs and every
//! message the runtimes exchange with their topic owners (Cloudflare topic objects, native
//! cluster nodes). A runtime feeds facts in (probe answers, delivery outcomes, request parts)
//! and gets decisions and bytes out; it keeps only the sockets, timers and storage.
//!
//! - [`drop_rule`]: whether a topic takes an event, and the one log line of a drop.
//! - [`plan`]: one publish from probes to the `202` body ([`PublishPlan`]).
//! - [`attach`], [`probe`], [`deliver`], [`answer`]: the internal messages, each a type whose
//!   encode and decode sit side by side (as mini-redis keeps a command's parse and encode).
//! - [`cluster`]: what native cluster nodes send each other: event batches and placement
//!   notices.
//! - [`conn`]: connection summaries, eviction outcomes and replay resume, transport-aware.
//! - [`shards`]: a hot topic spread over several objects: where a subscriber goes, which
//!   shards a publish reaches, and the shards' reports to the topic's own object.
//! - [`socket`]: the WebSockets a hibernating topic object holds: who holds each client's
//!   stream, the attachment it rebuilds its connections from, and the close codes.

pub mod answer;
pub mod attach;
pub mod cluster;
pub mod conn;
pub mod deliver;
pub mod drop_rule;
pub mod plan;
pub mod probe;
pub mod shards;
pub mod socket;

pub use answer::ObjectAnswer;
pub use attach::Attach;
pub use deliver::{Deliver, DroppedNotice};
pub use plan::{Probed, PublishPlan, PublishReport, Step, TopicResult};
pub use probe::ProbeRequest;
pub use socket::{Close, Holder, SocketAttachment};
