"""``python -m mtdtl``: the ``mtdtl`` command."""

import sys

from mtdtl.cli import main

if __name__ == "__main__":
    sys.exit(main())
