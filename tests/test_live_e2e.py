"""End to end: the Live page in Debian's Chromium with a fake camera playing the project's
synthetic clip (``nst.benchmarks.live`` makes it and drives the page, as the benchmark does).

The stylized stream comes back at the camera's size and differs from the camera's frames, and
Snapshot puts a painted frame into the gallery. No timing thresholds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from nst.benchmarks.live import (
    CHROMIUM,
    camera_frame,
    distinct_frames,
    launch_browser,
    open_live_page,
    record_stream,
    serve_app,
    start_stream,
    stop_stream,
    write_fake_camera,
)
from tests.system import requires

pytestmark = [pytest.mark.browser, requires(str(CHROMIUM), "chromium")]
WIDTH, HEIGHT = 320, 240


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    with serve_app(log_path, {"NST_MAX_JOBS": "1"}) as url:
        yield url
    log_text = log_path.read_text()
    assert "Traceback" not in log_text, log_text[-3000:]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    camera = write_fake_camera(tmp_path_factory.mktemp("camera") / "clip.y4m", WIDTH, HEIGHT)
    with sync_playwright() as playwright:
        chromium = launch_browser(playwright, camera)
        yield chromium
        chromium.close()


def test_the_camera_comes_back_stylized_and_a_snapshot_goes_to_the_gallery(
    app_url: str, browser: object
) -> None:
    page = open_live_page(browser, app_url)
    try:
        frame = start_stream(page)
        status = page.get_by_text(re.compile(r"frames a second")).first
        assert f"shown at {WIDTH}×{HEIGHT}" in status.inner_text()
        record = record_stream(frame, seconds=4.0)
        assert record["size"] == (WIDTH, HEIGHT) == record["camera_size"]
        stylized = distinct_frames(record["out"])
        camera = np.stack([image for _, image in record["cam"]]).astype(np.float32)
        # Painted, not passed through: unlike every frame the camera sent in that time (the
        # stream starts with camera frames until the first painted one is ready).
        painted = [
            stamp
            for stamp, image in stylized
            if np.abs(camera - image).mean(axis=(1, 2)).min() > 8.0
        ]
        assert len(painted) >= 2  # a stream, not one picture

        page.get_by_role("button", name="Snapshot", exact=True).click()
        page.get_by_text("Snapshot #1 (512×384) is in the gallery.").wait_for()
        stop_stream(page, camera_frame(page))
        page.get_by_role("link", name="Gallery").click()
        page.get_by_text(re.compile(r"#1 · Camera snapshot × swirls")).first.wait_for()
    finally:
        page.context.close()
