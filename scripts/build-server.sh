#!/usr/bin/env bash
# Build the native gateway (crates/server) in release mode: target/release/sse-gateway, with
# admin/dist embedded. The plain `cargo build --release -p sse-gateway-server --bin sse-gateway`
# that the Dockerfile and the browser tests run too, so no build undoes another's.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SSE_ROOT"
# The binary embeds admin/dist: build the UI first (a no-op when it is up to date).
bash admin/build.sh
cargo build --release -p sse-gateway-server --bin sse-gateway "$@"
