"""Where a person's results and running job live: in this process, or in Redis.

A browser holds a private owner key (``new_owner_key()``); the stores index everything by its
SHA-256 (``owner_id``), never by the key itself, so another browser, or someone who has only a
settings link, finds nothing. ``get_store()`` picks the store from ``NST_QUEUE``:

- unset: ``MemoryStore``, one per process, under the memory budget ``NST_GALLERY_MB`` for all
  owners together (the oldest results of the whole process go first);
- a Redis URL: ``RedisStore`` on the same Redis as the job queue, so every web server sharing
  ``NST_QUEUE`` sees the same results (the budget is Redis's own ``maxmemory``).

Either way an owner keeps at most ``GALLERY_CAP`` results, each for ``NST_KEEP_HOURS`` hours
after it was made, and is told in one sentence when some were removed. Records travel to Redis
as JSON and PNG: nothing is pickled. No Streamlit here: the pages call it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
import math
import os
import secrets
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from nst.config import KEEP_HOURS_BOUNDS, StyleConfig, keep_hours, keep_seconds
from nst.config import KEEP_HOURS_DEFAULT as DEFAULT_KEEP_HOURS
from nst.jobs import QueueUnavailableError, queue_url
from studio.session import DISPLAY_SIDE, THUMB_SIDE, StudioResult

__all__ = [
    "DEFAULT_KEEP_HOURS",
    "GALLERY_BYTES",
    "GALLERY_CAP",
    "KEEP_ENV",
    "KEEP_HOURS_BOUNDS",
    "RUN_SECONDS",
    "MemoryStore",
    "PendingRun",
    "RedisStore",
    "ResultStore",
    "decode_record",
    "decode_run",
    "dropped_notice",
    "encode_record",
    "encode_run",
    "expired_notice",
    "gallery_bytes_from_env",
    "get_store",
    "keep_hours",
    "keep_seconds",
    "new_owner_key",
    "owner_id",
    "valid_owner_key",
]

OWNER_KEY_LENGTH = 43  # secrets.token_urlsafe(32): 32 random bytes in unpadded base64url
_URLSAFE = frozenset(string.ascii_letters + string.digits + "-_")

GALLERY_CAP = 12  # results kept per owner
KEEP_ENV = "NST_KEEP_HOURS"  # read by nst.config.keep_hours
# A running job's record lives at least this long, whatever the keep time: a run can take
# hours (RQ's hard limit is 6 h) and must not vanish while it paints.
RUN_SECONDS = 24 * 3600
# Redis classifies a vanished record as expired when its keep time was this close to ending;
# otherwise Redis evicted it (maxmemory), which is told as "removed to save memory".
_EXPIRY_SLACK = 2.0
_SAID = b"say:"  # a notices entry holding add_notice's sentence (others: "dropped", "expired")

T = TypeVar("T")


def gallery_bytes_from_env() -> int:
    """``NST_GALLERY_MB`` (default 1024) in bytes; ``ValueError`` in one sentence if malformed."""
    text = os.environ.get("NST_GALLERY_MB", "").strip() or "1024"
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes > 0):
        raise ValueError(f"NST_GALLERY_MB must be a positive number of megabytes, got {text!r}.")
    return int(megabytes * 2**20)


# All owners' results in one process together (MemoryStore); the oldest go first.
GALLERY_BYTES = gallery_bytes_from_env()


def new_owner_key() -> str:
    """A browser's private key: 43 random URL-safe characters."""
    return secrets.token_urlsafe(32)


def valid_owner_key(text: object) -> bool:
    """Whether ``text`` looks like a key from ``new_owner_key`` (anything else counts as none)."""
    return isinstance(text, str) and len(text) == OWNER_KEY_LENGTH and set(text) <= _URLSAFE


def owner_id(key: str) -> str:
    """What the stores index by: the key's SHA-256 in hex (the key itself is never kept)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _owner(key: str) -> str:
    if not valid_owner_key(key):
        # An empty or made-up key would share one gallery among everyone who has it.
        raise ValueError("An owner key must be the 43 URL-safe characters of new_owner_key().")
    return owner_id(key)


# ----- notices -----


def dropped_notice(count: int, cap: int = GALLERY_CAP) -> str:
    """The sentence for ``count`` results removed to keep within the caps."""
    plural = "result was" if count == 1 else "results were"
    return (
        f"{count} older {plural} removed to save memory: the gallery keeps at most the "
        f"{cap} newest, fewer when the studio is busy. Download the ones you want to keep."
    )


def expired_notice(count: int, hours: float) -> str:
    """The sentence for ``count`` results that outlived the keep time of ``hours``."""
    plural = "result" if count == 1 else "results"
    return (
        f"{count} {plural} expired: the studio keeps results for {_duration(hours)}. "
        "Download the ones you want to keep."
    )


def _duration(hours: float) -> str:
    if hours >= 1:
        return f"{hours:g} hour" + ("" if hours == 1 else "s")
    minutes = max(1, round(hours * 60))
    return f"{minutes} minute" + ("" if minutes == 1 else "s")


# ----- records -----


@dataclass(frozen=True)
class PendingRun:
    """An owner's running job, as a page needs it to follow the run and keep its result."""

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


Blobs = dict[str, bytes]


def encode_record(record: StudioResult) -> tuple[dict[str, Any], Blobs]:
    """A result as JSON-safe metadata and PNG blobs (uint8 pixels round-trip exactly)."""
    blobs = {"image": _png(record.image), "content": _png(record.content)}
    if record.instant is not None:
        blobs["instant"] = _png(record.instant)
    if record.mask is not None:
        blobs["mask"] = _png(record.mask)
    return _record_meta(record), blobs


def _record_meta(record: StudioResult) -> dict[str, Any]:
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


# ----- the stores -----


class ResultStore(Protocol):
    """An owner's results (oldest first) and running job; ``owner`` is the browser's key."""

    def add(self, owner: str, record: StudioResult) -> StudioResult: ...
    def results(self, owner: str) -> list[StudioResult]: ...
    def get(self, owner: str, result_id: int) -> StudioResult | None: ...
    def update(self, owner: str, record: StudioResult) -> None: ...
    def delete(self, owner: str, result_id: int) -> None: ...
    def take_notices(self, owner: str) -> list[str]: ...
    def add_notice(self, owner: str, text: str) -> None: ...
    def set_run(self, owner: str, run: PendingRun) -> PendingRun | None: ...
    def run(self, owner: str) -> PendingRun | None: ...
    def note_instant(self, owner: str, job_id: str, png: bytes) -> None: ...
    def take_run(self, owner: str, job_id: str) -> PendingRun | None: ...


def _same_job(run: PendingRun | None, job_id: str) -> bool:
    return run is not None and hmac.compare_digest(run.job_id.encode(), job_id.encode())


@dataclass
class _Kept:
    record: StudioResult
    sequence: int  # when it was added, across all owners: the budget drops the lowest first


@dataclass
class _Owner:
    kept: list[_Kept] = dataclasses.field(default_factory=list)  # oldest first
    next_id: int = 1
    dropped: int = 0
    expired: int = 0
    said: list[str] = dataclasses.field(default_factory=list)  # add_notice's sentences
    run: PendingRun | None = None
    touched: float = 0.0


class MemoryStore:
    """Results in this process's memory: thread-safe (one lock), lost when the process ends.

    Args:
        cap: results kept per owner.
        budget: bytes for all owners' results together, counted with
            ``StudioResult.nbytes`` (default ``GALLERY_BYTES``).
        keep_hours: how long a result is kept after it was made (default ``keep_hours()``).
        clock: the time source (``time.time``), injectable for tests.
    """

    def __init__(
        self,
        *,
        cap: int = GALLERY_CAP,
        budget: int | None = None,
        keep_hours: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cap = cap
        self.budget = GALLERY_BYTES if budget is None else budget
        self.keep_hours = _keep_hours_or_env(keep_hours)
        self.keep_seconds = self.keep_hours * 3600
        self.clock = clock
        self._lock = threading.Lock()
        self._owners: dict[str, _Owner] = {}
        self._sequence = 0

    def add(self, owner: str, record: StudioResult) -> StudioResult:
        """Keep ``record`` under a new id; drop this owner's oldest beyond the cap and the whole
        process's oldest beyond the budget (never this one). Returns the kept record."""
        oid = _owner(owner)
        now = self.clock()
        with self._lock:
            self._expire_all(now)
            state = self._state(oid, now)
            kept = _numbered(record, state.next_id, now)
            state.next_id += 1
            # The display copies are made as soon as a page shows it: count them now.
            kept.fitted(DISPLAY_SIDE)
            kept.fitted(THUMB_SIDE)
            self._sequence += 1
            state.kept.append(_Kept(kept, self._sequence))
            while len(state.kept) > self.cap:
                state.kept.pop(0)
                state.dropped += 1
            self._enforce_budget(kept)
        return kept

    def results(self, owner: str) -> list[StudioResult]:
        oid = _owner(owner)
        with self._lock:
            state = self._owners.get(oid)
            if state is None:
                return []
            self._expire(state, self.clock())
            return [item.record for item in state.kept]

    def get(self, owner: str, result_id: int) -> StudioResult | None:
        return next((item for item in self.results(owner) if item.result_id == result_id), None)

    def update(self, owner: str, record: StudioResult) -> None:
        """Nothing to write: the pages change the kept record itself."""
        _owner(owner)

    def delete(self, owner: str, result_id: int) -> None:
        oid = _owner(owner)
        with self._lock:
            state = self._owners.get(oid)
            if state is not None:
                state.kept = [item for item in state.kept if item.record.result_id != result_id]

    def take_notices(self, owner: str) -> list[str]:
        oid = _owner(owner)
        with self._lock:
            state = self._owners.get(oid)
            if state is None:
                return []
            self._expire(state, self.clock())
            counts, said = (state.dropped, state.expired), state.said
            state.dropped = state.expired = 0
            state.said = []
        return _notices(*counts, cap=self.cap, hours=self.keep_hours) + said

    def add_notice(self, owner: str, text: str) -> None:
        """Keep a sentence for the owner's next ``take_notices`` (a run that ended unseen)."""
        oid = _owner(owner)
        with self._lock:
            self._state(oid, self.clock()).said.append(text)

    def set_run(self, owner: str, run: PendingRun) -> PendingRun | None:
        oid = _owner(owner)
        with self._lock:
            state = self._state(oid, self.clock())
            replaced = self._live_run(state)
            state.run = run
            return replaced

    def run(self, owner: str) -> PendingRun | None:
        oid = _owner(owner)
        with self._lock:
            state = self._owners.get(oid)
            return None if state is None else self._live_run(state)

    def note_instant(self, owner: str, job_id: str, png: bytes) -> None:
        oid = _owner(owner)
        with self._lock:
            state = self._owners.get(oid)
            if state is not None and _same_job(state.run, job_id):
                state.run = dataclasses.replace(state.run, instant_png=png)

    def take_run(self, owner: str, job_id: str) -> PendingRun | None:
        oid = _owner(owner)
        with self._lock:
            state = self._owners.get(oid)
            if state is None or not _same_job(self._live_run(state), job_id):
                return None
            run, state.run = state.run, None
            return run

    def held_bytes(self) -> int:
        """Bytes held by all owners' results."""
        with self._lock:
            return sum(item.record.nbytes for state in self._owners.values() for item in state.kept)

    # ----- internals (under the lock) -----

    def _state(self, oid: str, now: float) -> _Owner:
        state = self._owners.setdefault(oid, _Owner())
        state.touched = now
        return state

    def _expire(self, state: _Owner, now: float) -> None:
        fresh = [item for item in state.kept if item.record.created + self.keep_seconds > now]
        state.expired += len(state.kept) - len(fresh)
        state.kept = fresh

    def _live_run(self, state: _Owner) -> PendingRun | None:
        run = state.run
        if run is not None and run.started + max(self.keep_seconds, RUN_SECONDS) <= self.clock():
            state.run = run = None
        return run

    def _expire_all(self, now: float) -> None:
        """Expire every owner's old results, and forget owners with nothing kept, as Redis
        forgets an owner's keys, twice the keep time after their last change."""
        for oid, state in list(self._owners.items()):
            self._expire(state, now)
            idle = not (state.kept or self._live_run(state))
            if idle and state.touched + 2 * self.keep_seconds <= now:
                del self._owners[oid]

    def _enforce_budget(self, keep: StudioResult) -> None:
        total = sum(item.record.nbytes for state in self._owners.values() for item in state.kept)
        while total > self.budget:
            candidates = [
                (item.sequence, state, item)
                for state in self._owners.values()
                for item in state.kept
                if item.record is not keep
            ]
            if not candidates:
                return
            _, state, oldest = min(candidates, key=lambda entry: entry[0])
            total -= oldest.record.nbytes
            state.kept.remove(oldest)
            state.dropped += 1


class RedisStore:
    """Results in Redis, seen by every web server with the same ``NST_QUEUE``.

    Keys, per owner (``<o>`` is ``owner_id(key)``): ``nst:owner:<o>:results`` (a sorted set of
    result ids by created time), ``nst:owner:<o>:result:<id>`` (a hash: ``meta`` JSON and PNG
    blobs; it expires ``keep_hours`` after the result was made), ``:next_id``, ``:run`` (a
    hash) and ``:notices`` (a list). The owner's keys expire twice the keep time after its last
    result, so a person coming back is still told what expired. Decoded records are cached in
    this process (at most ``cache_bytes``), since every page rerun lists the gallery.

    Args:
        url: the Redis URL (``NST_QUEUE``).
        cap: results kept per owner.
        keep_hours: how long a result is kept (default ``keep_hours()``).
        clock: the time source, injectable for tests (Redis's own expiry still applies).
        cache_bytes: decoded records kept in this process (default ``GALLERY_BYTES``).
    """

    def __init__(
        self,
        url: str,
        *,
        cap: int = GALLERY_CAP,
        keep_hours: float | None = None,
        clock: Callable[[], float] = time.time,
        cache_bytes: int | None = None,
    ) -> None:
        from nst.jobs.redis import connect

        self.url = url
        self.cap = cap
        self.keep_hours = _keep_hours_or_env(keep_hours)
        self.keep_seconds = self.keep_hours * 3600
        self.clock = clock
        self.cache_bytes = GALLERY_BYTES if cache_bytes is None else cache_bytes
        self.connection = connect(url)
        self._cache: OrderedDict[tuple[str, int], tuple[str, StudioResult]] = OrderedDict()
        self._cache_lock = threading.Lock()

    # ----- the interface -----

    def add(self, owner: str, record: StudioResult) -> StudioResult:
        oid = _owner(owner)
        return self._call(lambda: self._add(oid, record))

    def results(self, owner: str) -> list[StudioResult]:
        oid = _owner(owner)
        return self._call(lambda: self._results(oid))

    def get(self, owner: str, result_id: int) -> StudioResult | None:
        oid = _owner(owner)
        return self._call(lambda: self._get(oid, int(result_id)))

    def update(self, owner: str, record: StudioResult) -> None:
        """Write the record's metadata (its adjustments) back, if it is still kept."""
        oid = _owner(owner)
        self._call(lambda: self._update(oid, record))

    def delete(self, owner: str, result_id: int) -> None:
        oid = _owner(owner)
        pipe = self.connection.pipeline()
        pipe.zrem(self._key(oid, "results"), str(int(result_id)))
        pipe.delete(self._result_key(oid, int(result_id)))
        self._call(pipe.execute)
        self._uncache(oid, int(result_id))

    def take_notices(self, owner: str) -> list[str]:
        oid = _owner(owner)

        def take() -> list[str]:
            self._results(oid)  # notes the results that have gone since
            pipe = self.connection.pipeline()
            pipe.lrange(self._key(oid, "notices"), 0, -1)
            pipe.delete(self._key(oid, "notices"))
            entries, _ = pipe.execute()
            said = [entry[len(_SAID) :].decode() for entry in entries if entry.startswith(_SAID)]
            counts = entries.count(b"dropped"), entries.count(b"expired")
            return _notices(*counts, cap=self.cap, hours=self.keep_hours) + said

        return self._call(take)

    def add_notice(self, owner: str, text: str) -> None:
        """Keep a sentence for the owner's next ``take_notices`` (a run that ended unseen)."""
        oid = _owner(owner)
        notices = self._key(oid, "notices")
        pipe = self.connection.pipeline()
        pipe.rpush(notices, _SAID + text.encode())
        pipe.expire(notices, self._owner_seconds())
        self._call(pipe.execute)

    def set_run(self, owner: str, run: PendingRun) -> PendingRun | None:
        oid = _owner(owner)
        meta, blobs = encode_run(run)
        name = self._key(oid, "run")
        pipe = self.connection.pipeline()  # MULTI: the old one is read and replaced at once
        pipe.hgetall(name)
        pipe.delete(name)
        pipe.hset(name, mapping={"meta": json.dumps(meta, allow_nan=False), **blobs})
        pipe.expire(name, _whole_seconds(max(self.keep_seconds, RUN_SECONDS)))
        replaced, *_ = self._call(pipe.execute)
        return _run_of(replaced)

    def run(self, owner: str) -> PendingRun | None:
        oid = _owner(owner)
        return _run_of(self._call(lambda: self.connection.hgetall(self._key(oid, "run"))))

    def note_instant(self, owner: str, job_id: str, png: bytes) -> None:
        oid = _owner(owner)
        name = self._key(oid, "run")

        def note(pipe: Any) -> None:
            if _same_job(_run_of(pipe.hgetall(name)), job_id):
                pipe.multi()
                pipe.hset(name, "instant", png)

        self._call(lambda: self.connection.transaction(note, name))

    def take_run(self, owner: str, job_id: str) -> PendingRun | None:
        """Remove and return the owner's run if it is still ``job_id``: WATCH makes a second
        caller (another tab, another server) see it gone."""
        oid = _owner(owner)
        name = self._key(oid, "run")

        def take(pipe: Any) -> PendingRun | None:
            run = _run_of(pipe.hgetall(name))
            if not _same_job(run, job_id):
                return None
            pipe.multi()
            pipe.delete(name)
            return run

        return self._call(lambda: self.connection.transaction(take, name, value_from_callable=True))

    def close(self) -> None:
        self.connection.close()

    # ----- internals -----

    def _key(self, oid: str, part: str) -> str:
        return f"nst:owner:{oid}:{part}"

    def _result_key(self, oid: str, result_id: int) -> str:
        return self._key(oid, f"result:{result_id}")

    def _call(self, action: Callable[[], T]) -> T:
        import redis.exceptions

        try:
            return action()
        except redis.exceptions.AuthenticationError:
            raise QueueUnavailableError(
                f"The result store at {self._where()} refused the password in NST_QUEUE, so "
                "your gallery cannot be read or saved until it is corrected."
            ) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            raise QueueUnavailableError(
                f"The result store at {self._where()} cannot be reached, so your gallery "
                "cannot be read or saved right now; please try again in a minute."
            ) from None
        except redis.exceptions.OutOfMemoryError:
            raise QueueUnavailableError(
                f"The result store at {self._where()} is full (its maxmemory), so nothing new "
                "can be kept right now; download the pictures you want to keep."
            ) from None

    def _where(self) -> str:
        from nst.jobs.redis import describe

        return describe(self.url)

    def _owner_seconds(self) -> int:
        return _whole_seconds(2 * self.keep_seconds)

    def _add(self, oid: str, record: StudioResult) -> StudioResult:
        self._results(oid)  # expired and evicted ones are counted before the cap is
        now = self.clock()
        created = record.created or now
        _, blobs = encode_record(record)
        index, counter = self._key(oid, "results"), self._key(oid, "next_id")
        lifetime = max(1, round((created + self.keep_seconds - now) * 1000))
        dropped: list[int] = []

        def store(pipe: Any) -> tuple[int, str]:
            others = sorted(
                (score, int(member)) for member, score in pipe.zrange(index, 0, -1, withscores=True)
            )
            # Past the kept ids too: under maxmemory Redis may have evicted the counter.
            result_id = max([int(pipe.get(counter) or 0), *(number for _, number in others)]) + 1
            meta_text = json.dumps(
                _record_meta(_numbered(record, result_id, created)), allow_nan=False
            )
            name = self._result_key(oid, result_id)
            excess = len(others) + 1 - self.cap
            dropped[:] = [number for _, number in others[: max(0, excess)]]
            pipe.multi()
            pipe.set(counter, result_id)
            pipe.delete(name)  # an orphan left by an evicted index must not mix in
            pipe.hset(name, mapping={"meta": meta_text, **blobs})
            pipe.pexpire(name, lifetime)
            pipe.zadd(index, {str(result_id): created})
            if dropped:
                pipe.zrem(index, *map(str, dropped))
                pipe.delete(*(self._result_key(oid, number) for number in dropped))
                pipe.rpush(self._key(oid, "notices"), *["dropped"] * len(dropped))
            for part in ("results", "next_id", "notices"):
                pipe.expire(self._key(oid, part), self._owner_seconds())
            return result_id, meta_text

        result_id, meta_text = self.connection.transaction(
            store, index, counter, value_from_callable=True
        )
        kept = _numbered(record, result_id, created)
        for number in dropped:
            self._uncache(oid, number)
        self._cache_put(oid, kept, meta_text)
        return kept

    def _results(self, oid: str) -> list[StudioResult]:
        index = self._key(oid, "results")
        order = sorted(
            (score, int(member))
            for member, score in self.connection.zrange(index, 0, -1, withscores=True)
        )
        if not order:
            return []
        pipe = self.connection.pipeline(transaction=False)
        for _, number in order:
            pipe.hget(self._result_key(oid, number), "meta")
        metas = pipe.execute()
        now = self.clock()
        kept: list[StudioResult] = []
        gone: list[tuple[int, str]] = []
        for (created, number), meta in zip(order, metas):
            if meta is not None and created + self.keep_seconds > now:
                record = self._cached(oid, number, meta.decode())
                if record is not None:
                    kept.append(record)
                    continue
            if meta is None and created + self.keep_seconds > now + _EXPIRY_SLACK:
                gone.append((number, "dropped"))  # Redis evicted it under maxmemory
            elif meta is None or created + self.keep_seconds <= now:
                gone.append((number, "expired"))
        if gone:
            self._forget(oid, gone)
        return kept

    def _forget(self, oid: str, gone: list[tuple[int, str]]) -> None:
        """Drop vanished or outlived results; only the caller whose ZREM removed one tells."""
        index = self._key(oid, "results")
        pipe = self.connection.pipeline(transaction=False)
        for number, _ in gone:
            pipe.zrem(index, str(number))
            pipe.delete(self._result_key(oid, number))
        replies = pipe.execute()
        told = [kind for (_, kind), removed in zip(gone, replies[::2]) if removed]
        if told:
            notices = self._key(oid, "notices")
            pipe = self.connection.pipeline()
            pipe.rpush(notices, *told)
            pipe.expire(notices, self._owner_seconds())
            pipe.execute()
        for number, _ in gone:
            self._uncache(oid, number)

    def _cached(self, oid: str, number: int, meta_text: str) -> StudioResult | None:
        """The decoded record for this metadata: from the cache, else read from Redis."""
        with self._cache_lock:
            entry = self._cache.get((oid, number))
            if entry is not None:
                self._cache.move_to_end((oid, number))
        if entry is not None and entry[0] == meta_text:
            return entry[1]
        meta = json.loads(meta_text)
        if entry is not None and entry[1].created == meta["created"]:
            # The same result with new adjustments (written by another server).
            record = dataclasses.replace(
                entry[1], adjustments={k: float(v) for k, v in meta["adjustments"].items()}
            )
        else:
            stored = self.connection.hgetall(self._result_key(oid, number))
            if not stored:
                return None
            blobs = {name.decode(): value for name, value in stored.items()}
            meta_text = blobs.pop("meta").decode()
            record = decode_record(json.loads(meta_text), blobs)
        self._cache_put(oid, record, meta_text)
        return record

    def _cache_put(self, oid: str, record: StudioResult, meta_text: str) -> None:
        with self._cache_lock:
            self._cache[(oid, record.result_id)] = (meta_text, record)
            self._cache.move_to_end((oid, record.result_id))
            total = sum(item.nbytes for _, item in self._cache.values())
            while total > self.cache_bytes and len(self._cache) > 1:
                _, (_, oldest) = self._cache.popitem(last=False)
                total -= oldest.nbytes

    def _uncache(self, oid: str, number: int) -> None:
        with self._cache_lock:
            self._cache.pop((oid, number), None)

    def _get(self, oid: str, result_id: int) -> StudioResult | None:
        return next((item for item in self._results(oid) if item.result_id == result_id), None)

    def _update(self, oid: str, record: StudioResult) -> None:
        name = self._result_key(oid, record.result_id)
        meta_text = json.dumps(_record_meta(record), allow_nan=False)

        def write(pipe: Any) -> None:
            if pipe.exists(name):  # never recreate an expired record (it would never expire)
                pipe.multi()
                pipe.hset(name, "meta", meta_text)

        self.connection.transaction(write, name)
        with self._cache_lock:
            if (oid, record.result_id) in self._cache:
                self._cache[(oid, record.result_id)] = (meta_text, record)


def _numbered(record: StudioResult, result_id: int, now: float) -> StudioResult:
    """The record itself, given its id (and its time if it had none): it is kept as it is,
    with the display copies it has made."""
    record.result_id = result_id
    record.created = record.created or now
    return record


def _run_of(fields: dict[bytes, bytes]) -> PendingRun | None:
    if not fields:
        return None
    blobs = {name.decode(): value for name, value in fields.items()}
    return decode_run(json.loads(blobs.pop("meta")), blobs)


def _notices(dropped: int, expired: int, cap: int, hours: float) -> list[str]:
    notices = []
    if dropped:
        notices.append(dropped_notice(dropped, cap))
    if expired:
        notices.append(expired_notice(expired, hours))
    return notices


def _keep_hours_or_env(hours: float | None) -> float:
    if hours is None:
        return keep_hours()
    if not hours > 0:
        raise ValueError(f"keep_hours must be positive, got {hours!r}.")
    return float(hours)


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


_store: ResultStore | None = None
_store_url: str | None = None
_store_lock = threading.Lock()


def get_store() -> ResultStore:
    """The process-wide store: memory without ``NST_QUEUE``, else Redis on the same URL.
    Created once (reading ``NST_KEEP_HOURS`` then); a changed ``NST_QUEUE`` makes a new one."""
    global _store, _store_url
    url = queue_url()
    with _store_lock:
        if _store is None or _store_url != url:
            if isinstance(_store, RedisStore):
                _store.close()
            _store = RedisStore(url) if url else MemoryStore()
            _store_url = url
        return _store
