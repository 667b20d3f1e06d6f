"""The one sentence on a Python or system without TensorFlow (``nst.support``), simulated: the
platform through ``platform.system``/``machine`` and ``sys.version_info``, a missing TensorFlow
through ``sys.modules["tensorflow"] = None`` (what ``import tensorflow`` then fails on)."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nst import support

ROOT = Path(__file__).resolve().parents[1]
INSTALL_SENTENCE = (
    "TensorFlow is not installed; please run: pip install -r requirements.txt "
    "(or see docs/install.md for a GPU)."
)
PYTHON_314_SENTENCE = (
    "The style transfer studio needs Python 3.11, 3.12 or 3.13 (TensorFlow 2.21 has no build "
    "for Python 3.14); please install one of them and run pip install -r requirements.txt "
    "with it."
)
# ``python -m nst`` with TensorFlow blocked and, optionally, another Python version claimed.
WITHOUT_TENSORFLOW = """
import runpy, sys
sys.modules["tensorflow"] = None
if len(sys.argv) > 1 and sys.argv[1] == "--claim-python-3.14":
    del sys.argv[1]
    sys.version_info = (3, 14, 0, "final", 0)
runpy.run_module("nst", run_name="__main__", alter_sys=True)
"""


def _simulate(
    monkeypatch: pytest.MonkeyPatch, python: tuple[int, int], system: str, machine: str
) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setattr(sys, "version_info", (*python, 0, "final", 0))
    monkeypatch.setattr(platform, "system", lambda: system)
    monkeypatch.setattr(platform, "machine", lambda: machine)


@pytest.mark.parametrize(
    ("system", "machine"),
    [("Linux", "x86_64"), ("Linux", "aarch64"), ("Darwin", "arm64"), ("Windows", "AMD64")],
)
def test_a_supported_system_without_tensorflow_is_told_to_install_it(
    monkeypatch: pytest.MonkeyPatch, system: str, machine: str
) -> None:
    _simulate(monkeypatch, (3, 12), system, machine)
    assert support.unsupported_reason() == INSTALL_SENTENCE


def test_python_314_is_told_which_pythons_work(monkeypatch: pytest.MonkeyPatch) -> None:
    _simulate(monkeypatch, (3, 14), "Linux", "x86_64")
    assert support.unsupported_reason() == PYTHON_314_SENTENCE


@pytest.mark.parametrize(
    ("system", "machine", "named"),
    [
        ("Darwin", "x86_64", "macOS on x86_64"),  # an Intel Mac
        ("Windows", "ARM64", "Windows on ARM64"),
        ("FreeBSD", "amd64", "FreeBSD on amd64"),
    ],
)
def test_a_system_without_tensorflow_is_told_which_systems_work(
    monkeypatch: pytest.MonkeyPatch, system: str, machine: str, named: str
) -> None:
    _simulate(monkeypatch, (3, 12), system, machine)
    assert support.unsupported_reason() == (
        "The style transfer studio runs on Linux on x86-64, Linux on aarch64, macOS on Apple "
        "silicon or Windows on x86-64, where TensorFlow 2.21 is published; there is none for "
        f"{named}."
    )


def test_with_tensorflow_any_system_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "has_tensorflow", lambda: True)
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert support.unsupported_reason() is None
    support.exit_if_unsupported()  # returns


def test_exit_if_unsupported_hands_the_sentence_to_the_app(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _simulate(monkeypatch, (3, 14), "Linux", "x86_64")
    shown: list[str] = []
    stopped: list[bool] = []
    support.exit_if_unsupported(shown.append, lambda: stopped.append(True))
    assert shown == [PYTHON_314_SENTENCE] and stopped == [True]
    assert capsys.readouterr().err == PYTHON_314_SENTENCE + "\n"
    with pytest.raises(SystemExit) as exited:
        support.exit_if_unsupported()
    assert exited.value.code == 1


@pytest.mark.parametrize(
    ("claim", "sentence"), [([], INSTALL_SENTENCE), (["--claim-python-3.14"], PYTHON_314_SENTENCE)]
)
def test_the_command_line_prints_one_sentence_without_tensorflow(
    tmp_path: Path, claim: list[str], sentence: str
) -> None:
    _prints_only(sentence, WITHOUT_TENSORFLOW, *claim, "a.jpg", "b.jpg", "-o", "out.png")


def test_the_worker_prints_one_sentence_without_tensorflow(tmp_path: Path) -> None:
    script = WITHOUT_TENSORFLOW.replace('run_module("nst",', 'run_module("nst.worker",')
    _prints_only(INSTALL_SENTENCE, script, "--url", "redis://127.0.0.1:1/0", "--burst")


def _prints_only(sentence: str, script: str, *args: str) -> None:
    """``script`` run with ``args`` in a fresh Python exits 1 with ``sentence`` alone."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr == sentence + "\n" and done.stdout == ""


def test_the_app_shows_the_sentence_instead_of_its_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert [error.value for error in at.error] == [INSTALL_SENTENCE]
    assert not at.button  # the Stylize page, which it would open, has two
