"""The job interface every page uses, and the plain records that cross it.

A backend runs style-transfer jobs somewhere (threads of the web process: ``nst.jobs.local``;
RQ workers on other machines: ``nst.jobs.redis``) behind five calls::

    job_id = backend.submit(request, owner=token)   # unguessable id (uuid4)
    backend.status(job_id, owner=token)             # JobStatus; also the page's heartbeat
    backend.cancel(job_id, owner=token)             # cooperative: ends within a step
    backend.result(job_id, owner=token)             # nst.records.Result once finished, else None
    backend.forget(job_id, owner=token)             # drop its data (cancels it if unfinished)

``owner`` is a per-session secret: a job is only visible to the owner that submitted it; any
other owner gets ``UnknownJobError``, exactly as for an id that never existed.

Nothing here imports TensorFlow, so the web tier of a Redis deployment never builds a model.

Job kinds. A request carries ``kind`` (``"image"`` for ``nst.jobs.image``, ``"video"`` for
``nst.jobs.video``, both imported by ``nst.jobs``). ``register_kind`` names, per kind, the
runner function that computes it (a worker thread or an RQ worker calls it) and the codecs that
turn the request and the result into JSON-safe metadata plus encoded blobs for Redis. A runner
yields progress records (any object with ``step``, ``total``, ``loss``, ``parts``, ``elapsed``
and ``preview``: a float RGB array or None; a video runner adds ``frame``/``frames``, 1-based,
which ``JobProgress`` carries to the page) and finally one
result; it checks its ``CancelToken`` every step.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
from PIL import Image

from nst.config import StyleConfig
from nst.images import load_image, to_uint8
from nst.records import INSTANT_STEP, CancelToken, Result, history_row, seconds_left

__all__ = [
    "PAGE_POLL_SECONDS",
    "JobBackend",
    "JobKind",
    "JobProgress",
    "JobState",
    "JobStatus",
    "QueueUnavailableError",
    "Runner",
    "UnknownJobError",
    "decode_png",
    "decode_result",
    "encode_png",
    "encode_result",
    "final_state",
    "follow_run",
    "job_kind",
    "page_poll_seconds",
    "plain_error",
    "register_kind",
    "style_for_run",
]

# A runner turns a request into the engine's stream: progress records, then one Result.
Runner = Callable[[Any, CancelToken], Iterable[Any]]


class JobState(StrEnum):
    """Where a job is in its life. DONE, CANCELLED and FAILED are final."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.CANCELLED, JobState.FAILED)


class UnknownJobError(KeyError):
    """The id was never issued, belongs to another session, or the job was forgotten."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "Unknown job."


class QueueUnavailableError(RuntimeError):
    """The job queue cannot be reached (e.g. Redis is down); the message is one sentence."""


# How often a page asks its backend for news while a run is going (``studio.runs``; the queue
# benchmark times its preview latency at the same cadence). In a run's first seconds, while
# the instant picture is due, and once the engine expects to finish within
# ``PAGE_ENDING_SECONDS``, it asks more often: those are the pictures a person waits for.
PAGE_POLL_SECONDS = 1.0
PAGE_FIRST_POLL_SECONDS = 0.1
PAGE_FIRST_SECONDS = 3.0
PAGE_ENDING_SECONDS = 1.5  # a poll period, plus the age of the progress the worker published


def page_poll_seconds(elapsed: float) -> float:
    """The page's wait before its next status call, ``elapsed`` seconds after the submit."""
    return PAGE_FIRST_POLL_SECONDS if elapsed < PAGE_FIRST_SECONDS else PAGE_POLL_SECONDS


def picture_due(status: JobStatus, elapsed: float) -> bool:
    """Whether the page should look again at the quicker pace (``PAGE_FIRST_POLL_SECONDS``)
    before its next poll: the run's first picture is still to come in its first seconds, or the
    engine expects the result within ``PAGE_ENDING_SECONDS``."""
    if status.state.finished:
        return False
    if status.preview is None and elapsed < PAGE_FIRST_SECONDS:
        return True
    progress = status.progress
    if progress is None or progress.frames:
        return False
    # NaN (no estimate yet) compares False.
    return progress.step >= progress.total or progress.time_left <= PAGE_ENDING_SECONDS


UNKNOWN_JOB = "This job is not known: it was removed after finishing, or the server restarted."


@dataclass(frozen=True)
class JobProgress:
    """One step of a running job, as the page sees it.

    ``step``/``total`` count optimization steps (of the current frame, for a video job, where
    ``frame``/``frames`` say which frame of how many; None for an image). ``scale``/``scales``/
    ``scale_size`` say which coarse-to-fine scale the step painted, ``time_left`` the engine's
    estimate across scales (NaN: unknown, see ``nst.records.Progress``).
    """

    step: int
    total: int
    loss: float
    parts: dict[str, float]
    elapsed: float
    frame: int | None = None
    frames: int | None = None
    scale: int = 1
    scales: int = 1
    scale_size: int = 0
    time_left: float = float("nan")

    @property
    def seconds_left(self) -> float:
        return seconds_left(self.elapsed, self.step, self.total)

    @classmethod
    def from_record(cls, record: Any) -> JobProgress:
        """From an engine progress record (``nst.records.Progress`` or a video runner's)."""
        frame = getattr(record, "frame", None)
        frames = getattr(record, "frames", None)
        return cls(
            step=int(record.step),
            total=int(record.total),
            loss=float(record.loss),
            parts={str(k): float(v) for k, v in dict(record.parts or {}).items()},
            elapsed=float(record.elapsed),
            frame=None if frame is None else int(frame),
            frames=None if frames is None else int(frames),
            scale=int(getattr(record, "scale", 1)),
            scales=int(getattr(record, "scales", 1)),
            scale_size=int(getattr(record, "scale_size", 0)),
            time_left=float(getattr(record, "time_left", float("nan"))),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "total": self.total,
            "loss": _json_float(self.loss),
            "parts": {k: _json_float(v) for k, v in self.parts.items()},
            "elapsed": self.elapsed,
            "frame": self.frame,
            "frames": self.frames,
            "scale": self.scale,
            "scales": self.scales,
            "scale_size": self.scale_size,
            "time_left": _json_float(self.time_left),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> JobProgress:
        return cls(
            step=int(values["step"]),
            total=int(values["total"]),
            loss=_float(values["loss"]),
            parts={str(k): _float(v) for k, v in dict(values.get("parts") or {}).items()},
            elapsed=float(values["elapsed"]),
            frame=values.get("frame"),
            frames=values.get("frames"),
            scale=int(values.get("scale", 1)),
            scales=int(values.get("scales", 1)),
            scale_size=int(values.get("scale_size", 0)),
            time_left=_float(values.get("time_left", float("nan"))),
        )


@dataclass(frozen=True, eq=False)
class JobStatus:
    """A snapshot of one job.

    ``position`` is the 1-based place in the line while QUEUED (0: being handed to a worker),
    0 otherwise. ``preview`` is the latest image as PNG bytes (a preview while running, then
    the result); ``preview_step`` is the step it shows. Times are ``time.time()`` stamps.
    """

    job_id: str
    state: JobState
    position: int = 0
    progress: JobProgress | None = None
    preview: bytes | None = None
    preview_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    kind: str = "image"
    submitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


class JobBackend(Protocol):
    """What pages may call; both backends implement it."""

    def submit(self, request: Any, *, owner: str = "") -> str: ...

    def status(self, job_id: str, *, owner: str = "") -> JobStatus: ...

    def cancel(self, job_id: str, *, owner: str = "") -> None: ...

    def result(self, job_id: str, *, owner: str = "") -> Result | None: ...

    def forget(self, job_id: str, *, owner: str = "") -> None: ...

    @property
    def remote(self) -> bool:
        """True when jobs run in other processes (the web tier builds no model)."""
        ...


# ----- job kinds -----

Blobs = dict[str, bytes]


@dataclass(frozen=True)
class JobKind:
    """How one kind of job is run and carried.

    ``runner`` is the function that computes a job of this kind; it imports what it needs
    (TensorFlow, onnxruntime) when it runs, so registering a kind costs nothing on the web
    tier. The codecs turn requests and results
    into JSON-safe metadata plus encoded blobs (images as PNG) for the Redis backend: nothing
    user-supplied is ever unpickled.
    """

    name: str
    request_type: type
    runner: Runner
    encode_request: Callable[[Any], tuple[dict[str, Any], Blobs]]
    decode_request: Callable[[dict[str, Any], Blobs], Any]
    encode_result: Callable[[Result], tuple[dict[str, Any], Blobs]]
    decode_result: Callable[[dict[str, Any], Blobs], Result]


_KINDS: dict[str, JobKind] = {}  # filled as ``nst.jobs`` imports each kind's module


def register_kind(kind: JobKind) -> None:
    """Add (or replace) a job kind; requests of ``kind.request_type`` must have ``kind.name``
    as their ``kind`` attribute."""
    _KINDS[kind.name] = kind


def job_kind(name: str) -> JobKind:
    """The registered kind called ``name``; ``ValueError`` for an unknown one."""
    try:
        return _KINDS[name]
    except KeyError:
        known = ", ".join(sorted(_KINDS)) or "none"
        raise ValueError(f"Unknown job kind {name!r}; known kinds: {known}.") from None


def kind_of(request: Any) -> JobKind:
    """The kind of a request object, checking that its type matches the registration."""
    kind = job_kind(str(getattr(request, "kind", "")))
    if not isinstance(request, kind.request_type):
        raise TypeError(f"A {kind.name!r} job needs a {kind.request_type.__name__}.")
    return kind


# ----- encoding -----


def encode_png(image: np.ndarray) -> bytes:
    """RGB (or gray) float in [0, 1] or uint8 to PNG bytes."""
    pixels = image if image.dtype == np.uint8 else to_uint8(image)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes to float32 RGB in [0, 1] (through the studio's validating decoder)."""
    return load_image(data)


def _json_float(value: float) -> float | str:
    """JSON has no NaN/inf: keep them as strings."""
    return value if math.isfinite(value) else str(value)


def _float(value: Any) -> float:
    return float(value)


def final_state(result: Result | None, cancelled: bool) -> tuple[JobState, str | None]:
    """How a run's stream ended, as the job's final state and its error sentence (or None).

    A result with an error (e.g. a non-finite loss) still carries the last good image."""
    if result is None:
        return JobState.FAILED, "The run ended without producing an image."
    if result.error:
        return JobState.FAILED, str(result.error)
    return (JobState.CANCELLED if cancelled else JobState.DONE), None


def follow_run(
    start: Callable[[], Iterable[Any]],
    cancel: CancelToken,
    record: Callable[[JobProgress, dict[str, Any] | None, Any], None],
    *,
    job_id: str,
    log: logging.Logger,
    pin: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
) -> tuple[JobState, str | None, Result | None]:
    """Drive one job's run to its end, for either backend.

    ``start()`` begins the run (loads the kind's runner, decodes the request) and returns its
    stream; every progress record goes to ``record(progress, history row, preview)``, the row
    None for the instant picture (step 0 is not a step of the run), the preview None when the record
    has none. Returns the final state, the error sentence for the user (the traceback goes to
    ``log``) and the ``Result``, None if the run broke before it. The stream is always closed.
    """
    result: Result | None = None
    stream: Any = None
    try:
        with pin():
            stream = iter(start())
            for item in stream:
                if isinstance(item, Result):
                    result = item
                    break
                progress = JobProgress.from_record(item)
                row = history_row(item) if item.step > INSTANT_STEP else None
                record(progress, row, getattr(item, "preview", None))
        state, error = final_state(result, cancel.cancelled)
    except Exception as exc:
        log.exception("Job %s failed.", job_id)
        state, error = JobState.FAILED, plain_error(exc)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("Closing the run of job %s failed.", job_id)
    return state, error, result


def plain_error(exc: BaseException) -> str:
    """One plain sentence for the user; the traceback goes to the log."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
        return "The run ran out of memory; try a smaller output size."
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[0] if lines else type(exc).__name__
    if len(detail) > 200:
        detail = detail[:197].rstrip() + "..."
    if detail[-1] not in ".!?":
        detail += "."
    # The engine's own checks (and a missing weights file) already speak plainly.
    if isinstance(exc, ValueError) or type(exc).__name__ == "WeightsError":
        return detail
    return f"The run failed: {detail}"


def encode_result(result: Result) -> tuple[dict[str, Any], Blobs]:
    """A ``Result`` as JSON-safe metadata and its image as PNG (every kind's result starts so)."""
    meta = {
        "history": json.loads(json.dumps(result.history, default=float)),
        "timings": {k: float(v) for k, v in result.timings.items()},
        "config": result.config.to_dict(),
        "stopped": bool(result.stopped),
        "error": result.error,
        "initial_loss": _json_float(float(result.initial_loss)),
        "final_loss": _json_float(float(result.final_loss)),
        "steps_done": int(result.steps_done),
        "note": result.note,
    }
    blobs = {"image": encode_png(result.image)}
    if result.instant is not None:
        blobs["instant"] = encode_png(result.instant)
    return meta, blobs


def decode_result(meta: dict[str, Any], blobs: Blobs) -> Result:
    """The ``Result`` that ``encode_result`` wrote."""
    return Result(
        image=decode_png(blobs["image"]),
        history=list(meta["history"]),
        timings=dict(meta["timings"]),
        config=StyleConfig.from_dict(dict(meta["config"])),
        stopped=bool(meta["stopped"]),
        error=meta["error"],
        initial_loss=_float(meta["initial_loss"]),
        final_loss=_float(meta["final_loss"]),
        steps_done=int(meta["steps_done"]),
        note=meta.get("note"),
        instant=decode_png(blobs["instant"]) if "instant" in blobs else None,
    )


def style_for_run(style: np.ndarray, config: StyleConfig) -> np.ndarray:
    """Shrink a style image to the largest size the engine will use (never enlarge it), so a
    queued job never holds an upload at full size.

    The optimizer's rule, ``nst.images.style_side``, and the instant network's: its style
    predictor sees the painting with the shorter side at ``STYLE_SIDE`` (``nst.instant``).
    Nothing here imports TensorFlow.
    """
    from nst.images import resize_to, style_side, working_shape
    from nst.instant.transfer import instant_style_side

    side = max(style_side(config.size, config.style_scale), instant_style_side(style.shape))
    if max(style.shape[:2]) <= side:
        return style
    return resize_to(style, *working_shape(*style.shape[:2], side))
