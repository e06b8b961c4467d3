"""otelagent's zero-code activation (see _otelagent_activation.py): Python
imports this module at start-up because its directory is on PYTHONPATH (put
there by otelagent-instrument or the preload object). Only one sitecustomize
is ever imported, so the one the application or the system has, further on
sys.path, is run from here, after ours.

Any Python may import this file (a Python 2.7 started by a traced service
inherits PYTHONPATH): it stays valid Python 2, and below 3.9 it only runs the
next sitecustomize."""

import sys

if sys.version_info >= (3, 9):
    import _otelagent_activation

    _otelagent_activation.activate()
    _otelagent_activation.run_next_sitecustomize()
else:
    def _run_next_sitecustomize():
        # imp: in every Python below 3.9, 2.7 included.
        import imp
        import os

        rest = []
        seen = False
        for p in sys.path:
            ours = os.path.isfile(os.path.join(p or ".", "_otelagent_activation.py"))
            seen = seen or ours
            if seen and not ours:
                rest.append(p)
        try:
            found = imp.find_module("sitecustomize", rest)
        except ImportError:
            return
        try:
            imp.load_module("sitecustomize", *found)
        finally:
            if found[0] is not None:
                found[0].close()

    _run_next_sitecustomize()
