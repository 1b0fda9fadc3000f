"""Django's own test-suite runs in a subprocess (see harness.py); no ``__init__.py`` here."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
