"""The person's gallery: their results, kept on the server under their browser's key.

The results live in the process-wide store (``studio.store``: this process's memory, or Redis
with ``NST_QUEUE``, so that any web server shows them), for ``NST_KEEP_HOURS``, at most
``GALLERY_CAP`` per person and, in memory, ``NST_GALLERY_MB`` for everyone together; the oldest
go first and their owner is told. What a tab is looking at (``current_id``) stays in its
session; a new session starts on the newest result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from studio.owner import browser_key
from studio.session import DISPLAY_SIDE, THUMB_SIDE, StudioResult, format_seconds
from studio.store import GALLERY_CAP, ResultStore, get_store, keep_seconds

__all__ = ["GALLERY_CAP", "LOST_RESULT"]

LOST_RESULT = (
    "The result you were looking at is no longer kept: results expire after a while, and the "
    "oldest make room for new ones. Download the ones you want to keep."
)


def keep_text() -> str:
    """How long results are kept, as a person reads it ("24 hours")."""
    seconds = keep_seconds()
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:g} hours"
    return format_seconds(seconds)


def owner_store() -> ResultStore:
    """The store of every person's results and runs (one per process)."""
    return get_store()


def read_or(default: Any, read: Any) -> Any:
    """``read()``, or ``default`` while the store cannot be reached (the run that needs it
    says so in its own sentence)."""
    from nst.jobs import QueueUnavailableError

    try:
        return read()
    except QueueUnavailableError:
        return default


def results() -> list[StudioResult]:
    """This person's results, oldest first."""
    return read_or([], lambda: owner_store().results(browser_key()))


def find_result(result_id: int | None) -> StudioResult | None:
    if result_id is None:
        return None
    return read_or(None, lambda: owner_store().get(browser_key(), int(result_id)))


def current_result() -> StudioResult | None:
    """The result this tab shows on the Stylize page. A tab that has not looked at one yet
    (a new tab, a reload, the other web server behind a load balancer) opens on the
    browser's newest result, so that a run that finished meanwhile is where it was left."""
    if "current_id" not in st.session_state:
        newest = results()
        st.session_state["current_id"] = newest[-1].result_id if newest else None
    return find_result(st.session_state.get("current_id"))


def current_was_lost() -> bool:
    """True when this tab was showing a result that has expired or been removed since."""
    result_id = st.session_state.get("current_id")
    if result_id is None or find_result(result_id) is not None:
        return False
    st.session_state["current_id"] = None  # said once
    return True


def add_result(record: StudioResult, *, owner: str | None = None) -> StudioResult:
    """Keep ``record`` (its id is given here) and show it in this tab; returns it as kept.

    ``owner`` defaults to this browser. The display copies are made now, as the page is about
    to show them, so that the memory budget counts them.
    """
    record.fitted(DISPLAY_SIDE)
    record.fitted(THUMB_SIDE)
    kept = owner_store().add(owner or browser_key(), record)
    with contextlib.suppress(Exception):  # outside a script run: the next page run shows it
        st.session_state["current_id"] = kept.result_id
    return kept


def save_result(record: StudioResult) -> None:
    """Write back a result whose adjustments changed."""
    owner_store().update(browser_key(), record)


def delete_result(result_id: int) -> None:
    """Callback: remove one result from the gallery."""
    owner_store().delete(browser_key(), result_id)
    if st.session_state.get("current_id") == result_id:
        st.session_state["current_id"] = None


def dropped_notice() -> str | None:
    """This person's notices not yet shown (results removed for space or age, runs that ended
    without a picture), as one paragraph; each is said once."""
    return " ".join(read_or([], lambda: owner_store().take_notices(browser_key()))) or None


def request_continue(result_id: int) -> None:
    """Callback of "Continue from this result": the page starts a warm-started run."""
    st.session_state["pending_run"] = {"continue_from": result_id}


def take_pending_run() -> dict[str, Any] | None:
    return st.session_state.pop("pending_run", None)


def cards(records: Sequence[Any], card: Callable[[Any], None]) -> None:
    """``records`` (oldest first) as bordered cards, newest first, three to a row."""
    newest_first = list(reversed(records))
    for row_start in range(0, len(newest_first), 3):
        columns = st.columns(3, gap="medium")
        for column, record in zip(columns, newest_first[row_start : row_start + 3], strict=False):
            with column, st.container(border=True):
                card(record)
