"""Keep Streamlit from clearing Keras's session under a running job.

After every script run Streamlit calls ``keras.backend.clear_session()`` once Keras is imported
(``script_runner._clean_problem_modules``). That clears TensorFlow's eager kernel cache and step
container while an in-process job thread is inside a ``tf.function`` step, and the server dies
(a segmentation fault or a heap-corruption abort; docs/troubleshooting.md). The studio keeps its
networks for every session on purpose, so only the matplotlib part of that clean-up is kept.
"""

from __future__ import annotations

import contextlib
import sys

from streamlit.runtime.scriptrunner import script_runner

CLEANUP = "_clean_problem_modules"


def _close_figures() -> None:
    """What Streamlit's clean-up does besides Keras: close matplotlib's open figures."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        with contextlib.suppress(Exception):
            pyplot.close("all")


def keep_keras_session() -> None:
    """Install the clean-up without ``clear_session`` (idempotent); ``RuntimeError`` if this
    Streamlit no longer has the function, so an upgrade cannot silently bring the crash back."""
    if not callable(getattr(script_runner, CLEANUP, None)):
        raise RuntimeError(
            f"streamlit.runtime.scriptrunner.script_runner.{CLEANUP} is gone in this Streamlit "
            "version; check whether it still clears the Keras session after each script run."
        )
    setattr(script_runner, CLEANUP, _close_figures)
