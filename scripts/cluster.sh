#!/usr/bin/env bash
# A local native cluster: redis-server on 127.0.0.1:6390 (no persistence) and three gateway
# nodes, node-1..node-3 on 127.0.0.1:8081..8083 (API key dev-key-change-me). Logs and PIDs go
# to .run/cluster/. Returns once all three answer /healthz; stop with `make cluster-stop`.
#
#   bash scripts/cluster.sh          start (builds the release binary first)
#   bash scripts/cluster.sh stop     stop what the PID files name
#   bash scripts/cluster.sh status   which recorded processes are alive
#
# Settings for the nodes come from the environment as usual (HEARTBEAT_INTERVAL_MS, ...).
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SSE_ROOT"

RUN=.run/cluster
REDIS_PORT="${CLUSTER_REDIS_PORT:-6390}"
PORTS=(8081 8082 8083)
mkdir -p "$RUN"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_one() {
  local pidfile="$1" pid i
  if alive "$pidfile"; then
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "  $pidfile: pid $pid did not stop after 10 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "  stopped $(basename "$pidfile" .pid) (pid $pid)"
  fi
  rm -f "$pidfile"
}

stop_all() {
  local i
  for i in 1 2 3; do stop_one "$RUN/node-$i.pid"; done
  stop_one "$RUN/redis.pid"
}

case "${1:-start}" in
  stop)
    stop_all
    exit 0
    ;;
  status)
    for f in "$RUN"/*.pid; do
      [ -e "$f" ] || continue
      if alive "$f"; then echo "$(basename "$f" .pid): running (pid $(cat "$f"))"; else echo "$(basename "$f" .pid): not running"; fi
    done
    exit 0
    ;;
  start) ;;
  *)
    echo "usage: $0 [start|stop|status]" >&2
    exit 2
    ;;
esac

bash scripts/setup.sh --with-redis
bash scripts/build-server.sh

# Leftovers of an earlier run.
stop_all

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize no >"$RUN/redis.log" 2>&1 &
echo $! >"$RUN/redis.pid"
for i in $(seq 100); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  if ! alive "$RUN/redis.pid"; then
    echo "redis-server exited; see $RUN/redis.log" >&2
    tail -n 20 "$RUN/redis.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "redis-server on 127.0.0.1:$REDIS_PORT (pid $(cat "$RUN/redis.pid"))"

for i in 1 2 3; do
  port="${PORTS[$((i - 1))]}"
  LISTEN_ADDR="127.0.0.1:$port" NODE_ID="node-$i" REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
    API_KEYS="${API_KEYS:-dev-key-change-me}" \
    target/release/sse-gateway >"$RUN/node-$i.log" 2>&1 &
  echo $! >"$RUN/node-$i.pid"
done

deadline=$((SECONDS + 30))
for i in 1 2 3; do
  port="${PORTS[$((i - 1))]}"
  until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    if ! alive "$RUN/node-$i.pid"; then
      echo "node-$i exited; last lines of $RUN/node-$i.log:" >&2
      tail -n 20 "$RUN/node-$i.log" >&2
      stop_all
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "node-$i did not answer /healthz within 30 s; see $RUN/node-$i.log" >&2
      stop_all
      exit 1
    fi
    sleep 0.1
  done
  echo "node-$i on http://127.0.0.1:$port (pid $(cat "$RUN/node-$i.pid"))"
done
echo "cluster up; logs in $RUN/; stop with: make cluster-stop"
