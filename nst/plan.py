"""The plan of a painted run: its scales, the steps of each, and which are tiled.

A run optimizes the image at one or more scales, each ``SCALE_RATIO`` times the previous one
(twice the pixels), as in crowsonkb/style-transfer-pytorch: coarse steps are cheap and settle
the large shapes; the full-size steps add the detail. ``plan_scales`` says which sizes and how
many steps each. A scale of more than ``TILE_PIXELS`` pixels is computed tile by tile
(``nst.engine.tiles``). Nothing here needs TensorFlow: the web tier plans a run's time and
memory before any worker starts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nst.config import StyleConfig

# A scale of more than this many working pixels is computed tile by tile (``nst.engine.tiles``):
# up to about 1024 x 1024 a run is computed whole, as before print sizes were.
TILE_PIXELS = 1024 * 1024
# The side of one tile, margins included: a tile's pass through the style layers then needs
# less memory than the content pass beside it (``python -m nst.bench --only large``).
TILE_SIDE = 768
# The backbones whose layers tile exactly (plain stacks of convolutions and pooling); the
# others run whole at every size (``nst.engine.tiles.geometry``).
TILED_BACKBONES = ("vgg19", "vgg16")
SCALE_RATIO = math.sqrt(2.0)
MIN_SCALE_SIZE = 128  # below it the deepest style layer sees only a few pixels
# Each smaller scale gets this many times the steps of the next larger one: a step costs about
# its pixels (half at each smaller scale), so every scale below the output size costs about
# the same time, and most steps go where the painting's large strokes form and steps are cheap
# (docs/benchmarks.md, "Coarse to fine").
STEP_GROWTH = 2.0
# Above this side a run is this size's run, then its output size: the scales up to it share
# the steps as a run of this size would, the scales between it and the output get none (the
# picture is enlarged from this size to the output in one resize), and the output size gets
# its final share. The painting's large strokes form at the small scales; steps at the scales
# between repaint them as fine mosaic and cost time, and the output size's own steps add its
# detail just as well without them (docs/benchmarks.md, "Print sizes").
PLAN_BASE_SIDE = 512


def scale_sizes(config: StyleConfig, *, warm_start: bool = False) -> list[int]:
    """Longest sides of the coarse-to-fine scales, smallest first, ending at ``config.size``.

    Each scale is ``SCALE_RATIO`` times the previous one; scales under ``MIN_SCALE_SIZE`` are
    dropped. A warm start (a previous result) is refined at the output size only.
    """
    sizes = [config.size]
    while not warm_start and len(sizes) < config.scales:
        smaller = round(sizes[0] / SCALE_RATIO)
        if smaller < MIN_SCALE_SIZE:
            break
        sizes.insert(0, smaller)
    return sizes


def split_steps(steps: int, scales: int, final_share: float, growth: float = 1.0) -> list[int]:
    """Steps per scale, smallest first: ``final_share`` of them at the last scale, the rest
    split between the smaller ones, each smaller scale getting ``growth`` times the steps of
    the next larger one (1: evenly)."""
    if scales == 1:
        return [steps]
    final = min(steps, max(1, round(steps * final_share)))
    rest, coarse = steps - final, scales - 1
    weights = [growth ** (coarse - 1 - index) for index in range(coarse)]
    exact = [rest * weight / sum(weights) for weight in weights]
    counts = [int(value) for value in exact]
    # Largest remainders first (the smaller scale on a tie): the counts sum to ``rest``.
    order = sorted(range(coarse), key=lambda index: (counts[index] - exact[index], index))
    for index in order[: rest - sum(counts)]:
        counts[index] += 1
    return [*counts, final]


def plan_steps(sizes: list[int], steps: int, final_share: float) -> list[int]:
    """Steps per scale of ``sizes`` (smallest first): ``final_share`` of them at the output
    size; above ``PLAN_BASE_SIDE``, none at the scales between it and the output, and the rest
    split between the scales up to it as a run of that size would split them."""
    base = sum(size <= PLAN_BASE_SIDE for size in sizes)
    final = min(steps, max(1, round(steps * final_share)))
    if base in (0, len(sizes)) or steps - final < base:
        return split_steps(steps, len(sizes), final_share, STEP_GROWTH)
    between = [0] * (len(sizes) - base - 1)
    return [*split_steps(steps - final, base, final_share, STEP_GROWTH), *between, final]


@dataclass(frozen=True)
class Scale:
    """One scale of a run: its size and which of the run's steps it does."""

    size: int
    steps: int
    offset: int  # steps done before this scale
    last: bool


def plan_scales(config: StyleConfig, *, warm_start: bool = False) -> list[Scale]:
    """The scales a run of ``config`` goes through (those given no steps are skipped, except
    the last)."""
    sizes = scale_sizes(config, warm_start=warm_start)
    counts = plan_steps(sizes, config.steps, config.final_share)
    scales, offset = [], 0
    for index, (size, steps) in enumerate(zip(sizes, counts)):
        if steps or index == len(sizes) - 1:
            scales.append(Scale(size, steps, offset, index == len(sizes) - 1))
            offset += steps
    return scales


def is_tiled(config: StyleConfig, height: int, width: int, tile_pixels: int = TILE_PIXELS) -> bool:
    """Whether a scale of (height, width) working pixels is computed tile by tile."""
    return config.backbone in TILED_BACKBONES and height * width > tile_pixels
