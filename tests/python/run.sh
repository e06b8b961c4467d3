#!/usr/bin/env bash
# Runs the Python binding's tests: makes .venv/ (idempotent), bundles the
# library from BUILD_DIR into the package, and runs pytest on tests/python.
# The end-to-end tests need the collector (tests/e2e/collector/build.sh
# BUILD_DIR/collector). Usage: tests/python/run.sh [BUILD_DIR] [pytest args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
shift || true
"$root/tests/python/setup-venv.sh" "$build"
export OTELAGENT_BUILD_DIR=$build
OTELAGENT_REQUIRE_NATIVE=1 "$root/.venv/bin/python" -m pytest "$root/tests/python" -q "$@"
# Once more with the native packer turned off: the pure-Python fallback
# (a package installed without a C compiler) must pass every test too.
echo "tests/python: again with the pure-Python packer (OTELAGENT_PYTHON_NATIVE=0)"
OTELAGENT_PYTHON_NATIVE=0 "$root/.venv/bin/python" -m pytest "$root/tests/python" -q "$@"
