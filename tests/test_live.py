"""The Live page: its frame processor (``nst.instant.live``) on the real networks, and the page's
controls and snapshot driven headless with ``streamlit.testing.v1.AppTest``.

The camera stream itself needs a browser: ``tests/test_live_e2e.py`` drives it in Chromium.
No timing thresholds: the processor's clock and sleep are passed in where time matters.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from nst.config import StyleConfig, field_spec
from nst.instant import load_networks
from nst.instant.live import (
    ADAPT_EVERY,
    LIVE_SIDE,
    MAX_LIVE_ENV,
    MIN_LIVE_SIDE,
    STALE_SECONDS,
    LiveProcessor,
    LiveSettings,
    LiveSlots,
    live_side_spec,
    max_live_streams,
)
from nst.instant.transfer import style_windows
from nst.instant.video import DEFAULT_STEADINESS
from nst.synthetic import synthetic_frames
from studio.live import ICE_ENV, ice_servers
from tests.scenes import painting

APP = str(Path(__file__).resolve().parents[1] / "app.py")
HEIGHT, WIDTH = 120, 160


def _uint8(frame: np.ndarray) -> np.ndarray:
    return np.round(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """The synthetic clip on a still background, as a camera sends it (uint8 RGB)."""
    return [_uint8(frame) for frame in synthetic_frames(8, HEIGHT, WIDTH, pan_speed=0.0)]


@pytest.fixture(scope="module")
def art() -> np.ndarray:
    return np.asarray(painting(200, 200), np.float32) / 255.0


class CountingNetworks:
    """The real networks, counting the predictor's passes (one per square view)."""

    def __init__(self) -> None:
        self.networks = load_networks()
        self.predictions = 0

    def style_vector(self, image: np.ndarray) -> np.ndarray:
        self.predictions += 1
        return self.networks.style_vector(image)

    def transform(self, photo: np.ndarray, vector: np.ndarray) -> np.ndarray:
        return self.networks.transform(photo, vector)


class StepClock:
    """A clock that moves by ``step`` seconds at every reading."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_frame_is_painted_at_its_own_size(frames: list[np.ndarray], art: np.ndarray) -> None:
    processor = LiveProcessor()
    processor.set_style("art", [art], StyleConfig(method="instant"))
    painted = processor.process(frames[0])
    assert painted.shape == frames[0].shape and painted.dtype == np.uint8
    assert np.abs(painted.astype(float) - frames[0]).mean() > 10  # repainted, not passed on
    stats = processor.stats()
    assert stats.state == "painting" and stats.frames == 1
    assert stats.frame_shape == (HEIGHT, WIDTH) and stats.work_shape == (HEIGHT, WIDTH)


def test_without_a_painting_the_camera_passes_through(frames: list[np.ndarray]) -> None:
    processor = LiveProcessor()
    assert np.array_equal(processor.process(frames[0]), frames[0])
    assert processor.stats().state == "no_style"


def test_the_style_vector_is_computed_once_per_painting_choice(
    frames: list[np.ndarray], art: np.ndarray
) -> None:
    networks = CountingNetworks()
    processor = LiveProcessor(networks=networks)  # type: ignore[arg-type]
    views = len(style_windows(art))
    processor.set_style("art", [art], StyleConfig(method="instant"))
    for frame in frames[:4]:
        processor.process(frame)
    assert networks.predictions == views
    processor.set_style("art", [art], StyleConfig(method="instant"))  # the same choice
    processor.process(frames[4])
    assert networks.predictions == views
    # Another choice (lower intensity: the camera's own style vector joins in) at the next frame.
    processor.set_style("art, softer", [art], StyleConfig(method="instant", style_weight=1.0))
    processor.process(frames[5])
    own_views = len(style_windows(frames[5]))
    assert networks.predictions == 2 * views + own_views


def test_steadiness_calms_the_still_background(frames: list[np.ndarray], art: np.ndarray) -> None:
    def background_change(steadiness: float) -> float:
        processor = LiveProcessor()
        processor.set_style("art", [art], StyleConfig(method="instant"))
        processor.set_settings(LiveSettings(steadiness=steadiness))
        rng = np.random.default_rng(0)
        outputs = []
        for frame in frames:  # camera noise on every frame, as a real sensor gives
            noisy = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
            outputs.append(processor.process(noisy).astype(np.float32))
        still = slice(0, HEIGHT // 5)  # the top rows: the disc passes through the middle
        return float(np.mean([np.abs(b - a)[still].mean() for a, b in itertools.pairwise(outputs)]))

    assert background_change(DEFAULT_STEADINESS) < 0.8 * background_change(0.0)


def test_the_size_shrinks_when_frames_are_slow_and_grows_back(
    frames: list[np.ndarray], art: np.ndarray
) -> None:
    big = [_uint8(frame) for frame in synthetic_frames(2, 480, 640, pan_speed=0.0)]
    clock = StepClock(0.5)  # every frame seems to take a second: far behind any frame rate
    processor = LiveProcessor(clock=clock)
    processor.set_style("art", [art], StyleConfig(method="instant"))
    sides = []
    for index in range(8 * ADAPT_EVERY):
        processor.process(big[index % 2])
        sides.append(max(processor.stats().work_shape))
    assert sides[0] == LIVE_SIDE
    assert sides == sorted(sides, reverse=True)  # only ever smaller while behind
    assert sides[-1] == MIN_LIVE_SIDE and processor.stats().reduced
    assert processor.process(big[0]).shape == big[0].shape  # still shown at the camera's size
    clock.step = 0.0001  # now frames are quick: back up to the chosen live size
    for index in range(12 * ADAPT_EVERY):
        processor.process(big[index % 2])
    assert max(processor.stats().work_shape) == LIVE_SIDE and not processor.stats().reduced


def test_a_smaller_live_size_paints_smaller(frames: list[np.ndarray], art: np.ndarray) -> None:
    processor = LiveProcessor()
    processor.set_style("art", [art], StyleConfig(method="instant"))
    processor.set_settings(LiveSettings(side=MIN_LIVE_SIDE))
    assert processor.process(frames[0]).shape == frames[0].shape
    assert max(processor.stats().work_shape) == MIN_LIVE_SIDE


def test_live_slots_refuse_a_stream_beyond_the_limit(
    frames: list[np.ndarray], art: np.ndarray
) -> None:
    clock = StepClock(0.0)
    slots = LiveSlots(1, clock=clock)
    first, second = LiveProcessor(slots=slots), LiveProcessor(slots=slots)
    for processor in (first, second):
        processor.set_style("art", [art], StyleConfig(method="instant"))
    first.process(frames[0])
    refused = second.process(frames[0])
    assert second.stats().state == "refused" and slots.in_use() == 1
    assert refused.mean() < 0.5 * frames[0].mean()  # dimmed, not painted
    first.close()  # the first stream ended: its slot is free
    second.process(frames[1])
    assert second.stats().state == "painting" and slots.holds(second)
    clock.now += STALE_SECONDS + 1  # the second stream's tab vanished without a word
    assert slots.acquire(first) and not slots.holds(second)


def test_a_busy_server_gets_room_and_the_stream_says_so(
    frames: list[np.ndarray], art: np.ndarray
) -> None:
    waits: list[float] = []
    processor = LiveProcessor(busy=lambda: True, clock=StepClock(0.05), sleep=waits.append)
    processor.set_style("art", [art], StyleConfig(method="instant"))
    processor.process(frames[0])
    assert processor.stats().yielding
    assert waits and waits[0] > 0  # as long as the frame took


def test_close_forgets_the_frames(frames: list[np.ndarray], art: np.ndarray) -> None:
    processor = LiveProcessor()
    processor.set_style("art", [art], StyleConfig(method="instant"))
    processor.process(frames[0])
    latest = processor.latest_frame()
    assert latest is not None and np.array_equal(latest, frames[0])
    processor.close()
    assert processor.latest_frame() is None and processor.stats().state == "stopped"


def test_settings_out_of_bounds_are_one_sentence() -> None:
    with pytest.raises(ValueError, match="live size must be between"):
        LiveSettings(side=10)
    with pytest.raises(ValueError, match="Steadiness must be between"):
        LiveSettings(steadiness=2.0)
    spec = live_side_spec()
    assert (spec.minimum, spec.default, spec.maximum) == (MIN_LIVE_SIDE, LIVE_SIDE, 960)


def test_the_live_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_LIVE_ENV, "3")
    assert max_live_streams() == 3
    monkeypatch.setenv(MAX_LIVE_ENV, "many")
    with pytest.raises(ValueError, match="NST_MAX_LIVE must be a whole number"):
        max_live_streams()
    monkeypatch.delenv(MAX_LIVE_ENV)
    assert max_live_streams() >= 1


def test_ice_servers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ICE_ENV, raising=False)
    assert ice_servers() == []  # the local network only: nobody else is contacted
    monkeypatch.setenv(ICE_ENV, "auto")
    assert ice_servers() is None
    turn = '[{"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"}]'
    monkeypatch.setenv(ICE_ENV, turn)
    assert ice_servers() == [
        {"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"}
    ]
    for bad in ("turn:turn.example.org", '{"urls": "stun:x"}', '[{"url": "stun:x"}]'):
        monkeypatch.setenv(ICE_ENV, bad)
        with pytest.raises(ValueError, match="NST_ICE_SERVERS must be"):
            ice_servers()


# The page --------------------------------------------------------------------------------


def _live_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/live.py")
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_page_offers_its_controls_with_the_configs_defaults() -> None:
    at = _live_page()
    intensity = at.select_slider(key="live_style_weight")
    assert intensity.label == "Style intensity"
    assert intensity.value == field_spec("style_weight").default
    assert at.select_slider(key="live_temporal_weight").label == "Steadiness"
    assert at.slider(key="live_side").value == LIVE_SIDE
    snapshot_size = at.slider(key="live_size")
    assert snapshot_size.label == "Snapshot size (px)"
    assert snapshot_size.value == field_spec("size").default
    assert at.pills(key="style_samples").options  # the same painting choice as Stylize
    assert at.button(key="live_snapshot").label == "Snapshot"
    # Without a browser session there is no camera stream; the page says so in one sentence.
    assert any("The camera needs the studio's web server" in info.value for info in at.info)


def test_a_snapshot_before_any_frame_says_what_to_do() -> None:
    at = _live_page()
    at.pills(key="style_samples").set_value(["swirls"]).run()
    at.button(key="live_snapshot").click().run()
    assert [error.value for error in at.error] == [
        "Start the camera first: a snapshot paints its current picture."
    ]


def test_several_paintings_blend_and_a_wrong_blend_is_one_sentence() -> None:
    at = _live_page()
    at.pills(key="style_samples").set_value(["swirls", "mosaic"]).run()
    at.text_input(key="live_style_blend").input("1,2,3").run()
    assert [error.value for error in at.error] == [
        "Style blend: give one weight per painting (2 chosen, 3 given), or leave it empty for "
        "equal weights."
    ]
    at.text_input(key="live_style_blend").input("3,1").run()
    assert not at.error


def test_a_snapshot_paints_the_current_frame_into_the_gallery(frames: list[np.ndarray]) -> None:
    at = _live_page()
    at.pills(key="style_samples").set_value(["swirls"]).run()
    at.slider(key="live_size").set_value(256).run()
    processor = at.session_state["live_processor"]
    processor.process(frames[0])  # what the camera stream does with each frame
    at.button(key="live_snapshot").click().run()
    assert not at.exception, at.exception
    assert [success.value for success in at.success] == ["Snapshot #1 (256×192) is in the gallery."]
    at.switch_page("pages/gallery.py").run()
    assert not at.exception, at.exception
    shown = [element.value for element in [*at.markdown, *at.caption, *at.subheader]]
    assert any("Camera snapshot × swirls" in str(text) for text in shown), shown


def test_a_server_without_live_slots_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_LIVE_ENV, "0")
    at = _live_page()
    assert [info.value for info in at.info] == ["The Live page is turned off on this server."]
    monkeypatch.setenv(MAX_LIVE_ENV, "1")
    monkeypatch.setenv(ICE_ENV, "stun:nowhere")
    at.run()
    assert any("NST_ICE_SERVERS must be" in error.value for error in at.error)
