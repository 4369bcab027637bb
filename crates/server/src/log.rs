//! Logging: JSON lines on stdout. `tracing` for the runtime's own events; [`raw`] for the lines
//! the core formats itself (the drop line), written as they are.

use std::io::Write;

/// Sets up `tracing` to print one JSON object per line (level from `RUST_LOG`, default info).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().json().flatten_event(true).with_current_span(false).with_target(false).with_env_filter(filter).try_init();
}

/// Writes one already-formatted JSON line.
pub fn raw(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(b"\n");
}
