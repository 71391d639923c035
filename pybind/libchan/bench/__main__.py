"""``python -m libchan.bench``: see :mod:`libchan.bench.cli`."""

import sys

from libchan.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
