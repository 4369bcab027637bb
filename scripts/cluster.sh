#!/usr/bin/env bash
# A local native cluster: redis-server on 127.0.0.1:6390 (no persistence) and three gateway
# nodes, node-1..node-3 on 127.0.0.1:8081..8083 (API key dev-key-change-me). Logs and PIDs go
# to .run/cluster/. Returns once all three answer /healthz; stop with `make cluster-stop`.
# The processes are started by tests/native/cluster.mjs (tests/lib/gateways.mjs).
#
#   bash scripts/cluster.sh          start (installs redis-server if missing, builds the release binary first)
#   bash scripts/cluster.sh stop     stop what the PID files name
#   bash scripts/cluster.sh status   which recorded processes are alive
#
# Settings for the nodes come from the environment as usual (HEARTBEAT_INTERVAL_MS, ...).
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SSE_ROOT"

case "${1:-start}" in
  start)
    bash scripts/setup.sh --with-redis
    bash scripts/build-server.sh
    exec node tests/native/cluster.mjs start
    ;;
  stop | status) exec node tests/native/cluster.mjs "$1" ;;
  *)
    echo "usage: $0 [start|stop|status]" >&2
    exit 2
    ;;
esac
