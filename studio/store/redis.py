"""The store in Redis: every web server with the same ``NST_QUEUE`` sees the same records.

Keys, per owner (``<o>`` is ``owner_id(key)``) and kind (``<t>`` is the shelf's tag: empty for
pictures, ``clip_`` for clips): ``nst:owner:<o>:<t>results`` (a sorted set of ids by created
time), ``nst:owner:<o>:<t>result:<id>`` (a hash: ``meta`` JSON and blobs; it expires
``keep_hours`` after the record was made), ``:<t>next_id``, ``:<t>run`` (a hash) and
``:notices`` (a list). The owner's keys expire twice the keep time after its last record, so a
person coming back is still told what expired. Pictures live within Redis's own ``maxmemory``;
clips also within ``NST_CLIPS_MB`` for everyone together (``nst:clips:all``, a sorted set of
``<o>:<id>`` by created time, and ``nst:clips:bytes``, their sizes): the oldest go first.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from nst.jobs import QueueUnavailableError
from studio.session import StudioResult
from studio.store.records import (
    CLAIM_SECONDS,
    GALLERY_CAP,
    RUN_SECONDS,
    SHELVES,
    Shelf,
    T,
    checked_owner,
    keep_hours_or_env,
    notices,
    numbered,
    same_job,
    shelf_for,
    shelf_of,
    whole_seconds,
)

# Redis classifies a vanished record as expired when its keep time was this close to ending;
# otherwise Redis evicted it (maxmemory), which is told as "removed to save memory".
_EXPIRY_SLACK = 2.0
_CLAIMED = b"claimed"  # a run hash's field: when a caller claimed it to settle it
_SAID = b"say:"  # a notices entry holding add_notice's sentence (others: "<tag>dropped", ...)
CLIPS_ALL = "nst:clips:all"
CLIPS_BYTES = "nst:clips:bytes"


class RedisStore:
    """Records in Redis, seen by every web server with the same ``NST_QUEUE``.

    Decoded records are cached in this process (at most ``cache_bytes``), since every page
    rerun lists the gallery.

    Args:
        url: the Redis URL (``NST_QUEUE``).
        cap: records of each kind kept per owner.
        keep_hours: how long a record is kept (default ``keep_hours()``).
        clock: the time source, injectable for tests (Redis's own expiry still applies).
        cache_bytes: decoded records kept in this process (default ``GALLERY_BYTES``).
        clip_budget: bytes for all owners' clips together (default ``clips_bytes()``).
    """

    def __init__(
        self,
        url: str,
        *,
        cap: int = GALLERY_CAP,
        keep_hours: float | None = None,
        clock: Callable[[], float] = time.time,
        cache_bytes: int | None = None,
        clip_budget: int | None = None,
    ) -> None:
        from nst.config import clips_bytes
        from nst.jobs.redis import connect
        from studio.store import GALLERY_BYTES

        self.url = url
        self.cap = cap
        self.keep_hours = keep_hours_or_env(keep_hours)
        self.keep_seconds = self.keep_hours * 3600
        self.clock = clock
        self.cache_bytes = GALLERY_BYTES if cache_bytes is None else cache_bytes
        self.clip_budget = clips_bytes() if clip_budget is None else clip_budget
        self.connection = connect(url)
        self._cache: OrderedDict[tuple[str, str, int], tuple[str, Any]] = OrderedDict()
        self._cache_lock = threading.Lock()

    # ----- the interface -----

    def add(self, owner: str, record: Any) -> Any:
        oid, shelf = checked_owner(owner), shelf_for(record)
        return self._call(lambda: self._add(oid, shelf, record))

    def results(self, owner: str, kind: str = "picture") -> list[Any]:
        oid, shelf = checked_owner(owner), shelf_of(kind)
        return self._call(lambda: self._results(oid, shelf))

    def get(self, owner: str, result_id: int, kind: str = "picture") -> Any | None:
        wanted = int(result_id)
        return next((kept for kept in self.results(owner, kind) if kept.result_id == wanted), None)

    def update(self, owner: str, record: StudioResult) -> None:
        """Write the picture's metadata (its adjustments) back, if it is still kept."""
        oid = checked_owner(owner)
        self._call(lambda: self._update(oid, record))

    def delete(self, owner: str, result_id: int, kind: str = "picture") -> None:
        oid, shelf = checked_owner(owner), shelf_of(kind)
        pipe = self.connection.pipeline()
        self._remove(pipe, oid, shelf, [int(result_id)])
        self._call(pipe.execute)
        self._uncache(oid, shelf, int(result_id))

    def take_notices(self, owner: str) -> list[str]:
        oid = checked_owner(owner)

        def take() -> list[str]:
            for shelf in SHELVES.values():
                self._results(oid, shelf)  # notes the records that have gone since
            pipe = self.connection.pipeline()
            pipe.lrange(self._key(oid, "notices"), 0, -1)
            pipe.delete(self._key(oid, "notices"))
            entries, _ = pipe.execute()
            said: list[str] = []
            for shelf in SHELVES.values():
                counts = [entries.count(f"{shelf.tag}{what}".encode()) for what in _GONE]
                said += notices(*counts, cap=self.cap, hours=self.keep_hours, noun=shelf.noun)
            return said + [
                entry[len(_SAID) :].decode() for entry in entries if entry.startswith(_SAID)
            ]

        return self._call(take)

    def add_notice(self, owner: str, text: str) -> None:
        """Keep a sentence for the owner's next ``take_notices`` (a run that ended unseen)."""
        oid = checked_owner(owner)
        pipe = self.connection.pipeline()
        self._tell(pipe, oid, [_SAID + text.encode()])
        self._call(pipe.execute)

    def set_run(self, owner: str, run: Any) -> Any | None:
        oid, shelf = checked_owner(owner), shelf_for(run)
        meta, blobs = shelf.encode_run(run)
        name = self._key(oid, f"{shelf.tag}run")
        pipe = self.connection.pipeline()  # MULTI: the old one is read and replaced at once
        pipe.hgetall(name)
        pipe.delete(name)
        pipe.hset(name, mapping={"meta": json.dumps(meta, allow_nan=False), **blobs})
        pipe.expire(name, whole_seconds(max(self.keep_seconds, RUN_SECONDS)))
        replaced, *_ = self._call(pipe.execute)
        return _run_of(shelf, replaced)

    def run(self, owner: str, kind: str = "picture") -> Any | None:
        oid, shelf = checked_owner(owner), shelf_of(kind)
        fields = self._call(lambda: self.connection.hgetall(self._key(oid, f"{shelf.tag}run")))
        return _run_of(shelf, fields)

    def note_instant(self, owner: str, job_id: str, png: bytes) -> None:
        oid = checked_owner(owner)
        name = self._key(oid, "run")

        def note(pipe: Any) -> None:
            if same_job(_run_of(SHELVES["picture"], pipe.hgetall(name)), job_id):
                pipe.multi()
                pipe.hset(name, "instant", png)

        self._call(lambda: self.connection.transaction(note, name))

    def claim_run(
        self, owner: str, job_id: str, kind: str = "picture", *, lease: float = CLAIM_SECONDS
    ) -> Any | None:
        """The owner's run if it is still ``job_id`` and nobody claimed it within ``lease``
        seconds (WATCH: one caller of all servers wins); it stays the owner's run until
        ``take_run``."""
        oid, shelf = checked_owner(owner), shelf_of(kind)
        name = self._key(oid, f"{shelf.tag}run")
        now = self.clock()

        def claim(pipe: Any) -> Any | None:
            fields = pipe.hgetall(name)
            run = _run_of(shelf, fields)
            if not same_job(run, job_id):
                return None
            claimed = fields.get(_CLAIMED)
            if claimed is not None and now < float(claimed) + lease:
                return None
            pipe.multi()
            pipe.hset(name, _CLAIMED, repr(now))
            return run

        return self._call(
            lambda: self.connection.transaction(claim, name, value_from_callable=True)
        )

    def take_run(self, owner: str, job_id: str, kind: str = "picture") -> Any | None:
        """Remove and return the owner's run if it is still ``job_id``: WATCH makes a second
        caller (another tab, another server) see it gone."""
        oid, shelf = checked_owner(owner), shelf_of(kind)
        name = self._key(oid, f"{shelf.tag}run")

        def take(pipe: Any) -> Any | None:
            run = _run_of(shelf, pipe.hgetall(name))
            if not same_job(run, job_id):
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

    def _index(self, oid: str, shelf: Shelf) -> str:
        return self._key(oid, f"{shelf.tag}results")

    def _record_key(self, oid: str, shelf: Shelf, result_id: int) -> str:
        return self._key(oid, f"{shelf.tag}result:{result_id}")

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
        return whole_seconds(2 * self.keep_seconds)

    def _tell(self, pipe: Any, oid: str, entries: list[bytes | str]) -> None:
        """Queue ``entries`` on the owner's notices (in ``pipe``)."""
        notices_key = self._key(oid, "notices")
        pipe.rpush(notices_key, *entries)
        pipe.expire(notices_key, self._owner_seconds())

    def _remove(self, pipe: Any, oid: str, shelf: Shelf, numbers: list[int]) -> None:
        """Queue the removal of records from the owner's index, their hashes and, for clips,
        the shared budget's lists."""
        pipe.zrem(self._index(oid, shelf), *map(str, numbers))
        pipe.delete(*(self._record_key(oid, shelf, number) for number in numbers))
        if shelf.kind == "clip":
            members = [f"{oid}:{number}" for number in numbers]
            pipe.zrem(CLIPS_ALL, *members)
            pipe.hdel(CLIPS_BYTES, *members)

    def _add(self, oid: str, shelf: Shelf, record: Any) -> Any:
        self._results(oid, shelf)  # expired and evicted ones are counted before the cap is
        now = self.clock()
        created = record.created or now
        _, blobs = shelf.encode(record)
        size = sum(len(data) for data in blobs.values())
        index, counter = self._index(oid, shelf), self._key(oid, f"{shelf.tag}next_id")
        lifetime = max(1, round((created + self.keep_seconds - now) * 1000))
        dropped: list[tuple[str, int]] = []
        watched = [index, counter] + ([CLIPS_ALL] if shelf.kind == "clip" else [])

        def store(pipe: Any) -> tuple[int, str]:
            others = sorted(
                (score, int(member)) for member, score in pipe.zrange(index, 0, -1, withscores=True)
            )
            # Past the kept ids too: under maxmemory Redis may have evicted the counter.
            result_id = max([int(pipe.get(counter) or 0), *(number for _, number in others)]) + 1
            meta_text = json.dumps(
                shelf.meta(numbered(record, result_id, created)), allow_nan=False
            )
            name = self._record_key(oid, shelf, result_id)
            excess = len(others) + 1 - self.cap
            dropped[:] = [(oid, number) for _, number in others[: max(0, excess)]]
            stale: list[str] = []
            if shelf.kind == "clip":
                dropped.extend(self._over_budget(pipe, size, set(dropped), stale))
            pipe.multi()
            if stale:  # expired clips: their owners are told by their own indexes
                pipe.zrem(CLIPS_ALL, *stale)
                pipe.hdel(CLIPS_BYTES, *stale)
            pipe.set(counter, result_id)
            pipe.delete(name)  # an orphan left by an evicted index must not mix in
            pipe.hset(name, mapping={"meta": meta_text, **blobs})
            pipe.pexpire(name, lifetime)
            pipe.zadd(index, {str(result_id): created})
            if shelf.kind == "clip":
                pipe.zadd(CLIPS_ALL, {f"{oid}:{result_id}": created})
                pipe.hset(CLIPS_BYTES, f"{oid}:{result_id}", size)
            for owner in {owner for owner, _ in dropped}:
                numbers = [number for who, number in dropped if who == owner]
                self._remove(pipe, owner, shelf, numbers)
                self._tell(pipe, owner, [f"{shelf.tag}dropped"] * len(numbers))
            for part in (f"{shelf.tag}results", f"{shelf.tag}next_id", "notices"):
                pipe.expire(self._key(oid, part), self._owner_seconds())
            return result_id, meta_text

        result_id, meta_text = self.connection.transaction(
            store, *watched, value_from_callable=True
        )
        kept = numbered(record, result_id, created)
        for owner, number in dropped:
            self._uncache(owner, shelf, number)
        self._cache_put(oid, shelf, kept, meta_text)
        return kept

    def _over_budget(
        self, pipe: Any, size: int, dropping: set[tuple[str, int]], stale: list[str]
    ) -> list[tuple[str, int]]:
        """The oldest clips of all owners to drop so that ``size`` more bytes fit the clip
        budget (read under WATCH); clips that expired meanwhile go to ``stale``."""
        members = [member.decode() for member in pipe.zrange(CLIPS_ALL, 0, -1)]
        if not members:
            return []
        sizes = pipe.hmget(CLIPS_BYTES, members)
        clips = SHELVES["clip"]
        live: list[tuple[str, int, int]] = []
        for member, stored in zip(members, sizes):
            owner, _, number = member.partition(":")
            if pipe.exists(self._record_key(owner, clips, int(number))):
                live.append((owner, int(number), int(stored or 0)))
            else:
                stale.append(member)
        total = size + sum(
            nbytes for owner, number, nbytes in live if (owner, number) not in dropping
        )
        over = []
        for owner, number, nbytes in live:  # oldest first
            if total <= self.clip_budget:
                break
            if (owner, number) not in dropping:
                over.append((owner, number))
                total -= nbytes
        return over

    def _results(self, oid: str, shelf: Shelf) -> list[Any]:
        index = self._index(oid, shelf)
        order = sorted(
            (score, int(member))
            for member, score in self.connection.zrange(index, 0, -1, withscores=True)
        )
        if not order:
            return []
        pipe = self.connection.pipeline(transaction=False)
        for _, number in order:
            pipe.hget(self._record_key(oid, shelf, number), "meta")
        metas = pipe.execute()
        now = self.clock()
        kept: list[Any] = []
        gone: list[tuple[int, str]] = []
        for (created, number), meta in zip(order, metas):
            if meta is not None and created + self.keep_seconds > now:
                record = self._cached(oid, shelf, number, meta.decode())
                if record is not None:
                    kept.append(record)
                    continue
            if meta is None and created + self.keep_seconds > now + _EXPIRY_SLACK:
                gone.append((number, "dropped"))  # Redis evicted it under maxmemory
            elif meta is None or created + self.keep_seconds <= now:
                gone.append((number, "expired"))
        if gone:
            self._forget(oid, shelf, gone)
        return kept

    def _forget(self, oid: str, shelf: Shelf, gone: list[tuple[int, str]]) -> None:
        """Drop vanished or outlived records; only the caller whose ZREM removed one tells."""
        index = self._index(oid, shelf)
        pipe = self.connection.pipeline(transaction=False)
        for number, _ in gone:
            pipe.zrem(index, str(number))
        replies = pipe.execute()
        told = [f"{shelf.tag}{kind}" for (_, kind), removed in zip(gone, replies) if removed]
        pipe = self.connection.pipeline()
        self._remove(pipe, oid, shelf, [number for number, _ in gone])
        if told:
            self._tell(pipe, oid, told)
        pipe.execute()
        for number, _ in gone:
            self._uncache(oid, shelf, number)

    def _cached(self, oid: str, shelf: Shelf, number: int, meta_text: str) -> Any | None:
        """The decoded record for this metadata: from the cache, else read from Redis."""
        with self._cache_lock:
            entry = self._cache.get((oid, shelf.kind, number))
            if entry is not None:
                self._cache.move_to_end((oid, shelf.kind, number))
        if entry is not None and entry[0] == meta_text:
            return entry[1]
        meta = json.loads(meta_text)
        if (
            isinstance(entry, tuple)
            and shelf.kind == "picture"
            and entry[1].created == meta["created"]
        ):
            # The same picture with new adjustments (written by another server).
            record = dataclasses.replace(
                entry[1], adjustments={k: float(v) for k, v in meta["adjustments"].items()}
            )
        else:
            stored = self.connection.hgetall(self._record_key(oid, shelf, number))
            if not stored:
                return None
            blobs = {name.decode(): value for name, value in stored.items()}
            meta_text = blobs.pop("meta").decode()
            record = shelf.decode(json.loads(meta_text), blobs)
        self._cache_put(oid, shelf, record, meta_text)
        return record

    def _cache_put(self, oid: str, shelf: Shelf, record: Any, meta_text: str) -> None:
        with self._cache_lock:
            entry = (oid, shelf.kind, record.result_id)
            self._cache[entry] = (meta_text, record)
            self._cache.move_to_end(entry)
            total = sum(item.nbytes for _, item in self._cache.values())
            while total > self.cache_bytes and len(self._cache) > 1:
                _, (_, oldest) = self._cache.popitem(last=False)
                total -= oldest.nbytes

    def _uncache(self, oid: str, shelf: Shelf, number: int) -> None:
        with self._cache_lock:
            self._cache.pop((oid, shelf.kind, number), None)

    def _update(self, oid: str, record: StudioResult) -> None:
        shelf = SHELVES["picture"]
        name = self._record_key(oid, shelf, record.result_id)
        meta_text = json.dumps(shelf.meta(record), allow_nan=False)

        def write(pipe: Any) -> None:
            if pipe.exists(name):  # never recreate an expired record (it would never expire)
                pipe.multi()
                pipe.hset(name, "meta", meta_text)

        self.connection.transaction(write, name)
        with self._cache_lock:
            if (oid, shelf.kind, record.result_id) in self._cache:
                self._cache[(oid, shelf.kind, record.result_id)] = (meta_text, record)


_GONE = ("dropped", "expired")


def _run_of(shelf: Shelf, fields: dict[bytes, bytes]) -> Any | None:
    if not fields:
        return None
    blobs = {name.decode(): value for name, value in fields.items() if name != _CLAIMED}
    return shelf.decode_run(json.loads(blobs.pop("meta")), blobs)
