#!/usr/bin/env bash
# Fuzz the core crate (crates/core/fuzz, cargo-fuzz + libFuzzer): build every target once, then
# run each for a bounded time, one after the other (one core each).
#
#   bash scripts/fuzz.sh [TARGET...]        (make fuzz; make fuzz FUZZ_SECONDS=600)
#
#   FUZZ_SECONDS=N      seconds per target (default 60)
#   FUZZ_TARGETS="a b"  targets to run when none are named (default: all of them)
#   FUZZ_SANITIZER=S    address (default) or none; the build falls back to none by itself
#                       when the address sanitizer cannot be built
#
# Targets: topic_list, publish_headers, sse_frame, cursor, token (crates/core/fuzz/fuzz_targets/).
# Corpus: the committed seeds in crates/core/fuzz/corpus/seed/<target>/ are read; what libFuzzer
# finds goes to crates/core/fuzz/corpus/generated/<target>/ (not committed) and is reused by the
# next run. Crash reproducers: crates/core/fuzz/artifacts/<target>/ (not committed).
# Results: test-results/fuzz.json and test-results/fuzz.md; each target's libFuzzer log in
# test-results/logs/fuzz-<target>.log. The last line printed is "N passed, N failed" (N =
# targets); exit status 1 if any target crashed or could not run, with the reproducer's path.
#
# Only the stable toolchain is needed: cargo fuzz's -Z flags are let through with
# RUSTC_BOOTSTRAP=1. cargo-fuzz itself comes from `bash scripts/setup.sh --with-fuzz`, which
# this script runs when `cargo fuzz` is missing.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
. "$here/env.sh"
cd "$SSE_ROOT"

all_targets=(topic_list publish_headers sse_frame cursor token)
seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
case "$seconds" in
  '' | *[!0-9]*) echo "fuzz.sh: FUZZ_SECONDS must be a whole number of seconds, not \"$seconds\"" >&2; exit 2 ;;
esac
case "$sanitizer" in
  address | none) ;;
  *) echo "fuzz.sh: FUZZ_SANITIZER must be address or none, not \"$sanitizer\"" >&2; exit 2 ;;
esac
if [ "$#" -gt 0 ]; then
  targets=("$@")
elif [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  targets=("${all_targets[@]}")
fi
for t in "${targets[@]}"; do
  case " ${all_targets[*]} " in
    *" $t "*) ;;
    *) echo "fuzz.sh: unknown target \"$t\" (targets: ${all_targets[*]})" >&2; exit 2 ;;
  esac
done

results="$SSE_ROOT/test-results"
logs="$results/logs"
fuzz_dir="$SSE_ROOT/crates/core/fuzz"
mkdir -p "$logs"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo fuzz not found: bash scripts/setup.sh --with-fuzz"
  bash "$here/setup.sh" --with-fuzz || { echo "fuzz.sh: setup.sh --with-fuzz failed" >&2; exit 1; }
fi
echo "$(cargo fuzz --version), $(rustc --version)"

# --- build every target once ----------------------------------------------------------------
cd "$SSE_ROOT/crates/core"
build_log="$logs/fuzz-build.log"
build_ok=0
echo "==> cargo fuzz build --sanitizer $sanitizer (log: ${build_log#"$SSE_ROOT"/})"
if cargo fuzz build --sanitizer "$sanitizer" >"$build_log" 2>&1; then
  build_ok=1
elif [ "$sanitizer" = address ]; then
  echo "    the address-sanitizer build failed (last lines below); falling back to --sanitizer none"
  tail -n 5 "$build_log" | sed 's/^/    | /'
  sanitizer=none
  if cargo fuzz build --sanitizer none >>"$build_log" 2>&1; then build_ok=1; fi
fi
if [ "$build_ok" -ne 1 ]; then
  echo "fuzz.sh: cargo fuzz build failed; last lines of $build_log:" >&2
  tail -n 30 "$build_log" | sed 's/^/    | /' >&2
fi

# --- run each target ------------------------------------------------------------------------
json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  printf '"%s"' "$s"
}

n_passed=0
n_failed=0
entries=()
rows=()
reproducers=()
for t in "${targets[@]}"; do
  log="$logs/fuzz-$t.log"
  gen="$fuzz_dir/corpus/generated/$t"
  seed="$fuzz_dir/corpus/seed/$t"
  mkdir -p "$gen" "$seed"
  runs=0
  crashes=0
  found=()
  if [ "$build_ok" -ne 1 ]; then
    status=not_run
    echo "build failed: not run" >"$log"
  else
    echo "==> $t: ${seconds}s (log: ${log#"$SSE_ROOT"/})"
    # The first corpus directory is where libFuzzer writes; the seeds are only read. -timeout
    # turns a hang into a reported failure; -print_final_stats gives the execution count.
    cargo fuzz run --sanitizer "$sanitizer" "$t" "$gen" "$seed" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)"
    [ -n "$runs" ] || runs="$(sed -n 's/^Done \([0-9][0-9]*\) runs in .*/\1/p' "$log" | tail -n 1)"
    [ -n "$runs" ] || runs=0
    # Every input libFuzzer saved as a failure (crash-, leak-, timeout-, oom-...).
    while IFS= read -r f; do
      [ -n "$f" ] && found+=("${f#"$SSE_ROOT"/}")
    done < <(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")
    crashes=${#found[@]}
    if [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]; then
      status=passed
    else
      status=failed
      [ "$crashes" -gt 0 ] || crashes=1
    fi
  fi
  if [ "$status" = passed ]; then
    n_passed=$((n_passed + 1))
  else
    n_failed=$((n_failed + 1))
  fi
  echo "    $status: $runs runs, crashes found: $crashes"
  if [ "$status" = failed ]; then
    grep -m 3 -E "panicked at|^assertion|ERROR: (AddressSanitizer|libFuzzer)" "$log" | sed 's/^/    | /'
    for f in "${found[@]}"; do
      echo "    reproducer: $f"
      echo "    reproduce:  (cd crates/core && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer $t ${f#crates/core/})"
      reproducers+=("$t $f")
    done
    [ "${#found[@]}" -gt 0 ] || echo "    (no reproducer written; see ${log#"$SSE_ROOT"/})"
  fi

  repro_json="["
  for i in "${!found[@]}"; do
    [ "$i" -gt 0 ] && repro_json+=", "
    repro_json+="$(json_str "${found[$i]}")"
  done
  repro_json+="]"
  # Stable key order; no timestamps, so reruns with the same outcome differ only in "runs".
  entries+=("{\"target\": $(json_str "$t"), \"status\": \"$status\", \"seconds\": $seconds, \"runs\": $runs, \"crashes\": $crashes, \"reproducers\": $repro_json}")
  repro_md="${found[*]:-}"
  rows+=("| $t | $seconds | $runs | $crashes | $status | ${repro_md:+\`$repro_md\`} |")
done

# --- reports --------------------------------------------------------------------------------
if [ "$n_failed" -eq 0 ]; then overall=passed; else overall=failed; fi
total_crashes=0
for e in "${entries[@]}"; do
  c="${e#*\"crashes\": }"
  total_crashes=$((total_crashes + ${c%%,*}))
done
{
  echo "{"
  echo "  \"generated_at\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo "  \"result\": \"$overall\","
  echo "  \"sanitizer\": \"$sanitizer\","
  echo "  \"seconds_per_target\": $seconds,"
  echo "  \"crashes\": $total_crashes,"
  echo "  \"targets\": ["
  for i in "${!entries[@]}"; do
    sep=","
    [ "$i" -eq $((${#entries[@]} - 1)) ] && sep=""
    echo "    ${entries[$i]}$sep"
  done
  echo "  ]"
  echo "}"
} >"$results/fuzz.json"
{
  echo "# Fuzzing of the core (crates/core/fuzz)"
  echo
  echo "Written by \`scripts/fuzz.sh\` (\`make fuzz\`; a bounded run is a step of \`make test\`): each"
  echo "target ran for $seconds s under libFuzzer (cargo fuzz, sanitizer: $sanitizer)."
  echo
  echo "**$overall**: crashes found: $total_crashes/${#entries[@]} targets"
  echo
  echo "| target | seconds | runs executed | crashes found | result | reproducer |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Seeds: \`crates/core/fuzz/corpus/seed/<target>/\`. Logs (not committed): \`test-results/logs/fuzz-<target>.log\`."
} >"$results/fuzz.md"

echo "results: test-results/fuzz.json, test-results/fuzz.md"
for r in "${reproducers[@]}"; do
  echo "CRASH: ${r%% *}: reproducer ${r#* }"
done
echo "$n_passed passed, $n_failed failed"
[ "$n_failed" -eq 0 ]
