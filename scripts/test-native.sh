#!/usr/bin/env bash
# Tests of the native runtime, in three parts (scripts/test.sh runs each as a step):
#
#   bash scripts/test-native.sh unit      cargo tests of crates/server (unit, Redis adapter, one
#                                         node in process) and the embedding example
#   bash scripts/test-native.sh cluster   crates/server/tests/cluster.rs: three real nodes, real Redis
#   bash scripts/test-native.sh e2e       tests/e2e against each node of a three-node cluster,
#                                         then against one node (127.0.0.1:8080)
#
# This installs redis-server if missing (scripts/setup.sh --with-redis) and, for e2e, builds the
# release binary; tests/native/run.mjs does the rest (what each part runs is described there).
# Each part writes test-results/native-<part>.json and .md and ends with "N passed, N failed".
set -uo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SSE_ROOT"

part="${1:-}"
case "$part" in
  unit | cluster | e2e) ;;
  *)
    echo "usage: $0 unit|cluster|e2e" >&2
    exit 2
    ;;
esac
mkdir -p test-results/logs
bash scripts/setup.sh --with-redis >/dev/null || {
  echo "redis-server is missing and could not be installed (bash scripts/setup.sh --with-redis)" >&2
  exit 1
}
if [ "$part" = e2e ]; then bash scripts/build-server.sh || exit 1; fi
exec node tests/native/run.mjs "$part"
