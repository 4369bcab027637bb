#!/usr/bin/env bash
# Type-check and build the admin UI (admin/ -> admin/dist, tsc + Vite) when its sources changed
# since the last build; otherwise do nothing (a `find`, a few ms). scripts/build-worker.sh runs this, so
# `make dev`, `make test`, `wrangler dev` and `wrangler deploy` all get a current admin/dist.
# The native server embeds admin/dist when it is compiled (crates/server/build.rs).
#
#   ADMIN_BUILD_FORCE=1   build even when admin/dist is up to date
set -euo pipefail

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$SSE_ROOT/admin"

if [ ! -x node_modules/.bin/vite ]; then
  echo "build-admin: admin/node_modules is missing; run: bash scripts/setup.sh (or make setup)" >&2
  exit 1
fi

# The stamp's mtime is the start of the last good build; its content is the checksum of the
# dist/index.html that build wrote (a dist/ replaced by hand or by git is then noticed too).
stamp=node_modules/.admin-build-stamp
reason=""
if [ "${ADMIN_BUILD_FORCE:-0}" = 1 ]; then
  reason="ADMIN_BUILD_FORCE=1"
elif [ ! -f "$stamp" ]; then
  reason="no previous build"
elif [ ! -f dist/index.html ]; then
  reason="admin/dist/index.html missing"
elif [ "$(cat "$stamp")" != "$(cksum <dist/index.html)" ]; then
  reason="admin/dist changed since the last build"
else
  changed="$(find src public index.html vite.config.ts tsconfig.json package.json package-lock.json \
    -newer "$stamp" -print -quit 2>/dev/null || true)"
  [ -n "$changed" ] && reason="admin/$changed changed"
fi
if [ -z "$reason" ]; then
  echo "build-admin: admin/dist is up to date"
  exit 0
fi

echo "build-admin: tsc + vite build ($reason)"
node_modules/.bin/tsc --noEmit -p . || { echo "build-admin: type errors in admin/src (above)" >&2; exit 1; }
rm -f "$stamp"
touch "$stamp.start" # edits made while Vite runs are newer than this, so they rebuild next time
node_modules/.bin/vite build --logLevel warn
[ -f dist/index.html ] || { echo "build-admin: vite wrote no dist/index.html" >&2; exit 1; }
cksum <dist/index.html >"$stamp"
touch -r "$stamp.start" "$stamp"
rm -f "$stamp.start"

js=0
js_gz=0
for f in dist/assets/*.js; do
  [ -f "$f" ] || continue
  js=$((js + $(wc -c <"$f")))
  js_gz=$((js_gz + $(gzip -9 -c "$f" | wc -c)))
done
css_gz=0
for f in dist/assets/*.css; do
  [ -f "$f" ] || continue
  css_gz=$((css_gz + $(gzip -9 -c "$f" | wc -c)))
done
echo "build-admin: admin/dist built; JS $js bytes, $js_gz gzip -9; CSS $css_gz gzip -9"
