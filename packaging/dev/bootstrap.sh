#!/usr/bin/env bash
# Installs what the demo or the tests need on a Debian 12 machine, and only
# what is missing (a second run changes nothing):
#   - the Debian packages, and the deb-src entry packaging/deps/build-static-deps.sh
#     needs ('apt-get update' only when something is missing; as root, else through
#     sudo, else it prints the command and fails);
#   - test mode: a Go toolchain for the test collector (tests/e2e/collector/build.sh)
#     when 'go' is missing or too old, fetched from the Go module proxy (which
#     serves toolchains as the module golang.org/toolchain) into BUILD_DIR/tools/go;
#   - the Python packages, in .venv/ inside the tree (tests/python/setup-venv.sh --deps);
#     nothing goes into the system's Python.
# Usage: packaging/dev/bootstrap.sh demo|test [BUILD_DIR]   (default: build/)
# After it, put BUILD_DIR/tools/go/bin first in PATH when it exists (tests/run.sh does).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:?usage: bootstrap.sh demo|test [BUILD_DIR]}
build=${2:-$root/build}
case $mode in demo|test) ;; *) echo "bootstrap: unknown mode '$mode' (demo or test)" >&2; exit 2 ;; esac
say() { echo "bootstrap: $*"; }

# ---- Debian packages ----------------------------------------------------------------
# What building the library and running the Python demo need (python3-dev:
# Python's headers, for the binding's native packer and for uWSGI, which pip
# builds from source).
pkgs=(build-essential cmake ninja-build pkg-config protobuf-compiler libprotobuf-dev
      zlib1g-dev libcurl4-openssl-dev python3-venv python3-dev ca-certificates)
if [ "$mode" = test ]; then
  # unit tests (gtest), the hygiene host (libuv1-dev), the hygiene and install
  # checks (binutils), the TLS and DNS fault tests (openssl, unshare, mount),
  # the fuzzers (clang, libFuzzer's runtime), fetching a Go toolchain (curl,
  # unzip; curl is also a program the preload test runs) and Debian's packaged
  # uWSGI, which the preload must activate (uwsgi-core, uwsgi-plugin-python3).
  pkgs+=(libgtest-dev libuv1-dev binutils openssl util-linux mount clang libclang-rt-14-dev
         curl unzip uwsgi-core uwsgi-plugin-python3)
fi
missing=()
for p in "${pkgs[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing+=("$p")
done
have_debsrc() {
  grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/
}
debsrc=/etc/apt/sources.list.d/otelagent-deb-src.sources
if [ ${#missing[@]} -eq 0 ] && have_debsrc; then
  say "Debian packages: the ${#pkgs[@]} needed for the $mode are installed"
else
  if [ "$(id -u)" = 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    say "as root, run:" >&2
    have_debsrc || echo "  (add a deb-src entry for your Debian release to /etc/apt/sources.list.d/)" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  if ! have_debsrc; then
    # The PIC static libuv and zstd are built from Debian's source packages.
    say "adding $debsrc (Debian's source packages of libuv and zstd are built with -fPIC)"
    . /etc/os-release
    printf '%s\n' "Types: deb-src" "URIs: http://deb.debian.org/debian" "Suites: ${VERSION_CODENAME}" \
      "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" |
      "${sudo[@]}" tee "$debsrc" >/dev/null
  fi
  say "apt-get update"
  "${sudo[@]}" apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# ---- Go (the test collector) ----------------------------------------------------------
if [ "$mode" = test ]; then
  # The collector's generated go.mod and its builder (v0.140.0) say 'go 1.24.0';
  # tests/e2e/collector/build.sh builds with GOTOOLCHAIN=local.
  go_min=1.24.0
  # What we fetch when that is not there: the release the CI's collector is built with.
  go_pin=1.26.8
  declare -A go_sha256=(
    [amd64]=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
    [arm64]=02b36b6787b3ac767668f630e2998df45a3b1f9ffee08d1bf3ef6487cd658d99)
  tools_go=$build/tools/go
  go_version() {  # go_version GO: prints 1.x.y, or nothing when GO does not run
    local v
    v=$("$1" env GOVERSION 2>/dev/null) || return 0
    echo "${v#go}"
  }
  new_enough() { [ -n "$1" ] && [ "$(printf '%s\n%s\n' "$go_min" "$1" | sort -V | head -n 1)" = "$go_min" ]; }
  found=""
  for go in "$tools_go/bin/go" "$(command -v go || true)"; do
    [ -n "$go" ] && [ -x "$go" ] || continue
    v=$(go_version "$go")
    if new_enough "$v"; then found=$go; break; fi
    say "Go: $go is ${v:-not working} (need $go_min or later)"
  done
  if [ -n "$found" ]; then
    say "Go: $found is $(go_version "$found") (need $go_min or later)"
  else
    arch=$(dpkg --print-architecture)
    sum=${go_sha256[$arch]:-}
    [ -n "$sum" ] || { say "no pinned Go toolchain for $arch: install Go $go_min or later" >&2; exit 1; }
    # GOPROXY as the go command reads it (a list; 'direct' and 'off' are not
    # proxies); unset, Go's default proxy.
    proxies=${GOPROXY:-}
    if [ -z "$proxies" ] && command -v go >/dev/null; then proxies=$(go env GOPROXY 2>/dev/null || true); fi
    proxies=${proxies:-https://proxy.golang.org}
    zipname="v0.0.1-go$go_pin.linux-$arch.zip"
    tmp=$build/tools/go.download
    rm -rf "$tmp" && mkdir -p "$tmp"
    ok=""
    for proxy in ${proxies//[,|]/ }; do
      case $proxy in direct|off) continue ;; esac
      url=${proxy%/}/golang.org/toolchain/@v/$zipname
      say "Go: fetching Go $go_pin from $url into $tools_go"
      if curl -fsSL --retry 3 -o "$tmp/go.zip" "$url"; then ok=1; break; fi
    done
    [ -n "$ok" ] || { say "could not fetch Go $go_pin (GOPROXY=$proxies); install Go $go_min or later" >&2; exit 1; }
    echo "$sum  $tmp/go.zip" | sha256sum -c --quiet - ||
      { say "the Go toolchain's checksum does not match the pinned one" >&2; exit 1; }
    unzip -q "$tmp/go.zip" -d "$tmp"
    rm -rf "$tools_go"
    mv "$tmp/golang.org/toolchain@${zipname%.zip}" "$tools_go"
    rm -rf "$tmp"
    v=$(go_version "$tools_go/bin/go")
    new_enough "$v" || { say "the fetched Go does not run" >&2; exit 1; }
    say "Go: $tools_go/bin/go is $v"
  fi
fi

# ---- Python packages, in .venv/ ------------------------------------------------------
"$root/tests/python/setup-venv.sh" --deps
