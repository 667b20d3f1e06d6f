"""The records a run produces and the token that stops it: no TensorFlow, so the web tier imports
them freely (a page, a job backend, a queue worker's client side).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from nst.config import StyleConfig


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
    if step < 1:
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

    The instant picture (``step`` 0, only when ``stylize`` is asked for one) comes before the
    first step: the instant network's result (``nst.instant``), the first preview. Its loss is
    NaN and it has no parts: it is not a step of the run and has no place in its history.

    Attributes:
        step: steps done so far (1-based; 0 for the instant picture). total: steps planned.
        loss: weighted objective of the image before this step; parts: its named terms.
        elapsed: seconds since the run started. preview: the current image, every
            ``preview_every`` steps, at the first and at the last step, else None.
    """

    step: int
    total: int
    loss: float
    parts: dict[str, float]
    elapsed: float
    preview: np.ndarray | None = None

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
        instant: the instant network's picture the run showed first (``instant_preview``),
            a picture of its own that a person may keep, else None.
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
