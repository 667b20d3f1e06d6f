"""Command line: ``python -m nst CONTENT STYLE [STYLE ...] -o OUT.png``, ``python -m nst batch``
and ``python -m nst video``.

``common`` holds what the commands share (flags from the config dataclasses, one-line errors,
input loading); ``image`` the single and batch commands; ``video`` the clip command. Usage
errors and unusable inputs print one line on standard error and exit with code 2; a failure to
get the model weights (or the instant network's files) exits with code 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from nst.cli.common import RUN_ERROR, USAGE_ERROR, UsageError
from nst.cli.image import build_batch_parser, build_parser, run_batch, run_single

__all__ = ["build_batch_parser", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "batch":
            return run_batch(argv[1:])
        if argv and argv[0] == "video":
            from nst.cli.video import run_video_command

            return run_video_command(argv[1:])
        return run_single(argv)
    except UsageError as error:
        print(f"nst: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("nst: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # model weights, numerical or other run failures: one line
        from nst.instant import InstantUnavailable

        if isinstance(error, InstantUnavailable):
            print(f"nst: error: {error}", file=sys.stderr)
            return RUN_ERROR
        from nst.engine.model import WeightsError

        if isinstance(error, WeightsError | ValueError):
            print(f"nst: error: {error}", file=sys.stderr)
            return RUN_ERROR if isinstance(error, WeightsError) else USAGE_ERROR
        raise
