"""`python -m otelagent.instrument COMMAND...`: the otelagent-instrument
launcher as a module (otelagent_instrument.py). Unlike the console script,
this form imports the otelagent package, so the library must load."""

import sys

from otelagent_instrument import main

if __name__ == "__main__":
    sys.exit(main())
