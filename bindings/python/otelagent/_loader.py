"""Finds and loads libotelagent, in this fixed order (documented in README.md):

1. a copy already loaded in the process (never load a second one): looked up
   by its SONAME with RTLD_NOLOAD, then by the mappings in /proc/self/maps;
2. the file named by the environment variable OTELAGENT_LIBRARY: when it is
   set, it must load and speak our ABI, otherwise loading fails loudly (no
   fall-through to another copy, which would hide the mistake);
3. the copy bundled inside this package (otelagent/_lib/);
4. the dynamic linker's search path (LD_LIBRARY_PATH, ld.so.cache, ...).

The ABI version is checked right after a copy loads; a copy with another ABI
major is refused and the search goes on. When nothing fits, the error lists
every place tried and why it failed."""

import ctypes
import os

from ._errors import AbiMismatch, LibraryNotFound

ABI_MAJOR = 2
ABI_MINOR = 0
SONAME = f"libotelagent.so.{ABI_MAJOR}"
ENV_VAR = "OTELAGENT_LIBRARY"
BUNDLED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib")


def _check_abi(lib, where):
    try:
        fn = lib.otelagent_abi_version
    except AttributeError:
        raise AbiMismatch(f"{where}: no otelagent_abi_version symbol") from None
    fn.restype = ctypes.c_uint32
    fn.argtypes = []
    abi = fn()
    major, minor = abi >> 16, abi & 0xFFFF
    if major != ABI_MAJOR or minor < ABI_MINOR:
        raise AbiMismatch(f"{where}: ABI {major}.{minor}, this package needs "
                          f"{ABI_MAJOR}.{ABI_MINOR} or a later {ABI_MAJOR}.x")
    return lib


def _already_loaded(tried):
    mode = os.RTLD_NOLOAD | os.RTLD_NOW | os.RTLD_GLOBAL
    try:
        return ctypes.CDLL(SONAME, mode=mode), f"already loaded ({SONAME})"
    except OSError:
        tried.append(f"already loaded as {SONAME}: no")
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps
                     if line.count(" ") >= 5 and "/libotelagent.so" in line}
    except (OSError, IndexError):
        paths = set()
    for path in sorted(paths):
        try:
            return ctypes.CDLL(path, mode=mode), f"already loaded ({path})"
        except OSError as e:
            tried.append(f"already loaded at {path}: {e}")
    if not paths:
        tried.append("already loaded (/proc/self/maps): no libotelagent mapped")
    return None, None


def _bundled_candidates():
    if not os.path.isdir(BUNDLED_DIR):
        return []
    names = sorted(n for n in os.listdir(BUNDLED_DIR) if n.startswith("libotelagent.so"))
    # Prefer the SONAME link, then any versioned file.
    names.sort(key=lambda n: n != SONAME)
    return [os.path.join(BUNDLED_DIR, n) for n in names]


def load():
    """Returns (CDLL, description of where it came from); raises
    LibraryNotFound or AbiMismatch."""
    tried = []
    lib, where = _already_loaded(tried)
    if lib is not None:
        # A copy in the process is the only one we may use: a mismatch is fatal.
        return _check_abi(lib, where), where

    override = os.environ.get(ENV_VAR)
    if override:
        try:
            lib = ctypes.CDLL(override, mode=os.RTLD_NOW | os.RTLD_GLOBAL)
        except OSError as e:
            raise LibraryNotFound(f"{ENV_VAR}={override} cannot be loaded: {e}") from None
        return _check_abi(lib, f"{ENV_VAR}={override}"), f"{ENV_VAR} ({override})"
    tried.append(f"{ENV_VAR}: not set")

    candidates = _bundled_candidates()
    if not candidates:
        tried.append(f"bundled copy: none in {BUNDLED_DIR}")
    for path in candidates:
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_GLOBAL)
            return _check_abi(lib, path), f"bundled ({path})"
        except (OSError, AbiMismatch) as e:
            tried.append(f"bundled {path}: {e}")

    try:
        lib = ctypes.CDLL(SONAME, mode=os.RTLD_NOW | os.RTLD_GLOBAL)
        return _check_abi(lib, f"system {SONAME}"), f"system search path ({SONAME})"
    except (OSError, AbiMismatch) as e:
        tried.append(f"system search path ({SONAME}): {e}")

    raise LibraryNotFound("libotelagent could not be loaded; tried, in order:\n  "
                          + "\n  ".join(tried))
