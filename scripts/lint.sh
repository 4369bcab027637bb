#!/usr/bin/env bash
# The habits that keep the code in shape (a `make test` step, and `make lint`):
#   1. cargo fmt --check over the workspace (rustfmt.toml)
#   2. cargo clippy -D warnings: every native target of the workspace, and the Worker for wasm32
#   3. no import cycle between the top-level modules of the core, the Worker and the native
#      crate (scripts/module-cycles.py)
# Each check runs even when an earlier one failed; exit status 1 if any failed.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SSE_ROOT"

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    echo "lint: installing the rustup component $component"
    rustup component add "$component" >/dev/null 2>&1 || true
  fi
done

failed=0
check() {
  local what="$1"
  shift
  echo "lint: $what: $*"
  if "$@"; then
    echo "lint: $what: ok"
  else
    echo "lint: $what: FAILED"
    failed=$((failed + 1))
  fi
}
check fmt cargo fmt --all --check
check clippy-native cargo clippy -q --workspace --exclude sse-gateway-worker --all-targets -- -D warnings
check clippy-worker cargo clippy -q -p sse-gateway-worker --target wasm32-unknown-unknown -- -D warnings
check module-cycles python3 scripts/module-cycles.py crates/core/src src crates/server/src
passed=$((4 - failed))
echo "lint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
