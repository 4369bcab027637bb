#!/usr/bin/env bash
# Set everything up and run every test. Steps:
#   setup   scripts/setup.sh
#   unit    cargo test -p sse-core (unit + property tests)
#   lint    scripts/lint.sh: cargo fmt --check, cargo clippy -D warnings (native targets and the
#           wasm Worker), no import cycle between modules (scripts/module-cycles.py)
#   fuzz    scripts/fuzz.sh: each fuzz target of crates/core for FUZZ_SECONDS (default 60)
#   build   scripts/build-worker.sh (release wasm)
#   bundle  wrangler deploy --dry-run --outdir dist (+ wasm size, raw and gzip -9)
#   e2e     node tests/e2e/run.mjs (starts wrangler dev itself), then its limits file on a
#           wrangler dev started with the limits configured, its replay file on one
#           started with RETENTION, and its private_* files on one started with private
#           topics, subscriber-token secrets and scoped API keys
#   examples tests/examples/run.mjs: every example subscriber x publisher, on
#           wrangler dev and on the native cluster (scripts/cluster.sh)
#   browser tests/browser/run.mjs: the admin UI in Chromium, on wrangler dev and
#           on the native server (built with the current admin/dist embedded)
#   native-unit     scripts/test-native.sh unit: cargo test of crates/server (unit,
#           the Redis adapter against a real redis-server, one node in process) + the
#           embedding example
#   native-cluster  scripts/test-native.sh cluster: three real nodes + real Redis
#           (cross-node fan-out, drop path, SIGKILL, Redis restart, graceful shutdown)
#   native-e2e      scripts/test-native.sh e2e: tests/e2e against one native node,
#           then against each node of scripts/cluster.sh
#   slow-consumer   tests/reliability/slow-consumer.mjs: one native node, 100 subscribers
#           + 1 paused socket; fails only if the slow one is not evicted (stream ended,
#           unlisted) or another subscriber misses an event (latency is only reported)
#   soak    scripts/soak.sh with SOAK_MINUTES=1 (~65 s): connection churn + publishing on
#           one native node; RSS / fds / topics / connections must not grow, no topic may
#           outlive its connections (`make soak` runs the 20-minute version)
#   loadgen-smoke   benches/run.sh smoke: a few seconds of the benchmark load generator
#           (benches/loadgen) against one native node: all delivered, in order, drops dropped
#   docs    tests/docs/run.mjs: the shell blocks of README.md and docs/*.md against a
#           wrangler dev and a native node it starts itself, their shown outputs, and every
#           relative link (conventions in tests/docs/README.md)
# All steps run even when one fails. Results: test-results/summary.json and
# test-results/summary.md; step logs in test-results/logs/. The last line
# printed is "N passed, N failed" (N = steps); exit status 1 if any failed.
#
#   TEST_VERBOSE=1   also stream step output to the terminal
#   FUZZ_SECONDS=N   seconds per fuzz target in the fuzz step (default 60)
#   E2E_TIMEOUT=N    seconds before the e2e step is killed (default 1800)
#   EXAMPLES_TIMEOUT=N  seconds before each examples run is killed (default 900)
#   BROWSER_TIMEOUT=N  seconds before each browser-test run is killed (default 900)
#   DOCS_TIMEOUT=N   seconds before the docs step is killed (default 900)
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
. "$here/env.sh"
cd "$SSE_ROOT"

results=test-results
logs="$results/logs"
mkdir -p "$logs"

steps_total=16
step_no=0
# One JSON object per step, in run order (tests/lib/results.mjs turns them into the summary).
steps_file="$logs/steps.jsonl"
: >"$steps_file"

# Per-step facts set by the step functions (reset before each step).
reset_facts() {
  tests_passed=""
  tests_failed=""
  wasm_bytes=""
  wasm_gzip_bytes=""
  note=""
}

json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\t'/\\t}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\r'/\\r}"
  printf '"%s"' "$s"
}

# run_step NAME "COMMAND AS SHOWN" FUNCTION
run_step() {
  local name="$1" shown="$2" fn="$3"
  local log="$logs/$name.log" rc start secs status
  step_no=$((step_no + 1))
  reset_facts
  echo "==> [$step_no/$steps_total] $name: $shown"
  start=$SECONDS
  if [ "${TEST_VERBOSE:-0}" = 1 ] || [ "$name" = setup ]; then
    ( set -e; "$fn" ) 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  else
    ( set -e; "$fn" ) >"$log" 2>&1
    rc=$?
  fi
  secs=$((SECONDS - start))
  "after_$fn" "$log" "$rc" || true
  if [ "$rc" -eq 0 ]; then
    status=passed
  else
    status=failed
    [ -n "$note" ] || note="exit code $rc"
  fi

  local detail=""
  if [ -n "$tests_passed" ]; then
    detail="$tests_passed passed, ${tests_failed:-0} failed"
  fi
  if [ -n "$wasm_bytes" ]; then
    detail="${detail:+$detail; }wasm $wasm_bytes bytes, $wasm_gzip_bytes gzip -9"
  fi
  if [ "$status" = failed ] || [ -z "$detail" ]; then
    [ -n "$note" ] && detail="${detail:+$detail; }$note"
  fi
  echo "    $status in ${secs}s${detail:+ ($detail)}; log: $log"
  if [ "$status" = failed ] && [ "${TEST_VERBOSE:-0}" != 1 ] && [ "$name" != setup ]; then
    echo "    --- last lines of $log ---"
    tail -n 40 "$log" | sed 's/^/    | /'
  fi

  # Stable key order; no timestamps or durations, so reruns with the same
  # outcome give the same entries.
  local j
  j="{\"name\": $(json_str "$name"), \"status\": \"$status\", \"command\": $(json_str "$shown")"
  j+=", \"exit_code\": $rc"
  if [ -n "$tests_passed" ]; then
    j+=", \"tests_passed\": $tests_passed, \"tests_failed\": ${tests_failed:-0}"
  fi
  if [ -n "$wasm_bytes" ]; then
    j+=", \"wasm_bytes\": $wasm_bytes, \"wasm_gzip_bytes\": $wasm_gzip_bytes"
  fi
  [ -n "$note" ] && j+=", \"note\": $(json_str "$note")"
  j+=", \"log\": $(json_str "$log"), \"detail\": $(json_str "$detail")}"
  echo "$j" >>"$steps_file"
}

# Sum cargo's "test result: ok. N passed; M failed; ..." lines.
count_cargo_tests() {
  local log="$1"
  read -r tests_passed tests_failed < <(
    sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$log" |
      awk '{ p += $1; f += $2; n++ } END { if (n) print p, f }'
  ) || true
}

# The e2e runner's own totals: a "N passed, M failed" line, or node:test's
# "# pass N" / "ℹ pass N" lines; the last one printed wins.
count_e2e_tests() {
  local log="$1" line
  line="$(sed -n 's/.*\b\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\1 \2/p' "$log" | tail -n 1)"
  if [ -z "$line" ]; then
    local p f
    p="$(sed -n 's/^\(#\|ℹ\) pass \([0-9][0-9]*\)$/\2/p' "$log" | tail -n 1)"
    f="$(sed -n 's/^\(#\|ℹ\) fail \([0-9][0-9]*\)$/\2/p' "$log" | tail -n 1)"
    [ -n "$p" ] && line="$p ${f:-0}"
  fi
  if [ -n "$line" ]; then
    read -r tests_passed tests_failed <<<"$line"
  fi
}

build_ok=0

step_setup() { bash scripts/setup.sh; }
after_step_setup() { :; }

step_unit() { cargo test -p sse-core; }
after_step_unit() { count_cargo_tests "$1"; }

step_lint() { bash scripts/lint.sh; }
after_step_lint() {
  read -r tests_passed tests_failed < <(sed -n 's/^lint: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' "$1" | tail -n 1) || true
}

# Bounded fuzzing of the core; report in test-results/fuzz.md / fuzz.json.
step_fuzz() {
  bash scripts/setup.sh --with-fuzz
  bash scripts/fuzz.sh
}
after_step_fuzz() {
  read -r tests_passed tests_failed < <(sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' "$1" | tail -n 1) || true
  if grep -q '^CRASH: ' "$1"; then note="$(grep -m1 '^CRASH: ' "$1" | cut -c8-)"; fi
}

step_build() { bash scripts/build-worker.sh; }
after_step_build() {
  if [ "$2" -eq 0 ]; then build_ok=1; fi
}

wasm_file() {
  local f
  for f in build/worker/*.wasm build/*.wasm; do
    if [ -f "$f" ]; then
      echo "$f"
      return 0
    fi
  done
  return 1
}

step_bundle() {
  rm -rf dist
  # The build step already built build/; don't let wrangler rebuild it.
  if [ "$build_ok" = 1 ]; then export WORKER_BUILD_SKIP=1; fi
  wrangler deploy --dry-run --outdir dist
  local w
  w="$(wasm_file)" || { echo "no .wasm under build/ or build/worker/" >&2; return 1; }
  echo "wasm: $w $(wc -c <"$w") bytes, gzip -9: $(gzip -9 -c "$w" | wc -c) bytes"
}
after_step_bundle() {
  local w
  if w="$(wasm_file)"; then
    wasm_bytes="$(wc -c <"$w" | tr -d ' ')"
    wasm_gzip_bytes="$(gzip -9 -c "$w" | wc -c | tr -d ' ')"
  fi
}

step_e2e() {
  if [ ! -f tests/e2e/run.mjs ]; then
    echo "tests/e2e/run.mjs not found" >&2
    return 1
  fi
  if [ "$build_ok" = 1 ]; then export WORKER_BUILD_SKIP=1; fi
  local rc=0
  timeout --kill-after=15 "${E2E_TIMEOUT:-1800}" node tests/e2e/run.mjs || rc=1
  # The limits, on a wrangler dev started with them configured (tests/e2e/limits_conn_rate).
  timeout --kill-after=15 600 node tests/e2e/run.mjs --files limits_conn_rate --label wrangler-dev-limits \
    --var PUBLISH_RATE_PER_KEY:5 --var PUBLISH_BURST_PER_KEY:5 --var MAX_CONNECTIONS_PER_TOPIC:5 || rc=1
  # A subscriber that stops reading, on a wrangler dev with a small queue (tests/e2e/slow_consumer).
  timeout --kill-after=15 600 node tests/e2e/run.mjs --files slow_consumer --label wrangler-dev-slow --var QUEUE_CAPACITY:16 || rc=1
  # Retention and resume, on a wrangler dev started with RETENTION (tests/e2e/replay; resume
  # after an eviction in tests/e2e/hibernation).
  timeout --kill-after=15 600 node tests/e2e/run.mjs --files replay,hibernation --label wrangler-dev-replay \
    --var 'RETENTION:e2e-rp-*=5/600s,e2e-rpb-*=2000/600s' || rc=1
  # The registry spread over four objects (REGISTRY_SHARDS): the Worker merges their pages.
  timeout --kill-after=15 600 node tests/e2e/run.mjs --files admin,pagination,lifecycle --label wrangler-dev-shards \
    --var REGISTRY_SHARDS:4 || rc=1
  # Private topics, subscriber tokens and scoped API keys (tests/e2e/private_*; the settings are
  # those of tests/e2e/lib/token_cases.mjs). wrangler keeps what follows the first `:` of a
  # --var whole, so the scoped keys' own `:` and `|` need only the shell's quotes.
  timeout --kill-after=15 600 node tests/e2e/run.mjs --files private_topics,private_listing,private_cors --label wrangler-dev-private \
    --var 'PRIVATE_TOPICS:e2e-priv-*' \
    --var 'SUBSCRIBER_TOKEN_SECRETS:e2e-subscriber-secret-old-0123456789abcdef,e2e-subscriber-secret-new-0123456789abcdef' \
    --var 'SCOPED_API_KEYS:e2e-scoped-publish-0123456789:publish:e2e-priv-*|e2e-scope-*,e2e-scoped-admin-0123456789:admin:e2e-scope-*' \
    --var 'CREDENTIALED_ORIGINS:http://app.e2e.test' || rc=1
  # A hot topic over shard objects (TOPIC_SHARD_SIZE=50, 500 subscribers).
  timeout --kill-after=15 600 node tests/e2e/run.mjs --files sharding --label wrangler-dev-topic-shards \
    --var TOPIC_SHARD_SIZE:50 || rc=1
  return "$rc"
}
after_step_e2e() {
  # Sum the runs' "N passed, N failed" lines.
  read -r tests_passed tests_failed < <(
    sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*$/\1 \2/p' "$1" |
      awk '{ p += $1; f += $2; n++ } END { if (n) print p, f }'
  ) || true
  if [ "$2" -eq 124 ] || [ "$2" -eq 137 ]; then note="timed out after ${E2E_TIMEOUT:-1800}s"; fi
  if [ ! -f tests/e2e/run.mjs ]; then note="tests/e2e/run.mjs not found"; fi
}

# The examples matrix: its checker's unit tests, then wrangler dev, then the
# native cluster (which fails loudly while scripts/cluster.sh is missing).
step_examples() {
  bash scripts/setup.sh --with-examples
  if [ "$build_ok" = 1 ]; then export WORKER_BUILD_SKIP=1; fi
  local rc=0
  node --test tests/examples/check.test.mjs || rc=1
  timeout --kill-after=15 "${EXAMPLES_TIMEOUT:-900}" node tests/examples/run.mjs --target wrangler-dev || rc=1
  timeout --kill-after=15 "${EXAMPLES_TIMEOUT:-900}" node tests/examples/run.mjs --target native-cluster || rc=1
  # At-least-once under cut connections (RETENTION + Last-Event-ID), both runtimes.
  timeout --kill-after=15 "${EXAMPLES_TIMEOUT:-900}" node tests/examples/run.mjs --chaos --target wrangler-dev || rc=1
  timeout --kill-after=15 "${EXAMPLES_TIMEOUT:-900}" node tests/examples/run.mjs --chaos --target native-cluster || rc=1
  return "$rc"
}
after_step_examples() {
  # Sum the runs' "N passed, N failed" lines (matrix cells + publisher checks).
  read -r tests_passed tests_failed < <(
    sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' "$1" |
      awk '{ p += $1; f += $2; n++ } END { if (n) print p, f }'
  ) || true
  if grep -q '^SETUP FAILED: ' "$1"; then note="$(grep -m1 '^SETUP FAILED: ' "$1" | cut -c15-)"; fi
}

# The admin UI in Chromium (tests/browser): wrangler dev, then the native server, built
# here so that it embeds the current admin/dist (fails loudly if it cannot be built or run).
step_browser() {
  bash scripts/setup.sh --with-chromium
  if [ "$build_ok" = 1 ]; then export WORKER_BUILD_SKIP=1; fi
  local rc=0
  timeout --kill-after=15 "${BROWSER_TIMEOUT:-900}" node tests/browser/run.mjs --target wrangler-dev || rc=1
  timeout --kill-after=15 "${BROWSER_TIMEOUT:-900}" node tests/browser/run.mjs --target native --build-native || rc=1
  return "$rc"
}
after_step_browser() {
  # Sum the runs' "N passed, N failed" lines.
  read -r tests_passed tests_failed < <(
    sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*$/\1 \2/p' "$1" |
      awk '{ p += $1; f += $2; n++ } END { if (n) print p, f }'
  ) || true
  if grep -q '^SETUP FAILED: ' "$1"; then note="$(grep -m1 '^SETUP FAILED: ' "$1" | cut -c15-)"; fi
}


# The native runtime (crates/server): each part writes test-results/native-<part>.{json,md}
# and ends with its own "N passed, N failed" line (the last one in the log is the total).
step_native_unit() { bash scripts/test-native.sh unit; }
after_step_native_unit() { count_e2e_tests "$1"; }
step_native_cluster() { bash scripts/test-native.sh cluster; }
after_step_native_cluster() { count_e2e_tests "$1"; }
step_native_e2e() { bash scripts/test-native.sh e2e; }
after_step_native_e2e() { count_e2e_tests "$1"; }
step_slow_consumer() { cargo build -p sse-gateway-server && node tests/reliability/slow-consumer.mjs; }
after_step_slow_consumer() { count_e2e_tests "$1"; }
step_soak() { SOAK_MINUTES=1 bash scripts/soak.sh; }
after_step_soak() { count_e2e_tests "$1"; }
step_loadgen_smoke() { timeout --kill-after=15 600 bash benches/run.sh smoke; }
after_step_loadgen_smoke() { count_e2e_tests "$1"; }
# The commands of the docs, run against a live gateway (tests/docs/README.md).
step_docs() {
  if [ "$build_ok" = 1 ]; then export WORKER_BUILD_SKIP=1; fi
  timeout --kill-after=15 "${DOCS_TIMEOUT:-900}" node tests/docs/run.mjs
}
after_step_docs() {
  count_e2e_tests "$1"
  if [ "$2" -eq 124 ] || [ "$2" -eq 137 ]; then note="timed out after ${DOCS_TIMEOUT:-900}s"; fi
}
run_step setup "bash scripts/setup.sh" step_setup
run_step unit "cargo test -p sse-core" step_unit
run_step lint "bash scripts/lint.sh" step_lint
run_step fuzz "bash scripts/fuzz.sh (FUZZ_SECONDS=${FUZZ_SECONDS:-60} per target)" step_fuzz
run_step build "bash scripts/build-worker.sh" step_build
run_step bundle "wrangler deploy --dry-run --outdir dist" step_bundle
run_step e2e "node tests/e2e/run.mjs" step_e2e
run_step examples "node tests/examples/run.mjs (wrangler-dev, native-cluster; --chaos on both)" step_examples
run_step browser "node tests/browser/run.mjs (wrangler-dev, native)" step_browser
run_step native-unit "bash scripts/test-native.sh unit" step_native_unit
run_step native-cluster "bash scripts/test-native.sh cluster" step_native_cluster
run_step native-e2e "bash scripts/test-native.sh e2e" step_native_e2e
run_step slow-consumer "node tests/reliability/slow-consumer.mjs" step_slow_consumer
run_step soak "SOAK_MINUTES=1 bash scripts/soak.sh" step_soak
run_step loadgen-smoke "bash benches/run.sh smoke" step_loadgen_smoke
run_step docs "node tests/docs/run.mjs" step_docs

# --- summary -----------------------------------------------------------------
# test-results/summary.{json,md}; prints the "N passed, M failed" line; fails when a step failed.
node tests/lib/results.mjs summary "$steps_file"
