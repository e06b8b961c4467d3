#!/usr/bin/env bash
# Builds position-independent static libuv and zstd into PREFIX, from the
# Debian source packages of the versions the system ships, so they can be
# linked into libotelagent.so and hidden from the host. (Debian's own static
# archives of both are not built with -fPIC.) Idempotent: a finished PREFIX is
# left alone. Needs a deb-src entry for the distribution (see .ci/run).
set -euo pipefail
prefix=${1:?usage: build-static-deps.sh PREFIX}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
if [ -f "$prefix/.done" ]; then
  exit 0
fi
src="$prefix/src"
mkdir -p "$src" "$prefix/lib" "$prefix/include"
cd "$src"

fetch() {  # fetch PACKAGE: downloads its source package and unpacks the upstream tarball
  local pkg=$1
  if ! ls "${pkg}"_*.orig.tar.* >/dev/null 2>&1; then
    apt-get source --download-only "$pkg" >/dev/null 2>&1 || {
      echo "build-static-deps: 'apt-get source $pkg' failed; add a deb-src entry and run 'apt-get update'" >&2
      exit 1
    }
  fi
  local tarball
  tarball=$(ls "${pkg}"_*.orig.tar.* | grep -v '\.asc$' | head -n 1)
  rm -rf "$pkg" && mkdir "$pkg"
  tar -xf "$tarball" -C "$pkg" --strip-components=1
}

jobs=$(nproc)

fetch libuv1
cmake -S libuv1 -B libuv1/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF >/dev/null
cmake --build libuv1/build --target uv_a -j "$jobs" >/dev/null
cp libuv1/build/libuv_a.a "$prefix/lib/libuv_pic.a"
cp -r libuv1/include/. "$prefix/include/"

fetch libzstd
make -C libzstd/lib -j "$jobs" libzstd.a CFLAGS="-O3 -fPIC" ZSTD_LEGACY_SUPPORT=0 >/dev/null
cp libzstd/lib/libzstd.a "$prefix/lib/libzstd_pic.a"
cp libzstd/lib/zstd.h libzstd/lib/zstd_errors.h "$prefix/include/"

touch "$prefix/.done"
echo "build-static-deps: libuv and zstd ready in $prefix"
