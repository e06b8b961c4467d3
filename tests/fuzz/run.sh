#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, coverage) in their own
# build directory and runs each for a bounded time, printing executions and
# coverage. Fails if any target crashes or takes over 20 s on one input (a
# hang: libFuzzer checks its total time only between inputs); the crashing input is kept in the
# target's corpus (corpus/<target>/crash-*), where the replay test of every
# build runs it from then on.
#   OTELAGENT_FUZZ_SECONDS  time per target (default 60)
#   OTELAGENT_FUZZ_BUILD_DIR  build directory (default build-fuzz)
#   OTELAGENT_DEPS_DIR  reuse the PIC static libuv/zstd of another build
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${OTELAGENT_FUZZ_BUILD_DIR:-build-fuzz}
seconds=${OTELAGENT_FUZZ_SECONDS:-60}
targets=(record propagation config export_response grpc_status ring_file spool_segment)

deps=()
if [ -n "${OTELAGENT_DEPS_DIR:-}" ]; then deps=(-DOTELAGENT_DEPS_DIR="$OTELAGENT_DEPS_DIR"); fi
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DOTELAGENT_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "${deps[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

failed=()
summary=""
for t in "${targets[@]}"; do
  corpus=tests/fuzz/corpus/$t
  # New inputs go to a scratch directory: the committed corpus stays small
  # and changes only by hand (or by a kept crash).
  scratch=$(mktemp -d)
  log=$(mktemp)
  dict=()
  if [ -f "tests/fuzz/$t.dict" ]; then dict=(-dict="tests/fuzz/$t.dict"); fi
  echo "== fuzz_$t for ${seconds}s"
  set +e
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$corpus/crash-" "${dict[@]}" "$scratch" "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
  corp=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1)
  line="fuzz_$t: ${execs:-?} execs (${rate:-?}/s), ${cov:-no coverage line}, ${corp:-}"
  if [ "$rc" -ne 0 ]; then
    line="$line: FAILED (exit $rc)"
    failed+=("$t")
    tail -60 "$log"
  fi
  echo "$line"
  summary+="$line"$'\n'
  rm -rf "$scratch" "$log"
done
echo
echo "$summary"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz targets failed: ${failed[*]} (inputs kept as tests/fuzz/corpus/<target>/crash-*)" >&2
  exit 1
fi
