"""The backbone network: built once per process for every session, and the demo-weights banner.

With a remote job backend (``NST_QUEUE``) the web process builds no network and never imports
TensorFlow: the workers do.
"""

from __future__ import annotations

import os

import streamlit as st

from nst.config import StyleConfig


def ensure_model(config: StyleConfig) -> None:
    """Build the extractor the run needs (the engine keeps it for every session of the
    process); raises ``WeightsError``, or ``ValueError`` for a layer the network lacks."""
    from nst.engine.model import extractor_for, weights_mode

    if weights_mode() == "imagenet":
        message = (
            f"Loading the {config.backbone.upper()} network. The first time, its ImageNet "
            "weights are downloaded (about 80 MB); later runs start at once."
        )
    else:
        message = f"Building the {config.backbone.upper()} network…"
    with st.spinner(message):
        extractor_for(config)


def weights_banner() -> None:
    """A visible banner when the network runs with untrained (random) weights.

    With a remote backend the web tier reads ``NST_WEIGHTS`` itself (the workers of a
    deployment share its environment file; importing ``nst.engine.model`` would load TensorFlow).
    """
    if _remote_backend():
        random = os.environ.get("NST_WEIGHTS", "").strip() == "random"
    else:
        from nst.engine.model import weights_mode

        random = weights_mode() == "random"
    if random:
        st.warning(
            "Demo mode: NST_WEIGHTS=random, so the optimizer's features are untrained. "
            "Everything works, but its paintings will not look like the painting; the Instant "
            "method's network is the real one. Unset NST_WEIGHTS to use the ImageNet weights.",
            icon=":material/science:",
        )


def _remote_backend() -> bool:
    """True when ``NST_QUEUE`` sends jobs to workers (a malformed value counts as remote: the
    page reports it when a run starts)."""
    from nst.jobs import queue_url

    try:
        return bool(queue_url())
    except ValueError:
        return True
