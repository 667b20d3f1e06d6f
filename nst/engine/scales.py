"""Coarse to fine: the scales of a run, and the bookkeeping every scale shares.

A run optimizes the image at one or more scales, each ``SCALE_RATIO`` times the previous one
(twice the pixels), as in crowsonkb/style-transfer-pytorch: coarse steps are cheap and settle
the large shapes; the full-size steps add the detail. ``plan_scales`` says which sizes and how
many steps each; ``RunState`` is what the scales of one run share (settings, clock, history);
``ScaleOutcome`` is how one scale ended, handed to the next.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from nst.config import StyleConfig
from nst.engine.objective import Problem
from nst.images import resize_to
from nst.records import CancelToken, Progress, history_row

SCALE_RATIO = math.sqrt(2.0)
MIN_SCALE_SIZE = 128  # below it the deepest style layer sees only a few pixels
# Each smaller scale gets this many times the steps of the next larger one: a step costs about
# its pixels (half at each smaller scale), and the coarse scales, where the painting's large
# strokes form, are where steps are cheap (docs/benchmarks.md).
STEP_GROWTH = math.sqrt(2.0)

NUMERIC_ERROR = (
    "The loss became {value} at step {step}, so the run stopped and kept the last good image; "
    "try a lower learning rate or style intensity."
)


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
    counts = split_steps(config.steps, len(sizes), config.final_share, STEP_GROWTH)
    scales, offset = [], 0
    for index, (size, steps) in enumerate(zip(sizes, counts)):
        if steps or index == len(sizes) - 1:
            scales.append(Scale(size, steps, offset, index == len(sizes) - 1))
            offset += steps
    return scales


@dataclass
class RunState:
    """What every scale of one run shares: settings, clock, history and the output shape."""

    config: StyleConfig
    cancel: CancelToken
    started: float
    output_shape: tuple[int, int]
    history: list[dict[str, float]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    initial_loss: float | None = None  # the objective of the starting image
    plan: list[Scale] = field(default_factory=list)  # the run's scales (``plan_scales``)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def scale_at(self, step: int) -> tuple[int, Scale | None]:
        """The 1-based index in ``plan`` of the scale that does ``step``, and that scale."""
        for index, scale in enumerate(self.plan, start=1):
            if step <= scale.offset + scale.steps:
                return index, scale
        return len(self.plan), self.plan[-1] if self.plan else None

    def time_left(self, step: int, elapsed: float) -> float:
        """Seconds the run still needs after ``step``, at its pace so far, a step costing its
        scale's pixels (twice those of the scale before): a coarse step is cheap, so the plain
        per-step pace would promise too little time."""
        if not self.plan or step < 1:
            return float("nan")
        work = [scale.steps * scale.size**2 for scale in self.plan]
        done = sum(
            min(max(step - scale.offset, 0), scale.steps) * scale.size**2 for scale in self.plan
        )
        return elapsed / done * (sum(work) - done) if done else float("nan")

    def progress(
        self, problem: Problem, step: int, total: float, parts: dict[str, float], pixels: Any
    ) -> Progress:
        """Record one step; ``pixels`` (a callable giving the image) is only read for previews."""
        elapsed = self.elapsed()
        preview = None
        # The first step always shows a picture: the user sees the run start within seconds.
        if step == 1 or step % self.config.preview_every == 0 or step == self.config.steps:
            preview = self.preview(problem, pixels())
        index, scale = self.scale_at(step)
        progress = Progress(
            step,
            self.config.steps,
            total,
            parts,
            elapsed,
            preview,
            scale=index,
            scales=len(self.plan) or 1,
            scale_size=scale.size if scale is not None else self.config.size,
            time_left=self.time_left(step, elapsed),
        )
        self.history.append(history_row(progress))
        return progress

    def preview(self, problem: Problem, pixels: np.ndarray) -> np.ndarray:
        """The user-facing image, always at the output size (coarse scales are upsampled)."""
        image = problem.finish(pixels)
        if image.shape[:2] != self.output_shape:
            image = np.clip(resize_to(image, *self.output_shape), 0.0, 1.0)
        self.timings.setdefault("first_preview", self.elapsed())
        return image


@dataclass
class ScaleOutcome:
    """How one scale ended: the image to keep (and its loss, when the scale computed it), the
    image to refine next, and why it stopped."""

    best: np.ndarray
    carry: np.ndarray
    best_loss: float = float("inf")
    stopped: bool = False
    error: str | None = None
    moments: tuple[tf.Tensor, tf.Tensor, int] | None = None  # Adam's, carried to the next scale
    note: str | None = None
    line_search_failed: bool = False


def floats(parts: dict[str, Any]) -> dict[str, float]:
    """A loss's named parts as plain floats."""
    return {name: float(value) for name, value in parts.items()}
