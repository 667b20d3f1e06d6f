"""Whether this Python and this system can run the studio, told in one sentence.

TensorFlow 2.21, which the painted engine needs, is published for Python 3.11 to 3.13 on Linux
(x86-64 and aarch64), macOS on Apple silicon and Windows (x86-64). Elsewhere
``pip install -r requirements.txt`` installs everything but TensorFlow (requirements.txt's
markers), and the app and the command line call ``exit_if_unsupported`` first, so that the user
reads which systems work instead of a traceback. This module imports nothing heavy and keeps to
syntax that older Pythons can read.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from collections.abc import Callable

SUPPORTED_PYTHONS = ((3, 11), (3, 12), (3, 13))
# (platform.system(), platform.machine()), lower-cased, with a TensorFlow 2.21 wheel: the name
# users know each by. Windows calls x86-64 "AMD64".
SUPPORTED_SYSTEMS = {
    ("linux", "x86_64"): "Linux on x86-64",
    ("linux", "aarch64"): "Linux on aarch64",
    ("darwin", "arm64"): "macOS on Apple silicon",
    ("windows", "amd64"): "Windows on x86-64",
}
SYSTEM_NAMES = {"Darwin": "macOS"}
EXIT_UNSUPPORTED = 1


def _python_list() -> str:
    names = [f"{major}.{minor}" for major, minor in SUPPORTED_PYTHONS]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _system_list() -> str:
    names = list(SUPPORTED_SYSTEMS.values())
    return ", ".join(names[:-1]) + " or " + names[-1]


def has_tensorflow() -> bool:
    """True if ``import tensorflow`` can find the package (nothing is imported)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        return False


def unsupported_reason() -> str | None:
    """One sentence saying why the studio cannot run here, or None where it can.

    Only a missing TensorFlow is refused; the sentence names what is wrong with this Python
    or this system, or else says how to install TensorFlow.
    """
    if has_tensorflow():
        return None
    python = tuple(sys.version_info[:2])
    system, machine = platform.system(), platform.machine()
    if python not in SUPPORTED_PYTHONS:
        return (
            f"The style transfer studio needs Python {_python_list()} (TensorFlow 2.21 has no "
            f"build for Python {python[0]}.{python[1]}); please install one of them and run "
            "pip install -r requirements.txt with it."
        )
    if (system.lower(), machine.lower()) not in SUPPORTED_SYSTEMS:
        here = f"{SYSTEM_NAMES.get(system, system or 'this system')} on {machine or 'this CPU'}"
        return (
            f"The style transfer studio runs on {_system_list()}, where TensorFlow 2.21 is "
            f"published; there is none for {here}."
        )
    return (
        "TensorFlow is not installed; please run: pip install -r requirements.txt "
        "(or see docs/install.md for a GPU)."
    )


def exit_if_unsupported(
    show: Callable[[str], object] | None = None, stop: Callable[[], object] | None = None
) -> None:
    """Where ``unsupported_reason`` gives a sentence: print it on standard error, hand it to
    ``show`` (the app's ``st.error``) and call ``stop`` (``st.stop``), or without ``stop`` exit
    with code 1. Returns quietly where the studio can run."""
    reason = unsupported_reason()
    if reason is None:
        return
    print(reason, file=sys.stderr)
    if show is not None:
        show(reason)
    if stop is not None:
        stop()
        return
    raise SystemExit(EXIT_UNSUPPORTED)
