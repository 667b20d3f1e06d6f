"""Every page from a link: the first visit of a freshly started server goes straight to a page.

Streamlit runs a ``pages/`` folder's files on their own until ``st.navigation`` has run once in
the process (``studio.routing``); here each of three fresh servers gets its first visit at
another page's URL, and must show the app's navigation and run ``app.py``'s set-up (the
demo-weights banner, which only ``app.py`` shows).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import CHROMIUM, chromium, new_page, serve
from tests.system import requires

pytestmark = [pytest.mark.browser, requires(str(CHROMIUM), "chromium")]

NAVIGATION = ["Stylize", "Gallery", "Video", "Live", "How it works"]


@pytest.mark.parametrize(
    ("path", "title"),
    [("video?size=64&method=instant", "Video"), ("gallery", "Gallery"), ("live", "Live")],
)
def test_a_first_visit_straight_to_a_page_runs_the_app(
    tmp_path: Path, path: str, title: str
) -> None:
    with serve(tmp_path / "server.log", {}) as url, chromium() as browser:
        page = new_page(browser)
        page.goto(f"{url}/{path}")
        page.get_by_role("heading", name=title, exact=True).wait_for()
        page.get_by_text("Demo mode: NST_WEIGHTS=random").wait_for()
        navigation = page.get_by_test_id("stSidebarNav")
        navigation.get_by_role("link", name="How it works").wait_for()
        links = navigation.get_by_role("link").all_inner_texts()
        assert [text.split("\n")[-1] for text in links] == NAVIGATION  # after each icon's name
        assert page.url == f"{url}/{path}"
        page.context.close()
