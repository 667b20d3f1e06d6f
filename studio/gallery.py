"""The session's gallery: its results, oldest first, capped by count and by memory."""

from __future__ import annotations

from typing import Any

import streamlit as st

from studio.records import StudioResult

GALLERY_CAP = 12  # results kept per session
GALLERY_BYTES = 400 * 2**20  # and at most this much pixel data; the oldest go first


def results() -> list[StudioResult]:
    return st.session_state.setdefault("results", [])


def find_result(result_id: int | None) -> StudioResult | None:
    return next((item for item in results() if item.result_id == result_id), None)


def current_result() -> StudioResult | None:
    return find_result(st.session_state.get("current_id"))


def add_result(record: StudioResult) -> None:
    """Append to the gallery, dropping the oldest beyond the count or memory cap."""
    st.session_state["current_id"] = record.result_id
    items = results()
    items.append(record)
    dropped = 0
    while len(items) > 1 and (
        len(items) > GALLERY_CAP or sum(item.nbytes for item in items) > GALLERY_BYTES
    ):
        items.pop(0)
        dropped += 1
    if dropped:
        st.session_state["dropped"] = st.session_state.get("dropped", 0) + dropped


def delete_result(result_id: int) -> None:
    """Callback: remove one result from the gallery."""
    st.session_state["results"] = [item for item in results() if item.result_id != result_id]
    if st.session_state.get("current_id") == result_id:
        st.session_state["current_id"] = None


def dropped_notice() -> str | None:
    dropped = st.session_state.get("dropped", 0)
    if not dropped:
        return None
    plural = "result was" if dropped == 1 else "results were"
    return (
        f"{dropped} older {plural} removed to save memory: the gallery keeps the "
        f"{GALLERY_CAP} newest. Download the ones you want to keep."
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
