"""`python -m flexlib train|fit|evaluate ...`: the experiment engine's command line (flexlib.engine.cli)."""
import sys

from .engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
