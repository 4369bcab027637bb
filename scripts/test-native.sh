#!/usr/bin/env bash
# Tests of the native runtime, in three parts (scripts/test.sh runs each as a step):
#
#   bash scripts/test-native.sh unit      cargo tests of crates/server: unit tests, the Redis
#                                         adapter against a real redis-server, one node in
#                                         process (WebSocket, eviction, 408), the embedding example
#   bash scripts/test-native.sh cluster   crates/server/tests/cluster.rs: three real nodes and a
#                                         real Redis (fan-out across nodes, drop path, SIGKILL,
#                                         Redis restart, graceful shutdown, retention and
#                                         resume across nodes, the at-least-once chaos test)
#   bash scripts/test-native.sh e2e       tests/e2e against each node of `scripts/cluster.sh`
#                                         (8081-8083, started with RETENTION; replay.test.mjs on
#                                         8081), then against one node (127.0.0.1:8080)
#
# Each part installs redis-server if missing (scripts/setup.sh --with-redis), writes
# test-results/native-<part>.json and .md, and ends with "N passed, N failed".
set -uo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SSE_ROOT"

part="${1:-}"
results=test-results
logs="$results/logs"
mkdir -p "$logs"

need_redis() {
  bash scripts/setup.sh --with-redis >/dev/null || {
    echo "redis-server is missing and could not be installed (bash scripts/setup.sh --with-redis)" >&2
    return 1
  }
}

# report NAME LOG...: test-results/native-NAME.{json,md} from cargo test logs ("test x ... ok").
cargo_report() {
  local name="$1"
  shift
  node - "$name" "$@" <<'EOF'
const fs = require('fs');
const [name, ...logs] = process.argv.slice(2);
const tests = [];
for (const log of logs) {
  const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
  for (const m of text.matchAll(/^test (\S+) \.\.\. (ok|FAILED|ignored)$/gm)) {
    tests.push({ name: m[1], status: m[2] === 'ok' ? 'passed' : m[2] === 'FAILED' ? 'failed' : 'skipped' });
  }
}
tests.sort((a, b) => a.name.localeCompare(b.name));
const count = (s) => tests.filter((t) => t.status === s).length;
const totals = { passed: count('passed'), failed: count('failed'), skipped: count('skipped') };
fs.writeFileSync(`test-results/native-${name}.json`, JSON.stringify({ suite: `native-${name}`, totals, tests }, null, 2) + '\n');
const md = [`# Native runtime: ${name} tests`, '', `**${totals.passed} passed, ${totals.failed} failed**`, '', '| test | result |', '|---|---|',
  ...tests.map((t) => `| \`${t.name}\` | ${t.status} |`), ''];
fs.writeFileSync(`test-results/native-${name}.md`, md.join('\n'));
console.log(`${totals.passed} passed, ${totals.failed} failed`);
EOF
}

part_unit() {
  need_redis || return 1
  local rc=0
  cargo test -p sse-gateway-server --lib --bins --test single_node 2>&1 | tee "$logs/native-unit-server.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  cargo test -p sse-gateway-embedded-example 2>&1 | tee "$logs/native-unit-example.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  cargo_report unit "$logs/native-unit-server.log" "$logs/native-unit-example.log"
  return "$rc"
}

part_cluster() {
  need_redis || return 1
  local rc=0
  cargo test -p sse-gateway-server --test cluster -- --nocapture 2>&1 | tee "$logs/native-cluster-tests.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  cargo_report cluster "$logs/native-cluster-tests.log"
  faults_report "$logs/native-cluster-tests.log"
  return "$rc"
}

# faults_report LOG: test-results/faults.{json,md} from the "FAULT-FIGURE name ms what" lines the
# cluster tests print (durations already rounded to 100 ms; no timestamps, sorted by name).
faults_report() {
  node - "$1" <<'EOF'
const fs = require('fs');
const text = fs.existsSync(process.argv[2]) ? fs.readFileSync(process.argv[2], 'utf8') : '';
const figures = {};
for (const m of text.matchAll(/^FAULT-FIGURE (\S+) (\d+) (.*)$/gm)) figures[m[1]] = { ms: Number(m[2]), what: m[3] };
const names = Object.keys(figures).sort();
if (names.length === 0) { console.log('no fault figures in the log: test-results/faults.* left as they were'); process.exit(0); }
const out = { suite: 'faults-native-cluster', source: 'crates/server/tests/cluster.rs (bash scripts/test-native.sh cluster)',
  settings: { NODE_TTL_MS: 3000, NODE_REFRESH_MS: 500, HEARTBEAT_INTERVAL_MS: 1000, publish_probe_timeout_ms: 1000 },
  figures: Object.fromEntries(names.map((n) => [n, figures[n]])) };
fs.writeFileSync('test-results/faults.json', JSON.stringify(out, null, 2) + '\n');
const md = ['# Faults: native cluster (measured)', '',
  'From `crates/server/tests/cluster.rs` (real redis-server, real nodes, debug build, 2 shared cores);',
  'NODE_TTL_MS 3000, NODE_REFRESH_MS 500, HEARTBEAT_INTERVAL_MS 1000; rounded to 100 ms.', '',
  '| figure | ms | what |', '|---|---:|---|', ...names.map((n) => `| \`${n}\` | ${figures[n].ms} | ${figures[n].what} |`), ''];
fs.writeFileSync('test-results/faults.md', md.join('\n'));
console.log(`faults: ${names.length} figures written`);
EOF
}

single_pid=""
stop_single() {
  if [ -n "$single_pid" ] && kill -0 "$single_pid" 2>/dev/null; then
    kill -TERM "$single_pid" 2>/dev/null
    wait "$single_pid" 2>/dev/null
  fi
  single_pid=""
}

# run_e2e LABEL BASE_URL: one run of the suite; its results are kept as e2e-LABEL.{json,md}.
e2e_runs=()
run_e2e() {
  local label="$1" base="$2" rc
  shift 2
  echo "==> e2e $label against $base $*"
  timeout --kill-after=15 "${E2E_TIMEOUT:-900}" \
    node tests/e2e/run.mjs --target native --base-url "$base" --heartbeat-ms 1000 --label "$label" "$@"
  rc=$?
  e2e_runs+=("$label")
  return "$rc"
}

part_e2e() {
  need_redis || return 1
  bash scripts/build-server.sh || return 1
  local rc=0
  trap 'stop_single; bash scripts/cluster.sh stop >/dev/null 2>&1' EXIT

  # Retention for tests/e2e/replay.test.mjs (only topics e2e-rp-* / e2e-rpb-*, which no other
  # test uses): on the cluster (Redis Streams) and on a node of its own (in-memory rings).
  local ret='e2e-rp-*=5/600s,e2e-rpb-*=2000/600s'

  # The cluster first, then one node (results: e2e-<label>.*, badinput-<label>.*).
  if HEARTBEAT_INTERVAL_MS=1000 RETENTION="$ret" bash scripts/cluster.sh start; then
    local n port
    for n in 1 2 3; do
      port=$((8080 + n))
      run_e2e "native-cluster-node-$n" "http://127.0.0.1:$port" || rc=1
    done
    run_e2e native-cluster-replay "http://127.0.0.1:8081" --files replay --var "RETENTION:$ret" || rc=1
  else
    echo "scripts/cluster.sh failed to start the cluster" >&2
    rc=1
  fi
  bash scripts/cluster.sh stop

  mkdir -p .run/native
  if curl -sf http://127.0.0.1:8080/healthz >/dev/null 2>&1; then
    echo "127.0.0.1:8080 is already in use: stop what listens there (make server?) and rerun" >&2
    rc=1
  else
    LISTEN_ADDR=127.0.0.1:8080 API_KEYS=dev-key-change-me NODE_ID=local HEARTBEAT_INTERVAL_MS=1000 PUBLISH_BODY_TIMEOUT_MS=3000 \
      target/release/sse-gateway >"$logs/native-single-node.log" 2>&1 &
    single_pid=$!
    local i
    for i in $(seq 100); do
      curl -sf http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
      sleep 0.1
    done
    run_e2e native "http://127.0.0.1:8080" --var PUBLISH_BODY_TIMEOUT_MS:3000 || rc=1
    stop_single

    # The limits (tests/e2e/limits_conn_rate.test.mjs) on a node started with them configured.
    local lim=(MAX_CONNECTIONS_PER_NODE=20 MAX_CONNECTIONS_PER_TOPIC=5 PUBLISH_RATE_PER_KEY=5 PUBLISH_BURST_PER_KEY=5)
    env LISTEN_ADDR=127.0.0.1:8080 API_KEYS=dev-key-change-me NODE_ID=limits HEARTBEAT_INTERVAL_MS=1000 "${lim[@]}" \
      target/release/sse-gateway >"$logs/native-limits-node.log" 2>&1 &
    single_pid=$!
    for i in $(seq 100); do
      curl -sf http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
      sleep 0.1
    done
    run_e2e native-limits "http://127.0.0.1:8080" --files limits_conn_rate \
      "${lim[@]/#/--var=}" || rc=1
    stop_single

    # Retention and resume (tests/e2e/replay.test.mjs) on a node started with RETENTION.
    env LISTEN_ADDR=127.0.0.1:8080 API_KEYS=dev-key-change-me NODE_ID=replay HEARTBEAT_INTERVAL_MS=1000 RETENTION="$ret" \
      target/release/sse-gateway >"$logs/native-replay-node.log" 2>&1 &
    single_pid=$!
    for i in $(seq 100); do
      curl -sf http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
      sleep 0.1
    done
    run_e2e native-replay "http://127.0.0.1:8080" --files replay --var "RETENTION:$ret" || rc=1
    stop_single
  fi

  node - "${e2e_runs[@]}" <<'EOF'
const fs = require('fs');
const runs = process.argv.slice(2).map((label) => {
  const file = `test-results/e2e-${label}.json`;
  const r = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : { totals: { passed: 0, failed: 1 } };
  return { label, base_url: r.base_url ?? null, passed: r.totals.passed, failed: r.totals.failed, results: `test-results/e2e-${label}.json` };
});
const totals = runs.reduce((t, r) => ({ passed: t.passed + r.passed, failed: t.failed + r.failed }), { passed: 0, failed: 0 });
fs.writeFileSync('test-results/native-e2e.json', JSON.stringify({ suite: 'native-e2e', totals, runs }, null, 2) + '\n');
const md = ['# Native runtime: end-to-end suite', '', 'tests/e2e run against one node, then against each node of a three-node cluster with Redis.', '',
  `**${totals.passed} passed, ${totals.failed} failed**`, '', '| run | base URL | passed | failed |', '|---|---|---|---|',
  ...runs.map((r) => `| [${r.label}](e2e-${r.label}.md) | ${r.base_url} | ${r.passed} | ${r.failed} |`), ''];
fs.writeFileSync('test-results/native-e2e.md', md.join('\n'));
console.log(`${totals.passed} passed, ${totals.failed} failed`);
EOF
  return "$rc"
}

case "$part" in
  unit) part_unit ;;
  cluster) part_cluster ;;
  e2e) part_e2e ;;
  *)
    echo "usage: $0 unit|cluster|e2e" >&2
    exit 2
    ;;
esac
