"""The loader's fixed order, ABI check and error, each in a fresh interpreter
(a library, once loaded, stays loaded)."""

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PKG = os.path.join(ROOT, "bindings", "python", "otelagent")
BUILD = os.environ.get("OTELAGENT_BUILD_DIR", os.path.join(ROOT, "build"))
LIB = os.path.join(BUILD, "libotelagent.so.2")


@pytest.fixture
def bare_pkg(tmp_path):
    """A copy of the package without its bundled library."""
    dst = tmp_path / "site" / "otelagent"
    shutil.copytree(PKG, dst, ignore=shutil.ignore_patterns("_lib", "__pycache__"))
    return str(tmp_path / "site")


def run(code, path, env=None):
    full = {k: v for k, v in os.environ.items()
            if k not in ("OTELAGENT_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    full["PYTHONPATH"] = path
    full.update(env or {})
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          timeout=60)


def test_nothing_found_lists_every_place_tried(bare_pkg):
    r = run("import otelagent", bare_pkg)
    assert r.returncode != 0
    err = r.stderr
    assert "LibraryNotFound" in err and "tried, in order" in err
    for place in ("already loaded as libotelagent.so.2", "/proc/self/maps", "OTELAGENT_LIBRARY",
                  "bundled copy", "system search path"):
        assert place in err, place


def test_system_search_path(bare_pkg):
    r = run("import otelagent; print(otelagent.LOADED_FROM)", bare_pkg,
            {"LD_LIBRARY_PATH": BUILD})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("system search path")


def test_env_override_used_and_fails_loudly(bare_pkg, tmp_path):
    r = run("import otelagent; print(otelagent.LOADED_FROM)", bare_pkg,
            {"OTELAGENT_LIBRARY": LIB})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OTELAGENT_LIBRARY")
    # A wrong override is an error even though the search path has a good copy.
    r = run("import otelagent", bare_pkg,
            {"OTELAGENT_LIBRARY": str(tmp_path / "missing.so"), "LD_LIBRARY_PATH": BUILD})
    assert r.returncode != 0 and "OTELAGENT_LIBRARY=" in r.stderr and "cannot be loaded" in r.stderr


def test_abi_checked_right_after_loading(bare_pkg):
    libc = "libc.so.6"  # loads fine, has no otelagent_abi_version
    r = run("import otelagent", bare_pkg, {"OTELAGENT_LIBRARY": libc})
    assert r.returncode != 0 and "AbiMismatch" in r.stderr


def test_copy_already_in_process_is_reused(bare_pkg, tmp_path):
    # The host loaded the library from its own path first (as an embedding
    # application would); the package must use that copy, not load another.
    other = tmp_path / "hostlib"
    other.mkdir()
    shutil.copy(LIB, other / "libotelagent.so.2")
    code = f"""
import ctypes
ctypes.CDLL({str(other / 'libotelagent.so.2')!r})
import otelagent
print(otelagent.LOADED_FROM)
paths = {{l.split()[-1] for l in open('/proc/self/maps') if 'libotelagent' in l}}
print(len(paths))
"""
    r = run(code, bare_pkg, {"LD_LIBRARY_PATH": BUILD, "OTELAGENT_LIBRARY": LIB})
    assert r.returncode == 0, r.stderr
    where, count = r.stdout.split("\n")[:2]
    assert where.startswith("already loaded") and count == "1"


def test_bundled_copy_preferred_over_search_path():
    if not os.path.isdir(os.path.join(PKG, "_lib")):
        pytest.skip("no bundled library (bindings/python/bundle.sh not run)")
    r = run("import otelagent; print(otelagent.LOADED_FROM)", os.path.dirname(PKG),
            {"LD_LIBRARY_PATH": BUILD})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("bundled")
