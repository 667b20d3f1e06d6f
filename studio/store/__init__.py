"""Where a person's pictures, clips and running jobs live: in this process, or in Redis.

A browser holds a private owner key (``new_owner_key()``); the stores index everything by its
SHA-256 (``owner_id``), never by the key itself, so another browser, or someone who has only a
settings link, finds nothing. Both stores follow one protocol (``ResultStore``), and each kind
of record is a shelf of it (``records.SHELVES``: pictures and clips, each with its running
job), so a new kind is one more shelf, not another store. ``get_store()`` picks the store from
``NST_QUEUE``:

- unset: ``MemoryStore`` (``studio.store.memory``), one per process, under the budgets
  ``NST_GALLERY_MB`` (pictures) and ``NST_CLIPS_MB`` (clips) for all owners together;
- a Redis URL: ``RedisStore`` (``studio.store.redis``) on the same Redis as the job queue, so
  every web server sharing ``NST_QUEUE`` sees the same records (pictures within Redis's own
  ``maxmemory``, clips also within ``NST_CLIPS_MB``).

Either way an owner keeps at most ``GALLERY_CAP`` records of each kind, each for
``NST_KEEP_HOURS`` hours after it was made, and is told in one sentence when some were removed.
The codecs and records are in ``studio.store.records``. No Streamlit here: the pages call it.
"""

from __future__ import annotations

import math
import os
import threading

from nst.config import KEEP_HOURS_BOUNDS, keep_hours, keep_seconds
from nst.config import KEEP_HOURS_DEFAULT as DEFAULT_KEEP_HOURS
from nst.jobs import queue_url

__all__ = [
    "CLAIM_SECONDS",
    "CLIPS",
    "DEFAULT_KEEP_HOURS",
    "GALLERY_BYTES",
    "GALLERY_CAP",
    "KEEP_ENV",
    "KEEP_HOURS_BOUNDS",
    "PICTURES",
    "RUN_SECONDS",
    "ClipRecord",
    "ClipRun",
    "MemoryStore",
    "PendingRun",
    "RedisStore",
    "ResultStore",
    "decode_clip",
    "decode_record",
    "decode_run",
    "dropped_notice",
    "encode_clip",
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

KEEP_ENV = "NST_KEEP_HOURS"  # read by nst.config.keep_hours


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


# All owners' pictures in one process together (MemoryStore); the oldest go first.
GALLERY_BYTES = gallery_bytes_from_env()

from studio.store.memory import MemoryStore  # noqa: E402 (they read GALLERY_BYTES)
from studio.store.records import (  # noqa: E402
    CLAIM_SECONDS,
    CLIPS,
    GALLERY_CAP,
    PICTURES,
    RUN_SECONDS,
    ClipRecord,
    ClipRun,
    PendingRun,
    ResultStore,
    decode_clip,
    decode_record,
    decode_run,
    dropped_notice,
    encode_clip,
    encode_record,
    encode_run,
    expired_notice,
    new_owner_key,
    owner_id,
    valid_owner_key,
)
from studio.store.redis import RedisStore  # noqa: E402

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
