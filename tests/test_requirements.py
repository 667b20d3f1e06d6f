"""The requirements resolve on every supported platform and Python, without installing anything.

``uv pip compile --python-platform P --python-version V --only-binary :all:`` evaluates the
markers for the target, not for this machine, and finds a wheel for every package there.
requirements-dev.txt includes requirements.txt, so one resolution covers both. It needs the
package index: offline, the tests skip and say so. All resolutions start at once, in a
module fixture, so the matrix takes about as long as its slowest member.
"""

import importlib.util
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INDEX = "https://pypi.org/simple/"
# uv's names for the platforms README promises: glibc 2.28 Linux, macOS 13 on Apple silicon.
PLATFORMS = {
    "linux-x86_64": "x86_64-manylinux_2_28",
    "linux-aarch64": "aarch64-manylinux_2_28",
    "macos-arm64": "aarch64-apple-darwin",
    "windows-x86_64": "x86_64-pc-windows-msvc",
}
PYTHONS = ("3.11", "3.12", "3.13")
# tensorflow-cpu has wheels for Linux x86-64 and Windows only; the others take tensorflow.
TENSORFLOW = {
    "linux-x86_64": "tensorflow-cpu",
    "linux-aarch64": "tensorflow",
    "macos-arm64": "tensorflow",
    "windows-x86_64": "tensorflow-cpu",
}
# Python 3.14 has no TensorFlow 2.21 wheel: the markers leave it out, so that pip installs the
# rest and the studio can say which Pythons work (nst.support).
NO_TENSORFLOW = ("linux-x86_64", "3.14")
PINNED = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)", re.MULTILINE)

Resolution = tuple[str, str]  # (platform, Python version)


def _index_url() -> str:
    return os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL") or DEFAULT_INDEX


def _unreachable(url: str) -> str | None:
    """Why the index at ``url`` cannot be read, or None where it can."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/uv/", timeout=15) as response:
            response.read(1)
    except OSError as error:
        return str(getattr(error, "reason", error))
    return None


@pytest.fixture(scope="module")
def resolutions() -> Iterator[dict[Resolution, subprocess.Popen]]:
    """One running ``uv pip compile`` of requirements-dev.txt per (platform, Python)."""
    if importlib.util.find_spec("uv") is None:
        pytest.skip("uv is not installed: pip install -r requirements-dev.txt")
    reason = _unreachable(_index_url())
    if reason is not None:
        pytest.skip(f"offline: the package index {_index_url()} is unreachable ({reason})")
    wanted = [(platform, python) for platform in PLATFORMS for python in PYTHONS]
    running = {
        (platform, python): subprocess.Popen(
            [
                *(sys.executable, "-m", "uv", "pip", "compile", "requirements-dev.txt"),
                *("--python-platform", PLATFORMS[platform], "--python-version", python),
                *("--only-binary", ":all:", "--no-header", "--no-annotate", "--quiet"),
                # The target is set above: no search for (or download of) a Python 3.x here.
                *("--python", sys.executable, "--no-python-downloads"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for platform, python in [*wanted, NO_TENSORFLOW]
    }
    yield running
    for process in running.values():
        if process.poll() is None:
            process.kill()
        process.communicate()


def _resolved(running: dict[Resolution, subprocess.Popen], key: Resolution) -> dict[str, str]:
    """The pinned packages of one resolution (name -> version); fails with uv's own words."""
    out, err = running[key].communicate(timeout=300)
    assert running[key].returncode == 0, f"{key}: {err.strip()[-2000:]}"
    return {name.lower(): version for name, version in PINNED.findall(out)}


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_requirements_resolve_with_the_platforms_tensorflow(
    resolutions: dict[Resolution, subprocess.Popen], platform: str, python: str
) -> None:
    pinned = _resolved(resolutions, (platform, python))
    expected = TENSORFLOW[platform]
    other = "tensorflow" if expected == "tensorflow-cpu" else "tensorflow-cpu"
    assert pinned[expected].startswith("2.21."), pinned.get(expected)
    assert other not in pinned
    for package in ("streamlit", "onnxruntime", "platformdirs", "pytest", "uv"):
        assert package in pinned  # runtime and dev


def test_python_314_resolves_without_tensorflow(
    resolutions: dict[Resolution, subprocess.Popen],
) -> None:
    pinned = _resolved(resolutions, NO_TENSORFLOW)
    assert "tensorflow" not in pinned and "tensorflow-cpu" not in pinned
    assert "streamlit" in pinned
