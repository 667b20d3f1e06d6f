"""TensorFlow's start-up lines on standard error, kept to what ``TF_CPP_MIN_LOG_LEVEL`` allows.

TensorFlow 2.21 logs through absl, and the lines it prints while its libraries load come before
its own logging reads ``TF_CPP_MIN_LOG_LEVEL``: ``I0000 … port.cc:153] oneDNN custom operations
are on …`` (twice, once per library) and absl's "WARNING: All log messages before
absl::InitializeLog() …" appear at any level. ``quiet_tensorflow_import`` sets the level to 2
where the user has not set it, and installs an import hook: the first ``import tensorflow`` runs
with the process's standard error (file descriptor 2) captured, and what was printed is written
back without the log lines below the level. Nothing else is changed, and nothing is captured
where the level is 0.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
from collections.abc import Iterator
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LOG_LEVEL = "2"  # INFO and WARNING hidden: what a user of the studio wants
ABSL_PREFACE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
)
# An absl log line: severity letter, MMDD, time (hh:mm:ss.micros; absl prints 00:00:<epoch
# seconds> before its set-up), thread id, file:line].
ABSL_LINE = re.compile(r"([IWEF])\d{4} [\d:.]+ +\d+ \S+:\d+\] ")
SEVERITIES = "IWEF"


def min_log_level() -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as a number (0, showing everything, where unset or unreadable)."""
    try:
        return int(os.environ.get(LOG_LEVEL_ENV, "0"))
    except ValueError:
        return 0


def is_hidden(line: str, level: int) -> bool:
    """True for absl's preface and the absl log lines below ``level`` (with level 0, none)."""
    if level <= 0:
        return False
    if line.rstrip("\r\n") == ABSL_PREFACE:
        return True
    match = ABSL_LINE.match(line)
    return match is not None and SEVERITIES.index(match.group(1)) < level


def without_hidden_lines(text: str, level: int) -> str:
    """``text`` less the lines ``is_hidden`` drops at ``level``."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_hidden(line, level))


@contextlib.contextmanager
def filtered_stderr(level: int) -> Iterator[None]:
    """Capture file descriptor 2 for the block, then write back what ``level`` keeps.

    Where descriptor 2 cannot be duplicated (no console), the block runs unfiltered.
    """
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        saved = None
    if saved is None:
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = without_hidden_lines(capture.read().decode(errors="replace"), level)
            if kept:
                os.write(2, kept.encode())


class QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` through the other finders and filters its first import."""

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        spec = None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is not self and find is not None:
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def quiet_exec_module(module: ModuleType) -> None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self)  # the first import only
            with filtered_stderr(min_log_level()):
                exec_module(module)

        # A probe (``importlib.util.find_spec``) gets a spec too, which it never executes.
        spec.loader.exec_module = quiet_exec_module  # type: ignore[method-assign]
        return spec


def quiet_tensorflow_import() -> None:
    """Set ``TF_CPP_MIN_LOG_LEVEL`` to 2 unless the user set it, and, where TensorFlow is not
    imported yet and the level hides anything, filter its first import (see the module)."""
    os.environ.setdefault(LOG_LEVEL_ENV, DEFAULT_LOG_LEVEL)
    if "tensorflow" in sys.modules or min_log_level() <= 0:
        return
    if not any(isinstance(finder, QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, QuietTensorFlowFinder())
