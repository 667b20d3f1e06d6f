"""The test set-up itself: under NST_FAIL_ON_SKIP (as in .ci/run) any skip fails the run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SKIPPING_TEST = """
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="redis-server is not installed")
def test_needs_a_program():
    pass
"""

SKIPPING_MODULE = """
import pytest

pytest.skip("chromium is not installed", allow_module_level=True)
"""


def _pytest(folder: Path, fail_on_skip: str) -> subprocess.CompletedProcess:
    """pytest on ``folder`` with the suite's conftest as a plugin."""
    env = {**os.environ, "NST_FAIL_ON_SKIP": fail_on_skip}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_skip_fails_the_run_only_under_nst_fail_on_skip(tmp_path):
    (tmp_path / "test_one.py").write_text(SKIPPING_TEST)
    (tmp_path / "test_two.py").write_text(SKIPPING_MODULE)
    relaxed = _pytest(tmp_path, "0")
    assert relaxed.returncode == 0, relaxed.stdout
    assert "1 passed, 2 skipped" in relaxed.stdout
    strict = _pytest(tmp_path, "1")
    assert strict.returncode == 1, strict.stdout
    # The skipif turns into an error at set-up; the module's skip (not a test) fails the run.
    assert "1 passed, 1 skipped, 1 error" in strict.stdout
    assert "NST_FAIL_ON_SKIP is set: redis-server is not installed" in strict.stdout


def test_no_tests_is_still_exit_5(tmp_path):
    (tmp_path / "test_empty.py").write_text("")
    assert _pytest(tmp_path, "1").returncode == 5


@pytest.mark.parametrize(
    ("system", "advice"),
    [
        ("Darwin", "please install Redis with Homebrew (https://brew.sh): brew install redis"),
        ("MINGW64_NT-10.0-22631", "run the tests in WSL2 (Ubuntu) with this script there"),
    ],
)
def test_setup_system_says_what_to_install_on_macos_and_windows(tmp_path, system, advice):
    # A fake uname and nothing else on PATH: no redis-server, no apt-get, no sudo.
    uname = tmp_path / "uname"
    uname.write_text(f"#!/bin/sh\necho {system}\n")
    uname.chmod(0o755)
    done = subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(ROOT / "scripts" / "setup-system.sh")],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == ""
    assert advice in done.stderr and len(done.stderr.splitlines()) == 1
