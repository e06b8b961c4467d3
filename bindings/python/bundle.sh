#!/usr/bin/env bash
# Copies the built library into the package (otelagent/_lib/) so that
# `pip install ./bindings/python` or `pip wheel` bundles it.
# Usage: bindings/python/bundle.sh [BUILD_DIR]   (default: build/ at the repo root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
lib=$(readlink -f "$build/libotelagent.so.2")
[ -f "$lib" ] || { echo "bundle.sh: no libotelagent.so.2 in $build (build the library first)" >&2; exit 1; }
mkdir -p "$here/otelagent/_lib"
rm -f "$here/otelagent/_lib"/libotelagent.so* "$here/otelagent/_lib"/libotelagent_preload.so
# Under the SONAME, the name the loader and dlopen look for.
cp "$lib" "$here/otelagent/_lib/libotelagent.so.2"
echo "bundled $lib as otelagent/_lib/libotelagent.so.2"
# The preload object (zero-code activation through LD_PRELOAD), when built:
# it finds the bootstrap at ../_bootstrap from its own directory.
if [ -f "$build/libotelagent_preload.so" ]; then
  cp "$build/libotelagent_preload.so" "$here/otelagent/_lib/libotelagent_preload.so"
  echo "bundled $build/libotelagent_preload.so as otelagent/_lib/libotelagent_preload.so"
fi
