"""End to end behind a load balancer: two web servers on one Redis (``NST_QUEUE``), one RQ worker.

A person's run and results live in Redis under their browser's key, not in one web process: a
run started on one server is followed, finished and downloaded on the other in the same browser
(no sticky sessions), a new tab opens on the finished result, and a web server that restarts
loses no finished result. Chromium is Debian's, the worker is ``python -m nst.worker`` with
untrained weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nst.images import read_settings
from tests.browser import (
    CHROMIUM,
    TIMEOUT_MS,
    chromium,
    download,
    first_text,
    images_loaded,
    new_page,
    png_size,
    sees_no_results,
    serve,
    start_clip,
    start_run,
)
from tests.queue_cluster import NEEDS_REDIS, running_cluster
from tests.system import requires
from tests.video_cases import make_clip

pytestmark = [pytest.mark.browser, requires(str(CHROMIUM), "chromium"), NEEDS_REDIS]
RUN_MS = 240_000  # the worker's first run builds its network; the machine may be shared


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_cluster(tmp_path_factory.mktemp("cluster"), 1) as (server, _):
        yield server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


def test_a_run_started_on_one_server_is_followed_and_downloaded_on_another(
    browser: object, redis_url: str, tmp_path: Path, content_path: Path, style_path: Path
) -> None:
    env = {"NST_QUEUE": redis_url}
    title = f"#1 · {content_path.name} × {style_path.name}"
    first = new_page(browser)
    context = first.context
    try:
        with (
            serve(tmp_path / "web-a.log", env) as url_a,
            serve(tmp_path / "web-b.log", env) as url_b,
        ):
            start_run(first, url_a, content_path, style_path, size=96, steps=40)
            first.get_by_text("Preview at step").wait_for(timeout=RUN_MS)
            # The same browser on the other server (a cookie is shared across ports): it
            # finds the run, still going (or, on a fast machine, just done), and follows it to
            # the end.
            second = context.new_page()
            second.set_default_timeout(TIMEOUT_MS)
            second.goto(url_b)
            first_text(second, ["Preview at step", "Finished 40 steps"], timeout_ms=RUN_MS)
            first.close()  # only the second server's page follows it now
            first_text(second, ["Finished 40 steps"], timeout_ms=RUN_MS)
            images_loaded(second, "After: 96×72")
            png, name = download(second, "Download PNG")
            assert name.endswith(".png") and png_size(png) == (96, 72)
            assert read_settings(png)["steps"] == 40
            second.get_by_role("link", name="Gallery").click()
            second.get_by_text(title).wait_for()
            sees_no_results(browser, url_a, url_b)  # another browser: nothing, on either
        # Both web servers went away; one comes back: the finished result is still there, and
        # a new tab of the same browser opens on it.
        with serve(tmp_path / "web-a-again.log", env) as url:
            again = context.new_page()
            again.set_default_timeout(TIMEOUT_MS)
            again.goto(url)
            again.get_by_text("Finished 40 steps").wait_for()
            images_loaded(again, "After: 96×72")
            again.goto(f"{url}/gallery")
            again.get_by_text(title).wait_for()
            again.get_by_text("40/40 steps").first.wait_for()
    finally:
        context.close()


def test_a_clip_started_on_one_server_is_followed_and_downloaded_on_another(
    browser: object, redis_url: str, tmp_path: Path
) -> None:
    import io

    import av

    env = {"NST_QUEUE": redis_url}
    clip_path = tmp_path / "walk.mp4"
    clip_path.write_bytes(make_clip(fps=12))
    first = new_page(browser)
    context = first.context
    try:
        with (
            serve(tmp_path / "web-a.log", env) as url_a,
            serve(tmp_path / "web-b.log", env) as url_b,
        ):
            # Enough steps that the clip is still being painted when the first tab closes.
            start_clip(first, url_a, clip_path, frames=3, first_steps=60, frame_steps=30)
            # The same browser on the other server finds the clip, still going (or, on a fast
            # machine, just done), and follows it to the end alone.
            second = context.new_page()
            second.set_default_timeout(TIMEOUT_MS)
            second.goto(f"{url_b}/video")
            going = ["Waiting for a free slot", "Reading the clip", "of 3 ·", "Finished 3 frames"]
            first_text(second, going, timeout_ms=RUN_MS)
            first.close()
            first_text(second, ["Finished 3 frames"], timeout_ms=RUN_MS)
            mp4, name = download(second, "Download MP4")
            assert name == "walk-stylized.mp4"
            with av.open(io.BytesIO(mp4)) as container:
                assert sum(1 for _ in container.decode(video=0)) == 3
            second.get_by_role("link", name="Gallery").click()
            second.get_by_text("Clip #1 · walk.mp4").wait_for()
            sees_no_results(browser, url_a, url_b)  # another browser: nothing, on either
    finally:
        context.close()
