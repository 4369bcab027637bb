#!/usr/bin/env bash
# Build the Worker (Rust -> wasm + JS shim in build/) with worker-build.
# This is wrangler's [build] command, so `wrangler dev` / `wrangler deploy` run it.
# First builds the admin UI into admin/dist when admin/ changed (admin/build.sh).
#
#   WORKER_BUILD_FAST=1   debug build (--dev): no wasm-opt, faster, bigger wasm
#   WORKER_BUILD_SKIP=1   reuse an existing build/ as is (scripts/test.sh sets it
#                         after its own build step, so wrangler does not rebuild)
# Extra arguments are passed on to worker-build.
set -euo pipefail

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SSE_ROOT"

# The admin UI (admin/dist, served from the ASSETS binding): rebuilt only when admin/ changed.
bash admin/build.sh

if [ "${WORKER_BUILD_SKIP:-0}" = 1 ] && [ -f build/worker/shim.mjs ] && [ -f build/index.js ]; then
  echo "build-worker: WORKER_BUILD_SKIP=1, using the existing build/"
  exit 0
fi

for tool in worker-build "$WASM_BINDGEN_BIN" "$ESBUILD_BIN"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build-worker: $tool not found; run: bash scripts/setup.sh (or make setup)" >&2
    exit 1
  fi
done

if [ "${WORKER_BUILD_FAST:-0}" = 1 ]; then
  profile=--dev
else
  profile=--release
  if [ ! -e "$WASM_OPT_BIN" ]; then
    echo "build-worker: $WASM_OPT_BIN not found; run: bash scripts/setup.sh (or make setup)" >&2
    exit 1
  fi
fi

echo "build-worker: worker-build $profile $*"
exec worker-build "$profile" "$@"
