#!/usr/bin/env bash
# Builds libotelagent and runs every test: the unit tests through ctest, then
# the end-to-end tests (real collector, scripted sink, hygiene, install, the
# demos) through pytest, then the Python binding's tests. First it installs
# what is missing (packaging/dev/bootstrap.sh test: Debian packages, a Go
# toolchain for the test collector, the Python packages in .venv/). With
# OTELAGENT_SANITIZERS=1 it also builds and runs the unit tests under
# ThreadSanitizer and under AddressSanitizer+UBSan, and runs the end-to-end
# suite once more against the ASan+UBSan build of the library.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${OTELAGENT_BUILD_DIR:-build}
jobs=$(nproc)

packaging/dev/bootstrap.sh test "$build"
# The Go toolchain the bootstrap fetched, when the machine had none recent enough.
if [ -x "$build/tools/go/bin/go" ]; then export PATH="$(cd "$build" && pwd)/tools/go/bin:$PATH"; fi
py="$PWD/.venv/bin/python"

# The demo (samples/demo.sh) may have configured this tree without the tests.
cmake -S . -B "$build" -G Ninja -DOTELAGENT_BUILD_TESTS=ON
cmake --build "$build" -j "$jobs"
tests/e2e/collector/build.sh "$build/collector"

ctest --test-dir "$build" --output-on-failure -j "$jobs"
# The library bundled into the Python binding in .venv/ (for the Python demo's test).
tests/python/setup-venv.sh "$(cd "$build" && pwd)"
OTELAGENT_BUILD_DIR="$(cd "$build" && pwd)" "$py" -m pytest tests/e2e -ra
# The Python binding (bindings/python): its unit tests and real
# uvicorn/gunicorn services exporting to the same collector.
tests/python/run.sh "$(cd "$build" && pwd)" -ra

if [ "${OTELAGENT_SANITIZERS:-0}" = 1 ]; then
  for san in thread address,undefined; do
    dir="$build-san-${san%%,*}"
    # The PIC static dependencies are shared with the main build.
    cmake -S . -B "$dir" -G Ninja -DOTELAGENT_SANITIZE="$san" \
      -DOTELAGENT_DEPS_DIR="$(cd "$build" && pwd)/deps" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    if [ "$san" = thread ]; then
      cmake --build "$dir" -j "$jobs" --target unit_tests fuzz_replays
    else
      # The whole tree (library, e2e emitter, demo, hygiene host, fuzz
      # replays) for the end-to-end run below.
      cmake --build "$dir" -j "$jobs"
    fi
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
      ctest --test-dir "$dir" --output-on-failure -j "$jobs"
  done
  # The harness reads the sanitizers from the build's CMake cache, passes
  # ASAN_OPTIONS/UBSAN_OPTIONS to every program it starts and fails a test on
  # any sanitizer report; the collector is the main build's.
  OTELAGENT_BUILD_DIR="$(cd "$build-san-address" && pwd)" \
  OTELAGENT_COLLECTOR="$(cd "$build" && pwd)/collector/otelcol-e2e/otelcol-e2e" \
    "$py" -m pytest tests/e2e -ra
fi
