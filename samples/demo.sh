#!/usr/bin/env bash
# The README's first command: installs what the demo needs when it is missing
# (packaging/dev/bootstrap.sh demo: Debian packages, the Python packages in
# .venv/), builds the library into build/ (once; later runs only check it),
# then runs samples/python/demo.py: the sample FastAPI service under uvicorn
# calling the sample Flask service under gunicorn, both traced by otelagent,
# with the console exporter showing the traces (no collector needed).
# Usage: samples/demo.sh   (OTELAGENT_BUILD_DIR picks another build directory)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${OTELAGENT_BUILD_DIR:-build}

packaging/dev/bootstrap.sh demo "$build"
if [ ! -f "$build/build.ninja" ]; then
  echo "demo: configuring $build (the library and the C demo; the tests are not needed here)"
  cmake -S . -B "$build" -G Ninja -DOTELAGENT_BUILD_TESTS=OFF >/dev/null
fi
echo "demo: building the library in $build"
cmake --build "$build" -j "$(nproc)" --target otelagent otelagent_demo
tests/python/setup-venv.sh "$(cd "$build" && pwd)"
echo
exec .venv/bin/python samples/python/demo.py
