"""``python -m m2pdance.training``: the same command line as ``m2pdance-train``."""
import sys

from .cli import main

sys.exit(main())
