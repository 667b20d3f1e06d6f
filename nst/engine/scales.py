"""Coarse to fine: the bookkeeping every scale of a run shares.

``nst.plan`` says which scales a run goes through and how many steps each; ``RunState`` is
what the scales of one run share (settings, clock, history); ``ScaleOutcome`` is how one scale
ended, handed to the next.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from nst.config import StyleConfig
from nst.engine.objective import Problem
from nst.images import resize_to, working_shape
from nst.pace import paces
from nst.plan import (  # noqa: F401  # re-exported: the engine's modules plan through here
    MIN_SCALE_SIZE,
    SCALE_RATIO,
    STEP_GROWTH,
    Scale,
    is_tiled,
    plan_scales,
    scale_sizes,
    split_steps,
)
from nst.records import CancelToken, Progress, history_row

NUMERIC_ERROR = (
    "The loss became {value} at step {step}, so the run stopped and kept the last good image; "
    "try a lower learning rate or style intensity."
)


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
        scale's pixels (twice those of the scale before) at this machine's pace for the way the
        scale is computed (whole or tiled, ``nst.pace``): a coarse step is cheap, so the plain
        per-step pace would promise too little time."""
        if not self.plan or step < 1:
            return float("nan")
        plain, tiled = paces(self.config)
        costs = []
        for scale in self.plan:
            height, width = working_shape(*self.output_shape, scale.size)
            pace = tiled if is_tiled(self.config, height, width) else plain
            costs.append(height * width * pace)
        work = [scale.steps * cost for scale, cost in zip(self.plan, costs)]
        done = sum(
            min(max(step - scale.offset, 0), scale.steps) * cost
            for scale, cost in zip(self.plan, costs)
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
    # L-BFGS's last scaling of its inverse Hessian (``s.y / y.y``) per pixel of this scale,
    # carried to the next one as its first step's (None: no pair was kept).
    curvature: float | None = None
    note: str | None = None
    line_search_failed: bool = False


def floats(parts: dict[str, Any]) -> dict[str, float]:
    """A loss's named parts as plain floats."""
    return {name: float(value) for name, value in parts.items()}
