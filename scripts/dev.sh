#!/usr/bin/env bash
# Set everything up, then run the gateway locally with wrangler dev on
# http://127.0.0.1:8787 (foreground; Ctrl-C stops it). wrangler runs the
# [build] command (scripts/build-worker.sh) and rebuilds when src/ changes.
#
#   PORT=9000 bash scripts/dev.sh          other port
#   WORKER_BUILD_FAST=1 bash scripts/dev.sh debug build, quicker rebuilds
# Extra arguments are passed on to `wrangler dev`.
set -euo pipefail

here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/setup.sh"

# shellcheck source=scripts/env.sh
. "$here/env.sh"
cd "$SSE_ROOT"

port="${PORT:-8787}"
# The registry keeps its listings in Durable Object storage, but no connection outlives a
# restart of wrangler dev, and the topic objects that held them cannot report them gone: start
# with an empty registry (retained events and everything else in .wrangler/state are kept).
rm -rf .wrangler/state/v3/do/sse-gateway-RegistryObject
echo "dev: wrangler dev on http://127.0.0.1:$port (dev API key in .dev.vars; Ctrl-C to stop)"
exec wrangler dev --ip 127.0.0.1 --port "$port" "$@"
