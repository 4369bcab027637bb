#!/usr/bin/env bash
# The Cloudflare cost scenario (docs/benchmarks.md, "Cloudflare bill: hibernation"): an
# idle-heavy workload (500 topics x 1 SSE subscriber + 1 topic x 500, one event per topic per
# minute) under `wrangler dev`, turned into a monthly bill with benches/prices/cloudflare.json.
#
#   bash benches/cost.sh                  measure the current Worker build (build/, built when
#                                         missing) and write benchmark-results/cloudflare-cost.json
#                                         and .md against the kept baseline (make bench-cost; also
#                                         the last step of make bench)
#   bash benches/cost.sh baseline [REV]   build REV (default 555a832, the design before hibernation)
#                                         in a git worktree and measure it once: rewrites the kept
#                                         baseline benchmark-results/cloudflare-cost-baseline.json
#
# Extra arguments go to `sse-loadgen cost` (e.g. --minutes 0.5 for a smoke, --fanout
# <suite result wrangler-dev.json>,... to add fanout-1k figures). Environment:
#   BENCH_COST_MINUTES   length of the publish schedule (default 5; the published figures are 5)
#   BENCH_RESULTS        where the results go (default benchmark-results)
#   BENCH_COST_WORK      scratch: the baseline's worktree and target dir, logs (default .run/cost)
#   BENCH_WRANGLER_PORT / BENCH_INSPECTOR_PORT   wrangler dev's ports (default 18787 / 19229)
#   BENCH_SERVER_CPUS / BENCH_CLIENT_CPUS        pinning (default CPU 0 / CPU 1)
# Loopback only; wrangler dev is started and stopped by PID; every run is bounded in time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
. "$here/../scripts/env.sh"
cd "$SSE_ROOT"

mode=current
if [ "${1:-}" = baseline ]; then
  mode=baseline
  shift
  rev=555a832
  if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
    rev="$1"
    shift
  fi
fi
results="${BENCH_RESULTS:-benchmark-results}"
work="${BENCH_COST_WORK:-.run/cost}"
minutes="${BENCH_COST_MINUTES:-5}"
server_cpus="${BENCH_SERVER_CPUS:-0}"
client_cpus="${BENCH_CLIENT_CPUS:-1}"
if [ "$(nproc --all)" -lt 2 ]; then client_cpus="${BENCH_CLIENT_CPUS:-0}"; fi
mkdir -p "$results" "$work"
work="$(cd "$work" && pwd)"
stamp="$(date -u +%Y-%m-%dT%H-%M-%SZ)"

cargo build --release -q -p sse-loadgen
loadgen="${CARGO_TARGET_DIR:-target}/release/sse-loadgen"
common=(--minutes "$minutes" --server-cpus "$server_cpus" --client-cpus "$client_cpus" --prices benches/prices/cloudflare.json)

if [ "$mode" = baseline ]; then
  commit="$(git rev-parse --short "$rev^{commit}")"
  wt="$work/rev-$commit"
  if [ ! -d "$wt" ]; then
    echo "cost: git worktree $wt at $commit"
    git worktree add --detach "$wt" "$commit" >/dev/null
  fi
  # The worktree uses this checkout's npm installs; admin/node_modules is linked entry by entry
  # so that the admin build's stamp file stays the worktree's own.
  [ -e "$wt/node_modules" ] || ln -s "$SSE_ROOT/node_modules" "$wt/node_modules"
  if [ -d admin/node_modules ] && [ ! -d "$wt/admin/node_modules" ]; then
    mkdir -p "$wt/admin/node_modules"
    for e in admin/node_modules/* admin/node_modules/.[!.]*; do
      case "$(basename "$e")" in .admin-build-stamp*) continue ;; esac
      ln -s "$SSE_ROOT/$e" "$wt/admin/node_modules/$(basename "$e")"
    done
  fi
  echo "cost: building the Worker of $commit (its own target dir: $work/target-$commit)"
  (cd "$wt" && CARGO_TARGET_DIR="$work/target-$commit" timeout 1800 bash scripts/build-worker.sh >"$work/build-$commit.log" 2>&1) || {
    tail -n 20 "$work/build-$commit.log" >&2
    exit 1
  }
  exec "$loadgen" cost --design before --worker-build "$wt/build" --commit "$commit" \
    --run-dir "$work/run-$stamp" --out "$results/cloudflare-cost-baseline.json" "${common[@]}" "$@"
fi

if [ ! -f build/worker/shim.mjs ]; then
  echo "cost: build/ is missing: building the Worker (scripts/build-worker.sh)"
  bash scripts/build-worker.sh
fi
commit="$(git rev-parse --short HEAD)"
if [ -n "$(git status --porcelain --untracked-files=no -- src crates/core Cargo.lock wrangler.toml)" ]; then
  commit="$commit+uncommitted"
fi
if [ ! -f "$results/cloudflare-cost-baseline.json" ]; then
  echo "cost: $results/cloudflare-cost-baseline.json is missing (bash benches/cost.sh baseline makes it); measuring without a comparison"
  exec "$loadgen" cost --design after --worker-build build --commit "$commit" \
    --run-dir "$work/run-$stamp" --out "$results/cloudflare-cost-after.json" "${common[@]}" "$@"
fi
exec "$loadgen" cost --design after --worker-build build --commit "$commit" \
  --run-dir "$work/run-$stamp" --out "$results/cloudflare-cost-after.json" \
  --baseline "$results/cloudflare-cost-baseline.json" --report-dir "$results" "${common[@]}" "$@"
