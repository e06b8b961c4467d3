"""otelagent's zero-code activation (see _otelagent_activation.py): Python
imports this module at start-up because its directory is on PYTHONPATH (put
there by otelagent-instrument or the preload object). Only one sitecustomize
is ever imported, so the one the application or the system has, further on
sys.path, is run from here, after ours."""

import _otelagent_activation

_otelagent_activation.activate()
_otelagent_activation.run_next_sitecustomize()
