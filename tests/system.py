"""System programs some tests need (Debian packages), and the one-line skip when one is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SETUP = "scripts/setup-system.sh"


def missing(program: str) -> bool:
    """Whether ``program`` (a name on PATH, or an absolute path) is absent."""
    if Path(program).is_absolute():
        return not Path(program).is_file()
    return shutil.which(program) is None


def requires(program: str, package: str) -> pytest.MarkDecorator:
    """Skip the marked tests, with one line saying what to install, when ``program`` is missing."""
    return pytest.mark.skipif(
        missing(program),
        reason=(
            f"{program} is not installed: run `sudo {SETUP}` or "
            f"`sudo apt-get install -y {package}` (Debian/Ubuntu)"
        ),
    )
