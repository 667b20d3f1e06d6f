"""How much memory a painted run needs, on this CPU.

``nst.front.check`` compares it with the memory available once, before any tensor is allocated.
"""

from __future__ import annotations

from collections.abc import Sequence

from nst.config import StyleConfig
from nst.cpu import cpu_kernels
from nst.engine.model import resolve_precision
from nst.images import style_side, working_shape

# Peak memory of a run is a straight line in the working image's pixels, for each optimizer,
# precision and family of oneDNN kernels (``python -m nst.bench --only memory`` measures it, one
# fresh process per size; the figures are in docs/benchmarks.md, Memory). The base is TensorFlow
# and the model. oneDNN's AVX2 convolutions keep about twice the working memory of its AVX-512
# ones (a 2048-px float32 run: 13.3 GB on an AVX2 CPU, 8.2 GB on an AVX-512 one); emulated
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
LBFGS_BYTES_PER_PIXEL = 350.0
MEMORY_MARGIN = 1.1  # allocator slack and measurement spread


def estimate_memory(config: StyleConfig, content_shape: Sequence[int]) -> int:
    """Bytes of memory a run of ``config`` on a content image of ``content_shape`` peaks at.

    A coarse-to-fine run peaks at its largest scale, the output size: each smaller scale's
    tensors are released before the next is prepared, so the smaller scales add nothing
    (``nst.bench --only large`` measures both kinds of run)."""
    height, width = working_shape(*content_shape[:2], config.size)
    per_pixel = MEMORY_BYTES_PER_PIXEL[cpu_kernels(), resolve_precision(config.precision)]
    if config.optimizer == "lbfgs":
        per_pixel += LBFGS_BYTES_PER_PIXEL
    # The style image only goes forward, once, before the first step: about a third of a
    # step's memory per pixel. Its longest side is ``style_side``; assume it is square.
    side = style_side(config.size, config.style_scale)
    peak = max(height * width, side**2 / 3) * per_pixel
    return int(MEMORY_BASE_BYTES + MEMORY_MARGIN * peak)
