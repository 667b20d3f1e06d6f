"""What the stores keep, and how it travels: owner keys, records, runs, codecs and notices.

Two kinds of record sit on an owner's shelves (``SHELVES``): pictures (``StudioResult``, the
Stylize page's results) and clips (``ClipRecord``, the Video page's). Each kind has a running
job of its own (``PendingRun``, ``ClipRun``). A record crosses to Redis as JSON metadata and
byte blobs (pictures as PNG): nothing is pickled. No Streamlit here.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import math
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from nst.config import StyleConfig
from nst.video_config import VideoConfig
from studio.session import StudioResult

OWNER_KEY_LENGTH = 43  # secrets.token_urlsafe(32): 32 random bytes in unpadded base64url
_URLSAFE = frozenset(string.ascii_letters + string.digits + "-_")

GALLERY_CAP = 12  # records of each kind kept per owner
# A running job's record lives at least this long, whatever the keep time: a run can take
# hours (RQ's hard limit is 6 h) and must not vanish while it paints.
RUN_SECONDS = 24 * 3600
# How long one caller may take to turn a finished run into a record before another may try
# (its web server may have died meanwhile); a clip's settling passes its own, longer lease.
CLAIM_SECONDS = 60.0

Blobs = dict[str, bytes]
T = TypeVar("T")


def new_owner_key() -> str:
    """A browser's private key: 43 random URL-safe characters."""
    return secrets.token_urlsafe(32)


def valid_owner_key(text: object) -> bool:
    """Whether ``text`` looks like a key from ``new_owner_key`` (anything else counts as none)."""
    return isinstance(text, str) and len(text) == OWNER_KEY_LENGTH and set(text) <= _URLSAFE


def owner_id(key: str) -> str:
    """What the stores index by: the key's SHA-256 in hex (the key itself is never kept)."""
    return hashlib.sha256(key.encode()).hexdigest()


def checked_owner(key: str) -> str:
    """``owner_id(key)`` of a valid key; ``ValueError`` for anything else."""
    if not valid_owner_key(key):
        # An empty or made-up key would share one gallery among everyone who has it.
        raise ValueError("An owner key must be the 43 URL-safe characters of new_owner_key().")
    return owner_id(key)


# ----- notices -----


def dropped_notice(count: int, cap: int = GALLERY_CAP, noun: str = "result") -> str:
    """The sentence for ``count`` records (``noun``: "result" or "clip") removed to keep
    within the caps."""
    plural = f"{noun} was" if count == 1 else f"{noun}s were"
    newest = "newest" if noun == "result" else f"newest {noun}s"
    return (
        f"{count} older {plural} removed to save memory: the gallery keeps at most the "
        f"{cap} {newest}, fewer when the studio is busy. Download the ones you want to keep."
    )


def expired_notice(count: int, hours: float, noun: str = "result") -> str:
    """The sentence for ``count`` records that outlived the keep time of ``hours``."""
    plural = noun if count == 1 else f"{noun}s"
    return (
        f"{count} {plural} expired: the studio keeps {noun}s for {_duration(hours)}. "
        "Download the ones you want to keep."
    )


def _duration(hours: float) -> str:
    if hours >= 1:
        return f"{hours:g} hour" + ("" if hours == 1 else "s")
    minutes = max(1, round(hours * 60))
    return f"{minutes} minute" + ("" if minutes == 1 else "s")


# ----- runs and clips -----


@dataclass(frozen=True)
class PendingRun:
    """An owner's running picture job, as a page needs it to follow the run and keep its
    result."""

    job_id: str
    config: StyleConfig
    content: np.ndarray  # uint8 RGB, the photo at working size
    content_name: str
    content_key: str
    style_names: tuple[str, ...]
    continued_from: int | None
    mask: np.ndarray | None  # uint8 (h, w)
    mask_source: str | None
    started: float  # time.time() at submit
    instant_png: bytes | None = None  # the instant picture, once a page has seen it


@dataclass(frozen=True)
class ClipRun:
    """An owner's running clip job: what a page needs to follow it and keep its clip."""

    job_id: str
    name: str  # the uploaded clip's file name
    frames: int  # frames planned
    config: StyleConfig
    video: VideoConfig
    style_names: tuple[str, ...]
    started: float  # time.time() at submit


@dataclass
class ClipRecord:
    """A finished (or stopped) clip in an owner's gallery.

    ``result_id`` numbers the owner's clips (apart from their pictures); ``poster`` is the
    last finished frame as PNG; ``webp`` and ``gif`` exist for short clips only; ``error``
    says why a clip ended early (its finished frames are kept); ``notice`` what was done to
    the source while reading it.
    """

    result_id: int
    name: str
    mp4: bytes
    webp: bytes | None
    gif: bytes | None
    poster: bytes
    frames: int
    frames_planned: int
    fps: float
    seconds: float
    stopped: bool
    error: str | None
    notice: str | None
    config: StyleConfig
    video: VideoConfig
    style_names: tuple[str, ...]
    created: float

    @property
    def nbytes(self) -> int:
        """Bytes this clip holds: its encoded files and poster."""
        files = (self.mp4, self.webp, self.gif, self.poster)
        return sum(len(data) for data in files if data is not None)

    @property
    def length(self) -> float:
        """Seconds of video."""
        return self.frames / self.fps if self.fps > 0 else 0.0

    @property
    def label(self) -> str:
        return f"Clip #{self.result_id} · {self.name}"


# ----- codecs -----


def encode_record(record: StudioResult) -> tuple[dict[str, Any], Blobs]:
    """A picture as JSON-safe metadata and PNG blobs (uint8 pixels round-trip exactly)."""
    blobs = {"image": _png(record.image), "content": _png(record.content)}
    if record.instant is not None:
        blobs["instant"] = _png(record.instant)
    if record.mask is not None:
        blobs["mask"] = _png(record.mask)
    return record_meta(record), blobs


def record_meta(record: StudioResult) -> dict[str, Any]:
    """A picture's metadata (what ``update`` writes back)."""
    return {
        "result_id": record.result_id,
        "config": record.config.to_dict(),
        "content_name": record.content_name,
        "content_key": record.content_key,
        "style_names": list(record.style_names),
        "created": record.created,
        "seconds": _json_float(record.seconds),
        "steps_done": record.steps_done,
        "stopped": record.stopped,
        "error": record.error,
        "history": [
            {name: _json_float(value) for name, value in row.items()} for row in record.history
        ],
        "note": record.note,
        "continued_from": record.continued_from,
        "adjustments": dict(record.adjustments),
        "mask_source": record.mask_source,
    }


def decode_record(meta: dict[str, Any], blobs: Blobs) -> StudioResult:
    """The inverse of ``encode_record``."""
    return StudioResult(
        result_id=int(meta["result_id"]),
        image=_unpng(blobs["image"]),
        content=_unpng(blobs["content"]),
        config=StyleConfig.from_dict(meta["config"]),
        content_name=meta["content_name"],
        content_key=meta["content_key"],
        style_names=tuple(meta["style_names"]),
        created=float(meta["created"]),
        seconds=float(meta["seconds"]),
        steps_done=int(meta["steps_done"]),
        stopped=bool(meta["stopped"]),
        error=meta["error"],
        history=[{name: float(value) for name, value in row.items()} for row in meta["history"]],
        note=meta["note"],
        continued_from=meta["continued_from"],
        adjustments={name: float(value) for name, value in meta["adjustments"].items()},
        instant=_unpng(blobs["instant"]) if "instant" in blobs else None,
        mask=_unpng(blobs["mask"]) if "mask" in blobs else None,
        mask_source=meta["mask_source"],
    )


def encode_run(run: PendingRun) -> tuple[dict[str, Any], Blobs]:
    """A pending run as JSON-safe metadata and PNG blobs."""
    meta = {
        "job_id": run.job_id,
        "config": run.config.to_dict(),
        "content_name": run.content_name,
        "content_key": run.content_key,
        "style_names": list(run.style_names),
        "continued_from": run.continued_from,
        "mask_source": run.mask_source,
        "started": run.started,
    }
    blobs = {"content": _png(run.content)}
    if run.mask is not None:
        blobs["mask"] = _png(run.mask)
    if run.instant_png is not None:
        blobs["instant"] = run.instant_png
    return meta, blobs


def decode_run(meta: dict[str, Any], blobs: Blobs) -> PendingRun:
    """The inverse of ``encode_run``."""
    return PendingRun(
        job_id=meta["job_id"],
        config=StyleConfig.from_dict(meta["config"]),
        content=_unpng(blobs["content"]),
        content_name=meta["content_name"],
        content_key=meta["content_key"],
        style_names=tuple(meta["style_names"]),
        continued_from=meta["continued_from"],
        mask=_unpng(blobs["mask"]) if "mask" in blobs else None,
        mask_source=meta["mask_source"],
        started=float(meta["started"]),
        instant_png=blobs.get("instant"),
    )


_CLIP_FILES = ("mp4", "webp", "gif", "poster")


def encode_clip(record: ClipRecord) -> tuple[dict[str, Any], Blobs]:
    """A clip as JSON-safe metadata and its files as blobs."""
    blobs = {name: getattr(record, name) for name in _CLIP_FILES}
    return clip_meta(record), {name: data for name, data in blobs.items() if data is not None}


def clip_meta(record: ClipRecord) -> dict[str, Any]:
    """A clip's metadata."""
    return {
        "result_id": record.result_id,
        "name": record.name,
        "frames": record.frames,
        "frames_planned": record.frames_planned,
        "fps": record.fps,
        "seconds": _json_float(record.seconds),
        "stopped": record.stopped,
        "error": record.error,
        "notice": record.notice,
        "config": record.config.to_dict(),
        "video": record.video.to_dict(),
        "style_names": list(record.style_names),
        "created": record.created,
    }


def decode_clip(meta: dict[str, Any], blobs: Blobs) -> ClipRecord:
    """The inverse of ``encode_clip``."""
    return ClipRecord(
        result_id=int(meta["result_id"]),
        name=str(meta["name"]),
        mp4=blobs["mp4"],
        webp=blobs.get("webp"),
        gif=blobs.get("gif"),
        poster=blobs["poster"],
        frames=int(meta["frames"]),
        frames_planned=int(meta["frames_planned"]),
        fps=float(meta["fps"]),
        seconds=float(meta["seconds"]),
        stopped=bool(meta["stopped"]),
        error=meta["error"],
        notice=meta["notice"],
        config=StyleConfig.from_dict(meta["config"]),
        video=VideoConfig(**dict(meta["video"])),
        style_names=tuple(meta["style_names"]),
        created=float(meta["created"]),
    )


def encode_clip_run(run: ClipRun) -> tuple[dict[str, Any], Blobs]:
    """A running clip as JSON-safe metadata (no blobs: the clip itself is the job's)."""
    meta = {
        "job_id": run.job_id,
        "name": run.name,
        "frames": run.frames,
        "config": run.config.to_dict(),
        "video": run.video.to_dict(),
        "style_names": list(run.style_names),
        "started": run.started,
    }
    return meta, {}


def decode_clip_run(meta: dict[str, Any], blobs: Blobs) -> ClipRun:
    """The inverse of ``encode_clip_run``."""
    return ClipRun(
        job_id=str(meta["job_id"]),
        name=str(meta["name"]),
        frames=int(meta["frames"]),
        config=StyleConfig.from_dict(meta["config"]),
        video=VideoConfig(**dict(meta["video"])),
        style_names=tuple(meta["style_names"]),
        started=float(meta["started"]),
    )


def _png(pixels: np.ndarray) -> bytes:
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError(
            f"Stored pictures must be uint8 arrays, got {pixels.dtype} {pixels.shape}."
        )
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _unpng(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.array(image)


def _json_float(value: float) -> float | str:
    """JSON has no NaN or infinity: keep them as strings (``float()`` reads them back)."""
    return value if math.isfinite(value) else str(value)


# ----- the kinds of record, and the protocol -----


@dataclass(frozen=True)
class Shelf:
    """One kind of record an owner keeps, with its running job: how the stores name, carry
    and tell about it. ``tag`` prefixes its notices entries and its Redis key parts."""

    kind: str  # "picture" or "clip": the ``kind`` argument of the store's calls
    noun: str  # what a sentence calls one record
    tag: str
    record_type: type
    run_type: type
    encode: Callable[[Any], tuple[dict[str, Any], Blobs]]
    decode: Callable[[dict[str, Any], Blobs], Any]
    meta: Callable[[Any], dict[str, Any]]
    encode_run: Callable[[Any], tuple[dict[str, Any], Blobs]]
    decode_run: Callable[[dict[str, Any], Blobs], Any]


PICTURES = Shelf(
    "picture", "result", "", StudioResult, PendingRun,
    encode_record, decode_record, record_meta, encode_run, decode_run,
)  # fmt: skip
CLIPS = Shelf(
    "clip", "clip", "clip_", ClipRecord, ClipRun,
    encode_clip, decode_clip, clip_meta, encode_clip_run, decode_clip_run,
)  # fmt: skip
SHELVES = {shelf.kind: shelf for shelf in (PICTURES, CLIPS)}


def shelf_of(kind: str) -> Shelf:
    """The shelf called ``kind``; ``ValueError`` for another name."""
    try:
        return SHELVES[kind]
    except KeyError:
        raise ValueError(f"Unknown kind of record {kind!r}; known: picture, clip.") from None


def shelf_for(item: object) -> Shelf:
    """The shelf of a record or a run, by its type."""
    for shelf in SHELVES.values():
        if isinstance(item, (shelf.record_type, shelf.run_type)):
            return shelf
    raise TypeError(f"The stores keep pictures and clips, not {type(item).__name__}.")


def same_job(run: Any, job_id: str) -> bool:
    """Whether ``run`` (a run record or None) is the job ``job_id`` (in constant time)."""
    return run is not None and hmac.compare_digest(run.job_id.encode(), job_id.encode())


def notices(dropped: int, expired: int, cap: int, hours: float, noun: str) -> list[str]:
    """The sentences for records dropped and expired since the owner last looked."""
    said = []
    if dropped:
        said.append(dropped_notice(dropped, cap, noun))
    if expired:
        said.append(expired_notice(expired, hours, noun))
    return said


def numbered(record: T, result_id: int, now: float) -> T:
    """The record itself, given its id (and its time if it had none): it is kept as it is,
    with the display copies it has made."""
    record.result_id = result_id  # type: ignore[attr-defined]
    record.created = record.created or now  # type: ignore[attr-defined]
    return record


class ResultStore(Protocol):
    """An owner's records (oldest first) and running jobs, of each kind (``"picture"``, the
    default, or ``"clip"``); ``owner`` is the browser's key. ``add`` and ``set_run`` find the
    kind from the record's type.

    Settling a finished run is ``claim_run`` (exactly one caller gets the run, which stays
    visible to ``run`` meanwhile), ``add`` of its record, then ``take_run``: a page that looks
    in between sees the run or its record, never neither."""

    def add(self, owner: str, record: Any) -> Any: ...
    def results(self, owner: str, kind: str = "picture") -> list[Any]: ...
    def get(self, owner: str, result_id: int, kind: str = "picture") -> Any | None: ...
    def update(self, owner: str, record: StudioResult) -> None: ...
    def delete(self, owner: str, result_id: int, kind: str = "picture") -> None: ...
    def take_notices(self, owner: str) -> list[str]: ...
    def add_notice(self, owner: str, text: str) -> None: ...
    def set_run(self, owner: str, run: Any) -> Any | None: ...
    def run(self, owner: str, kind: str = "picture") -> Any | None: ...
    def note_instant(self, owner: str, job_id: str, png: bytes) -> None: ...
    def claim_run(
        self, owner: str, job_id: str, kind: str = "picture", *, lease: float = CLAIM_SECONDS
    ) -> Any | None: ...
    def take_run(self, owner: str, job_id: str, kind: str = "picture") -> Any | None: ...


def keep_hours_or_env(hours: float | None) -> float:
    """``hours`` checked, or ``NST_KEEP_HOURS``."""
    from nst.config import keep_hours

    if hours is None:
        return keep_hours()
    if not hours > 0:
        raise ValueError(f"keep_hours must be positive, got {hours!r}.")
    return float(hours)


def whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))
