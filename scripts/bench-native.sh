#!/usr/bin/env bash
# Benchmarks of the native runtime (loopback only, bounded in time):
#   load      idle RSS per 1,000 SSE connections; fan-out deliveries/s to one topic
#             (IDLE_CONNS=5000 FANOUT_SUBS=10000 FANOUT_EVENTS=100 by default)
#   forward   node-to-node event transport: direct HTTP vs Redis pub/sub (needs redis-server)
# Results: benchmark-results/native-load.{json,md}, benchmark-results/forward-transport.json.
#
#   bash scripts/bench-native.sh [load|forward|all]     (default: all)
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SSE_ROOT"
what="${1:-all}"
bash scripts/build-server.sh
if [ "$what" = load ] || [ "$what" = all ]; then
  cargo bench -p sse-gateway-server --bench load
fi
if [ "$what" = forward ] || [ "$what" = all ]; then
  bash scripts/setup.sh --with-redis >/dev/null
  cargo bench -p sse-gateway-server --bench forward
fi
