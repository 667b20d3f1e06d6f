"""``python -m nst``: see ``nst.cli``."""

import sys

from nst.support import exit_if_unsupported

exit_if_unsupported()  # before the CLI's imports: one sentence where there is no TensorFlow

from nst.cli import main  # noqa: E402

sys.exit(main())
