"""The ``preview`` and ``default`` sections: seconds from pressing go (model built) to the first
preview at default settings, and a complete default-settings run."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from nst.benchmarks.common import (
    DEFAULTS,
)
from nst.config import StyleConfig


def first_preview_seconds(
    content: np.ndarray, style: np.ndarray, size: int, base: StyleConfig = DEFAULTS
) -> float:
    """Seconds from pressing go (model built) to the first preview, at default settings, which
    is the instant picture the studio's image jobs start with (``nst.jobs.image.run_image``)."""
    from nst.engine import Progress
    from nst.front import stylize

    started = time.perf_counter()
    events = stylize(content, [style], base.replace(size=size))
    try:
        for event in events:
            if isinstance(event, Progress) and event.preview is not None:
                return time.perf_counter() - started
    finally:
        events.close()
    return float("nan")


def default_run(
    content: np.ndarray, style: np.ndarray, size: int, base: StyleConfig = DEFAULTS
) -> dict[str, Any]:
    """A complete run at default settings (model built): total seconds and their split."""
    from nst.front import result_of, stylize

    started = time.perf_counter()
    result = result_of(stylize(content, [style], base.replace(size=size), instant_first=False))
    return {
        "size": size,
        "seconds": time.perf_counter() - started,
        "steps": result.steps_done,
        "timings": result.timings,
        "final_loss": result.final_loss,
    }
