"""The real app in Debian's Chromium, driven by Playwright: what the end-to-end tests share.

``serve`` starts ``streamlit run app.py`` (``nst.benchmarks.live.serve_app``) and remembers its
log for failure messages; the helpers below play a user's steps on the Stylize page.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

from nst.benchmarks.live import BROWSER_FLAGS, CHROMIUM, ROOT, serve_app

FLAGS = BROWSER_FLAGS
TIMEOUT_MS = 90_000
SERVER_LOGS: list[Path] = []  # every app server's output, for failure messages
# What the Stylize page shows once a run it submitted is under way (or already over).
RUN_SHOWN = [
    "Waiting for a free slot",
    "Your run is starting",
    "in the queue",
    "Preparing the network",
    "The instant picture",
    "Preview at step",
    "Step ",
    "Finished",
    "Stopped at step",
    "Painted by the instant network in",
]

__all__ = ["CHROMIUM", "FLAGS", "ROOT", "TIMEOUT_MS"]


@contextlib.contextmanager
def serve(log_path: Path, env: dict[str, str], port: int | None = None) -> Iterator[str]:
    """The app on a loopback port with ``env`` (untrained weights unless it says otherwise);
    after it stops, its log must hold no traceback."""
    SERVER_LOGS.append(log_path)
    with serve_app(log_path, env, port=port) as url:
        yield url
    log_text = log_path.read_text()
    assert "Traceback" not in log_text, log_text[-3000:]


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """Debian's Chromium, headless, for the module's pages."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


def sees_no_results(browser: object, *urls: str) -> None:
    """A new visitor (a fresh browser context) finds an empty gallery on every one of ``urls``."""
    stranger = new_page(browser)
    try:
        for url in urls:
            stranger.goto(f"{url}/gallery")
            stranger.get_by_text("No results yet").wait_for()
    finally:
        stranger.context.close()


def new_page(browser: object) -> object:
    """A page in a fresh browser context (its own cookies: another visitor)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1800}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def open_app(page: object, url: str, **settings: int) -> None:
    """The Stylize page with these settings in its link, ready for input."""
    query = "&".join(f"{name}={value}" for name, value in settings.items())
    page.goto(f"{url}/?{query}")
    page.get_by_text("1 · Your photo").wait_for()
    page.get_by_role("button", name="Stylize").wait_for()


def upload(page: object, label: str, path: Path) -> None:
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=label)
    uploader.locator('input[type="file"]').set_input_files(str(path))


def choose_pair(page: object, content_path: Path, style_path: Path) -> None:
    upload(page, "Upload a photo", content_path)
    page.get_by_text(f"{content_path.name} · 1024×768").wait_for()
    upload(page, "Upload one or more paintings", style_path)
    page.get_by_text(f"{style_path.name} · 1024×640").wait_for()


def images_loaded(page: object, caption_prefix: str) -> None:
    """Wait until every image whose caption starts with the prefix has really loaded."""
    page.wait_for_function(
        """prefix => {
            const boxes = [...document.querySelectorAll('[data-testid="stImage"]')]
                .filter(box => box.innerText.trim().startsWith(prefix));
            return boxes.length > 0 && boxes.every(box => {
                const img = box.querySelector('img');
                return img && img.complete && img.naturalWidth > 0;
            });
        }""",
        arg=caption_prefix,
    )


def press_stylize(
    page: object, tries: int = 3, *, name: str = "Stylize", shown: list[str] = RUN_SHOWN
) -> None:
    """Press Stylize (or the button called ``name``) until the page shows the run (one of
    ``shown``). A click that lands while Streamlit is still applying the upload's rerun can be
    dropped; pressing again is what a person would do, and is only done when nothing of a run
    shows after a long wait."""
    button = page.get_by_role("button", name=name, exact=True)
    for attempt in range(tries):
        button.click()
        try:
            first_text(page, shown, timeout_ms=30_000, fail=False)
            return
        except PlaywrightTimeoutError:
            if attempt == tries - 1:
                pytest.fail(f"Stylize showed no run after {tries} presses: {status_text(page)}")


def start_run(
    page: object, url: str, content_path: Path, style_path: Path, *, size: int, steps: int
) -> None:
    """Open the app with these settings, choose the test pair and press Stylize."""
    open_app(page, url, size=size, steps=steps)
    choose_pair(page, content_path, style_path)
    press_stylize(page)


# What the Video page shows once a clip it submitted is under way (or already over).
CLIP_SHOWN = [
    "Waiting for a free slot",
    "Your clip is starting",
    "in the queue",
    "Reading the clip",
    "finished (",
    "Finished ",
    "Stopped after",
]


def set_slider(page: object, label: str, value: int) -> None:
    """Move an integer slider whose minimum is 1 (or its smallest value, ``value`` 0) to
    ``value`` with the keyboard, as a person can."""
    slider = page.get_by_role("slider", name=label)
    slider.focus()
    slider.press("Home")
    for _ in range(max(0, value - 1)):
        slider.press("ArrowRight")
    page.get_by_role("slider", name=label).blur()


def start_clip(
    page: object, url: str, clip_path: Path, *, frames: int, first_steps: int, frame_steps: int
) -> None:
    """The Video page: the clip, the Mosaic sample, Painted at the smallest size, ``frames``
    frames with these steps; then Stylize clip, until the page shows the clip's run."""
    page.goto(f"{url}/video")
    page.get_by_role("button", name="Stylize clip").wait_for()
    upload(page, "Upload a clip", clip_path)
    page.get_by_text(" frames at ").first.wait_for()
    page.get_by_role("button", name="Mosaic", exact=True).click()
    page.get_by_text("Painted", exact=True).click()
    set_slider(page, "Output size (px)", 0)
    set_slider(page, "First-frame steps", first_steps)
    set_slider(page, "Steps per frame", frame_steps)
    max_frames = page.get_by_role("spinbutton", name="Max frames")
    max_frames.fill(str(frames))
    max_frames.press("Enter")
    press_stylize(page, name="Stylize clip", shown=CLIP_SHOWN)


def status_text(page: object) -> str:
    """The page's visible text, one line, and the end of the servers' logs, for a failure."""
    text = " | ".join(page.locator("body").inner_text().split("\n"))[-1500:]
    logs = "\n".join(
        f"server log {path.name}:\n{path.read_text()[-2000:]}"
        for path in SERVER_LOGS[-2:]
        if path.exists()
    )
    return f"{text}\n{logs}"


def first_text(
    page: object, texts: list[str], timeout_ms: int = TIMEOUT_MS, *, fail: bool = True
) -> str:
    """Wait until one of ``texts`` shows on the page and return the first that does; on a
    timeout, fail with what the page showed instead (or raise Playwright's timeout)."""
    try:
        # The text found is returned from the page in the same moment: the page may change
        # before a second look (a status line gives way to the result).
        found = page.wait_for_function(
            "texts => texts.find(text => document.body.innerText.includes(text)) || null",
            arg=texts,
            timeout=timeout_ms,
        )
    except PlaywrightTimeoutError:
        if not fail:
            raise
        pytest.fail(f"none of {texts} showed within {timeout_ms} ms: {status_text(page)}")
    return found.json_value()


def download(page: object, label: str) -> tuple[bytes, str]:
    with page.expect_download() as download_info:
        page.get_by_role("button", name=label).click()
    file = download_info.value
    return Path(file.path()).read_bytes(), file.suggested_filename


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size
