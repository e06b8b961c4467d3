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
bundled=$root/bindings/python/otelagent/_lib
if ! cmp -s "$lib" "$bundled/libotelagent.so.2" ||
   ! cmp -s "$build/libotelagent_preload.so" "$bundled/libotelagent_preload.so"; then
  "$root/bindings/python/bundle.sh" "$build"
fi
# Installed again when the native packer's source or the packaging changed
# (an editable install builds the extension once, in place, and writes the
# console scripts such as otelagent-instrument once).
native_stamp=$venv/.native.sha256
native_want=$(cat "$root/bindings/python/otelagent/_native.c" "$root/bindings/python/setup.py" \
  "$root/bindings/python/pyproject.toml" | sha256sum | cut -d' ' -f1)
if ! "$venv/bin/python" -c "import otelagent" 2>/dev/null ||
   [ "$(cat "$native_stamp" 2>/dev/null)" != "$native_want" ]; then
  echo "setup-venv: installing bindings/python (editable, with the native packer)"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e "$root/bindings/python"
  echo "$native_want" > "$native_stamp"
fi
echo "setup-venv: ready ($("$venv/bin/python" -c 'import otelagent, otelagent._tracing as t; print(otelagent.LOADED_FROM, "native packer:", t.NATIVE)'))"
