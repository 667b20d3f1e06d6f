"""TensorFlow's start-up lines kept to ``TF_CPP_MIN_LOG_LEVEL`` (``nst.tf_startup``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nst import tf_startup

ROOT = Path(__file__).resolve().parents[1]
ONEDNN_LINE = (
    "I0000 00:00:1796606217.554116    5698 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.\n"
)
WARNING_LINE = "W1207 10:02:03.123456   5698 cuda_executor.cc:1228] no NVIDIA GPU found\n"
ERROR_LINE = "E1207 10:02:03.123456   5698 env.cc:42] cannot open the file\n"
PREFACE = tf_startup.ABSL_PREFACE + "\n"
PYTHON_WARNING = "/x/y.py:3: UserWarning: I0000 looks like a log line but is not one\n"
STARTUP = PREFACE + ONEDNN_LINE + WARNING_LINE + ERROR_LINE + PYTHON_WARNING


@pytest.mark.parametrize(
    ("level", "kept"),
    [
        (0, STARTUP),
        (1, WARNING_LINE + ERROR_LINE + PYTHON_WARNING),
        (2, ERROR_LINE + PYTHON_WARNING),
        (3, PYTHON_WARNING),
    ],
)
def test_the_level_hides_the_absl_lines_below_it(level: int, kept: str) -> None:
    assert tf_startup.without_hidden_lines(STARTUP, level) == kept


def test_filtered_stderr_writes_back_what_the_level_keeps(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with tf_startup.filtered_stderr(2):
        os.write(2, STARTUP.encode())
    assert capfd.readouterr().err == ERROR_LINE + PYTHON_WARNING


def _import_tensorflow(level: str | None) -> str:
    """Standard error of a fresh ``import nst, tensorflow`` with the level set or unset."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(tf_startup.LOG_LEVEL_ENV, None)
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # oneDNN on, as users get it
    if level is not None:
        env[tf_startup.LOG_LEVEL_ENV] = level
    done = subprocess.run(
        [sys.executable, "-c", "import nst, tensorflow"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_a_level_the_user_sets_to_0_shows_tensorflows_lines() -> None:
    # TensorFlow does print the line; nst leaves it alone when the user asks for everything.
    assert "oneDNN custom operations are on" in _import_tensorflow("0")


def test_importing_tensorflow_after_nst_prints_nothing() -> None:
    assert _import_tensorflow(None) == ""
