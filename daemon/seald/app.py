"""The ``seald`` console entry point (``seald = "seald.app:main"``; ``python -m seald.app``).

The daemon's wiring lives in :mod:`seald.runtime.daemon`; this name stays so that installed
wrappers and unit files keep working.
"""

from __future__ import annotations

import sys

from seald.runtime.daemon import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
