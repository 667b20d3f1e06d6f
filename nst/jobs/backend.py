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

Job kinds. A request carries ``kind`` (``JobRequest.kind == "image"``, ``"video"`` for
``nst.video_jobs``). ``register_kind`` names, per kind, the runner that computes it (a dotted
path, imported lazily where the job runs: a worker thread or an RQ worker) and the codecs that
turn the request and the result into JSON-safe metadata plus encoded blobs for Redis. A kind
registered by another module is listed in ``KIND_MODULES``, which a worker imports on its first
job of that kind. A runner yields progress records (any object with ``step``, ``total``,
``loss``, ``parts``, ``elapsed`` and ``preview``: a float RGB array or None; a video runner
adds ``frame``/``frames``, 1-based, which ``JobProgress`` carries to the page) and finally one
result; it checks its ``CancelToken`` every step.
"""

from __future__ import annotations

import importlib
import io
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

import numpy as np
from PIL import Image

from nst.config import StyleConfig
from nst.images import load_image, to_uint8
from nst.records import CancelToken, Result, seconds_left

__all__ = [
    "JobBackend",
    "JobKind",
    "JobProgress",
    "JobRequest",
    "JobState",
    "JobStatus",
    "QueueUnavailableError",
    "Runner",
    "UnknownJobError",
    "decode_png",
    "encode_png",
    "final_state",
    "history_entry",
    "job_kind",
    "plain_error",
    "register_kind",
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


UNKNOWN_JOB = "This job is not known: it was removed after finishing, or the server restarted."


@dataclass(frozen=True, eq=False)
class JobRequest:
    """Everything one image run needs: RGB float32 images in [0, 1] and the settings.

    ``styles`` are resized on creation to what the run uses (longest side
    ``size * style_scale``, as the engine does), so a queued job never holds an upload at full
    size. Arrays are not copied otherwise; callers must not modify them while the job waits.
    """

    kind: ClassVar[str] = "image"

    content: np.ndarray
    styles: tuple[np.ndarray, ...]
    config: StyleConfig
    mask: np.ndarray | None = None
    init_image: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.config, StyleConfig):
            raise TypeError("config must be a StyleConfig.")
        if isinstance(self.styles, np.ndarray):
            styles: tuple[np.ndarray, ...] = (self.styles,)
        else:
            styles = tuple(self.styles)
        if not styles:
            raise ValueError("A job needs at least one style image.")
        object.__setattr__(self, "styles", tuple(_style_for_run(s, self.config) for s in styles))


def _style_for_run(style: np.ndarray, config: StyleConfig) -> np.ndarray:
    """Shrink a style image to the largest size the engine will use (never enlarge it).

    The rule is ``nst.stylize._style_at_scale``'s (longest side ``size * style_scale``, at
    least 2 * MIN_SIDE, at most 4096), computed here without importing TensorFlow.
    """
    from nst.images import MIN_SIDE, resize_to, working_shape

    side = int(np.clip(round(config.size * config.style_scale), MIN_SIDE * 2, 4096))
    if max(style.shape[:2]) <= side:
        return style
    return resize_to(style, *working_shape(*style.shape[:2], side))


@dataclass(frozen=True)
class JobProgress:
    """One step of a running job, as the page sees it.

    ``step``/``total`` count optimization steps (of the current frame, for a video job, where
    ``frame``/``frames`` say which frame of how many; None for an image).
    """

    step: int
    total: int
    loss: float
    parts: dict[str, float]
    elapsed: float
    frame: int | None = None
    frames: int | None = None

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

    ``runner`` is a dotted path ``"module:function"`` imported when a job of this kind runs,
    so registering a kind costs nothing on the web tier. The codecs turn requests and results
    into JSON-safe metadata plus encoded blobs (images as PNG) for the Redis backend: nothing
    user-supplied is ever unpickled.
    """

    name: str
    request_type: type
    runner: str
    encode_request: Callable[[Any], tuple[dict[str, Any], Blobs]]
    decode_request: Callable[[dict[str, Any], Blobs], Any]
    encode_result: Callable[[Result], tuple[dict[str, Any], Blobs]]
    decode_result: Callable[[dict[str, Any], Blobs], Result]

    def load_runner(self) -> Runner:
        module, _, name = self.runner.partition(":")
        return getattr(importlib.import_module(module), name)


_KINDS: dict[str, JobKind] = {}
# Kinds registered by importing a module: a worker imports it on its first job of that kind.
KIND_MODULES = {"video": "nst.video_jobs"}


def register_kind(kind: JobKind) -> None:
    """Add (or replace) a job kind; requests of ``kind.request_type`` must have ``kind.name``
    as their ``kind`` attribute."""
    _KINDS[kind.name] = kind


def job_kind(name: str) -> JobKind:
    """The registered kind called ``name``; ``ValueError`` for an unknown one."""
    if name not in _KINDS and name in KIND_MODULES:
        importlib.import_module(KIND_MODULES[name])
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


def history_entry(progress: Any) -> dict[str, Any]:
    """One loss-chart row from a progress record."""
    entry: dict[str, Any] = {
        "step": getattr(progress, "step", None),
        "loss": getattr(progress, "loss", None),
        "elapsed": getattr(progress, "elapsed", None),
    }
    frame = getattr(progress, "frame", None)
    if frame is not None:
        entry["frame"] = frame
    parts = getattr(progress, "parts", None) or {}
    entry.update({str(name): value for name, value in dict(parts).items()})
    return entry


def final_state(result: Result | None, cancelled: bool) -> tuple[JobState, str | None]:
    """How a run's stream ended, as the job's final state and its error sentence (or None).

    A result with an error (e.g. a non-finite loss) still carries the last good image."""
    if result is None:
        return JobState.FAILED, "The run ended without producing an image."
    if result.error:
        return JobState.FAILED, str(result.error)
    return (JobState.CANCELLED if cancelled else JobState.DONE), None


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


# ----- the image kind -----


def _encode_image_request(request: JobRequest) -> tuple[dict[str, Any], Blobs]:
    blobs: Blobs = {"content": encode_png(request.content)}
    for index, style in enumerate(request.styles):
        blobs[f"style{index}"] = encode_png(style)
    if request.mask is not None:
        blobs["mask"] = encode_png(request.mask)
    if request.init_image is not None:
        blobs["init"] = encode_png(request.init_image)
    return {"config": request.config.to_dict(), "styles": len(request.styles)}, blobs


def _decode_image_request(meta: dict[str, Any], blobs: Blobs) -> JobRequest:
    count = int(meta["styles"])
    return JobRequest(
        content=decode_png(blobs["content"]),
        styles=tuple(decode_png(blobs[f"style{index}"]) for index in range(count)),
        config=StyleConfig.from_dict(dict(meta["config"])),
        mask=decode_png(blobs["mask"]) if "mask" in blobs else None,
        init_image=decode_png(blobs["init"]) if "init" in blobs else None,
    )


def _encode_result(result: Result) -> tuple[dict[str, Any], Blobs]:
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
    return meta, {"image": encode_png(result.image)}


def _decode_result(meta: dict[str, Any], blobs: Blobs) -> Result:
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
    )


def run_image(request: JobRequest, cancel: CancelToken) -> Iterable[Any]:
    """The image runner: ``nst.stylize.stylize`` on the request (imports TensorFlow)."""
    from nst.stylize import stylize

    return stylize(
        request.content,
        list(request.styles),
        request.config,
        mask=request.mask,
        init_image=request.init_image,
        cancel=cancel,
        sketch=True,  # every view of an image job shows previews
    )


register_kind(
    JobKind(
        name="image",
        request_type=JobRequest,
        runner="nst.jobs.backend:run_image",
        encode_request=_encode_image_request,
        decode_request=_decode_image_request,
        encode_result=_encode_result,
        decode_result=_decode_result,
    )
)
