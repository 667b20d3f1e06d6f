"""The records a run produces and the token that stops it: no TensorFlow, so the web tier imports
them freely (a page, a job backend, a queue worker's client side).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nst.config import StyleConfig

# The step number of the ``Progress`` that carries a painted run's instant picture: it comes
# before the optimizer's first step and is no step of the run.
INSTANT_STEP = 0


class CancelToken:
    """Set from any thread to end a run at its next step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


def seconds_left(elapsed: float, step: int, total: int) -> float:
    """Seconds a run still needs at the pace of its steps so far; NaN before the first step
    (the instant picture)."""
    if step <= INSTANT_STEP:
        return float("nan")
    return elapsed / step * (total - step)


def history_row(record: Any) -> dict[str, Any]:
    """One loss-chart row from a progress record (``Progress``, a job's or a video frame's):
    step, loss, elapsed, the frame where there is one, then the named parts."""
    row: dict[str, Any] = {
        "step": getattr(record, "step", None),
        "loss": getattr(record, "loss", None),
        "elapsed": getattr(record, "elapsed", None),
    }
    frame = getattr(record, "frame", None)
    if frame is not None:
        row["frame"] = frame
    parts = getattr(record, "parts", None) or {}
    row.update({str(name): value for name, value in dict(parts).items()})
    return row


@dataclass(frozen=True)
class Progress:
    """One optimization step, or the run's instant picture.

    The instant picture (``step`` is ``INSTANT_STEP``) comes before the first step of a painted
    run started afresh: the instant network's result (``nst.instant``), the first preview. Its
    loss is NaN and it has no parts: it is not a step of the run and has no place in its history.

    Attributes:
        step: steps done so far (1-based; ``INSTANT_STEP`` for the instant picture). total:
            steps planned.
        loss: weighted objective of the image before this step; parts: its named terms.
        elapsed: seconds since the run started. preview: the current image, every
            ``preview_every`` steps, at the first and at the last step, else None.
        scale / scales / scale_size: the coarse-to-fine scale doing this step (1-based), how
            many the run has and its longest side in pixels (``nst.engine.scales``).
        time_left: the engine's estimate of the seconds still needed, each step weighted by
            its scale's pixels (NaN where not known: then ``seconds_left``'s even pace).
    """

    step: int
    total: int
    loss: float
    parts: dict[str, float]
    elapsed: float
    preview: np.ndarray | None = None
    scale: int = 1
    scales: int = 1
    scale_size: int = 0
    time_left: float = float("nan")

    @property
    def seconds_left(self) -> float:
        return seconds_left(self.elapsed, self.step, self.total)


@dataclass(frozen=True)
class Result:
    """The outcome of a run (finished, stopped or failed: there is always an image).

    Attributes:
        image: float32 RGB in [0, 1] at the working size, the best image seen.
        history: one dict per step: step, loss, content, style, tv, elapsed.
        timings: seconds: build (model), targets, first_step, optimize, total.
        stopped: the run was cancelled before its last step.
        error: a plain sentence if the run ended on a numerical failure, else None.
        initial_loss / final_loss: the objective of the first and of the returned image.
        note: a plain sentence when the run ended before its last step for a reason other than
            a stop or an error (L-BFGS ending early), else None.
        instant: the instant network's picture a painted run showed first, a picture of its own
            that a person may keep, else None.
    """

    image: np.ndarray
    history: list[dict[str, float]]
    timings: dict[str, float]
    config: StyleConfig
    stopped: bool = False
    error: str | None = None
    initial_loss: float = float("nan")
    final_loss: float = float("nan")
    steps_done: int = 0
    note: str | None = None
    instant: np.ndarray | None = None


# ----- clips: the records both video methods yield -----


@dataclass(frozen=True)
class FrameStep:
    """One optimization step of one frame (``index`` is 0-based, like ``FrameDone.index``)."""

    index: int
    frames: int
    progress: Progress


@dataclass(frozen=True)
class FrameDone:
    """A finished frame.

    Attributes:
        image: the stylized frame, float32 RGB in [0, 1] at the working size, before the
            colour adjustments (``nst.config.Adjustments``).
        parts: the loss terms of its last step. reliable: share of pixels the temporal loss
            covered (0 for the first frame). seconds: time spent on it.
    """

    index: int
    frames: int
    image: np.ndarray
    content: np.ndarray
    parts: dict[str, float]
    reliable: float
    seconds: float
    steps: int


@dataclass
class VideoOutcome:
    """How a video run ended: ``frames`` holds every finished frame."""

    frames: list[FrameDone] = field(default_factory=list)
    stopped: bool = False
    error: str | None = None
