#!/usr/bin/env bash
# Soak test of one native node: connection churn + publishing on many topics for SOAK_MINUTES
# (default 20); fails if RSS / fds / topics / connections grow without bound or a topic
# outlives its connections. See tests/reliability/soak.mjs; results in test-results/soak.{json,md}.
set -uo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SSE_ROOT"
[ -x target/release/sse-gateway ] || [ -x target/debug/sse-gateway ] || cargo build -p sse-gateway-server || exit 1
SOAK_MINUTES="${SOAK_MINUTES:-20}" exec node tests/reliability/soak.mjs
