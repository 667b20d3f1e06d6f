"""Every page from a link: a first visit straight to a page's URL goes through ``app.py``.

What Streamlit does underneath (1.67, ``streamlit/runtime/pages_manager.py`` and
``scriptrunner/script_runner.py``): ``PagesManager.uses_pages_directory`` is a class attribute,
one per process, set when the first browser session is made to whether a ``pages/`` folder
sits beside the entry script. While it is True, each script run does not exec ``app.py`` but
``_mpa_v1``: it lists ``pages/*.py`` (plus ``app.py`` itself) as Streamlit's file-named pages,
matches the URL's path to one of them and runs that file alone. Only ``st.navigation``, called
by a script, sets the attribute to False for good; from then on every run execs ``app.py``,
whose ``st.navigation`` maps the URL's path to one of its ``st.Page``s by ``url_path`` (the
file's stem) or, on a rerun, by the page's hash (the hash of that same ``url_path``). So a
fresh server whose first visit is ``/video`` runs ``pages/video.py`` without ``app.py``: no
navigation of ours, no Keras guard, no banner, no run collected. That lasts until somebody
opens ``/`` (streamlit/streamlit #9624, #8860).

The fix: every page calls ``through_app()`` first. In a run that Streamlit made from the
``pages/`` folder it switches the process to ``st.navigation``'s mode for good and runs
``app.py`` in its place, within the same script run (as Streamlit's own file-based mode does
for ``/``): ``app.py``'s ``st.navigation`` resolves the page by its hash, the hash of the same
``url_path``, so the same page runs, through ``app.py``, with the link's query string and any
click of this run; then the folder's run of the page stops. Under ``app.py`` the attribute is
already False and the call does nothing. (``AppTest`` resets the attribute before every run,
so there every rerun after the first comes through here.)
"""

from __future__ import annotations

import runpy

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx


def through_app() -> None:
    """Run ``app.py`` in this page's place if Streamlit ran the page from the ``pages/``
    folder; then stop the folder's run of it."""
    ctx = get_script_run_ctx()
    if not PagesManager.uses_pages_directory or ctx is None:
        return
    PagesManager.uses_pages_directory = False
    runpy.run_path(str(ctx.pages_manager.main_script_path), run_name="__main__")
    st.stop()
