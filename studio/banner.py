"""The demo-weights banner: shown on every page while the optimizer's features are untrained."""

from __future__ import annotations

import streamlit as st

from nst.config import weights_mode


def weights_banner() -> None:
    """A visible banner when ``NST_WEIGHTS=random``: the optimizer's paintings will not look like
    the painting. Read from the environment (the workers of a deployment share it), so the web
    tier never imports TensorFlow for it."""
    if weights_mode() == "random":
        st.warning(
            "Demo mode: NST_WEIGHTS=random, so the optimizer's features are untrained. "
            "Everything works, but its paintings will not look like the painting; the Instant "
            "method's network is the real one. Unset NST_WEIGHTS to use the ImageNet weights.",
            icon=":material/science:",
        )
