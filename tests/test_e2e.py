"""End to end: the real app in Debian's Chromium, driven by Playwright (never its own browser).

Starts ``streamlit run app.py`` on a free port with untrained weights, then plays the user's
story: upload a photo and a painting, press Stylize, watch the preview, download the PNG; stop
a run, adjust, continue, leave the page mid-run; and two visitors sharing the one-job queue, one
of whom closes the tab; the instant picture, downloaded while the painting goes on, and the
Instant method. Set ``NST_SCREENSHOT=docs/screenshot.png`` to save the Stylize page with an
instant result (the real network: its weights come with the wheel).
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from nst.images import read_settings
from tests.browser import (
    CHROMIUM,
    ROOT,
    TIMEOUT_MS,
    choose_pair,
    chromium,
    download,
    first_text,
    images_loaded,
    new_page,
    open_app,
    press_stylize,
    sees_no_results,
    serve,
    start_clip,
    start_run,
    status_text,
)
from tests.system import requires
from tests.video_cases import make_clip

pytestmark = [pytest.mark.browser, requires(str(CHROMIUM), "chromium")]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    with serve(log_path, {"NST_MAX_JOBS": "1", "NST_GRACE_SECONDS": "5"}) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    page = new_page(browser)
    yield page
    page.context.close()


def _save_full_page(page: object, path: Path) -> None:
    """Screenshot the whole page: Streamlit scrolls inside a container, so grow the viewport."""
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": 1280, "height": min(int(height) + 20, 4000)})
    page.mouse.move(0, 0)
    time.sleep(1.0)  # let the layout settle after the resize
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1280, "height": 1800})


def test_stylize_watch_preview_and_download(
    page: object, app_url: str, content_path: Path, style_path: Path
) -> None:
    start_run(page, app_url, content_path, style_path, size=128, steps=60)
    page.get_by_text("Preview at step").wait_for()
    images_loaded(page, "Preview at step")
    page.get_by_text("Step ").first.wait_for()  # the progress bar's text
    page.get_by_text("Finished 60 steps").wait_for()
    expect(page.get_by_text("Demo mode: NST_WEIGHTS=random")).to_be_visible()
    images_loaded(page, "After: 128×96")
    images_loaded(page, "Before: your photo")

    png, name = download(page, "Download PNG")
    assert name.endswith(".png")
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size == (128, 96)
    settings = read_settings(png)
    assert settings["size"] == 128 and settings["steps"] == 60
    jpeg, name = download(page, "Download JPEG")
    with Image.open(io.BytesIO(jpeg)) as image:
        assert name.endswith(".jpg") and image.format == "JPEG" and image.size == (128, 96)

    page.get_by_role("link", name="Gallery").click()
    page.get_by_text(f"#1 · {content_path.name} × {style_path.name}").wait_for()


def test_the_instant_picture_downloads_while_the_painting_goes_on(
    page: object, app_url: str, content_path: Path, style_path: Path
) -> None:
    start_run(page, app_url, content_path, style_path, size=256, steps=500)
    page.get_by_text("The instant picture; the optimizer now paints it in detail").wait_for()
    images_loaded(page, "The instant picture")
    png, name = download(page, "Download the instant picture")
    assert name == "instant.png"
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size == (256, 192)
    settings = read_settings(png)
    assert settings["method"] == "instant" and settings["size"] == 256
    # The download did not stop the painting: it is still going, and Stop keeps both pictures.
    body = page.locator("body").inner_text()
    assert "Finished" not in body and "Stopped" not in body, status_text(page)
    # The step count goes on rising (the run may be well past its first steps by now).
    step = page.get_by_text(re.compile(r"Step \d+ of 500")).first
    step.wait_for()
    seen = int(re.search(r"Step (\d+) of 500", step.inner_text()).group(1))
    page.wait_for_function(
        "seen => { const m = document.body.innerText.match(/Step (\\d+) of 500/);"
        " return m !== null && Number(m[1]) > seen; }",
        arg=seen,
    )
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped at step").wait_for()
    page.get_by_text("The instant picture this run started from").wait_for()


def test_the_instant_method_paints_in_one_pass(
    page: object, app_url: str, content_path: Path, style_path: Path
) -> None:
    open_app(page, app_url, size=512)
    choose_pair(page, content_path, style_path)
    page.get_by_text("Instant", exact=True).click()
    press_stylize(page)
    page.get_by_text("Painted by the instant network in").wait_for()
    images_loaded(page, "After: 512×384")
    png, _ = download(page, "Download PNG")
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (512, 384)
    assert read_settings(png)["method"] == "instant"
    screenshot = os.environ.get("NST_SCREENSHOT")
    if screenshot:
        _save_full_page(page, ROOT / screenshot)


# The app above runs with a 5 s grace period: a closed tab's run goes on that long, then stops
# (keeping its picture) and frees its slot.
FREED_WITHIN_MS = 40_000


def test_stop_adjust_continue_and_leave_mid_run(
    browser: object, page: object, app_url: str, content_path: Path, style_path: Path
) -> None:
    start_run(page, app_url, content_path, style_path, size=128, steps=5000)
    page.get_by_text("Preview at step").wait_for()
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped at step").wait_for()
    images_loaded(page, "After: 128×96")

    after = page.locator('[data-testid="stImage"]').filter(has_text="After: 128×96").locator("img")
    source = after.get_attribute("src")
    saturation = page.get_by_role("slider", name="Saturation")
    saturation.focus()
    saturation.press("Home")  # saturation 0: a gray picture, instantly, without a new run
    expect(saturation).to_have_attribute("aria-valuetext", "0.00")
    expect(after).not_to_have_attribute("src", source)
    png, _ = download(page, "Download PNG")
    assert read_settings(png)["saturation"] == 0.0
    with Image.open(io.BytesIO(png)) as image:
        pixels = image.convert("RGB").getextrema()
        assert pixels[0] == pixels[1] == pixels[2]  # gray: all channels span the same range

    page.get_by_role("button", name="Continue from this result").click()
    page.get_by_text("Preview at step").wait_for()
    page.get_by_role("link", name="Gallery").click()  # the run goes on meanwhile
    page.get_by_text("Painting: step").wait_for()
    page.get_by_role("link", name="Stylize").first.click()
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped at step").wait_for()
    page.get_by_role("link", name="Gallery").click()
    page.get_by_text("continued from #1").wait_for()
    assert page.get_by_text("Stopped early").count() == 2

    other = new_page(browser)  # the slot is free at once: nothing is left running
    try:
        start_run(other, app_url, content_path, style_path, size=64, steps=20)
        shown = first_text(other, ["in the queue", "Finished 20 steps"])
        assert shown == "Finished 20 steps", f"the new run waited in line: {status_text(other)}"
    finally:
        other.context.close()


def test_queue_position_and_a_closed_tab_frees_the_slot(
    browser: object, app_url: str, content_path: Path, style_path: Path
) -> None:
    first = new_page(browser)
    second = new_page(browser)
    try:
        start_run(first, app_url, content_path, style_path, size=128, steps=5000)
        first.get_by_text("Preview at step").wait_for()

        start_run(second, app_url, content_path, style_path, size=64, steps=20)
        second.get_by_text("your run is number 1 in the queue").wait_for()

        first.context.close()  # the tab goes away mid-run: its job must end, not linger
        shown = first_text(second, ["Finished 20 steps"], timeout_ms=FREED_WITHIN_MS)
        assert shown == "Finished 20 steps"
    finally:
        for page in (first, second):
            page.context.close()


def _settled_box(locator: object) -> dict[str, float]:
    """The element's box on the page once it is in view and has stopped moving (an expander
    opening, pictures above it loading)."""
    locator.scroll_into_view_if_needed()
    previous = None
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        box = locator.bounding_box()
        if box is not None and box == previous:
            return box
        previous = box
        time.sleep(0.3)
        locator.scroll_into_view_if_needed()
    pytest.fail(f"the element kept moving on the page: {status_text(locator.page)}")


def _click_until(target: object, shown: Callable[[], None], tries: int = 3) -> None:
    """Click ``target`` until ``shown()`` passes (it raises while the effect is not there)."""
    for attempt in range(tries):
        target.click()
        try:
            shown()
            return
        except (AssertionError, PlaywrightTimeoutError):
            if attempt == tries - 1:
                raise


def test_a_mask_painted_with_the_mouse_keeps_the_photo_where_unpainted(
    page: object, app_url: str, content_path: Path, style_path: Path
) -> None:
    open_app(page, app_url, size=512)
    choose_pair(page, content_path, style_path)
    steps = page.get_by_role("slider", name="Steps")
    # A click that lands during a rerun can be lost: click until its effect shows.
    _click_until(page.get_by_text("Instant", exact=True), lambda: expect(steps).to_be_disabled())
    page.get_by_text("Colour, blending and mask").click()
    canvas = page.locator("canvas.upper-canvas")
    _click_until(page.get_by_text("Paint", exact=True), lambda: canvas.wait_for(timeout=15_000))
    box = _settled_box(canvas)
    assert round(box["width"]) == 512 and round(box["height"]) == 384
    # One zigzag stroke of the default brush (40 px) over the left half, x up to 256.
    page.mouse.move(box["x"] + 20, box["y"])
    page.mouse.down()
    for index, x in enumerate(range(20, 237, 24)):
        top, bottom = (0, 384) if index % 2 == 0 else (384, 0)
        page.mouse.move(box["x"] + x, box["y"] + top, steps=2)
        page.mouse.move(box["x"] + x, box["y"] + bottom, steps=12)
    page.mouse.up()
    page.get_by_text("Mask: white takes the (first) style").wait_for()
    press_stylize(page)
    page.get_by_text("Painted by the instant network in").wait_for()
    images_loaded(page, "After: 512×384")
    png, _ = download(page, "Download PNG")
    settings = read_settings(png)
    assert settings["mask"] == "painted" and settings["method"] == "instant"
    with Image.open(io.BytesIO(png)) as image:
        result = np.asarray(image.convert("RGB"), np.float32) / 255
    with Image.open(content_path) as photo:
        original = (
            np.asarray(
                photo.convert("RGB").resize((512, 384), Image.Resampling.LANCZOS), np.float32
            )
            / 255
        )
    difference = np.abs(result - original).mean(axis=2)
    painted, unpainted = difference[:, :200].mean(), difference[:, 320:].mean()
    assert painted > 0.04, f"the painted half barely changed ({painted:.3f})"
    assert unpainted < 0.01, f"the unpainted half changed ({unpainted:.3f})"


def test_a_run_survives_a_slider_a_page_change_and_a_reload_and_stays_private(
    browser: object, page: object, app_url: str, content_path: Path, style_path: Path
) -> None:
    # Enough steps that the run is still going when the Gallery shows it.
    start_run(page, app_url, content_path, style_path, size=96, steps=120)
    page.get_by_text("Preview at step").wait_for()
    # (a) a slider: the run goes on, and the page says the change is for the next run
    saturation_free = page.get_by_role("slider", name="Smoothness")
    saturation_free.focus()
    saturation_free.press("ArrowRight")
    page.get_by_text("The settings you changed apply to your next run.").wait_for()
    # (b) another page and back
    page.get_by_role("link", name="Gallery").click()
    page.get_by_text("Painting: step").wait_for()
    page.get_by_role("link", name="Stylize").first.click()
    page.get_by_text("Preview at step").wait_for()
    # (c) a reload: the same browser finds its run by its cookie, still going or just done
    page.reload()
    first_text(page, ["Preview at step", "Finished 120 steps"], timeout_ms=180_000)
    first_text(page, ["Finished 120 steps"], timeout_ms=180_000)
    sees_no_results(browser, app_url)  # another browser sees none of it
    page.get_by_role("link", name="Gallery").click()
    page.get_by_text(f"#1 · {content_path.name} × {style_path.name}").wait_for()


def test_a_closed_tab_finds_its_run_in_the_same_browser(
    browser: object, app_url: str, content_path: Path, style_path: Path
) -> None:
    first = new_page(browser)
    context = first.context
    try:
        start_run(first, app_url, content_path, style_path, size=128, steps=5000)
        first.get_by_text("Preview at step").wait_for()
        first.close()  # the tab goes; the grace period (5 s here) then stops the run
        time.sleep(8)
        again = context.new_page()
        again.set_default_timeout(TIMEOUT_MS)
        again.goto(f"{app_url}/gallery")
        again.get_by_text(f"#1 · {content_path.name} × {style_path.name}").wait_for()
        again.get_by_text("Stopped early").first.wait_for()
    finally:
        context.close()


def test_a_painted_clip_survives_a_reload_and_stays_in_the_browser(
    browser: object, page: object, app_url: str, tmp_path: Path
) -> None:
    import av

    clip_path = tmp_path / "walk.mp4"
    clip_path.write_bytes(make_clip(fps=12))
    start_clip(page, app_url, clip_path, frames=3, first_steps=20, frame_steps=10)
    # A reload mid-run: the browser's clip is found in the store and followed to its end,
    # with no second press.
    page.reload()
    first_text(page, ["Reading the clip", "of 3 ·", "Waiting for a free slot", "Finished 3 frames"])
    first_text(page, ["Finished 3 frames"], timeout_ms=240_000)
    mp4, name = download(page, "Download MP4")
    assert name == "walk-stylized.mp4"
    with av.open(io.BytesIO(mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3
    # A new tab of the same browser finds the finished clip, on the Video page and in the
    # gallery; another browser finds nothing.
    again = page.context.new_page()
    again.set_default_timeout(TIMEOUT_MS)
    again.goto(f"{app_url}/video")
    again.get_by_text("Finished 3 frames").wait_for()
    again.get_by_role("link", name="Gallery").click()
    again.get_by_text("Clip #1 · walk.mp4").wait_for()
    again.get_by_text(re.compile(r"^3 of 3 frames · .* · finished · Painted, 64 px")).wait_for()
    sees_no_results(browser, app_url)
