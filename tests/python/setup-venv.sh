#!/usr/bin/env bash
# Makes .venv/ at the repository root (idempotent) with the Python binding
# installed in development mode, the library bundled into it from BUILD_DIR,
# and the pinned test and benchmark dependencies.
# Usage: tests/python/setup-venv.sh [BUILD_DIR]   (default: build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
venv=$root/.venv
req=$root/bindings/python/requirements-test.txt
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "setup-venv: creating $venv"
  "$python" -m venv "$venv"
fi
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup-venv: installing $req"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
"$root/bindings/python/bundle.sh" "$build"
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
