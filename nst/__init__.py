"""Neural style transfer engine (Gatys et al.): importable without Streamlit.

Modules: ``config`` (every knob), ``images`` (decode/encode), ``color`` (colour preservation and
adjustments), ``model`` (backbone feature extractors), ``losses``, ``stylize`` (the loop),
``jobs`` (process-wide queue), ``cli`` and ``bench``.
"""

__version__ = "0.1.0"

import os

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lists) is noise for users.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
