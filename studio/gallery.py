"""The galleries: each session's results, oldest first, under one memory budget for the process.

Every session keeps at most ``GALLERY_CAP`` results. All sessions' galleries together keep at
most ``GALLERY_BYTES`` (``NST_GALLERY_MB`` overrides it), counted honestly: full-size image and
photo, the display and thumbnail copies, the loss history. Beyond that, the oldest results of
the whole process go first, whichever session made them, and that session is told so.

A session's gallery lives in its ``st.session_state["results"]``; the process keeps only weak
references to the galleries, so a closed session's results are freed with its state. Every
change to any gallery happens under one lock, since another session's thread may drop results.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import streamlit as st

from studio.session import DISPLAY_SIDE, THUMB_SIDE, StudioResult

GALLERY_CAP = 12  # results kept per session
# All galleries of the process together; the oldest results go first.
GALLERY_BYTES = int(float(os.environ.get("NST_GALLERY_MB", "1024")) * 2**20)

_lock = threading.Lock()
# id -> gallery, weakly: a closed session's gallery is freed with its state.
_galleries: weakref.WeakValueDictionary[int, SessionGallery] = weakref.WeakValueDictionary()
_sequence = 0  # orders results across sessions by when they were added


class SessionGallery(list):
    """One session's results, oldest first (a list, so it can be weakly referenced).

    ``dropped`` counts the results removed to keep within the caps, for the session's notice.
    Change it only through this module's functions (they hold the lock).
    """

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0
        self.added: dict[int, int] = {}  # id(record) -> sequence number when added


def _gallery() -> SessionGallery:
    items = st.session_state.get("results")
    if not isinstance(items, SessionGallery):
        gallery = SessionGallery()
        if items:
            gallery.extend(items)
        st.session_state["results"] = items = gallery
    with _lock:
        _galleries[id(items)] = items
    return items


def results() -> list[StudioResult]:
    """A snapshot of this session's results, oldest first."""
    gallery = _gallery()
    with _lock:
        return list(gallery)


def find_result(result_id: int | None) -> StudioResult | None:
    return next((item for item in results() if item.result_id == result_id), None)


def current_result() -> StudioResult | None:
    return find_result(st.session_state.get("current_id"))


def add_result(record: StudioResult) -> None:
    """Append to the gallery; drop this session's oldest beyond the count cap and the whole
    process's oldest beyond the byte budget (never the record just added)."""
    global _sequence
    st.session_state["current_id"] = record.result_id
    gallery = _gallery()
    # The display copies are made now, as the page is about to show them, so they are counted.
    record.fitted(DISPLAY_SIDE)
    record.fitted(THUMB_SIDE)
    with _lock:
        _sequence += 1
        gallery.append(record)
        gallery.added[id(record)] = _sequence
        while len(gallery) > GALLERY_CAP:
            _drop(gallery, gallery[0])
        _enforce_budget(keep=record)


def _drop(gallery: SessionGallery, record: StudioResult) -> None:
    gallery.remove(record)
    gallery.added.pop(id(record), None)
    gallery.dropped += 1


def _enforce_budget(keep: StudioResult) -> None:
    """Drop the oldest results of all sessions until their bytes fit GALLERY_BYTES."""
    galleries = list(_galleries.values())
    total = sum(item.nbytes for gallery in galleries for item in gallery)
    while total > GALLERY_BYTES:
        candidates = [
            (gallery.added.get(id(item), 0), index, gallery, item)
            for index, gallery in enumerate(galleries)
            for item in gallery
            if item is not keep
        ]
        if not candidates:
            return
        _, _, gallery, oldest = min(candidates, key=lambda entry: entry[:2])
        total -= oldest.nbytes
        _drop(gallery, oldest)


def gallery_bytes() -> int:
    """Bytes held by all galleries of the process."""
    with _lock:
        return sum(item.nbytes for gallery in list(_galleries.values()) for item in gallery)


def delete_result(result_id: int) -> None:
    """Callback: remove one result from the gallery."""
    gallery = _gallery()
    with _lock:
        for item in [item for item in gallery if item.result_id == result_id]:
            gallery.remove(item)
            gallery.added.pop(id(item), None)
    if st.session_state.get("current_id") == result_id:
        st.session_state["current_id"] = None


def dropped_notice() -> str | None:
    dropped = _gallery().dropped
    if not dropped:
        return None
    plural = "result was" if dropped == 1 else "results were"
    return (
        f"{dropped} older {plural} removed to save memory: the gallery keeps at most the "
        f"{GALLERY_CAP} newest, fewer when the studio is busy. Download the ones you want to "
        "keep."
    )


def next_result_id() -> int:
    number = st.session_state.get("next_id", 1)
    st.session_state["next_id"] = number + 1
    return number


def request_continue(result_id: int) -> None:
    """Callback of "Continue from this result": the page starts a warm-started run."""
    st.session_state["pending_run"] = {"continue_from": result_id}


def take_pending_run() -> dict[str, Any] | None:
    return st.session_state.pop("pending_run", None)
