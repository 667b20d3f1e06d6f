"""How much memory a run needs, and the check that refuses one that cannot fit.

A run is checked once, where it enters the engine (``nst.engine.run.stylize``) or the web tier
(``studio.runs``), before any tensor is allocated.
"""

from __future__ import annotations

from collections.abc import Sequence

import psutil

from nst.config import StyleConfig
from nst.engine.model import resolve_precision
from nst.images import style_side, working_shape

# Peak memory of a run is a straight line in the working image's pixels, for each optimizer and
# precision (``python -m nst.bench --only memory`` measures it, one fresh process per size; the
# figures are in docs/benchmarks.md and docs/lbfgs.md). The base is TensorFlow and the model.
# L-BFGS adds its correction pairs (two float32 copies of the image per pair) and a few working
# vectors. The constants sit a little above the measurements so the estimate never refuses a
# size that fits by much.
MEMORY_BASE_BYTES = 1.2e9
MEMORY_BYTES_PER_PIXEL = {"float32": 2150.0, "bfloat16": 1750.0}
LBFGS_BYTES_PER_PIXEL = 350.0
MEMORY_MARGIN = 1.1  # allocator slack and measurement spread


def estimate_memory(config: StyleConfig, content_shape: Sequence[int]) -> int:
    """Bytes of memory a run of ``config`` on a content image of ``content_shape`` peaks at.

    A coarse-to-fine run peaks at its largest scale, the output size: each smaller scale's
    tensors are released before the next is prepared, so the smaller scales add nothing
    (``nst.bench --only large`` measures both kinds of run)."""
    height, width = working_shape(*content_shape[:2], config.size)
    per_pixel = MEMORY_BYTES_PER_PIXEL[resolve_precision(config.precision)]
    if config.optimizer == "lbfgs":
        per_pixel += LBFGS_BYTES_PER_PIXEL
    # The style image only goes forward, once, before the first step: about a third of a
    # step's memory per pixel. Its longest side is ``style_side``; assume it is square.
    side = style_side(config.size, config.style_scale)
    peak = max(height * width, side**2 / 3) * per_pixel
    return int(MEMORY_BASE_BYTES + MEMORY_MARGIN * peak)


def available_memory() -> int:
    """Bytes this process could still use: what the system has available plus our own RSS."""
    process = psutil.Process()
    return int(psutil.virtual_memory().available + process.memory_info().rss)


def check_memory(config: StyleConfig, content_shape: Sequence[int]) -> None:
    """Raise ``ValueError`` with a plain sentence if a run cannot fit in memory."""
    needed = estimate_memory(config, content_shape)
    available = available_memory()
    if needed > available:
        raise ValueError(
            f"A {config.size} px result needs about {needed / 1e9:.0f} GB of memory but only "
            f"{available / 1e9:.0f} GB are available; choose a smaller output size."
        )
