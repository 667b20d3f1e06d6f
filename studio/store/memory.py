"""The store in this process's memory: every owner's pictures, clips and running jobs.

One lock guards it all; everything is lost when the process ends. Each kind of record has its
own budget for all owners together (pictures ``NST_GALLERY_MB``, clips ``NST_CLIPS_MB``): the
oldest record of the whole process goes first, never the one just added, and its owner is told.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.session import DISPLAY_SIDE, THUMB_SIDE, StudioResult
from studio.store.records import (
    CLAIM_SECONDS,
    GALLERY_CAP,
    RUN_SECONDS,
    SHELVES,
    Shelf,
    checked_owner,
    keep_hours_or_env,
    notices,
    numbered,
    same_job,
    shelf_for,
    shelf_of,
)


@dataclass
class _Kept:
    record: Any
    sequence: int  # when it was added, across all owners: the budget drops the lowest first


@dataclass
class _Shelved:
    """One owner's records of one kind."""

    kept: list[_Kept] = dataclasses.field(default_factory=list)  # oldest first
    next_id: int = 1
    dropped: int = 0
    expired: int = 0
    run: Any = None
    claimed: float | None = None  # when a caller claimed the run to settle it


@dataclass
class _Owner:
    shelves: dict[str, _Shelved] = dataclasses.field(
        default_factory=lambda: {kind: _Shelved() for kind in SHELVES}
    )
    said: list[str] = dataclasses.field(default_factory=list)  # add_notice's sentences
    touched: float = 0.0


class MemoryStore:
    """Records in this process's memory: thread-safe (one lock), lost when the process ends.

    Args:
        cap: records of each kind kept per owner.
        budget: bytes for all owners' pictures together, counted with ``StudioResult.nbytes``
            (default ``GALLERY_BYTES``).
        clip_budget: bytes for all owners' clips together (default ``clips_bytes()``).
        keep_hours: how long a record is kept after it was made (default ``keep_hours()``).
        clock: the time source (``time.time``), injectable for tests.
    """

    def __init__(
        self,
        *,
        cap: int = GALLERY_CAP,
        budget: int | None = None,
        clip_budget: int | None = None,
        keep_hours: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from nst.config import clips_bytes
        from studio.store import GALLERY_BYTES

        self.cap = cap
        self.budget = GALLERY_BYTES if budget is None else budget
        self.clip_budget = clips_bytes() if clip_budget is None else clip_budget
        self.keep_hours = keep_hours_or_env(keep_hours)
        self.keep_seconds = self.keep_hours * 3600
        self.clock = clock
        self._lock = threading.Lock()
        self._owners: dict[str, _Owner] = {}
        self._sequence = 0

    def add(self, owner: str, record: Any) -> Any:
        """Keep ``record`` under a new id; drop this owner's oldest of its kind beyond the cap
        and the whole process's oldest beyond the kind's budget (never this one). Returns the
        kept record."""
        oid, shelf = checked_owner(owner), shelf_for(record)
        now = self.clock()
        if isinstance(record, StudioResult):
            # The display copies are made as soon as a page shows it: count them now.
            record.fitted(DISPLAY_SIDE)
            record.fitted(THUMB_SIDE)
        with self._lock:
            self._expire_all(now)
            state = self._state(oid, now).shelves[shelf.kind]
            kept = numbered(record, state.next_id, now)
            state.next_id += 1
            self._sequence += 1
            state.kept.append(_Kept(kept, self._sequence))
            while len(state.kept) > self.cap:
                state.kept.pop(0)
                state.dropped += 1
            self._enforce_budget(shelf, kept)
        return kept

    def results(self, owner: str, kind: str = "picture") -> list[Any]:
        oid, shelf = checked_owner(owner), shelf_of(kind)
        with self._lock:
            state = self._owners.get(oid)
            if state is None:
                return []
            shelved = state.shelves[shelf.kind]
            self._expire(shelved, self.clock())
            return [item.record for item in shelved.kept]

    def get(self, owner: str, result_id: int, kind: str = "picture") -> Any | None:
        found = (item for item in self.results(owner, kind) if item.result_id == result_id)
        return next(found, None)

    def update(self, owner: str, record: StudioResult) -> None:
        """Nothing to write: the pages change the kept record itself."""
        checked_owner(owner)

    def delete(self, owner: str, result_id: int, kind: str = "picture") -> None:
        oid, shelf = checked_owner(owner), shelf_of(kind)
        with self._lock:
            state = self._owners.get(oid)
            if state is not None:
                shelved = state.shelves[shelf.kind]
                shelved.kept = [item for item in shelved.kept if item.record.result_id != result_id]

    def take_notices(self, owner: str) -> list[str]:
        oid = checked_owner(owner)
        said: list[str] = []
        with self._lock:
            state = self._owners.get(oid)
            if state is None:
                return []
            now = self.clock()
            for kind, shelved in state.shelves.items():
                self._expire(shelved, now)
                counts = shelved.dropped, shelved.expired
                shelved.dropped = shelved.expired = 0
                said += notices(
                    *counts, cap=self.cap, hours=self.keep_hours, noun=SHELVES[kind].noun
                )
            said += state.said
            state.said = []
        return said

    def add_notice(self, owner: str, text: str) -> None:
        """Keep a sentence for the owner's next ``take_notices`` (a run that ended unseen)."""
        oid = checked_owner(owner)
        with self._lock:
            self._state(oid, self.clock()).said.append(text)

    def set_run(self, owner: str, run: Any) -> Any | None:
        oid, shelf = checked_owner(owner), shelf_for(run)
        with self._lock:
            shelved = self._state(oid, self.clock()).shelves[shelf.kind]
            replaced = self._live_run(shelved)
            shelved.run, shelved.claimed = run, None
            return replaced

    def run(self, owner: str, kind: str = "picture") -> Any | None:
        oid, shelf = checked_owner(owner), shelf_of(kind)
        with self._lock:
            state = self._owners.get(oid)
            return None if state is None else self._live_run(state.shelves[shelf.kind])

    def note_instant(self, owner: str, job_id: str, png: bytes) -> None:
        oid = checked_owner(owner)
        with self._lock:
            state = self._owners.get(oid)
            shelved = None if state is None else state.shelves["picture"]
            if shelved is not None and same_job(shelved.run, job_id):
                shelved.run = dataclasses.replace(shelved.run, instant_png=png)

    def claim_run(
        self, owner: str, job_id: str, kind: str = "picture", *, lease: float = CLAIM_SECONDS
    ) -> Any | None:
        """The owner's run if it is still ``job_id`` and nobody claimed it within ``lease``
        seconds; it stays the owner's run until ``take_run``."""
        oid, shelf = checked_owner(owner), shelf_of(kind)
        now = self.clock()
        with self._lock:
            state = self._owners.get(oid)
            shelved = None if state is None else state.shelves[shelf.kind]
            if shelved is None or not same_job(self._live_run(shelved), job_id):
                return None
            if shelved.claimed is not None and now < shelved.claimed + lease:
                return None
            shelved.claimed = now
            return shelved.run

    def take_run(self, owner: str, job_id: str, kind: str = "picture") -> Any | None:
        oid, shelf = checked_owner(owner), shelf_of(kind)
        with self._lock:
            state = self._owners.get(oid)
            shelved = None if state is None else state.shelves[shelf.kind]
            if shelved is None or not same_job(self._live_run(shelved), job_id):
                return None
            run, shelved.run, shelved.claimed = shelved.run, None, None
            return run

    def held_bytes(self, kind: str = "picture") -> int:
        """Bytes held by all owners' records of ``kind``."""
        with self._lock:
            return sum(item.record.nbytes for item in self._all(shelf_of(kind)))

    # ----- internals (under the lock) -----

    def _state(self, oid: str, now: float) -> _Owner:
        state = self._owners.setdefault(oid, _Owner())
        state.touched = now
        return state

    def _all(self, shelf: Shelf) -> list[_Kept]:
        return [item for state in self._owners.values() for item in state.shelves[shelf.kind].kept]

    def _expire(self, shelved: _Shelved, now: float) -> None:
        fresh = [item for item in shelved.kept if item.record.created + self.keep_seconds > now]
        shelved.expired += len(shelved.kept) - len(fresh)
        shelved.kept = fresh

    def _live_run(self, shelved: _Shelved) -> Any | None:
        run = shelved.run
        if run is not None and run.started + max(self.keep_seconds, RUN_SECONDS) <= self.clock():
            shelved.run = run = None
        return run

    def _expire_all(self, now: float) -> None:
        """Expire every owner's old records, and forget owners with nothing kept, as Redis
        forgets an owner's keys, twice the keep time after their last change."""
        for oid, state in list(self._owners.items()):
            idle = True
            for shelved in state.shelves.values():
                self._expire(shelved, now)
                idle = idle and not (shelved.kept or self._live_run(shelved))
            if idle and state.touched + 2 * self.keep_seconds <= now:
                del self._owners[oid]

    def _enforce_budget(self, shelf: Shelf, keep: Any) -> None:
        budget = self.clip_budget if shelf.kind == "clip" else self.budget
        entries = sorted(
            (
                (item.sequence, state.shelves[shelf.kind], item)
                for state in self._owners.values()
                for item in state.shelves[shelf.kind].kept
            ),
            key=lambda entry: entry[0],
        )
        total = sum(item.record.nbytes for _, _, item in entries)
        for _, shelved, item in entries:
            if total <= budget:
                return
            if item.record is keep:
                continue
            total -= item.record.nbytes
            shelved.kept = [other for other in shelved.kept if other is not item]
            shelved.dropped += 1
