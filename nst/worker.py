"""``python -m nst.worker``: the RQ worker's command line (``nst.jobs.worker``)."""

import sys

from nst.jobs.worker import main

if __name__ == "__main__":
    sys.exit(main())
