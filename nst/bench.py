"""``python -m nst.bench``: the benchmark's command line (``nst.benchmarks.cli``)."""

import sys

from nst.benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())
