#!/usr/bin/env bash
# The benchmark suite (docs/benchmarks.md):
#
#   bash benches/run.sh full     make bench: every scenario on every target, plus the core's
#                                criterion micro-benchmarks, then the Cloudflare cost scenario
#                                (benches/cost.sh: 5 minutes of an idle-heavy workload under
#                                wrangler dev, against the kept baseline) (~14-15 min)
#   bash benches/run.sh quick    make bench-quick: a short pass over every target (~70 s)
#   bash benches/run.sh smoke    the make test step: a few seconds against one native node,
#                                fails unless every event arrived in order and drops dropped
#
# Extra arguments go to `sse-loadgen suite`. A selection runs only some targets and scenarios
# (id prefixes) and skips the criterion micro-benchmarks, e.g.
#   bash benches/run.sh full --targets wrangler-dev --scenarios fanout-1k-64B
#   bash benches/run.sh full --targets native,nchan --scenarios fanout-10k-64B
# and --worker-build DIR runs `wrangler dev` on another Worker build than build/ (a saved
# baseline, for back-to-back comparisons; --wrangler-toml FILE with that revision's config),
# --wrangler-port / --inspector-port (or BENCH_WRANGLER_PORT / BENCH_INSPECTOR_PORT) move it off
# 18787 / 19229. A selection skips the cost scenario; BENCH_COST=0 skips it in a full run.
# Results: benchmark-results/<timestamp>/*.json and benchmark-results/latest.md (smoke:
# test-results/logs/loadgen-smoke/, not kept); BENCH_RESULTS=<dir> writes them under <dir>
# instead, leaving benchmark-results/ alone (for trial runs). Server logs: .run/bench/<timestamp>/.
# Loopback only; every server is pinned to CPU 0 and the generator to CPU 1 (BENCH_SERVER_CPUS,
# BENCH_CLIENT_CPUS), started and stopped by PID, and every run is bounded in time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
. "$here/../scripts/env.sh"
cd "$SSE_ROOT"

profile="${1:-quick}"
[ $# -gt 0 ] && shift
case "$profile" in
  full | quick | smoke) ;;
  *)
    echo "usage: bash benches/run.sh full|quick|smoke [--targets a,b] [--scenarios id-prefix,...] [--worker-build DIR] [other sse-loadgen suite options]" >&2
    exit 2
    ;;
esac
server_cpus="${BENCH_SERVER_CPUS:-0}"
client_cpus="${BENCH_CLIENT_CPUS:-1}"
if [ "$(nproc --all)" -lt 2 ]; then client_cpus="${BENCH_CLIENT_CPUS:-0}"; fi
started=$SECONDS
selected=0
for a in "$@"; do
  case "$a" in --targets | --targets=* | --scenarios | --scenarios=*) selected=1 ;; esac
done
results="${BENCH_RESULTS:-benchmark-results}"

# --- tools --------------------------------------------------------------------
if [ "$profile" != smoke ]; then
  bash scripts/setup.sh --with-redis >/dev/null
  if ! command -v nginx >/dev/null 2>&1 || [ ! -f /usr/share/nginx/modules/ngx_nchan_module.so ]; then
    echo "bench: installing nginx + nchan (apt-get install nginx libnginx-mod-nchan)"
    apt=(apt-get)
    if [ "$(id -u)" -ne 0 ]; then apt=(sudo apt-get); fi
    # Debian's package would start nginx on :80 where an init system runs; we start our own.
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q nginx libnginx-mod-nchan >/dev/null
  fi
  # `perf` splits the native 10k fan-out's CPU into user space and kernel (the tick-based split
  # aliases at a steady rate: docs/benchmarks.md, "What is measured"). Without it the suite
  # says it used the tick split.
  if ! command -v perf >/dev/null 2>&1; then
    echo "bench: installing perf (apt-get install linux-perf)"
    apt=(apt-get)
    if [ "$(id -u)" -ne 0 ]; then apt=(sudo apt-get); fi
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q linux-perf >/dev/null || echo "bench: WARNING: linux-perf did not install; the user-space share comes from the tick split"
  fi
fi

# --- builds -------------------------------------------------------------------
echo "bench: building the native server (scripts/build-server.sh) and the load generator"
if ! bash scripts/build-server.sh >/tmp/sse-bench-build.$$.log 2>&1; then
  if [ -x target/release/sse-gateway ]; then
    echo "bench: WARNING: the server did not build (last lines below); measuring the existing target/release/sse-gateway"
    tail -n 15 /tmp/sse-bench-build.$$.log | sed 's/^/    | /'
  else
    cat /tmp/sse-bench-build.$$.log >&2
    rm -f /tmp/sse-bench-build.$$.log
    exit 1
  fi
fi
rm -f /tmp/sse-bench-build.$$.log
cargo build --release -q -p sse-loadgen
loadgen="${CARGO_TARGET_DIR:-target}/release/sse-loadgen"
if [ "$profile" != smoke ] && [ ! -f build/worker/shim.mjs ]; then
  echo "bench: build/ is missing: building the Worker for wrangler dev (scripts/build-worker.sh)"
  bash scripts/build-worker.sh
fi

# --- run ----------------------------------------------------------------------
# Server logs of earlier runs (the drop path logs a line per publish): keep the newest three.
mkdir -p .run/bench
find .run/bench -mindepth 1 -maxdepth 1 -type d -name '20*' | sort | head -n -3 | xargs -r rm -rf
if [ "$profile" = smoke ]; then
  out=test-results/logs/loadgen-smoke
  rm -rf "$out"
  exec "$loadgen" suite --profile smoke --out "$out" --server-cpus "$server_cpus" --client-cpus "$client_cpus" "$@"
fi

stamp="$(date -u +%Y-%m-%dT%H-%M-%SZ)"
out="$results/$stamp"
mkdir -p "$out"
if [ "$profile" = full ] && [ "$selected" = 0 ]; then
  echo "bench: core micro-benchmarks (cargo bench -p sse-core --bench hot_path), pinned to CPU $client_cpus"
  since="$(date +%s)"
  if taskset -c "$client_cpus" cargo bench -q -p sse-core --bench hot_path -- \
    --warm-up-time 0.5 --measurement-time 1 --noplot >"$out/micro.txt" 2>&1; then
    rm -f "$out/micro.txt"
  else
    echo "bench: WARNING: the micro-benchmarks failed; see $out/micro.txt"
  fi
  "$loadgen" micro --criterion "${CARGO_TARGET_DIR:-target}/criterion" --out "$out/micro.json" --since "$since" || true
fi
rc=0
"$loadgen" suite --profile "$profile" --stamp "$stamp" --out "$out" --results "$results" \
  --server-cpus "$server_cpus" --client-cpus "$client_cpus" "$@" || rc=$?
if [ "$profile" = full ] && [ "$selected" = 0 ] && [ "${BENCH_COST:-1}" != 0 ]; then
  # The Cloudflare bill of an idle-heavy workload, this build against the kept baseline; the
  # fanout-1k figures of this run's wrangler-dev target go into its report.
  echo "bench: Cloudflare cost scenario (benches/cost.sh, ${BENCH_COST_MINUTES:-5} min of publishing)"
  fanout=()
  [ -f "$out/wrangler-dev.json" ] && fanout=(--fanout "$out/wrangler-dev.json")
  if BENCH_RESULTS="$results" bash benches/cost.sh "${fanout[@]}"; then
    cp "$results/cloudflare-cost-after.json" "$out/" 2>/dev/null || true
  else
    echo "bench: WARNING: the cost scenario failed (above)"
    rc=1
  fi
fi
echo "bench: $profile run finished in $((SECONDS - started)) s (builds included); results in $out/, summary in $results/latest.md"
exit "$rc"
