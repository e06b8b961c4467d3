"""`cmake --install` lays out a distribution-friendly tree that C and C++
consumers can build against with pkg-config and with find_package."""

import os
import subprocess

import pytest

from harness import BUILD, SANITIZE

C_PROGRAM = r"""
#include <otelagent/otelagent.h>
#include <stdio.h>
int main(void) {
  printf("%s %u\n", otelagent_version(), otelagent_abi_version() >> 16);
  otelagent_span *s = 0;
  return otelagent_span_start("x", 1, 0, &s) == OTELAGENT_E_NOT_STARTED ? 0 : 1;
}
"""

CPP_PROGRAM = r"""
#include <otelagent/otelagent.hpp>
int main() {
  if (otelagent_start(nullptr) != OTELAGENT_OK) return 1;
  { otelagent::Span outer("outer"); otelagent::Span inner("inner"); inner.set("k", 1); }
  return otelagent_shutdown(1000) == OTELAGENT_OK ? 0 : 2;
}
"""


def run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert res.returncode == 0, (cmd, res.stdout, res.stderr)
    return res.stdout


@pytest.mark.skipif(bool(SANITIZE), reason="consumers built without the sanitizer cannot load a "
                    "sanitized library (its runtime must come first in the process)")
def test_install_tree_and_consumers(tmp_path):
    prefix = tmp_path / "prefix"
    run(["cmake", "--install", BUILD, "--prefix", str(prefix)])
    libdir = prefix / "lib"
    assert (libdir / "libotelagent.so.2").exists()
    assert os.path.islink(libdir / "libotelagent.so")
    assert (prefix / "include" / "otelagent" / "otelagent.h").exists()
    assert (prefix / "include" / "otelagent" / "otelagent.hpp").exists()
    assert (libdir / "pkgconfig" / "otelagent.pc").exists()
    assert (libdir / "cmake" / "otelagent" / "otelagentConfig.cmake").exists()

    # C, through pkg-config.
    (tmp_path / "c.c").write_text(C_PROGRAM)
    env = dict(os.environ, PKG_CONFIG_PATH=str(libdir / "pkgconfig"))
    flags = run(["pkg-config", "--cflags", "--libs", "otelagent"], env=env).split()
    run(["cc", "-std=c99", "-Wall", "-Werror", str(tmp_path / "c.c"), "-o", str(tmp_path / "c"), *flags])
    out = run([str(tmp_path / "c")], env=dict(os.environ, LD_LIBRARY_PATH=str(libdir)))
    assert out.split() == ["0.2.0", "2"]

    # C++, through find_package.
    proj = tmp_path / "cpp"
    proj.mkdir()
    (proj / "main.cc").write_text(CPP_PROGRAM)
    (proj / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(consumer CXX)\nset(CMAKE_CXX_STANDARD 17)\n"
        "find_package(otelagent 0.1 REQUIRED)\nadd_executable(consumer main.cc)\n"
        "target_link_libraries(consumer PRIVATE otelagent::otelagent)\n")
    run(["cmake", "-S", str(proj), "-B", str(proj / "b"), f"-DCMAKE_PREFIX_PATH={prefix}"])
    run(["cmake", "--build", str(proj / "b")])
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}
    env.update(LD_LIBRARY_PATH=str(libdir), OTEL_TRACES_EXPORTER="console")
    res = subprocess.run([str(proj / "b" / "consumer")], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "outer" in res.stderr and "  inner" in res.stderr  # nested under its parent
