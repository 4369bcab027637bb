#!/usr/bin/env bash
# Build (release) and run one native gateway node in the foreground, single node, in memory:
#   http://127.0.0.1:8080   API key dev-key-change-me   (Ctrl-C stops it gracefully)
#
# Every setting can be overridden from the environment (docs/configuration.md), e.g.
#   LISTEN_ADDR=0.0.0.0:9000 HEARTBEAT_INTERVAL_MS=1000 bash scripts/server.sh
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SSE_ROOT"
bash scripts/build-server.sh
export LISTEN_ADDR="${LISTEN_ADDR:-127.0.0.1:8080}"
export API_KEYS="${API_KEYS:-dev-key-change-me}"
export NODE_ID="${NODE_ID:-local}"
echo "sse-gateway: http://$LISTEN_ADDR (admin UI: http://$LISTEN_ADDR/admin, API key: $API_KEYS)"
exec target/release/sse-gateway
