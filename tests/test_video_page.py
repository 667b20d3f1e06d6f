"""The Video page, driven headless with ``streamlit.testing.v1.AppTest``: upload, run, download."""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
from streamlit.testing.v1 import AppTest

from nst.config import StyleConfig
from nst.knobs import specs_of
from nst.video_config import VideoConfig
from studio.video import NOT_FOR_VIDEO, VIDEO_MANAGED
from tests.video_cases import audio_stream_seconds, make_clip

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 240


def _video_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/video.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _upload_clip(at: AppTest, name: str, data: bytes) -> None:
    at.file_uploader(key="video_upload").set_value((name, data, "video/mp4"))
    at.run()
    assert not at.exception, at.exception


def _finish(at: AppTest, timeout: float = TIMEOUT) -> None:
    """Rerun the page, as its live view does on its own, until the clip's run is settled; the
    first rerun shows the run going on (the press only submits it)."""
    assert "video_run" in at.session_state
    assert any(button.key == "video_stop" for button in at.button)
    deadline = time.monotonic() + timeout
    while "video_run" in at.session_state:
        assert time.monotonic() < deadline, "the clip did not finish"
        time.sleep(0.2)
        at.run()
        assert not at.exception, at.exception


def test_video_page_offers_the_config_settings() -> None:
    at = _video_page()
    widgets = [*at.slider, *at.select_slider, *at.selectbox, *at.text_input, *at.number_input]
    widgets += [*at.radio]
    keys = {widget.key for widget in widgets}
    expected = {
        f"video_{spec.name}" for spec in specs_of(StyleConfig) if spec.name not in NOT_FOR_VIDEO
    }
    expected |= {
        f"video_{spec.name}" for spec in specs_of(VideoConfig) if spec.name not in VIDEO_MANAGED
    }
    assert expected <= keys
    assert at.select_slider(key="video_temporal_weight").label == "Steadiness"
    # The same Instant/Painted choice as the Stylize page; a clip proposes Instant.
    method = at.radio(key="video_method")
    assert method.value == "instant" and set(method.options) == {"Instant", "Painted"}


def test_a_bad_clip_gets_one_sentence_and_the_page_keeps_working() -> None:
    at = _video_page()
    _upload_clip(at, "notes.mp4", b"these are not moving pictures" * 20)
    errors = [element.value for element in at.error]
    assert any("not a video" in text for text in errors)
    at.button(key="video_start").click()
    at.run()
    assert not at.exception
    assert any("Upload a clip first" in element.value for element in at.error)


def test_upload_run_a_few_frames_and_download() -> None:
    at = _video_page()
    _upload_clip(at, "walk.mp4", make_clip(fps=12, audio=True))
    assert any("12 frames at 12 fps" in caption.value for caption in at.caption)
    at.pills(key="style_samples").set_value(["mosaic"])
    at.radio(key="video_method").set_value("optimize")
    at.slider(key="video_size").set_value(64)
    at.slider(key="video_first_frame_steps").set_value(2)
    at.slider(key="video_frame_steps").set_value(1)
    at.number_input(key="video_max_frames").set_value(3)
    at.button(key="video_start").click()
    at.run()
    assert not at.exception, at.exception
    _finish(at)
    assert any("Finished 3 frames" in element.value for element in at.success)
    downloads = {button.label: button for button in at.get("download_button")}
    assert list(downloads) == ["Download MP4", "Download animated WebP", "Download GIF"]
    record = at.session_state["video_result"]
    with av.open(io.BytesIO(record.mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3
    assert audio_stream_seconds(record.mp4) > 0.2  # the clip's sound, cut to 3 frames


def test_an_instant_run_gives_every_frame_and_its_frame_rate() -> None:
    at = _video_page()
    _upload_clip(at, "walk.mp4", make_clip(fps=12, audio=True))
    at.pills(key="style_samples").set_value(["mosaic"])
    at.slider(key="video_size").set_value(64)
    at.button(key="video_start").click()
    at.run()
    assert not at.exception, at.exception
    _finish(at)
    finished = [element.value for element in at.success if "Finished" in element.value]
    assert finished and "Finished 12 frames" in finished[0] and "frames/s" in finished[0]
    record = at.session_state["video_result"]
    with av.open(io.BytesIO(record.mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12
    assert audio_stream_seconds(record.mp4) > 0.9
