"""Whose work this is: the browser's private key, kept in a cookie.

The key is made on the server (``studio.store.new_owner_key``: 32 random bytes) on a browser's
first visit and set as a first-party cookie by a one-line script; every later session of that
browser (a reload, a new tab, a visit tomorrow) reads it back from the request
(``st.context.cookies``) and finds its runs and results with it. It is never in the page link
(the shareable settings), and the server keeps only its digest (``studio.store``).
"""

from __future__ import annotations

import streamlit as st

from studio.store import keep_seconds, new_owner_key, valid_owner_key

COOKIE = "nst_key"


def browser_key() -> str:
    """This browser's key: from its cookie, or a new one (set as the cookie on this page)."""
    cookie = _cookie()
    key = st.session_state.get("owner_key")
    if key is None:
        key = cookie if cookie and valid_owner_key(cookie) else new_owner_key()
        st.session_state["owner_key"] = key
    if cookie != key:
        _set_cookie(key)
    return key


def _cookie() -> str | None:
    """The key cookie this session's browser sent, if any (none outside a browser)."""
    value = st.context.cookies.get(COOKIE)
    return value if isinstance(value, str) else None


def _set_cookie(key: str) -> None:
    """Ask the browser to keep ``key`` for as long as its results are kept. Streamlit can read
    cookies but not set them, so a script does (``key`` is ours: URL-safe base64 only)."""
    url = st.context.url
    secure = "; Secure" if isinstance(url, str) and url.startswith("https:") else ""
    st.html(
        f"<script>document.cookie = '{COOKIE}={key}; Max-Age={int(keep_seconds())}; "
        f"Path=/; SameSite=Strict{secure}';</script>",
        unsafe_allow_javascript=True,
    )
