"""Test settings and fixtures shared by every test module.

The test images are made by ``tests/scenes.py`` into a session temporary folder, so the suite
needs nothing outside the repository. With ``NST_FAIL_ON_SKIP=1`` (set by ``.ci/run``) every
skipped test counts as a failure, so CI cannot pass with part of the suite left out.
"""

import os
import tempfile

# No internet here: tests use untrained features (see DESIGN.md, "Model weights").
os.environ.setdefault("NST_WEIGHTS", "random")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Servers started by the tests skip the start-up warm-up (tests/test_front.py runs it).
os.environ.setdefault("NST_WARM_UP", "0")
# Paces measured by the tests' runs stay out of the user's cache (``nst.pace``).
os.environ.setdefault(
    "NST_PACE_FILE", os.path.join(tempfile.mkdtemp(prefix="nst-pace-"), "pace.json")
)

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

FAIL_ON_SKIP = os.environ.get("NST_FAIL_ON_SKIP", "") not in ("", "0")


@pytest.fixture(scope="session")
def test_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated photo and painting, as JPEG and PNG: file name -> path."""
    from tests.scenes import write_images

    return write_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def content_path(test_images: dict[str, Path]) -> Path:
    """A 1024x768 photo-like street scene (JPEG)."""
    return test_images["street.jpg"]


@pytest.fixture(scope="session")
def style_path(test_images: dict[str, Path]) -> Path:
    """A 1024x640 painting-like texture (JPEG)."""
    return test_images["swirls.jpg"]


@pytest.fixture(scope="session")
def content_image(content_path: Path) -> np.ndarray:
    from nst.images import load_image, resize_longest

    return resize_longest(load_image(content_path), 256)


@pytest.fixture(scope="session")
def style_image(style_path: Path) -> np.ndarray:
    from nst.images import load_image, resize_longest

    return resize_longest(load_image(style_path), 256)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if FAIL_ON_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        reason = str(reason).removeprefix("Skipped: ")
        report.longrepr = f"skipped, and NST_FAIL_ON_SKIP is set: {reason}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Skips outside a test (a whole module at collection) also fail the run.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if FAIL_ON_SKIP and reporter is not None and reporter.stats.get("skipped"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
