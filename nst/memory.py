"""How much memory a painted run needs, on this CPU.

``nst.front.check`` compares it with the memory available once, before any tensor is allocated.
Nothing here needs TensorFlow: the web tier says what a run needs before a worker takes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from nst.config import CONTENT_TILED_SIDE, LBFGS_HISTORY, StyleConfig
from nst.cpu import cpu_kernels, cpu_precision
from nst.images import style_side, working_shape
from nst.plan import TILE_PIXELS, TILE_SIDE, is_tiled, plan_scales

# Peak memory of a run is a straight line in the working image's pixels, for each optimizer,
# precision and family of oneDNN kernels (``python -m nst.bench --only memory`` measures it, one
# fresh process per size; the figures are in docs/benchmarks.md, Memory). The base is TensorFlow
# and the model. oneDNN's AVX2 convolutions keep far more working memory than its AVX-512 ones
# (docs/benchmarks.md, Memory); emulated
# bfloat16 on AVX2 is counted as float32 there. L-BFGS adds its correction pairs (two float32
# copies of the image per pair) and a few working vectors. The constants sit a little above the
# measurements so the estimate never refuses a size that fits by much.
MEMORY_BASE_BYTES = 1.2e9
MEMORY_BYTES_PER_PIXEL = {
    ("avx512", "float32"): 2150.0,
    ("avx512", "bfloat16"): 1750.0,
    ("avx2", "float32"): 3550.0,
    ("avx2", "bfloat16"): 3550.0,
}
LBFGS_BYTES_PER_PIXEL = 350.0  # with a full history of pairs
# One correction pair: two float32 copies of the picture. A scale keeps one per iteration, up to
# ``LBFGS_HISTORY``: the few iterations of a print's large scales hold only as many.
LBFGS_PAIR_BYTES_PER_PIXEL = 24.0
MEMORY_MARGIN = 1.1  # allocator slack and measurement spread
# A tiled scale (print sizes, ``nst.engine.tiles``) holds, beside TensorFlow and the model, at
# any moment either one tile's pass through the style layers (``TILE_SIDE`` squared; it stops
# at block3_conv1, about half the working memory per pixel of a pass to block5_conv2) or the
# content pass through the whole network on the picture scaled down to ``CONTENT_TILED_SIDE``,
# and the picture's own tensors: L-BFGS's pairs and working vectors, the clipped and composed
# picture, each term's gradient and their host copies, and what the allocator keeps. The
# constant (with a full history of pairs; a scale of fewer iterations holds fewer) sits above
# the growth of the peaks measured between 2048 and 4096 px, and the estimate above both peaks
# (``python -m nst.bench --only large``, docs/benchmarks.md "Print sizes"). Adam's is
# L-BFGS's less its pairs and vectors (not measured at print sizes).
TILE_BYTES_PER_PIXEL_SHARE = 0.55
PICTURE_BYTES_PER_PIXEL = {"lbfgs": 520.0, "adam": 520.0 - LBFGS_BYTES_PER_PIXEL}


def lbfgs_bytes_per_pixel(steps: int) -> float:
    """L-BFGS's bytes per pixel at a scale of ``steps`` iterations (its pairs and vectors)."""
    unused = LBFGS_HISTORY - max(1, min(LBFGS_HISTORY, steps))
    return LBFGS_BYTES_PER_PIXEL - unused * LBFGS_PAIR_BYTES_PER_PIXEL


def estimate_memory(
    config: StyleConfig, content_shape: Sequence[int], *, tile_pixels: int | None = None
) -> int:
    """Bytes of memory a run of ``config`` on a content image of ``content_shape`` peaks at.

    A coarse-to-fine run peaks at its largest scale computed whole or at its output size: each
    smaller scale's tensors are released before the next is prepared (``nst.bench --only
    large`` measures both kinds of run). ``tile_pixels``: the largest scale computed whole
    (``TILE_PIXELS`` unless given)."""
    tile_pixels = TILE_PIXELS if tile_pixels is None else tile_pixels
    height, width = working_shape(*content_shape[:2], config.size)
    per_pixel = MEMORY_BYTES_PER_PIXEL[cpu_kernels(), cpu_precision(config.precision)]
    # The style image only goes forward, once, before the first step: about a third of a
    # step's memory per pixel. Its longest side is ``style_side``; assume it is square.
    side = style_side(config.size, config.style_scale)
    painting = min(side**2, TILE_PIXELS) if config.backbone != "resnet50" else side**2
    scales = plan_scales(config)
    lbfgs = config.optimizer == "lbfgs"

    def optimizer_bytes(steps: int) -> float:
        return lbfgs_bytes_per_pixel(steps) if lbfgs else 0.0

    if not is_tiled(config, height, width, tile_pixels):
        whole = per_pixel + optimizer_bytes(scales[-1].steps)
        peak = max(height * width * whole, painting * per_pixel / 3)
        return int(MEMORY_BASE_BYTES + MEMORY_MARGIN * peak)
    # The largest scale computed whole may need more than the tiled ones.
    whole_pixels, whole_steps = max(
        (
            (h * w, scale.steps)
            for scale in scales
            for h, w in [working_shape(height, width, scale.size)]
            if not is_tiled(config, h, w, tile_pixels)
        ),
        default=(0, 0),
    )
    tile = min(tile_pixels, TILE_SIDE**2) * per_pixel * TILE_BYTES_PER_PIXEL_SHARE
    content_h, content_w = working_shape(height, width, min(CONTENT_TILED_SIDE, max(height, width)))
    content = content_h * content_w * per_pixel
    # Adam's picture bytes are those without L-BFGS's state; L-BFGS adds its pairs for the
    # output scale's iterations.
    picture = height * width * (PICTURE_BYTES_PER_PIXEL["adam"] + optimizer_bytes(scales[-1].steps))
    tiled_peak = max(tile, content) + picture
    whole_peak = whole_pixels * (per_pixel + optimizer_bytes(whole_steps))
    return int(MEMORY_BASE_BYTES + MEMORY_MARGIN * max(tiled_peak, whole_peak))
