"""Neural style transfer, importable without Streamlit.

``nst.stylize(content, styles, config)`` (``nst.front``) is the one way in, for either method.
Beside it: ``config`` and ``video_config`` (every knob, built on ``knobs``), ``images`` (decode
and encode), ``color`` (colour preservation and adjustments), ``records`` (what a run yields),
``instant`` (the feed-forward network), ``engine`` (the optimizer), ``motion`` (frame to frame,
for clips), ``quality`` (what a person judges, as numbers), ``jobs`` (the queue), ``worker``
(its RQ worker), ``cli`` and ``bench``.
"""

__version__ = "0.1.0"

from typing import Any

from nst.tf_startup import quiet_tensorflow_import

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lists) is noise for users.
quiet_tensorflow_import()


def __getattr__(name: str) -> Any:
    # ``nst.stylize`` without importing the front door (and NumPy) on ``import nst``.
    if name == "stylize":
        from nst.front import stylize

        return stylize
    raise AttributeError(f"module 'nst' has no attribute {name!r}")
