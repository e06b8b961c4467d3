#!/usr/bin/env bash
# Makes .venv/ at the repository root (idempotent): the pinned test, benchmark
# and demo dependencies (bindings/python/requirements-test.txt and
# tests/e2e/requirements.txt, installed together so that pip refuses pins that
# disagree), then the Python binding in development mode with the library
# bundled into it from BUILD_DIR. With --deps, only the dependencies (no build
# needed; packaging/dev/bootstrap.sh does that).
# Usage: tests/python/setup-venv.sh [--deps | BUILD_DIR]   (default: build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
deps_only=0
if [ "${1:-}" = --deps ]; then deps_only=1; shift; fi
build=${1:-$root/build}
venv=$root/.venv
reqs=("$root/bindings/python/requirements-test.txt" "$root/tests/e2e/requirements.txt")
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "setup-venv: creating $venv"
  "$python" -m venv "$venv"
fi
stamp=$venv/.requirements.sha256
want=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup-venv: installing into $venv: ${reqs[*]#$root/}"
  "$venv/bin/pip" install -q --disable-pip-version-check "${reqs[@]/#/-r}"
  echo "$want" > "$stamp"
else
  echo "setup-venv: $venv has the pinned Python packages"
fi
[ "$deps_only" = 1 ] && exit 0
lib=$(readlink -f "$build/libotelagent.so.2" || true)
if ! cmp -s "$lib" "$root/bindings/python/otelagent/_lib/libotelagent.so.2"; then
  "$root/bindings/python/bundle.sh" "$build"
fi
if ! "$venv/bin/python" -c "import otelagent" 2>/dev/null; then
  echo "setup-venv: installing bindings/python (editable)"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e "$root/bindings/python"
fi
echo "setup-venv: ready ($("$venv/bin/python" -c 'import otelagent; print(otelagent.LOADED_FROM)'))"
