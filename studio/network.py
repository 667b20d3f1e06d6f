"""The backbone network: built once per process for every session, and the demo-weights banner."""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from nst.config import StyleConfig


@st.cache_resource(show_spinner=False, max_entries=6)
def _extractor(backbone: str, pooling: str, precision: str, weights: str) -> Any:
    """The shared, thread-safe extractor (``weights``, the NST_WEIGHTS value, keys the cache)."""
    from nst.model import preload

    return preload(backbone, pooling, precision)


def ensure_model(config: StyleConfig) -> None:
    """Build (once per process) the backbone the run needs; raises ``WeightsError``."""
    from nst.model import weights_mode

    if weights_mode() == "imagenet":
        message = (
            f"Loading the {config.backbone.upper()} network. The first time, its ImageNet "
            "weights are downloaded (about 80 MB); later runs start at once."
        )
    else:
        message = f"Building the {config.backbone.upper()} network…"
    with st.spinner(message):
        weights = os.environ.get("NST_WEIGHTS", "")
        _extractor(config.backbone, config.pooling, config.precision, weights)


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
