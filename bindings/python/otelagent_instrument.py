"""otelagent-instrument: runs a command with zero-code tracing.

    otelagent-instrument uvicorn app:app --workers 4
    otelagent-instrument gunicorn -w 4 app:app
    python -m otelagent.instrument python app.py    (the same, as a module)

Puts otelagent's bootstrap directory (its sitecustomize.py) in front of
PYTHONPATH, then replaces itself with the command. Every Python interpreter
the command starts, and the ones those start (spawned workers), inherits the
variable and activates, unless it is on the deny list. Configuration is the
OTEL_* environment (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, ...)."""

import os
import sys
from importlib.util import find_spec

# A module of its own, beside the package rather than in it: importing the
# otelagent package loads the shared library, which the launcher does not
# need and which must not stop the command from running if it cannot load.
PACKAGE_DIR = find_spec("otelagent").submodule_search_locations[0]
BOOTSTRAP_DIR = os.path.join(PACKAGE_DIR, "_bootstrap")
PRELOAD = os.path.join(PACKAGE_DIR, "_lib", "libotelagent_preload.so")

USAGE = """usage: otelagent-instrument COMMAND [ARGS...]
       otelagent-instrument --print-preload   the object to put in LD_PRELOAD
       otelagent-instrument --print-bootstrap the directory with the sitecustomize.py
       otelagent-instrument --deny-list       the programs left alone (OTELAGENT_PYTHON_DENY)
Runs COMMAND with every Python process it starts traced by otelagent
(FastAPI/Starlette, Flask, requests, httpx, urllib3, logging), configured by
the OTEL_* environment variables."""


def _holds_bootstrap(entry):
    # This directory under any spelling (a symlinked site-packages), or
    # another install's copy (the preload of a host-wide install): one
    # bootstrap on the path, ours.
    return os.path.isfile(os.path.join(entry or ".", "_otelagent_activation.py"))


def environment(environ):
    """`environ` with the bootstrap directory first on PYTHONPATH (once)."""
    env = dict(environ)
    # An empty entry is the current directory to Python (PYTHONPATH=":/libs"
    # from a Dockerfile's ENV PYTHONPATH="${PYTHONPATH}:/libs"): kept.
    value = env.get("PYTHONPATH")
    parts = [p for p in (value.split(os.pathsep) if value else ())
             if not p or not _holds_bootstrap(p)]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR] + parts)
    return env


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not args else sys.stdout)
        return 2 if not args else 0
    if args[0] == "--print-preload":
        if not os.path.exists(PRELOAD):
            print(f"otelagent-instrument: no {PRELOAD} (run bindings/python/bundle.sh)",
                  file=sys.stderr)
            return 1
        print(PRELOAD)
        return 0
    if args[0] == "--print-bootstrap":
        print(BOOTSTRAP_DIR)
        return 0
    if args[0] == "--deny-list":
        sys.path.insert(0, BOOTSTRAP_DIR)
        import _otelagent_activation as activation
        print("\n".join(activation.deny_patterns()))
        return 0
    if args[0] == "--":
        args = args[1:]
    try:
        os.execvpe(args[0], args, environment(os.environ))
    except OSError as exc:
        print(f"otelagent-instrument: cannot run {args[0]}: {exc.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
