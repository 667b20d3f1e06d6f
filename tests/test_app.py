"""The Streamlit pages, driven headless with ``streamlit.testing.v1.AppTest``.

Runs are tiny (64 px, a few steps) with untrained weights (``NST_WEIGHTS=random``, set in
conftest), so the whole module takes well under a minute.

Note: because a ``pages/`` folder exists, AppTest re-runs the last page's file directly after
the first run (its emulation of Streamlit's older pages/ feature), so what ``app.py`` itself
draws (the demo banner) is only checked on the first run; the browser test covers the rest.
"""

from __future__ import annotations

import dataclasses
import io
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from nst.config import StyleConfig
from nst.images import read_settings
from nst.knobs import specs_of
from studio.gallery import GALLERY_CAP
from studio.session import StudioResult
from studio.widgets import APP_MANAGED
from tests.upload_cases import CASES

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180


def _jpeg(width: int = 96, height: int = 72, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _open(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    return at


def _upload(at: AppTest, content: bytes | None, styles: list[tuple[str, bytes]]) -> None:
    if content is not None:
        at.file_uploader(key="content_upload").set_value(("photo.jpg", content, "image/jpeg"))
    if styles:
        at.file_uploader(key="style_upload").set_value(
            [(name, data, "image/jpeg") for name, data in styles]
        )
    at.run()
    assert not at.exception, at.exception


def _stylize(at: AppTest, *, size: int = 64, steps: int = 3) -> None:
    """Press Stylize and rerun the page until the run is settled into the results (the live
    view follows the job in a fragment, which AppTest does not rerun by itself)."""
    at.slider(key="size").set_value(size)
    at.slider(key="steps").set_value(steps)
    at.button(key="stylize").click()
    at.run()
    assert not at.exception, at.exception
    _settle(at)


def _owner(at: AppTest) -> str:
    return at.session_state["owner_key"]


def _running(at: AppTest) -> bool:
    from nst.jobs import QueueUnavailableError
    from studio.gallery import owner_store

    try:
        return owner_store().run(_owner(at)) is not None
    except QueueUnavailableError:  # the store is down: no run can be followed
        return False


def _settle(at: AppTest, timeout: float = TIMEOUT) -> None:
    """Rerun the page until this browser's run has ended and been kept."""
    deadline = time.monotonic() + timeout
    while _running(at):
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.2)
        at.run()
        assert not at.exception, at.exception


def _wait_for_a_picture(at: AppTest, timeout: float = TIMEOUT) -> None:
    """Rerun the page until this browser's running run has a picture (its instant one)."""
    from nst.jobs import get_backend
    from studio.gallery import owner_store

    deadline = time.monotonic() + timeout
    while True:
        run = owner_store().run(_owner(at))
        assert run is not None, "the run ended"
        if get_backend().status(run.job_id, owner=_owner(at)).preview is not None:
            return
        assert time.monotonic() < deadline, "the run made no picture"
        time.sleep(0.2)
        at.run()
        assert not at.exception, at.exception


def _results(at: AppTest) -> list[StudioResult]:
    """This browser's results, oldest first, as the store keeps them."""
    from studio.gallery import owner_store

    if "owner_key" not in at.session_state:
        return []
    return owner_store().results(_owner(at))


def _texts(elements) -> list[str]:
    return [element.value for element in elements]


def _captions(at: AppTest) -> list[str]:
    return [image.proto.imgs[0].caption for image in at.image if image.proto.imgs]


DOWNLOADS = ["Download PNG", "Download JPEG"]
# A painted result also offers the instant picture it started from.
PAINTED_DOWNLOADS = [*DOWNLOADS, "Download the instant picture"]


def _download_labels(at: AppTest) -> list[str]:
    return [button.label for button in at.get("download_button")]


@pytest.fixture
def finished_run(content_path: Path, style_path: Path) -> AppTest:
    """The Stylize page after one short run on the classic test pair."""
    at = _open()
    _upload(
        at,
        content_path.read_bytes(),
        [("starry_night.jpg", style_path.read_bytes())],
    )
    _stylize(at)
    return at


def test_stylize_page_shows_controls_from_the_config() -> None:
    at = _open()
    widgets = [
        *at.radio,
        *at.slider,
        *at.select_slider,
        *at.selectbox,
        *at.text_input,
        *at.number_input,
    ]
    keys = {widget.key for widget in widgets}
    user_facing = {
        spec.name
        for spec in specs_of(StyleConfig)
        if spec.group != "adjust" and spec.name not in APP_MANAGED
    }
    assert user_facing <= keys
    assert at.select_slider(key="style_weight").label == "Style intensity"
    assert at.select_slider[0].key == "style_weight"  # style intensity comes first
    method = at.radio(key="method")
    assert method.value == "optimize" and method.options == ["Painted", "Instant"]
    assert any("NST_WEIGHTS=random" in text for text in _texts(at.warning))
    assert at.pills(key="style_samples").options  # the sample styles
    assert [expander.label for expander in at.expander] == [
        "Colour, blending and mask",
        "Advanced",
    ]


def test_a_run_gives_a_result_downloads_and_a_gallery_entry(finished_run: AppTest) -> None:
    at = finished_run
    assert any(text.startswith("Finished 3 steps") for text in _texts(at.success))
    assert _download_labels(at) == PAINTED_DOWNLOADS
    captions = _captions(at)
    assert any(caption.startswith("After: 64×") for caption in captions)
    assert any(caption.startswith("Before") for caption in captions)
    (record,) = _results(at)
    assert record.image.shape == (48, 64, 3) and record.image.dtype == np.uint8
    assert record.steps_done == 3 and not record.stopped
    assert record.instant.shape == record.image.shape and record.instant.dtype == np.uint8
    assert not np.array_equal(record.instant, record.image)
    instant_settings = read_settings(record.instant_png_bytes())
    assert instant_settings["method"] == "instant" and instant_settings["steps_done"] == 0

    png = record.png_bytes()
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (64, 48)
    settings = read_settings(png)
    assert StyleConfig.from_dict(settings) == record.config
    assert settings["steps_done"] == 3
    with Image.open(io.BytesIO(record.jpeg_bytes())) as image:
        assert image.format == "JPEG" and image.size == (64, 48)

    at.switch_page("pages/gallery.py").run()
    assert not at.exception, at.exception
    assert "**#1** · photo.jpg × starry_night.jpg" in _texts(at.markdown)
    assert _download_labels(at) == DOWNLOADS


def test_the_instant_method_shows_the_networks_picture_at_once(
    content_path: Path, style_path: Path
) -> None:
    from nst.images import load_image, resize_longest, to_uint8
    from nst.instant import stylize_instant
    from nst.jobs import JobRequest

    at = _open()
    _upload(at, content_path.read_bytes(), [("starry_night.jpg", style_path.read_bytes())])
    at.radio(key="method").set_value("instant").run()
    # What the network does not use is greyed out, not lost.
    assert at.slider(key="steps").disabled and at.select_slider(key="content_weight").disabled
    assert not at.slider(key="size").disabled and not at.select_slider(key="style_weight").disabled
    at.slider(key="size").set_value(256)
    at.button(key="stylize").click()
    at.run()
    assert not at.exception, at.exception
    assert any(text.startswith("Painted by the instant network in") for text in _texts(at.success))
    assert _download_labels(at) == DOWNLOADS
    (record,) = _results(at)
    assert record.config.method == "instant" and record.steps_done == 0
    assert record.image.shape == (192, 256, 3) and record.instant is None
    # The network's own picture of the upload, at the output size, from the job's copies of
    # the inputs (the photo at the output size, the painting shrunk to what the run uses).
    request = JobRequest(
        content=resize_longest(load_image(content_path), 256),
        styles=(load_image(style_path),),
        config=record.config,
    )
    expected = stylize_instant(request.content, list(request.styles), record.config)
    np.testing.assert_array_equal(record.image, to_uint8(expected))
    assert read_settings(record.png_bytes())["method"] == "instant"
    # The gallery says how it was made.
    at.switch_page("pages/gallery.py").run()
    assert not at.exception, at.exception
    assert any("instant" in text for text in _texts(at.caption))


def test_adjustments_are_instant_and_embedded_in_the_png(finished_run: AppTest) -> None:
    at = finished_run
    (record,) = _results(at)
    before = record.final_image()
    at.slider(key=f"adj_{record.result_id}_saturation").set_value(0.0).run()
    assert not at.exception, at.exception
    assert len(_results(at)) == 1  # no new run
    gray = record.final_image()
    assert np.abs(gray - before).max() > 0.01
    assert np.ptp(gray, axis=2).max() < 0.02  # saturation 0 is gray
    settings = read_settings(record.png_bytes())
    assert settings["saturation"] == 0.0
    at.button(key=f"reset_adjust_{record.result_id}").click().run()
    assert record.adjustments == {}


def test_continue_from_a_result_warm_starts_a_new_run(finished_run: AppTest) -> None:
    at = finished_run
    at.button(key="continue_1").click().run()
    assert not at.exception, at.exception
    _settle(at)
    first, second = _results(at)
    assert second.continued_from == first.result_id
    assert at.session_state["current_id"] == second.result_id
    at.switch_page("pages/gallery.py").run()
    assert any("continued from #1" in text for text in _texts(at.caption))


def test_results_survive_switching_pages(finished_run: AppTest) -> None:
    at = finished_run
    at.switch_page("pages/how_it_works.py").run()
    assert not at.exception, at.exception
    at.switch_page("pages/stylize.py").run()
    assert not at.exception, at.exception
    assert len(_results(at)) == 1
    assert _download_labels(at) == PAINTED_DOWNLOADS
    # the photo and painting are remembered too, so the next run needs no new upload
    at.button(key="stylize").click().run()
    assert not at.exception, at.exception
    _settle(at)
    assert len(_results(at)) == 2


def test_a_new_tab_of_the_same_browser_opens_on_its_newest_result(finished_run: AppTest) -> None:
    # A reload, a new tab or the other web server: a new session with the browser's key.
    (record,) = _results(finished_run)
    again = AppTest.from_file(APP, default_timeout=TIMEOUT)
    again.session_state["owner_key"] = _owner(finished_run)
    again.run()
    assert not again.exception, again.exception
    assert again.session_state["current_id"] == record.result_id
    assert _download_labels(again) == PAINTED_DOWNLOADS
    assert any(text == "Result" for text in _texts(again.subheader))
    # Another browser's first visit shows the blank form.
    stranger = _open()
    assert stranger.session_state["current_id"] is None
    assert _download_labels(stranger) == []


def test_an_unreadable_upload_is_one_sentence_and_results_stay(finished_run: AppTest) -> None:
    at = finished_run
    at.file_uploader(key="content_upload").set_value(
        ("notes.jpg", b"this is not a picture", "image/jpeg")
    )
    at.run()
    assert not at.exception, at.exception
    (message,) = _texts(at.error)
    assert message.startswith("notes.jpg: This file is not an image we can read")
    assert "\n" not in message and message.endswith(".")
    assert len(_results(at)) == 1
    assert _download_labels(at) == PAINTED_DOWNLOADS
    at.button(key="stylize").click().run()
    assert "Add a photo first" in " ".join(_texts(at.error))
    assert len(_results(at)) == 1


def test_missing_inputs_and_bad_settings_are_reported() -> None:
    at = _open()
    at.button(key="stylize").click().run()
    assert _texts(at.error) == ["Add a photo first: upload one or take a picture with the camera."]

    _upload(at, _jpeg(), [])
    at.button(key="stylize").click().run()
    assert _texts(at.error) == [
        "Choose a style first: upload a painting or pick one of the sample styles."
    ]

    at.pills(key="style_samples").set_value([at.pills(key="style_samples").options[0]])
    at.text_input(key="style_blend").set_value("1, 2, 3")
    at.button(key="stylize").click().run()
    (message,) = _texts(at.error)
    assert message.startswith("Style blend: give one weight per style (1 chosen, 3 given)")
    at.text_input(key="style_layer_weights").set_value("-1")
    at.text_input(key="style_blend").set_value("")
    at.button(key="stylize").click().run()
    (message,) = _texts(at.error)
    assert message.startswith("Style layer weights: ")
    assert not _results(at)


def test_camera_and_sample_style(tmp_path: Path) -> None:
    at = _open()
    at.segmented_control(key="content_source").set_value("Camera").run()
    at.camera_input(key="content_camera").set_value(("shot.jpg", _jpeg(80, 60), "image/jpeg"))
    at.pills(key="style_samples").set_value(["mosaic"])
    at.run()
    captions = _captions(at)
    assert "shot.jpg · 80×60" in captions
    assert any(caption.startswith("mosaic") for caption in captions)
    _stylize(at, steps=2)
    (record,) = _results(at)
    assert record.content_name == "shot.jpg" and record.style_names == ("mosaic",)


def test_gallery_compare_delete_and_cap() -> None:
    at = _open()
    _upload(at, _jpeg(), [("a.jpg", _jpeg(seed=1))])
    _stylize(at, steps=1)
    at.select_slider(key="style_weight").set_value(100.0)
    at.button(key="stylize").click().run()
    _settle(at)
    at.switch_page("pages/gallery.py").run()
    assert not at.exception, at.exception
    compare = at.multiselect(key="gallery_compare")
    compare.set_value(compare.options[:2]).run()
    assert not at.exception, at.exception
    assert "**Where they differ**" in _texts(at.markdown)
    at.button(key="delete_1").click().run()
    assert [item.result_id for item in _results(at)] == [2]


def _tiny_result(result_id: int, *, steps_done: int = 1, stopped: bool = False) -> StudioResult:
    """An 8×8 gallery record, as a run hands it over (id 0: not kept yet)."""
    return StudioResult(
        result_id=result_id,
        image=np.zeros((8, 8, 3), np.uint8),
        content=np.zeros((8, 8, 3), np.uint8),
        config=StyleConfig(),
        content_name="photo.jpg",
        content_key="k",
        style_names=("mosaic",),
        created=0.0,
        seconds=1.0,
        steps_done=steps_done,
        stopped=stopped,
    )


# The AppTest scripts below run as their own source, so they import what they use and get
# their records (StudioResult objects) as arguments, hence the loose annotations.


def _fill_gallery(records: list) -> None:
    """An AppTest script: add more results than the gallery keeps, then show the notice."""
    import streamlit as st

    from studio import gallery

    if "filled" not in st.session_state:
        st.session_state["filled"] = True
        for record in records:
            gallery.add_result(record)
    st.write(gallery.dropped_notice())


def test_the_gallery_is_capped_oldest_first_with_a_notice() -> None:
    records = [_tiny_result(number + 1) for number in range(GALLERY_CAP + 3)]
    at = AppTest.from_function(
        _fill_gallery, default_timeout=TIMEOUT, kwargs={"records": records}
    ).run()
    assert not at.exception, at.exception
    kept = [item.result_id for item in _results(at)]
    assert kept == list(range(4, GALLERY_CAP + 4))
    assert "3 older results were removed" in at.markdown[0].value


def _add_results(records: list) -> None:
    """An AppTest script: add these results on the first run, then show the notice."""
    import streamlit as st

    from studio import gallery

    if "added" not in st.session_state:
        st.session_state["added"] = True
        for record in records:
            gallery.add_result(record)
    st.write(gallery.dropped_notice() or "nothing dropped")


def _sized_result(result_id: int, side: int, history_rows: int = 0) -> StudioResult:
    record = _tiny_result(result_id)
    record.image = np.zeros((side, side, 3), np.uint8)
    record.content = np.zeros((side, side, 3), np.uint8)
    record.history = [{"step": float(step), "total": 1.0} for step in range(history_rows)]
    return record


def test_result_bytes_count_display_copies_and_history() -> None:
    from studio.session import DISPLAY_SIDE, THUMB_SIDE, history_bytes

    record = _sized_result(1, 2000, history_rows=500)
    full = 2 * 2000 * 2000 * 3
    assert record.nbytes == full + history_bytes(record.history)
    assert history_bytes(record.history) > 500 * 2 * 8  # dicts and floats, not just numbers
    record.fitted(DISPLAY_SIDE)
    record.fitted(THUMB_SIDE)
    copies = 2 * 3 * (DISPLAY_SIDE * DISPLAY_SIDE + THUMB_SIDE * THUMB_SIDE)
    assert record.nbytes == full + copies + history_bytes(record.history)


def test_a_print_size_result_counts_at_its_real_size_and_drops_with_a_notice() -> None:
    from studio.session import DISPLAY_SIDE, THUMB_SIDE, history_bytes
    from studio.store import MemoryStore, new_owner_key

    def a4(result_id: int) -> StudioResult:  # 3508 × 2480 px, with its instant picture and mask
        record = _sized_result(result_id, 8)
        record.image = np.zeros((2480, 3508, 3), np.uint8)
        record.content = np.zeros_like(record.image)
        record.instant = np.zeros_like(record.image)
        record.mask = np.zeros((2480, 3508), np.uint8)
        return record

    first = a4(1)
    assert first.nbytes == 3 * 2480 * 3508 * 3 + 2480 * 3508 + history_bytes([])
    first.fitted(DISPLAY_SIDE)
    first.fitted(THUMB_SIDE)
    assert first.nbytes > 80 * 2**20  # about 84 MB: a dozen fill the default budget (1 GB)
    store, owner = MemoryStore(budget=first.nbytes + first.nbytes // 2), new_owner_key()
    store.add(owner, first)
    store.add(owner, a4(2))
    assert [item.result_id for item in store.results(owner)] == [2]
    (notice,) = store.take_notices(owner)
    assert notice.startswith("1 older result was removed to save memory")


def test_all_galleries_share_one_budget_oldest_first(monkeypatch) -> None:
    import studio.store

    one = _sized_result(0, 100).nbytes  # 100 px: the display copies are the image itself
    store = studio.store.MemoryStore(budget=3 * one)
    monkeypatch.setattr(studio.store, "_store", store)
    monkeypatch.setattr(studio.store, "_store_url", "")
    first = AppTest.from_function(
        _add_results,
        default_timeout=TIMEOUT,
        kwargs={"records": [_sized_result(1, 100), _sized_result(2, 100)]},
    ).run()
    assert "nothing dropped" in first.markdown[0].value
    second = AppTest.from_function(
        _add_results,
        default_timeout=TIMEOUT,
        kwargs={"records": [_sized_result(3, 100), _sized_result(4, 100)]},
    ).run()
    assert not first.exception and not second.exception
    # The fourth result overflows the budget: the process's oldest (the first browser's #1)
    # goes, and that browser is told on its next rerun.
    assert [item.result_id for item in _results(first)] == [2]
    assert [item.result_id for item in _results(second)] == [1, 2]  # ids count per browser
    assert store.held_bytes() <= 3 * one
    first.run()
    assert "1 older result was removed to save memory" in first.markdown[0].value
    assert "nothing dropped" in second.run().markdown[0].value


def test_how_it_works_page() -> None:
    at = _open()
    at.switch_page("pages/how_it_works.py").run()
    assert not at.exception, at.exception
    assert len(at.table) >= 3  # one reference table per group of controls
    assert len(at.image) >= 5


def _forecast(at: AppTest) -> str:
    """The one caption under the settings that forecasts the run."""
    (note,) = [text for text in _texts(at.caption) if "px picture" in text]
    return note


def test_a_paper_sets_the_size_for_the_photo_and_the_forecast_says_time_and_memory() -> None:
    at = _open()
    assert not [text for text in _texts(at.caption) if "px picture" in text]  # no photo yet
    _upload(at, _jpeg(96, 72), [])  # 4:3 landscape
    assert "This 512 × 384 px picture takes about " in _forecast(at)
    at.selectbox(key="paper").set_value("A4-landscape").run()
    assert not at.exception, at.exception
    size = at.slider(key="size")
    assert size.value == 3307 and size.disabled  # 3307 × 2480: A4's short side, uncropped
    note = _forecast(at)
    assert note.startswith(
        ":material/schedule: This 3307 × 2480 px picture (28.0 × 21.0 cm, A4 landscape at "
        "300 dpi) takes about "
    )
    assert re.search(
        r"takes about \d+(\.\d)? (s|min|h) to paint and about [\d.]+ GB of the "
        r"[\d.]+ GB of memory free on this server\.$",
        note,
    ), note
    at.selectbox(key="paper").set_value("A4-portrait").run()
    assert at.slider(key="size").value == 2480  # 2480 × 1860 across the portrait sheet
    at.radio(key="method").set_value("instant").run()
    assert "takes the instant network a few seconds" in _forecast(at)
    at.selectbox(key="paper").set_value("custom").run()
    assert not at.slider(key="size").disabled and at.slider(key="size").value == 2480
    at.selectbox(key="paper").set_value("A3-portrait").run()
    at.button(key="restore_defaults").click().run()  # the paper goes back with the size
    assert at.selectbox(key="paper").value == "custom" and at.slider(key="size").value == 512


def test_a_size_that_does_not_fit_in_memory_is_said_before_stylize(monkeypatch) -> None:
    import nst.front

    monkeypatch.setattr(nst.front, "available_memory", lambda: 2 * 10**9)
    at = _open()
    _upload(at, _jpeg(96, 72), [])
    at.selectbox(key="paper").set_value("A3-landscape").run()
    assert not at.exception, at.exception
    (warning,) = [text for text in _texts(at.warning) if "memory" in text]
    assert re.fullmatch(
        r"This 4678 × 3508 px picture \(39\.6 × 29\.7 cm, A3 landscape at 300 dpi\) needs "
        r"about \d+ GB of memory but only 2\.0 GB is free on this server; choose a smaller "
        r"output size or paper\.",
        warning,
    ), warning
    assert not [text for text in _texts(at.caption) if "px picture" in text]


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 100, 50)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_kind_of_upload_is_handled_or_explained_in_one_sentence() -> None:
    at = _open()
    for name, data, (kind, detail) in CASES:
        at.file_uploader(key="content_upload").set_value((f"{name}.jpg", data, "image/jpeg"))
        at.run()
        assert not at.exception, (name, at.exception)
        errors = _texts(at.error)
        captions = _captions(at)
        if kind == "ok":
            height, width = detail
            assert not errors, (name, errors)
            assert f"{name}.jpg · {width}×{height}" in captions, (name, captions)
        else:
            assert len(errors) == 1, (name, errors)
            assert errors[0].startswith(f"{name}.jpg: ") and detail in errors[0], name
            assert "\n" not in errors[0] and "Traceback" not in errors[0]


def test_a_file_over_the_upload_limit_is_refused() -> None:
    at = _open()
    limit_mb = 25  # server.maxUploadSize in .streamlit/config.toml
    data = b"\xff\xd8" + bytes((limit_mb + 1) * 2**20)
    at.file_uploader(key="content_upload").set_value(("huge.jpg", data, "image/jpeg")).run()
    (message,) = _texts(at.error)
    assert message.startswith("huge.jpg: The file is 26.0 MB, more than the 25.0 MB limit")


def test_a_tiny_photo_still_works() -> None:
    at = _open()
    _upload(at, _png(20, 12), [("a.jpg", _jpeg())])
    assert not _texts(at.error)
    _stylize(at, steps=1)
    (record,) = _results(at)
    assert min(record.image.shape[:2]) >= 32  # the engine's smallest working side


def test_an_engine_failure_is_one_sentence_and_results_stay(finished_run: AppTest) -> None:
    at = finished_run
    at.text_input(key="content_layers").set_value("no_such_layer")
    at.button(key="stylize").click().run()
    assert not at.exception, at.exception
    _settle(at)
    (message,) = _texts(at.error)
    assert "no_such_layer" in message and "\n" not in message
    assert _results(at)[0].steps_done == 3  # the earlier result stays


def test_two_styles_blended_under_a_mask() -> None:
    at = _open()
    _upload(at, _jpeg(), [("a.jpg", _jpeg(seed=1))])
    at.pills(key="style_samples").set_value(["swirls"])
    mask = np.zeros((72, 96, 3), np.uint8)
    mask[:, 48:] = 255
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")
    at.segmented_control(key="mask_source").set_value("Upload").run()
    at.file_uploader(key="mask_upload").set_value(("mask.png", buffer.getvalue(), "image/png"))
    at.text_input(key="style_blend").set_value("0.7, 0.3")
    at.selectbox(key="preserve_colors").set_value("luminance")
    _stylize(at, steps=2)
    assert not _texts(at.error)
    (record,) = _results(at)
    assert record.style_names == ("a.jpg", "swirls")
    assert record.config.style_blend == (0.7, 0.3)
    assert record.config.preserve_colors == "luminance"
    assert record.mask_source == "mask.png"
    assert read_settings(record.png_bytes())["mask"] == "mask.png"


def test_a_run_goes_on_through_other_clicks_and_only_stop_ends_it() -> None:
    from nst.jobs import JobState, get_backend
    from studio.gallery import owner_store

    at = _open()
    _upload(at, _jpeg(), [("a.jpg", _jpeg(seed=1))])
    at.slider(key="size").set_value(64)
    at.slider(key="steps").set_value(5000)
    at.button(key="stylize").click().run()
    run = owner_store().run(_owner(at))
    assert run is not None
    deadline = time.monotonic() + TIMEOUT
    while get_backend().status(run.job_id, owner=_owner(at)).progress is None or (
        get_backend().status(run.job_id, owner=_owner(at)).progress.step < 1
    ):
        assert time.monotonic() < deadline, "the run did not start painting"
        time.sleep(0.2)
    # A slider, another page and back: the run is still the same one, still painting.
    at.select_slider(key="style_weight").set_value(100.0).run()
    assert "The settings you changed apply to your next run." in " ".join(_texts(at.caption))
    at.switch_page("pages/gallery.py").run()
    at.switch_page("pages/stylize.py").run()
    assert not at.exception, at.exception
    assert owner_store().run(_owner(at)).job_id == run.job_id
    assert get_backend().status(run.job_id, owner=_owner(at)).state is JobState.RUNNING
    assert not _results(at)
    at.button(key="stop_run").click().run()
    _settle(at)
    (record,) = _results(at)
    assert record.stopped and 1 <= record.steps_done < 5000


def test_a_new_stylize_says_it_replaces_the_running_run() -> None:
    from studio.runs import REPLACED

    at = _open()
    _upload(at, _jpeg(), [("a.jpg", _jpeg(seed=1))])
    at.slider(key="size").set_value(64)
    at.slider(key="steps").set_value(5000)
    at.button(key="stylize").click().run()
    _wait_for_a_picture(at)
    at.slider(key="steps").set_value(2)
    at.button(key="stylize").click().run()
    assert not at.exception, at.exception
    # The first run had at least its instant picture, kept as a result of its own.
    assert REPLACED in _texts(at.info)
    _settle(at)
    first, second = _results(at)
    assert first.stopped or first.config.method == "instant"
    assert second.steps_done == 2 and not second.stopped


def test_the_instant_picture_is_shown_as_such_and_kept_by_a_stop_before_step_one() -> None:
    from nst.jobs.backend import JobProgress, JobState, JobStatus, encode_png
    from nst.records import Result
    from studio.runs import _outcome_record, _progress_text, _with_instant
    from studio.store import PendingRun

    instant_step = JobProgress(step=0, total=100, loss=float("nan"), parts={}, elapsed=0.9)
    assert _progress_text(instant_step) == (
        "Instant picture ready; starting the 100 painting steps…"
    )
    config = StyleConfig(size=64)
    info = PendingRun(
        "j", config, np.zeros((6, 8, 3), np.uint8), "photo", "k", ("s",), None, None, None, 0.0
    )
    photo = np.zeros((6, 8, 3), np.float32)
    instant = np.full((6, 8, 3), 0.5, np.float32)
    status = JobStatus(
        job_id="j",
        state=JobState.CANCELLED,
        progress=instant_step,
        preview=encode_png(instant),
        preview_step=0,
    )
    stopped = Result(photo, [], {"first_preview": 0.4}, config, stopped=True, instant=instant)
    assert _outcome_record(info, status, stopped) is None  # nothing painted yet
    assert _outcome_record(info, status, None) is None  # the instant picture is no step either
    # ... but the instant picture is kept, as an instant result of its own.
    kept = _with_instant(info, None, stopped)
    assert kept.config.method == "instant" and kept.steps_done == 0 and kept.seconds == 0.4
    np.testing.assert_array_equal(kept.image, np.full((6, 8, 3), 128, np.uint8))
    assert kept.status_text == "Painted by the instant network in 0.4 s."
    # From the page's own copy when the result did not come back.
    seen = dataclasses.replace(info, instant_png=status.preview)
    assert _with_instant(seen, None, None).config.method == "instant"
    # A painted record carries it beside its own image.
    one_step = Result(photo, [{"step": 1.0, "loss": 1.0}], {}, config, stopped=True, steps_done=1)
    painted = _with_instant(seen, _outcome_record(seen, status, one_step), one_step)
    assert painted.steps_done == 1 and painted.instant.shape == painted.image.shape


def _stop_row_page() -> None:
    """An AppTest script: the top of a live view of a job that is still running."""
    from nst.jobs.backend import JobState, JobStatus
    from studio.runs import stop_row

    status = JobStatus(job_id="job-1", state=JobState.RUNNING)
    stop_row("stop", "owner", "job-1", status, "Stop keeps the picture so far.")


def test_stop_says_the_run_is_stopping_until_its_step_ends() -> None:
    from studio.runs import STOPPING

    at = AppTest.from_function(_stop_row_page, default_timeout=TIMEOUT).run()
    assert _texts(at.caption) == ["Stop keeps the picture so far."]
    assert not at.button(key="stop").disabled
    at.button(key="stop").click().run()
    assert not at.exception, at.exception
    assert _texts(at.caption) == [f":material/stop_circle: {STOPPING}"]
    assert at.button(key="stop").disabled  # pressed once is enough


def test_a_replaced_run_keeps_its_last_preview_at_the_output_size() -> None:
    from nst.jobs.backend import JobProgress, JobState, JobStatus, encode_png
    from studio.runs import _outcome_record
    from studio.store import PendingRun

    # Replaced while a smaller scale was painting (its step outlasted the wait): the preview
    # is at that scale's size, the record at the run's output size, as the engine keeps it.
    run = PendingRun(
        "j",
        StyleConfig(size=64),
        np.zeros((48, 64, 3), np.uint8),
        "photo",
        "k",
        ("s",),
        None,
        None,
        None,
        0.0,
    )
    progress = JobProgress(step=3, total=10, loss=1.0, parts={}, elapsed=2.0)
    preview = encode_png(np.full((24, 32, 3), 0.5, np.float32))
    status = JobStatus("j", JobState.RUNNING, progress=progress, preview=preview, preview_step=3)
    record = _outcome_record(run, status, None)
    assert record.image.shape == record.content.shape == (48, 64, 3)
    assert record.stopped and record.steps_done == 3 and abs(int(record.image.mean()) - 128) <= 1


def _display_twice(png: bytes) -> None:
    """An AppTest script: the live view's display copy of one preview, asked for twice."""
    import streamlit as st

    from studio.runs import _display_bytes

    first = _display_bytes(png, "job-1", 3)
    again = _display_bytes(png, "job-1", 3)
    next_step = _display_bytes(png, "job-1", 4)
    st.write(f"{first.shape} {first is again} {next_step is first}")


def test_a_large_preview_is_shrunk_once_not_at_every_poll() -> None:
    from nst.jobs.backend import encode_png

    png = encode_png(np.zeros((1536, 2048, 3), np.float32))
    at = AppTest.from_function(_display_twice, default_timeout=TIMEOUT, kwargs={"png": png})
    at.run()
    assert not at.exception, at.exception
    assert at.markdown[0].value == "(768, 1024, 3) True False"
