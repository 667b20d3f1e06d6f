"""The backbone network: built once per process for every session, and the demo-weights banner."""

from __future__ import annotations

import streamlit as st

from nst.config import StyleConfig


def ensure_model(config: StyleConfig) -> None:
    """Build the extractor the run needs (the engine keeps it for every session of the
    process); raises ``WeightsError``, or ``ValueError`` for a layer the network lacks."""
    from nst.model import weights_mode
    from nst.stylize import extractor_for

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
    """A visible banner when the network runs with untrained (random) weights."""
    from nst.model import weights_mode

    if weights_mode() == "random":
        st.warning(
            "Demo mode: NST_WEIGHTS=random, so the network's features are untrained. Everything "
            "works, but results will not look like the painting. Unset NST_WEIGHTS to use the "
            "ImageNet weights.",
            icon=":material/science:",
        )
